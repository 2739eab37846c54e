"""Prefill/decode disaggregation: the request's path, KV transfers with backpressure, and
agreement with the reference simulator (which implements the path as plain event handlers)."""

import dataclasses
import math

import jax
import numpy as np
import pytest
from conftest import SCENARIOS
from helpers import make_params, make_pd_params
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontier_jax.contract import DECODE, PREFILL
from frontier_jax.invariants import violations
from frontier_jax.metrics import request_table
from frontier_jax.params import stack
from frontier_jax.reference import simulate_reference
from frontier_jax.reference import simulator as refsim
from frontier_jax.runner import compare, prepare, run_reference, run_vectorized
from frontier_jax.sim import SimShape, sim_shape, simulate, simulate_batch, unstack
from frontier_jax.spec import (
    SpecError,
    check_feasible,
    load_scenario,
    scenario_from_dict,
    scenario_to_dict,
    with_overrides,
)

PD_SCENARIOS = ["pd_1p1d", "pd_1p3d", "pd_3p1d"]


def _agree(vec, ref, tol=1e-9):
    c = compare(vec, ref)
    assert c["max_rel_err_finish"] <= tol and c["max_rel_err_ttft"] <= tol, c
    assert c["preemptions_equal"] and c["replicas_equal"] and c["iterations_equal"], c
    assert c["decode_replicas_equal"] and c["max_rel_err_transfer_end"] <= tol, c
    return c


@pytest.mark.parametrize("name", PD_SCENARIOS)
def test_shipped_pd_scenarios_agree(name):
    # pd_3p1d at its 2,000 requests (backpressure must build); the others' first 1,000
    n = 2000 if name == "pd_3p1d" else 1000
    prep = prepare(with_overrides(load_scenario(SCENARIOS / f"{name}.toml"), {"workload.num_requests": n}))
    assert prep.shape.disaggregated and prep.shape.num_requests == n
    vec, ref = run_vectorized(prep), run_reference(prep)
    c = _agree(vec.result, ref.result, 1e-6)
    assert c["finished"] == n
    assert int(vec.result.steps) < int(ref.result.steps)  # decode windows were jumped
    pd = ref.result.pd
    handed = np.asarray(pd.decode_replica) >= 0
    assert handed.sum() > 0.95 * n  # every request with more than one output token
    if name == "pd_3p1d":  # backpressure binds: transfers wait for decode memory
        assert vec.metrics["transfers_waiting_max"] > 10 and vec.metrics["transfer_wait_p90"] > 0.1


class _Watch(refsim._Reference):
    """The reference, recording when a transfer waits for decode memory and when a prefill
    instance with waiting requests cannot admit the next one for lack of free blocks."""

    kv_blocked = 0
    prefill_stalls = 0

    def start_transfer(self, d, t):
        dec = self.instances[d]
        if dec.x_req < 0 and dec.link:
            blocks = refsim._cdiv(max(self.prompt[dec.link[0]] - 1, 0), dec.block_size)
            if blocks > dec.free_blocks:
                _Watch.kv_blocked += 1
        super().start_transfer(d, t)

    def on_step(self, t, idx):
        inst = self.instances[idx]
        head = inst.waiting[0] if inst.waiting else None
        super().on_step(t, idx)
        if inst.role == PREFILL and head is not None and math.isinf(self.first_sched[head]):
            need = refsim._cdiv(self.prompt[head], inst.block_size)
            held = sum(1 for r, p in enumerate(self.replica_of)
                       if p == idx and self.prefill_end[r] <= t < self.xfer_end[r])
            if need > inst.free_blocks and held:
                _Watch.prefill_stalls += 1


def _watched(p, r):
    _Watch.kv_blocked = _Watch.prefill_stalls = 0
    return _Watch(p, r, refsim.ROOFLINE, None).run()


def test_backpressure_small_decode_memory():
    """1:1, saturated, the decode instance's KV small: transfers pause while decode memory is
    full, the prefill instance fills with finished-but-untransferred prompts and stops
    admitting, and every request finishes."""
    p = make_pd_params(n=150, rate=300.0, kv_blocks=(400, 120), prompt=(64, 400), output=(8, 60))
    ref = _watched(p, 2)
    assert _Watch.kv_blocked > 0, "transfers must wait for decode memory"
    assert _Watch.prefill_stalls > 0, "the prefill instance must stop admitting"
    t = request_table(ref, p.workload.arrival_s, p.workload.prompt, p.workload.output)
    assert np.nanmax(t["transfer_wait_s"]) > 0 and np.all(t["finished"])
    assert violations(ref, p.workload.arrival_s, p.workload.output) == []
    _agree(jax.device_get(simulate(sim_shape(p), p)), ref)


