"""Many configurations in one compiled call; new values never recompile."""

import jax
import numpy as np
from helpers import make_params

from frontier_jax.cost import ROOFLINE
from frontier_jax.reference import simulate_reference
from frontier_jax.runner import compare
from frontier_jax.sim import sim_shape, simulate_batch, stack, unstack


def _configs(c: int, salt: int):
    rng = np.random.default_rng(salt)
    return [
        make_params(
            n=100,
            rate=float(rng.uniform(5, 200)),
            replicas=int(rng.integers(1, 5)),
            router=["round_robin", "least_outstanding"][int(rng.integers(2))],
            max_num_seqs=int(rng.integers(1, 17)),
            max_batched_tokens=int(rng.integers(64, 2048)),
            kv_blocks=int(rng.integers(40, 3000)),
            seed=int(rng.integers(1 << 20)),
        )
        for _ in range(c)
    ]


def test_256_configs_one_call_no_recompile():
    first = stack(_configs(256, 0))
    shape = sim_shape(first, max_instances=4, max_batch=16)
    res = jax.device_get(simulate_batch(shape, first))
    assert res.finish_s.shape == (256, 100)
    size = simulate_batch._cache_size()
    second = stack(_configs(256, 1))
    res2 = jax.device_get(simulate_batch(shape, second))
    assert simulate_batch._cache_size() == size, "new values must not recompile"
    jax.device_get(simulate_batch(shape, second, ROOFLINE))  # the default, given explicitly
    assert simulate_batch._cache_size() == size, "naming the default cost must not recompile"
    assert not res.incomplete.any() and not res2.incomplete.any()
    # The configurations really differ, and each batched run equals its own reference run.
    assert len({float(x) for x in res2.end_s}) > 200
    for i in (0, 17, 255):
        p = unstack(second, i)
        ref = simulate_reference(p, 4)
        c = compare(unstack(res2, i), ref)
        assert c["max_rel_err_finish"] <= 1e-9 and c["preemptions_equal"] and c["replicas_equal"]
