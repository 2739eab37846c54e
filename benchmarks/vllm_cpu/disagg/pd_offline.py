"""Offline disaggregated prefill/decode with vLLM's ExampleConnector (shared storage) on CPU.

  python pd_offline.py prefill   # prefill engine, kv_producer, max_tokens=1, stores KV
  python pd_offline.py decode    # decode engine, kv_consumer, loads KV, decodes N tokens
"""
import json
import os
import sys
import time
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HARNESS))
import engine as E  # noqa: E402  (the harness folder, put on the path above)
import numpy as np  # noqa: E402
from vllm.config import KVTransferConfig  # noqa: E402

OUT = HARNESS / "work" / "disagg"
STORE = Path(os.environ.get("STORE", str(OUT / "kv_store")))
LENS = [140, 260, 390, 500]
DECODE_TOKENS = int(os.environ.get("DECODE_TOKENS", "16"))
EAGER = os.environ.get("EAGER", "1") == "1"
CONNECTOR = os.environ.get("CONNECTOR", "ExampleConnector")


def run(engine, reqs, out_tokens, tag):
    """reqs: list of (rid, prompt). Returns per-request results and wall time."""
    res = {}
    t0 = time.monotonic()
    from vllm import SamplingParams
    for rid, p in reqs:
        sp = SamplingParams(temperature=0.0, min_tokens=out_tokens, max_tokens=out_tokens,
                            ignore_eos=True, detokenize=False)
        engine.add_request(rid, {"prompt_token_ids": p}, sp)
    def on(o, t):
        if o.finished:
            res[o.request_id] = {"tokens": list(o.outputs[0].token_ids), "t_done": t - t0,
                                 "num_cached_tokens": getattr(o, "num_cached_tokens", None),
                                 "kv_transfer_params": getattr(o, "kv_transfer_params", None)}
    E.drain(engine, on)
    wall = time.monotonic() - t0
    print(f"[{tag}] {len(reqs)} reqs wall {wall:.3f}s", flush=True)
    return res, wall


def main():
    role = sys.argv[1]
    rng = np.random.default_rng(123)
    prompts = [E.prompt_ids(rng, n) for n in LENS]
    ctrl = [E.prompt_ids(rng, n + 1) for n in LENS]       # never stored: recompute control
    warm = E.prompt_ids(rng, 64)
    kv_role = {"prefill": "kv_producer", "decode": "kv_consumer", "ref": None}[role]
    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parent) + os.pathsep + os.environ.get("PYTHONPATH", "")
    sys.path.insert(0, str(OUT))
    ktc = None if kv_role is None else KVTransferConfig(kv_connector=CONNECTOR, kv_role=kv_role,
                           kv_connector_module_path="timed_connector" if CONNECTOR.startswith("Timed") else None,
                           kv_connector_extra_config={"shared_storage_path": str(STORE)})
    s = E.EngineSettings(max_model_len=2048, max_num_batched_tokens=2048, max_num_seqs=16,
                         kv_cache_gib=0.25, enforce_eager=EAGER,
                         iterlog=str(OUT / f"iterlog_{role}.jsonl"),
                         extra={"kv_transfer_config": ktc} if ktc else {})
    st = E.start_engine(s)
    print(f"[{role}] startup {st.info['startup_s']} s, block_size {st.info['block_size']}, "
          f"kv_blocks {st.info['kv_blocks']}", flush=True)
    summary = {"role": role, "startup_s": st.info["startup_s"], "eager": EAGER}
    try:
        run(st.engine, [("warm", warm)], 2, f"{role}-warmup")
        if role == "prefill":
            STORE.mkdir(parents=True, exist_ok=True)
            # one by one, then all together
            res, wall = run(st.engine, [(f"p{i}", p) for i, p in enumerate(prompts)], 1, "prefill")
            first = [res[f"p{i}"]["tokens"][0] for i in range(len(prompts))]
            (OUT / "handoff.json").write_text(json.dumps(
                {"prompts": prompts, "first_tokens": first}))
            summary.update(prefill_wall_s=wall, results=res)
        elif role == "ref":
            h = json.loads((OUT / "handoff.json").read_text())
            full = [p for p in h["prompts"]]
            res, wall = run(st.engine, [(f"r{i}", p) for i, p in enumerate(full)],
                            DECODE_TOKENS + 1, "reference-full-recompute")
            summary.update(ref_wall_s=wall, results=res)
            for k, v in res.items():
                print(k, "tokens", v["tokens"], flush=True)
        else:
            h = json.loads((OUT / "handoff.json").read_text())
            dprompts = [p + [t] for p, t in zip(h["prompts"], h["first_tokens"], strict=True)]
            res_c, wall_c = run(st.engine, [(f"c{i}", p) for i, p in enumerate(ctrl)],
                                DECODE_TOKENS, "decode-recompute-control")
            res_d, wall_d = run(st.engine, [(f"d{i}", p) for i, p in enumerate(dprompts)],
                                DECODE_TOKENS, "decode-with-loaded-kv")
            summary.update(control_wall_s=wall_c, transfer_wall_s=wall_d,
                           control=res_c, transfer=res_d)
            for k, v in {**res_c, **res_d}.items():
                print(k, "cached", v["num_cached_tokens"], "t_done", round(v["t_done"], 3),
                      "tokens", [h["first_tokens"][int(k[1:])]] + v["tokens"] if k[0] == "d"
                      else v["tokens"], flush=True)
        time.sleep(0.3)
        rows = E.iteration_rows(E.read_iterlog(OUT / f"iterlog_{role}.jsonl"))
        summary["iterations"] = [{k: r[k] for k in ("time_s", "execute_s", "q", "context",
                                                     "req_ids")} for r in rows]
        for r in rows:
            print(f"  it {r['time_s']*1e3:8.1f} ms exec {r['execute_s']*1e3:8.1f} ms "
                  f"ids {r['req_ids']} q {r['q']} ctx {r['context']}", flush=True)
    finally:
        (OUT / f"summary_{role}.json").write_text(json.dumps(summary, indent=1))
        E.shutdown(st)


if __name__ == "__main__":
    main()
