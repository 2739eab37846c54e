"""Replay an open-loop workload through a running 1P+1D vLLM pair and record every request.

    python pd_replay.py --rates 1 3 --num-requests 80 --out ../work/disagg/replay \
        [--prefill-port 8100 --decode-port 8200] [--seed 0]

The servers are those of ``online_start.sh`` (a prefill and a decode OpenAI server with the
file-based ``ExampleConnector``). This script plays the proxy of vLLM's disaggregated examples:
at each request's arrival it sends the prompt to the prefill server with ``max_tokens=1``
(which computes the prompt and stores its KV), then the same prompt to the decode server,
streamed, with ``min_tokens = max_tokens = output`` (which loads the stored KV, computes the
last prompt token and decodes every output token). Only the standard library is needed.

The requests: prompts of ``128 k + 2`` tokens (k uniform in 1..--max-blocks), random token
ids. The connector stores the whole 128-token blocks of ``prompt[:-1]`` but looks a prompt up
by the whole blocks of ``prompt[:-2]`` (``align_to_block_size`` applied to ``len - 1``), so the
two agree only when ``len - 1`` is not a multiple of 128 (with ``128 k + 1`` tokens every
lookup misses and the decode server recomputes the prompt). With ``128 k + 2`` it moves
``128 k`` tokens and the decode server computes the last two;
outputs lognormal (median --output-median, sigma 0.6, clipped to 8..256). The same requests
and unit-rate gaps are replayed at every rate; only the gaps scale.

Per run it writes ``<out>/rate_<r>/requests.json`` (per request: scheduled arrival, prefill
sent/done, decode sent, first and last token times, all on one monotonic clock relative to
the run's start; prompt and output tokens, tokens received, the usage the server reported)
and ``meta.json`` (rate, seed, the servers' log files and the byte offsets of this run in
them, so that ``pd_compare.py`` reads the connector's save/load times of this run only).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import random
import shutil
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE.parent / "work" / "disagg"
MODEL = str(HERE.parent / "work" / "model")
BLOCK = 128


def make_requests(n: int, seed: int, max_blocks: int, output_median: float) -> list[dict]:
    rng = random.Random(seed)
    reqs, t = [], 0.0
    for i in range(n):
        t += rng.expovariate(1.0)
        k = rng.randint(1, max_blocks)
        out = int(min(256, max(8, round(rng.lognormvariate(math.log(output_median), 0.6)))))
        reqs.append({"id": i, "unit_arrival": t, "prompt": [rng.randrange(100, 31000) for _ in range(BLOCK * k + 2)],
                     "output_tokens": out})
    return reqs


def _post(port: int, body: dict, stream: bool):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"port {port}: HTTP {r.status}: {r.read()[:300]!r}")
    return c, r


def one(req: dict, t0: float, rate: float, ports: tuple[int, int], rec: dict) -> None:
    base = {"model": MODEL, "temperature": 0, "ignore_eos": True, "prompt": req["prompt"]}
    arrival = req["unit_arrival"] / rate
    delay = t0 + arrival - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    r = {"id": req["id"], "arrival_s": arrival, "prompt_tokens": len(req["prompt"]),
         "output_tokens": req["output_tokens"], "prefill_sent_s": time.monotonic() - t0}
    try:
        c, resp = _post(ports[0], {**base, "max_tokens": 1}, stream=False)
        json.loads(resp.read())
        c.close()
        r["prefill_done_s"] = time.monotonic() - t0
        n = req["output_tokens"]
        r["decode_sent_s"] = time.monotonic() - t0
        c, resp = _post(ports[1], {**base, "max_tokens": n, "min_tokens": n, "stream": True,
                                   "stream_options": {"include_usage": True}}, stream=True)
        chunks = 0
        for line in resp:
            line = line.strip()
            if not line.startswith(b"data: "):
                continue
            data = line[6:]
            if data == b"[DONE]":
                break
            msg = json.loads(data)
            if msg.get("choices"):
                now = time.monotonic() - t0
                chunks += 1
                r.setdefault("first_token_s", now)
                r["last_token_s"] = now
            if msg.get("usage"):
                r["usage"] = msg["usage"]
        c.close()
        r["chunks"] = chunks
        r["generated"] = int(r.get("usage", {}).get("completion_tokens", chunks))
    except Exception as e:  # recorded, not lost: the compare step counts it as unfinished
        r["error"] = repr(e)
    rec[req["id"]] = r


def wait_healthy(ports: tuple[int, int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for p in ports:
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", p, timeout=5)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"server on port {p} not healthy after {timeout:.0f} s")
            time.sleep(2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", type=float, nargs="+", required=True)
    ap.add_argument("--num-requests", type=int, default=80)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-blocks", type=int, default=5, help="prompts of 128 k + 2 tokens, k <= this")
    ap.add_argument("--output-median", type=float, default=48.0)
    ap.add_argument("--prefill-port", type=int, default=8100)
    ap.add_argument("--decode-port", type=int, default=8200)
    ap.add_argument("--logs", type=Path, default=WORK, help="folder of on_prefill.log / on_decode.log")
    ap.add_argument("--out", type=Path, default=WORK / "replay")
    ap.add_argument("--health-timeout", type=float, default=600.0)
    ap.add_argument("--kv-store", type=Path, default=WORK / "kv_online",
                    help="the connector's shared_storage_path, emptied before each rate")
    a = ap.parse_args()
    ports = (a.prefill_port, a.decode_port)
    wait_healthy(ports, a.health_timeout)
    reqs = make_requests(a.num_requests, a.seed, a.max_blocks, a.output_median)
    # warm-up: one request through both servers (first-call overheads stay out of the runs)
    warm = make_requests(2, a.seed + 1000, 1, 8)
    for w in warm:
        one({**w, "unit_arrival": 0.0}, time.monotonic(), 1.0, ports, {})
    logs = {k: a.logs / f"on_{k}.log" for k in ("prefill", "decode")}
    for rate in a.rates:
        # the connector stores a prompt only if its KV is not stored yet: without this, every rate
        # after the first would replay the same prompts with no saves on the prefill side
        if a.kv_store.is_dir():
            shutil.rmtree(a.kv_store)
        time.sleep(2.0)
        out = a.out / f"rate_{rate:g}"
        out.mkdir(parents=True, exist_ok=True)
        offsets = {k: (p.stat().st_size if p.exists() else 0) for k, p in logs.items()}
        rec: dict[int, dict] = {}
        t0 = time.monotonic()
        threads = [threading.Thread(target=one, args=(r, t0, rate, ports, rec)) for r in reqs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        time.sleep(1.0)  # let the servers flush their logs
        rows = [rec[i] for i in sorted(rec)]
        (out / "requests.json").write_text(json.dumps(rows) + "\n")
        meta = {"rate": rate, "seed": a.seed, "num_requests": a.num_requests, "wall_s": wall,
                "max_blocks": a.max_blocks, "output_median": a.output_median, "model": MODEL,
                "logs": {k: str(p) for k, p in logs.items()},
                "log_offsets": {k: [offsets[k], p.stat().st_size if p.exists() else 0]
                                for k, p in logs.items()}}
        (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        errs = sum("error" in r for r in rows)
        done = [r for r in rows if "last_token_s" in r]
        end = max((r["last_token_s"] for r in done), default=float("nan"))
        print(f"pd_replay: rate {rate:g} req/s: {len(done)}/{len(rows)} finished, {errs} errors, "
              f"{len(done) / end:.3f} req/s, wall {wall:.1f} s -> {out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
