"""Per-request and per-run metrics, shared by both simulators (host, numpy).

Units: seconds for times, tokens for counts, requests/s and tokens/s for rates.
"""

from typing import Any

import numpy as np

from frontier_jax.contract import AF_RESOURCES, REJECTED, is_live

PERCENTILES = (50, 90, 99)


PD_PARTS = ("prefill_s", "transfer_wait_s", "transfer_s", "decode_queue_s")


def request_table(result: Any, arrival_s, prompt, output,
                  first_token: str = "decode") -> dict[str, np.ndarray]:
    """Per-request columns: arrival_s, prompt/output tokens, replica, ttft_s, tpot_s, e2e_s,
    queue_s (arrival to first scheduled), preemptions, finished, rejected; for a PD run also
    decode_replica and the parts of the path (s): prefill_s (first scheduled on the prefill
    instance to prompt done), transfer_wait_s (prompt done to transfer start: the link queue
    and backpressure), transfer_s, decode_queue_s (KV arrived to first scheduled on the decode
    instance), prefill_end_s.

    TPOT is the mean inter-token time after the first token, (finish - first token) /
    (output - 1); NaN for one-token outputs and unfinished requests. TTFT is arrival to the
    first output token (``first_token="decode"``: the decode instance's, as a client of vLLM's
    disaggregated serving sees it); with ``first_token="prefill"`` a PD request's first token
    counts at the end of its prefill (DistServe's convention). TPOT always runs from the first
    token the decode instance emits.
    """
    arrival_s = np.asarray(arrival_s, np.float64)
    output = np.asarray(output, np.int64)
    first = np.asarray(result.first_token_s, np.float64)
    finish = np.asarray(result.finish_s, np.float64)
    finished = np.isfinite(finish)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(finished & (output > 1), (finish - first) / (output - 1), np.nan)
    nan_if = lambda ok, x: np.where(ok, x, np.nan)  # noqa: E731
    pd = getattr(result, "pd", None)
    ttft_at = first
    if pd is not None and first_token == "prefill":
        pre_end = np.asarray(pd.prefill_end_s, np.float64)
        ttft_at = np.where(np.isfinite(pre_end), pre_end, first)
    table = {
        "arrival_s": arrival_s,
        "prompt_tokens": np.asarray(prompt, np.int64),
        "output_tokens": output,
        "replica": np.asarray(result.replica, np.int64),
        "ttft_s": nan_if(np.isfinite(first), ttft_at - arrival_s),
        "tpot_s": tpot,
        "e2e_s": nan_if(finished, finish - arrival_s),
        "queue_s": nan_if(
            np.isfinite(result.first_sched_s), np.asarray(result.first_sched_s) - arrival_s
        ),
        "preemptions": np.asarray(result.preemptions, np.int64),
        "generated_tokens": np.asarray(result.generated, np.int64),
        "finished": finished,
        "rejected": np.asarray(result.replica) == REJECTED,
    }
    if pd is not None:
        sched = np.asarray(result.first_sched_s, np.float64)
        pe, xs, xe, ds = (np.asarray(x, np.float64) for x in (
            pd.prefill_end_s, pd.transfer_start_s, pd.transfer_end_s, pd.decode_sched_s))
        gap = lambda a, b: nan_if(np.isfinite(a) & np.isfinite(b), b - a)  # noqa: E731
        table.update(decode_replica=np.asarray(pd.decode_replica, np.int64), prefill_end_s=pe,
                     prefill_s=gap(sched, pe), transfer_wait_s=gap(pe, xs), transfer_s=gap(xs, xe),
                     decode_queue_s=gap(xe, ds))
    return table


def _pcts(x: np.ndarray, name: str) -> dict[str, float]:
    x = x[np.isfinite(x)]
    out = {f"{name}_mean": float(np.mean(x)) if x.size else float("nan")}
    for q in PERCENTILES:
        out[f"{name}_p{q}"] = float(np.percentile(x, q)) if x.size else float("nan")
    return out