def test_backpressure_small_prefill_memory_and_a_slow_link():
    """The prefill side runs out: little KV and a slow link, so finished prompts hold its memory
    until their transfers end; it stalls, preempts, and everything still finishes."""
    p = make_pd_params(n=120, rate=200.0, kv_blocks=(60, 2000), link_bw=1e9, prompt=(64, 400),
                       output=(4, 40))
    ref = _watched(p, 2)
    assert _Watch.prefill_stalls > 0
    assert np.isfinite(ref.finish_s).all() and int(ref.preemptions.sum()) >= 0
    assert violations(ref, p.workload.arrival_s, p.workload.output) == []
    _agree(jax.device_get(simulate(sim_shape(p), p)), ref)


N = 40
SHAPE = SimShape(num_requests=N, max_instances=5, max_batch=8, queue_capacity=N, disaggregated=True)

pd_configs = st.fixed_dictionaries(dict(
    rate=st.floats(1.0, 500.0),
    prefill=st.integers(1, 2),
    decode=st.integers(1, 3),
    router=st.sampled_from(["round_robin", "least_outstanding"]),
    decode_router=st.sampled_from(["round_robin", "least_outstanding", "most_free_kv"]),
    max_num_seqs=st.tuples(st.integers(1, 8), st.integers(1, 8)),
    max_batched_tokens=st.tuples(st.integers(8, 1024), st.integers(8, 1024)),
    chunked=st.tuples(st.booleans(), st.booleans()),
    block_size=st.tuples(st.sampled_from([1, 4, 16]), st.sampled_from([1, 4, 16])),
    kv_blocks=st.tuples(st.integers(4, 300), st.integers(4, 300)),
    tp=st.tuples(st.sampled_from([1.0, 2.0]), st.sampled_from([1.0, 2.0, 4.0])),
    link_bw=st.floats(1e8, 1e11),
    prompt=st.tuples(st.integers(1, 32), st.integers(32, 400)),
    output=st.tuples(st.integers(1, 4), st.integers(4, 60)),
    seed=st.integers(0, 2**16),
    reserve_full_isl=st.booleans(),
))


