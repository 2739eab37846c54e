"""Conservation and agreement over random scenarios (hypothesis), one compiled shape."""

import jax
import numpy as np
from helpers import make_params
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontier_jax.reference import simulate_reference
from frontier_jax.runner import compare
from frontier_jax.sim import SimShape, simulate

N = 48
SHAPE = SimShape(num_requests=N, max_instances=3, max_batch=8, queue_capacity=N)

configs = st.fixed_dictionaries(
    dict(
        rate=st.floats(0.5, 400.0),
        replicas=st.integers(1, 3),
        router=st.sampled_from(["round_robin", "least_outstanding"]),
        max_num_seqs=st.integers(1, 8),
        max_batched_tokens=st.integers(8, 2048),
        chunked=st.booleans(),
        block_size=st.sampled_from([1, 4, 16, 32]),
        kv_blocks=st.integers(4, 400),
        prompt=st.tuples(st.integers(1, 64), st.integers(64, 700)),
        output=st.tuples(st.integers(1, 4), st.integers(4, 90)),
        seed=st.integers(0, 2**16),
        reserve_full_isl=st.booleans(),
    )
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_conservation_and_agreement(cfg):
    if cfg["max_batched_tokens"] < cfg["max_num_seqs"]:
        cfg["max_batched_tokens"] = cfg["max_num_seqs"]
    p = make_params(n=N, **cfg)
    res = jax.device_get(simulate(SHAPE, p))
    out = p.workload.output
    assert not res.incomplete and not res.overflow and not res.backwards
    rejected = res.replica == -2
    done = np.isfinite(res.finish_s)
    # Every request finishes exactly once or is rejected, never both, never neither.
    np.testing.assert_array_equal(done, ~rejected)
    # Tokens conserved: a finished request emitted exactly its output tokens.
    np.testing.assert_array_equal(res.generated[done], out[done])
    assert (res.generated[rejected] == 0).all()
    # Causality: arrival <= first scheduled <= first token <= finish.
    a = p.workload.arrival_s
    assert (res.first_sched_s[done] >= a[done]).all()
    assert (res.first_token_s[done] >= res.first_sched_s[done]).all()
    assert (res.finish_s[done] >= res.first_token_s[done]).all()
    # Occupancy never exceeds capacity; busy time never exceeds the makespan.
    span = max(res.end_s - a.min(), 1e-12)
    assert (res.block_s <= res.kv_blocks * span * (1 + 1e-9)).all()
    assert (res.busy_s <= span * (1 + 1e-9)).all()
    ref = simulate_reference(p, SHAPE.max_instances)
    c = compare(res, ref)
    assert c["max_rel_err_finish"] <= 1e-9 and c["max_rel_err_ttft"] <= 1e-9
    assert c["preemptions_equal"] and c["replicas_equal"]