def run_metrics(
    table: dict[str, np.ndarray],
    result: Any,
    gpus: int,
    slo_ttft_s: float | None = None,
    slo_tpot_s: float | None = None,
    pool_names: list[str] | None = None,
) -> dict[str, Any]:
    """Summary of one run: counts, throughput, latency percentiles, SLO attainment, goodput,
    per-instance busy fraction, KV occupancy (of each instance's own capacity) and iterations;
    with ``pool_names`` (several pools) each pool's mean busy fraction and KV occupancy
    (``<pool>_busy_frac``, ``<pool>_kv_occupancy``); for a PD run the percentiles of the path's
    parts and :func:`transfers_waiting`.

    ``gpus``: the layout's GPUs (``Scenario.num_gpus``), the denominator of the per-GPU rates.
    The per-instance lists (keys ``replica_*``) cover the live instance slots in order.

    The run's duration is first arrival to last finish (makespan); throughput rates
    divide by it. A request meets the SLO when finished with TTFT <= slo_ttft_s and
    TPOT <= slo_tpot_s (a one-token request has no TPOT and meets that part);
    attainment is over all requests, rejected ones counting as misses.
    """
    fin = table["finished"]
    n = len(fin)
    pd = "transfer_wait_s" in table
    arrival = table["arrival_s"]
    end = float(np.max(np.where(fin, arrival + table["e2e_s"], -np.inf))) if fin.any() else 0.0
    start = float(arrival.min()) if n else 0.0
    duration = max(end - start, 1e-12)
    out_tok = float(table["generated_tokens"][fin].sum())
    in_tok = float(table["prompt_tokens"][fin].sum())
    m: dict[str, Any] = {
        "n_requests": n,
        "n_finished": int(fin.sum()),
        "n_rejected": int(table["rejected"].sum()),
        "duration_s": duration,
        "throughput_rps": fin.sum() / duration,
        "output_tok_s": out_tok / duration,
        "total_tok_s": (out_tok + in_tok) / duration,
        "output_tok_s_per_gpu": out_tok / duration / gpus,
        "total_tok_s_per_gpu": (out_tok + in_tok) / duration / gpus,
        "gpus": gpus,
        "preemptions": int(table["preemptions"].sum()),
        "steps": int(result.steps),
        "incomplete": bool(result.incomplete),
    }
    for col in ("ttft_s", "tpot_s", "e2e_s", "queue_s") + (PD_PARTS if pd else ()):
        m.update(_pcts(table[col], col[:-2]))
    if pd:
        m.update(transfers_waiting(table, duration))
    ok = fin.copy()
    if slo_ttft_s is not None:
        ok &= table["ttft_s"] <= slo_ttft_s
    if slo_tpot_s is not None:
        ok &= ~(table["tpot_s"] > slo_tpot_s)
    if slo_ttft_s is not None or slo_tpot_s is not None:
        m["slo_attainment"] = float(ok.sum() / max(n, 1))
        m["goodput_rps"] = float(ok.sum() / duration)
    live = is_live(np.asarray(result.pool))
    busy = np.asarray(result.busy_s)[live]
    blocks = np.asarray(result.block_s)[live]
    capacity = np.asarray(result.kv_blocks, np.float64)[live]
    m["replica_busy_frac"] = [float(x) for x in busy / duration]
    m["replica_kv_occupancy"] = [float(x) for x in blocks / (capacity * duration)]
    m["replica_iterations"] = [int(x) for x in np.asarray(result.iterations)[live]]
    if pool_names is not None and len(pool_names) > 1:
        pools = np.asarray(result.pool)[live]
        for k, name in enumerate(pool_names):
            mine = pools == k
            if mine.any():
                m[f"{name}_busy_frac"] = float(np.mean(busy[mine] / duration))
                m[f"{name}_kv_occupancy"] = float(np.mean(blocks[mine] / (capacity[mine] * duration)))
    if getattr(result, "af_busy_s", None) is not None:
        m.update(af_utilisation(np.asarray(result.af_busy_s)[live], busy))
    return m


def af_utilisation(af_busy: np.ndarray, busy: np.ndarray) -> dict[str, float]:
    """An AF run's per-resource utilisation: the share of the groups' iteration time that
    each resource (``AF_RESOURCES``: the attention side, the A->F link, the FFN side, the
    F->A link) works, ``af_<resource>_util``, and its bubble fraction ``af_<resource>_bubble``
    = 1 - util (waiting on the other resources; for the attention side also the LM head and
    host overhead outside the layer graph). Summed over the groups: af_busy [G, 4], busy [G]
    (seconds)."""
    total = max(float(np.sum(busy)), 1e-300)
    out: dict[str, float] = {}
    for k, name in enumerate(AF_RESOURCES):
        util = float(np.sum(af_busy[:, k])) / total
        out[f"af_{name}_util"] = util
        out[f"af_{name}_bubble"] = 1.0 - util
    return out