@settings(max_examples=int(__import__("os").environ.get("PD_EXAMPLES", 25)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(pd_configs)
def test_random_pd_layouts_drain_and_agree(cfg):
    cfg["max_batched_tokens"] = tuple(max(b, s) for b, s in zip(cfg["max_batched_tokens"],
                                                                 cfg["max_num_seqs"], strict=True))
    p = make_pd_params(n=N, **cfg)
    vec = jax.device_get(simulate(SHAPE, p))
    assert not vec.incomplete and not vec.overflow and not vec.slots_full
    done, rejected = np.isfinite(vec.finish_s), vec.replica == -2
    np.testing.assert_array_equal(done, ~rejected)  # nothing stuck: finished or rejected
    assert violations(vec, p.workload.arrival_s, p.workload.output) == []
    _agree(vec, simulate_reference(p, SHAPE.max_instances))


def test_splits_and_a_colocated_layout_in_one_call():
    cfgs = [make_pd_params(n=60, rate=40.0, prefill=a, decode=b, seed=i)
            for i, (a, b) in enumerate([(1, 1), (1, 3), (2, 2), (3, 1)])]
    cfgs.append(make_params(n=60, rate=40.0, replicas=4, seed=9))  # co-located, same call
    batch = stack(cfgs, instances=4)
    shape = dataclasses.replace(sim_shape(batch), disaggregated=True)
    res = jax.device_get(simulate_batch(shape, batch))
    for i, p in enumerate(cfgs):
        one, ref = unstack(res, i), simulate_reference(p, 4)
        c = compare(one, ref)
        assert c["max_rel_err_finish"] <= 1e-9 and c["replicas_equal"] and c["iterations_equal"]
    assert (unstack(res, 4).pd.decode_replica == -1).all()


def test_roles_and_first_token_conventions():
    s = with_overrides(load_scenario(SCENARIOS / "pd_1p3d.toml"), {"workload.num_requests": 200})
    prep = prepare(s)
    assert prep.params.engine.pools.role.tolist() == [PREFILL, DECODE]
    assert prep.params.engine.pool.tolist() == [0, 1, 1, 1] and s.num_gpus == 4
    res = run_reference(prep).result
    wl = prep.params.workload
    dec = request_table(res, wl.arrival_s, wl.prompt, wl.output, "decode")
    pre = request_table(res, wl.arrival_s, wl.prompt, wl.output, "prefill")
    handed = np.asarray(res.pd.decode_replica) >= 0
    np.testing.assert_allclose(pre["ttft_s"][handed],
                               (res.pd.prefill_end_s - wl.arrival_s)[handed])
    assert np.all(dec["ttft_s"][handed] > pre["ttft_s"][handed])
    parts = sum(dec[k][handed] for k in ("queue_s", "prefill_s", "transfer_wait_s", "transfer_s",
                                         "decode_queue_s"))
    assert np.all(parts < dec["ttft_s"][handed])  # + the decode instance's first iteration


@pytest.mark.parametrize("edit, field", [
    (lambda d: d.pop("decode"), "decode"),
    (lambda d: d["kv_transfer"].update(bandwidth=0.0), "kv_transfer.bandwidth"),
    (lambda d: d["decode"].update(tp=3), "layout.decode.tp"),
    (lambda d: d["kv_transfer"].update(decode_router="random"), "kv_transfer.decode_router"),
    (lambda d: d["prefill"].update(replicas=0), "layout"),
    (lambda d: (d["decode"].update(scheduler={"gpu_memory_utilization": 0.21}),
                d["workload"]["prompt"].update(value=8000)),
     "layout.decode.scheduler.gpu_memory_utilization"),  # the longest request fits no decode
])
def test_bad_pd_scenarios_get_one_line(edit, field):
    d = {"model": {"preset": "llama-3-8b"}, "hardware": {"preset": "H100-SXM"},
         "prefill": {"replicas": 1}, "decode": {"replicas": 2}, "kv_transfer": {},
         "workload": {"num_requests": 10, "arrival": {"rate": 1.0},
                      "prompt": {"dist": "fixed", "value": 8}, "output": {"dist": "fixed", "value": 8}}}
    scenario_from_dict(d, "x.toml")
    edit(d)
    with pytest.raises(SpecError) as e:
        check_feasible(scenario_from_dict(d, "x.toml"))
    assert e.value.field == field and "\n" not in str(e.value)
    light = scenario_to_dict(load_scenario(SCENARIOS / "light.toml"))
    light["kv_transfer"] = {"link": "nvlink"}
    with pytest.raises(SpecError, match="only used by a prefill/decode layout"):
        scenario_from_dict(light, "x.toml")


def test_trace_shows_prefill_links_and_decode():
    from frontier_jax.trace import iteration_trace

    s = with_overrides(load_scenario(SCENARIOS / "pd_1p3d.toml"), {"workload.num_requests": 120})
    prep = prepare(s)
    events = iteration_trace(prep.params, prep.shape.max_instances, prep.cost)
    names = [e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"]
    assert names[:2] == ["prefill 0", "decode 1"] and "KV link -> decode 3" in names
    transfers = [e for e in events if e["ph"] == "X" and e["name"] == "kv transfer"]
    ref = run_reference(prep).result
    handed = int((np.asarray(ref.pd.decode_replica) >= 0).sum())
    assert len(transfers) == handed > 100
    assert {e["tid"] for e in transfers} == {4 + d for d in (1, 2, 3)}


def test_pd_sweeps_take_pool_shorthand_paths_and_label_pd_layouts(tmp_path):
    from frontier_jax.sweep import expand, plan, sweep_from_dict
    from frontier_jax.sweep.plan import family, identity

    spec = sweep_from_dict({
        "base": str(SCENARIOS / "pd_1p3d.toml"),
        "axes": {"prefill.replicas": [1, 2], "decode.tp": [1, 2]},
        "derived": {"decode.replicas": "8 // decode_tp - prefill_count",
                    "workload.num_requests": "50"},
        "constraints": {"expressions": ["gpus <= 8"]},
    })
    configs, dropped = expand(spec)
    plans, _ = plan(spec)
    rows = [identity(p) for p in plans]
    assert [(r["prefill_instances"], r["decode_instances"], r["gpus"]) for r in rows] == [
        (1, 7, 8), (1, 3, 7), (2, 6, 8), (2, 2, 6)]
    assert rows[1]["layout"].startswith("1P(TP1)+3D(TP2)")
    assert family(plans[0].scenario) == "PD P:TP1+D:TP1"
    with pytest.raises(SpecError, match="unknown pool field"):
        sweep_from_dict({"base": str(SCENARIOS / "pd_1p3d.toml"), "axes": {"decode.colour": [1]}})
