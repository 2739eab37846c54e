"""Client-side 'proxy' for 1P+1D: prefill (max_tokens=1) on :8100, then decode on :8200."""
import concurrent.futures as cf
import json
import time
import urllib.request
from pathlib import Path

MODEL = str(Path(__file__).resolve().parents[1] / "work" / "model")
h = json.load(open("handoff_eager.json"))
ref = {}
for line in open("ref.log"):
    if line[:1] == "r" and line[1].isdigit():
        ref[int(line[1])] = json.loads(line.split("tokens", 1)[1])

def post(port, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions",
                                 data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    t0 = time.monotonic()
    with urllib.request.urlopen(req, timeout=300) as r:
        out = json.load(r)
    return out, time.monotonic() - t0

def one(i, p, n=16):
    base = {"model": MODEL, "temperature": 0,
            "ignore_eos": True, "return_token_ids": True}
    o1, tp = post(8100, {**base, "prompt": p, "max_tokens": 1})
    first = o1["choices"][0].get("token_ids")
    o2, td = post(8200, {**base, "prompt": p + first, "max_tokens": n, "min_tokens": n})
    toks = first + o2["choices"][0].get("token_ids")
    return i, tp, td, toks, toks == ref[i], o2.get("usage")

print("sequential:")
for i, p in enumerate(h["prompts"]):
    i, tp, td, toks, ok, usage = one(i, p)
    print(f" req{i} len {len(p)} prefill_http {tp*1e3:.1f} ms decode_http {td*1e3:.1f} ms matches_ref {ok} usage {usage}")
print("concurrent (4 at once, needs fresh prompts, so reuse: they hit the store again):")
t0 = time.monotonic()
with cf.ThreadPoolExecutor(4) as ex:
    for i, tp, td, _toks, ok, _usage in ex.map(lambda a: one(*a), enumerate(h["prompts"])):
        print(f" req{i} prefill_http {tp*1e3:.1f} ms decode_http {td*1e3:.1f} ms matches_ref {ok}")
print(f" wall {time.monotonic()-t0:.3f}s")