def transfers_waiting(table: dict[str, np.ndarray], duration: float) -> dict[str, float]:
    """Prompts whose prefill is done and whose KV transfer has not started (waiting for their
    link or for room on the decode instance): the most at once, and the time-mean over the
    run (by Little's law, the summed waits over the duration)."""
    pe = np.asarray(table["prefill_end_s"], np.float64)
    wait = np.asarray(table["transfer_wait_s"], np.float64)
    ok = np.isfinite(pe) & np.isfinite(wait)
    if not ok.any():
        return {"transfers_waiting_max": 0, "transfers_waiting_mean": 0.0}
    times = np.concatenate([pe[ok] + wait[ok], pe[ok]])  # starts first on a tie: -1 before +1
    steps = np.concatenate([-np.ones(ok.sum()), np.ones(ok.sum())])
    order = np.lexsort((steps, times))
    return {"transfers_waiting_max": int(np.max(np.cumsum(steps[order]), initial=0)),
            "transfers_waiting_mean": float(wait[ok].sum() / duration)}


def scenario_table(s: Any, result: Any, wl: Any) -> dict[str, np.ndarray]:
    """:func:`request_table` of a run of scenario ``s`` (its TTFT convention) on workload
    arrays ``wl``."""
    return request_table(result, wl.arrival_s, wl.prompt, wl.output, s.kv_transfer.first_token)


def scenario_metrics(s: Any, result: Any, wl: Any) -> tuple[dict, dict[str, Any]]:
    """(request table, run metrics) of a run of scenario ``s``: its GPUs, SLOs, TTFT
    convention and pool names."""
    table = scenario_table(s, result, wl)
    names = [p.name for p in s.pools] if s.layout else None
    return table, run_metrics(table, result, s.num_gpus, s.slo.ttft_s, s.slo.tpot_s, names)


def steady_state(
    table: dict[str, np.ndarray],
    slo_ttft_s: float | None = None,
    slo_tpot_s: float | None = None,
    warmup: float = 0.1,
    drain: float = 0.1,
) -> dict[str, float]:
    """SLO attainment and load trend of a run with its transients cut off.

    A finite run starts on an empty system (warm-up: the first requests find no queue) and
    ends draining (the last requests share the GPUs with fewer and fewer others), both
    optimistic. The measurement window keeps the requests whose arrival rank lies in
    ``[warmup, 1 - drain)`` of the run (by arrival time); every request is still simulated,
    so the ones outside the window are the load before and after it.

    Returns ``window_attainment`` (share of the window's requests that finish meeting the
    SLOs, rejected and unfinished ones missing), ``window_requests`` and ``ttft_trend``:
    the growth of TTFT per second of arrival time across the window, from the first and
    the last third of its arrivals (medians, robust to one long prompt):
    ``(median TTFT_last - median TTFT_first) / (median arrival_last - median arrival_first)``.
    Equivalently, first tokens come out at ``rate / (1 + ttft_trend)`` while requests arrive
    at ``rate``: about 0 when the system keeps up, about ``rate / capacity - 1`` when it is
    overloaded, whatever the run's length. Requests without a first token count as the
    slowest of their third (``inf``); NaN when the window has fewer than three requests
    (nothing to compare).
    """
    arrival = np.asarray(table["arrival_s"], np.float64)
    n = arrival.size
    order = np.argsort(arrival, kind="stable")
    lo, hi = int(np.floor(warmup * n)), int(np.ceil((1.0 - drain) * n))
    win = order[lo : max(hi, lo)]
    out: dict[str, float] = {"window_requests": int(win.size)}
    ok = np.asarray(table["finished"], bool)[win].copy()
    ttft = np.asarray(table["ttft_s"], np.float64)[win]
    if slo_ttft_s is not None:
        ok &= ttft <= slo_ttft_s
    if slo_tpot_s is not None:
        ok &= ~(np.asarray(table["tpot_s"], np.float64)[win] > slo_tpot_s)
    out["window_attainment"] = float(ok.sum() / win.size) if win.size else float("nan")
    third = win.size // 3
    if third < 1:
        out["ttft_trend"] = float("nan")
        return out
    a_first, a_last = arrival[win[:third]], arrival[win[-third:]]
    t_first, t_last = ttft[:third], ttft[-third:]
    da = float(np.median(a_last) - np.median(a_first))
    # a request without a first token counts as the slowest of its third
    t_first = np.where(np.isfinite(t_first), t_first, np.inf)
    t_last = np.where(np.isfinite(t_last), t_last, np.inf)
    with np.errstate(invalid="ignore"):
        dt = float(np.median(t_last) - np.median(t_first))
    if np.isnan(dt):  # most of both thirds never got a first token
        out["ttft_trend"] = float("inf")
    else:
        out["ttft_trend"] = dt / da if da > 0 else (float("inf") if dt > 0 else 0.0)
    return out
