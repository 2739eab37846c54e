"""Fuzzing the profile importers (hypothesis): native, Vidur, Frontier and aiconfigurator CSVs,
valid, mutated and garbage, must load or fail with one clear line, never crash or hang.

A valid case must load to exactly the expected rows, with the expected times converted to
seconds (rows with an empty time dropped and counted in ``attrs["nan_times"]``). A mutated or
garbage case must either load to sane frames (finite times > 0, equal-length attention lists)
or raise a DataError that is one line, names the file and says what is allowed.

The strategies and `load_profile_case` are shared with `benchmarks/fuzz.py`, which runs them on
thousands of inputs; the tests run a few dozen per kind (a `slow` variant runs more when
PROFILE_FUZZ_EXAMPLES is set).
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz_inputs import Outcome, attempt

from frontier_jax.predict.importers import DataError, load_file, load_profiles

# ==== cases =================================================================================


@dataclasses.dataclass
class ProfileCase:
    """One generated profile file: `content` (text or bytes) written at `name` (a relative
    path; its folders name the device and model), whether it must load (`valid`), and for
    valid cases the expected times in seconds (`times`, sorted) and dropped empty times
    (`nan_times`)."""

    content: Any
    name: str
    valid: bool = False
    times: tuple[float, ...] = ()
    nan_times: int = 0
    fmt: str = "auto"


def is_clear_data_error(err: BaseException, file: Path) -> bool:
    """True when `err` is a DataError whose message is one line starting with `file`, that
    says what is allowed, and that an explicit check raised (not the reader's safety net)."""
    msg = str(err)
    return (isinstance(err, DataError) and not err.internal and "\n" not in msg
            and msg.startswith(f"{file}: ") and "; allowed: " in msg
            and bool(msg.split("; allowed: ", 1)[1].strip()))


def check_frames(frames: dict[str, pd.DataFrame]) -> str | None:
    """Returns what is wrong with loaded frames (None when they are sane)."""
    for fam, df in frames.items():
        t = df["time_s"].to_numpy(float)
        if len(t) and not (np.isfinite(t).all() and (t > 0).all()):
            return f"{fam}: time_s not finite and > 0: {t[:5]}"
        if fam == "attention":
            for row in df[["q_lens", "c_lens", "is_decode", "counts"]].itertuples(index=False):
                if len({len(x) for x in row}) != 1 or not len(row[0]):
                    return f"attention lists of unequal length or empty: {row}"
                if min(row.counts) < 1 or min(row.q_lens) < 0 or min(row.c_lens) < 0:
                    return f"attention lists out of range: {row}"
    return None


def load_profile_case(case: ProfileCase, folder: Path, limit_s: float = 10.0) -> Outcome:
    """Writes `case` under `folder`, loads it with `load_file` and returns the Outcome: "ok"
    (for a valid case: exactly the expected times), "error" (a clear DataError), "unclear" (a
    DataError that is not clear, a valid case loaded wrongly, or a mutated case that loaded
    to frames that are not sane), "crash" (any other exception) or "hang"."""
    path = folder / case.name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(case.content, bytes):
        path.write_bytes(case.content)
    else:
        path.write_text(case.content, encoding="utf-8")
    out = attempt(lambda: load_file(path, case.fmt, root=folder), limit_s,
                  clear=lambda e: is_clear_data_error(e, path), expected=DataError)
    if out.status != "ok":
        return out
    frames, dt = out.result, out.seconds
    problem = check_frames(frames)
    if problem is None and case.valid:
        got = np.sort(np.concatenate([f["time_s"].to_numpy(float) for f in frames.values()] or [np.zeros(0)]))
        want = np.asarray(case.times, float)
        if len(got) != len(want) or not np.allclose(got, want, rtol=1e-9, atol=0):
            problem = f"loaded {len(got)} rows {got[:4]}..., expected {len(want)} rows {want[:4]}..."
        nan = sum(next(iter(frames.values())).attrs.get("nan_times", {}).values()) if frames else 0
        if problem is None and nan != case.nan_times:
            problem = f"nan_times {nan}, expected {case.nan_times}"
    if problem is not None:
        return Outcome("unclear", dt, problem, frames)
    return Outcome("ok", dt, result=frames)


# ==== valid profiles ========================================================================

DEVICES = ("h100", "a100", "h800", "a800")
MS = st.floats(1e-3, 50.0, allow_nan=False).map(lambda x: float(f"{x:.6g}"))
SECONDS = st.floats(1e-6, 0.4, allow_nan=False).map(lambda x: float(f"{x:.6g}"))


def _ts_cols(op: str, ms: list[float]) -> dict[str, list[float]]:
    return {f"time_stats.{op}.min": ms, f"time_stats.{op}.max": ms, f"time_stats.{op}.mean": ms,
            f"time_stats.{op}.median": ms, f"time_stats.{op}.std": [0.01 * m for m in ms]}


def _lst(xs) -> str:
    return "[" + ", ".join(str(x) for x in xs) + "]"


def _timed_ops(draw: st.DrawFn, cols: dict, n: int, op_runs) -> tuple[list[float], int]:
    """Add the Vidur time columns of each (op, runs) to ``cols``; (expected seconds, empty cells)."""
    secs, nan = [], 0
    for op, runs in op_runs:
        cells, s, z = draw(op_times(n, runs))
        cols.update(_ts_cols(op, cells))
        secs += s
        nan += z
    return secs, nan


@st.composite
def op_times(draw: st.DrawFn, n: int, runs: list[bool]) -> tuple[list[float], list[float], int]:
    """Median times (ms) of one op over `n` rows: 0 where the op does not run, some empty
    cells (NaN). Returns (cells, expected seconds, empty cells)."""
    cells, secs, nan = [], [], 0
    for i in range(n):
        if not runs[i]:
            cells.append(0.0)
        elif i > 0 and draw(st.integers(0, 9)) == 0:
            cells.append(math.nan)
            nan += 1
        else:
            ms = draw(MS)
            cells.append(ms)
            secs.append(ms * 1e-3)
    return cells, secs, nan


def _csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False)


def _case(df: pd.DataFrame, name: str, secs: list[float], nan: int, fmt: str = "auto") -> ProfileCase:
    return ProfileCase(_csv(df), name, True, tuple(sorted(secs)), nan, fmt)


@st.composite
def vidur_attention(draw: st.DrawFn, frontier: bool = False) -> tuple[pd.DataFrame, str, list[float], int]:
    n = draw(st.integers(1, 12))
    kinds = [draw(st.sampled_from(["prefill", "decode"] + (["mixed"] if frontier else []))) for _ in range(n)]
    tp = draw(st.sampled_from([1, 2, 4]))
    cols: dict[str, list] = {
        "n_embd": [4096] * n, "n_q_head": [32] * n, "n_kv_head": [8] * n, "block_size": [16] * n,
        "num_tensor_parallel_workers": [tp] * n, "max_model_len": [8192] * n,
        "batch_size": [draw(st.integers(1, 64)) for _ in range(n)],
        "prefill_chunk_size": [draw(st.integers(1, 4096)) if k == "prefill" else 0 for k in kinds],
        "kv_cache_size": [draw(st.integers(0, 8192)) for _ in range(n)],
        "is_prefill": [k != "decode" for k in kinds],
    }
    if frontier:
        cols["measurement_type"] = [draw(st.sampled_from(["CUDA_EVENT", "KERNEL_ONLY"])) for _ in range(n)]
        cols["mode"] = ["true_mixed" if k == "mixed" else draw(st.sampled_from(["even", "random"])) for k in kinds]
        cols["is_true_mixed_batch"] = [k == "mixed" for k in kinds]
        seq, pq, pc, dc = [], [], [], []
        for k in kinds:
            m = draw(st.integers(1, 4))
            seq.append(_lst(draw(st.lists(st.integers(1, 4096), min_size=1, max_size=4))) if k == "prefill" else "")
            pq.append(_lst([draw(st.integers(1, 2048)) for _ in range(m)]) if k == "mixed" else "")
            pc.append(_lst([draw(st.integers(0, 2048)) for _ in range(m)]) if k == "mixed" else "")
            dc.append(_lst(draw(st.lists(st.integers(1, 8192), min_size=1, max_size=4))) if k == "mixed" else "")
        cols.update(seq_lens=seq, prefill_seq_lens=pq, prefill_kv_cache_sizes=pc, decode_kv_cache_sizes=dc)
    secs, nan = _timed_ops(draw, cols, n, (("attn_prefill", [k != "decode" for k in kinds]),
                                           ("attn_decode", [k != "prefill" for k in kinds]),
                                           ("attn_kv_cache_save", [True] * n)))
    dev = draw(st.sampled_from(DEVICES))
    return pd.DataFrame(cols), f"{dev}/org/model/attention.csv", secs, nan


@st.composite
def vidur_linear(draw: st.DrawFn) -> tuple[pd.DataFrame, str, list[float], int]:
    n = draw(st.integers(1, 12))
    cols: dict[str, list] = {
        "n_head": [32] * n, "n_kv_head": [8] * n, "n_embd": [4096] * n, "n_expanded_embd": [14336] * n,
        "vocab_size": [128256] * n, "use_gated_mlp": [True] * n,
        "num_tokens": [draw(st.integers(1, 8192)) for _ in range(n)],
        "num_tensor_parallel_workers": [draw(st.sampled_from([1, 2, 4, 8])) for _ in range(n)],
    }
    ops = draw(st.lists(st.sampled_from(["mlp_up_proj", "attn_pre_proj", "input_layernorm",
                                         "mlp_down_proj"]), min_size=1, max_size=3, unique=True))
    secs, nan = _timed_ops(draw, cols, n, [(op, [True] * n) for op in ops])
    dev = draw(st.sampled_from(DEVICES))
    return pd.DataFrame(cols), f"{dev}/org/model/mlp.csv", secs, nan


@st.composite
def vidur_collective(draw: st.DrawFn) -> tuple[pd.DataFrame, str, list[float], int]:
    n = draw(st.integers(1, 12))
    nw = [draw(st.sampled_from([2, 4, 8])) for _ in range(n)]
    cols: dict[str, list] = {"rank": [0] * n, "num_workers": nw,
                             "size": [draw(st.integers(1, 2**30)) for _ in range(n)],
                             "collective": ["all_reduce"] * n, "devices_per_node": nw}
    secs, nan = _timed_ops(draw, cols, n, [("all_reduce", [True] * n)])
    dev = draw(st.sampled_from(DEVICES))
    return pd.DataFrame(cols), f"network/{dev}_pairwise_nvlink/all_reduce.csv", secs, nan


@st.composite
def frontier_moe(draw: st.DrawFn) -> tuple[pd.DataFrame, str, list[float], int]:
    n = draw(st.integers(1, 12))
    E = draw(st.sampled_from([8, 16, 64]))
    ep = draw(st.sampled_from([1, 2, 4]))
    old = draw(st.booleans())  # old Frontier files have no load statistics
    cols: dict[str, list] = {
        "num_tokens": [draw(st.integers(1, 16384)) for _ in range(n)], "num_experts": [E] * n,
        "num_experts_per_device": [E // ep] * n, "expert_parallel_size": [ep] * n,
        "router_topk": [2] * n, "hidden_dim": [4096] * n, "expert_hidden_dim": [1408] * n,
        "use_gated": [True] * n, "num_tensor_parallel_workers": [1] * n,
        "measurement_type": [draw(st.sampled_from(["CUDA_EVENT", "KERNEL_ONLY"])) for _ in range(n)],
    }
    if not old:
        cols.update(total_routed_tokens=[t * 2 / ep for t in cols["num_tokens"]],
                    tokens_per_expert_avg=[t * 2 / E for t in cols["num_tokens"]],
                    expert_utilization=[1.0] * n, min_load_ratio=[0.5] * n, max_load_ratio=[1.5] * n,
                    load_imbalance_cv=[draw(st.floats(0, 2)) for _ in range(n)],
                    load_entropy=[draw(st.floats(0, 6)) for _ in range(n)],
                    load_gini_coefficient=[draw(st.floats(0, 1)) for _ in range(n)])
    secs, nan = _timed_ops(draw, cols, n, [("moe_grouped_gemm", [True] * n)])
    return pd.DataFrame(cols), f"{draw(st.sampled_from(DEVICES))}/tiny-moe/moe.csv", secs, nan


@st.composite
def aiconfigurator_table(draw: st.DrawFn) -> tuple[pd.DataFrame, str, list[float], int]:
    """An aiconfigurator table (parquet upstream; CSV here): gemm, attention, moe or nccl."""
    n = draw(st.integers(1, 10))
    kind = draw(st.sampled_from(["gemm", "context_attention", "generation_attention", "moe", "all_reduce"]))
    i = st.integers(1, 8192)
    cols: dict[str, list] = {"op_name": [kind] * n, "device": ["NVIDIA H100 80GB HBM3"] * n,
                             "kernel_source": [draw(st.sampled_from(["default", "fa3"]))] * n}
    if kind == "gemm":
        cols.update(m=[draw(i) for _ in range(n)], n=[draw(i) for _ in range(n)], k=[draw(i) for _ in range(n)],
                    gemm_dtype=[draw(st.sampled_from(["bfloat16", "fp8"])) for _ in range(n)])
    elif kind.endswith("attention"):
        dec = kind.startswith("generation")
        cols.update(batch_size=[draw(st.integers(1, 256)) for _ in range(n)],
                    isl=[1 if dec else draw(i) for _ in range(n)],
                    step=[draw(i) if dec else 0 for _ in range(n)], num_heads=[32] * n,
                    num_key_value_heads=[8] * n, head_dim=[128] * n, kv_cache_dtype=["bfloat16"] * n,
                    window_size=[0] * n, beam_width=[1] * n)
    elif kind == "moe":
        cols.update(num_tokens=[draw(i) for _ in range(n)], hidden_size=[4096] * n, inter_size=[1408] * n,
                    topk=[2] * n, num_experts=[64] * n, moe_tp_size=[1] * n, moe_ep_size=[draw(st.sampled_from([1, 8]))] * n,
                    moe_dtype=["bfloat16"] * n, distribution=["balanced"] * n)
    else:
        cols.update(message_size=[draw(st.integers(256, 2**29)) for _ in range(n)],
                    num_gpus=[draw(st.sampled_from([2, 4, 8])) for _ in range(n)], nccl_dtype=["half"] * n)
    cols["latency"], secs, nan = draw(op_times(n, [True] * n))
    return pd.DataFrame(cols), f"h100_sxm/{kind}/vllm/{kind}_perf.csv", secs, nan


VIDUR = st.one_of(vidur_attention(), vidur_linear(), vidur_collective())
FRONTIER = st.one_of(vidur_attention(frontier=True), frontier_moe())


@st.composite
def native_frame(draw: st.DrawFn) -> tuple[pd.DataFrame, str, list[float], int]:
    n = draw(st.integers(1, 16))
    rows, secs, nan = [], [], 0
    for i in range(n):
        fam = draw(st.sampled_from(["linear", "attention", "moe", "collective"]))
        t = draw(SECONDS)
        if i > 0 and draw(st.integers(0, 9)) == 0:
            t, nan = math.nan, nan + 1
        else:
            secs.append(t)
        r: dict[str, Any] = {"family": fam, "time_s": t, "device": draw(st.sampled_from(DEVICES))}
        if fam == "linear":
            r.update(op="mlp_up_proj", m=draw(st.integers(1, 8192)), n=4096, k=draw(st.sampled_from([1, 4096])),
                     dtype_bytes=2, tp=1)
        elif fam == "attention":
            g = draw(st.integers(1, 4))
            q = [draw(st.integers(1, 2048)) for _ in range(g)]
            r.update(op=draw(st.sampled_from(["attn_prefill", "attn_decode"])), q_lens=_lst(q),
                     c_lens=_lst([draw(st.integers(0, 8192)) for _ in range(g)]),
                     counts=_lst([draw(st.integers(1, 16)) for _ in range(g)]),
                     is_decode=_lst([x == 1 for x in q]), n_q_heads=32, n_kv_heads=8, head_dim=128)
        elif fam == "moe":
            r.update(op="moe_grouped_gemm", num_tokens=256, routed_tokens=512, local_experts=8,
                     active_experts=8, max_tokens=80, min_tokens=50, load_cv=0.1, load_gini=0.05,
                     load_entropy_bits=2.9, hidden=4096, expert_hidden=1408, topk=2)
        else:
            r.update(op="all_reduce", size_bytes=draw(st.integers(0, 2**30)),
                     num_workers=draw(st.sampled_from([2, 8])), devices_per_node=8)
        rows.append(r)
    return pd.DataFrame(rows), "profiles/native.csv", secs, nan


@st.composite
def valid_case(draw: st.DrawFn, kind: str) -> ProfileCase:
    """A valid case of `kind` (native | vidur | frontier)."""
    strategy = {"native": native_frame(), "vidur": VIDUR, "frontier": FRONTIER,
                "aiconfigurator": aiconfigurator_table()}[kind]
    df, name, secs, nan = draw(strategy)
    return _case(df, name, secs, nan)


# ==== mutations =============================================================================

BAD_CELLS = ("", "abc", "nan", "NaN", "inf", "-inf", "-1", "-0.5", "0", "1e400", "1e-400", "9" * 400,
             "[1, 2", "[a, b]", "[1, -5]", "[]", "[[1]]", "true", "None", "\u00e9\u4e2d", "1,2", '"', "0x10",
             "1e308", "-1e308", "[1e400]", "[nan]", "[" + ", ".join(["7"] * 3000) + "]")
SCALE = (1e3, 1e6, 1e-3, 1e-6, 1e-9, -1.0, 0.0)


@st.composite
def mutate_frame(draw: st.DrawFn, df: pd.DataFrame) -> pd.DataFrame:
    df = df.astype(object).copy()
    for _ in range(draw(st.integers(1, 3))):
        cols = list(df.columns)
        how = draw(st.sampled_from(["drop", "cell", "cell", "scale", "all_nan", "rename", "list", "rows"]))
        if not cols:
            break
        col = draw(st.sampled_from(cols))
        if how == "drop":
            df = df.drop(columns=col)
        elif how == "cell" and len(df):
            df.iloc[draw(st.integers(0, len(df) - 1)), cols.index(col)] = draw(
                st.one_of(st.sampled_from(BAD_CELLS), st.text(max_size=12), st.integers(-2**70, 2**70),
                          st.floats(allow_nan=True, allow_infinity=True)))
        elif how == "scale":
            f = draw(st.sampled_from(SCALE))
            num = pd.to_numeric(df[col], errors="coerce")
            if num.notna().any():
                df[col] = (num * f).astype(object)
        elif how == "all_nan":
            df[col] = pd.Series([math.nan] * len(df), index=df.index, dtype=object)
        elif how == "rename":
            df = df.rename(columns={col: draw(st.sampled_from([col.upper(), col + "_", " " + col, col[:-1] or "x"]))})
        elif how == "list" and len(df):
            lists = [c for c in cols if df[c].astype(str).str.startswith("[").any()]
            if lists:
                c = draw(st.sampled_from(lists))
                i = draw(st.integers(0, len(df) - 1))
                v = str(df[c].iloc[i])
                df.iloc[i, cols.index(c)] = draw(st.sampled_from([v[:-1] + ", 3]", "[" + v[1:].split(",")[0].rstrip("]") + "]",
                                                                  v.replace("[", "[-"), "[]", v + v]))
        elif how == "rows":
            df = df.iloc[: draw(st.integers(0, max(len(df) - 1, 0)))]
    return df


@st.composite
def mutate_text(draw: st.DrawFn, text: str) -> str:
    how = draw(st.sampled_from(["truncate", "comma", "quote", "header", "empty", "bytes", "semicolon"]))
    if how == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    lines = text.splitlines()
    if how == "comma" and len(lines) > 1:
        i = draw(st.integers(1, len(lines) - 1))
        lines[i] += ",extra,cells"
        return "\n".join(lines) + "\n"
    if how == "quote":
        i = draw(st.integers(0, len(text)))
        return text[:i] + '"' + text[i:]
    if how == "header":
        return lines[0] + "\n"
    if how == "semicolon":
        return text.replace(",", ";")
    if how == "bytes":
        i = draw(st.integers(0, len(text)))
        return text[:i] + draw(st.text(min_size=1, max_size=20)) + text[i:]
    return ""


@st.composite
def mutated_case(draw: st.DrawFn, kind: str) -> ProfileCase:
    """A valid case of `kind` with 1-3 column/cell mutations, or a text-level mutation."""
    strategy = {"native": native_frame(), "vidur": VIDUR, "frontier": FRONTIER,
                "aiconfigurator": aiconfigurator_table()}[kind]
    df, name, _, _ = draw(strategy)
    if draw(st.integers(0, 3)) == 0:
        return ProfileCase(draw(mutate_text(_csv(df))), name)
    return ProfileCase(_csv(draw(mutate_frame(df))), name)


@st.composite
def garbage_case(draw: st.DrawFn) -> ProfileCase:
    """Arbitrary bytes or text under a .csv or .parquet name, CSV-like text with profile-ish
    headers, or a real parquet file holding the wrong things."""
    how = draw(st.sampled_from(["bytes", "text", "headers", "parquet"]))
    if how == "bytes":
        return ProfileCase(draw(st.binary(max_size=300)), draw(st.sampled_from(["h100/m/x.csv", "h100/m/x.parquet"])))
    if how == "text":
        return ProfileCase(draw(st.text(max_size=300)), "h100/m/x.csv")
    if how == "parquet":
        df, _, _, _ = draw(st.one_of(native_frame(), VIDUR))
        df = draw(mutate_frame(df))
        buf = io.BytesIO()
        try:
            df.astype(str).to_parquet(buf, index=False)
        except Exception:  # noqa: BLE001  (column names pyarrow refuses)
            return ProfileCase(b"", "h100/m/x.parquet")
        return ProfileCase(buf.getvalue(), "h100/m/x.parquet")
    headers = draw(st.lists(st.sampled_from(
        ["family", "op", "time_s", "time_stats.attn_prefill.median", "time_stats.x.median", "op_name", "latency",
         "q_lens", "c_lens", "m", "n", "k", "num_tokens", "size", "num_workers", "measurement_type", "gemm",
         "batch_size", "n_embd"]), min_size=1, max_size=8, unique=True))
    cells = st.one_of(st.sampled_from(BAD_CELLS), st.integers(-5, 5000).map(str), MS.map(str))
    rows = draw(st.lists(st.lists(cells, min_size=len(headers), max_size=len(headers)), max_size=6))
    buf = io.StringIO()
    pd.DataFrame(rows, columns=headers).to_csv(buf, index=False)
    return ProfileCase(buf.getvalue(), "h100/m/x.csv")


# kind -> strategy (shared with benchmarks/fuzz.py)
PROFILE_KINDS = {
    "native_valid": valid_case("native"),
    "native_mutated": mutated_case("native"),
    "vidur_valid": valid_case("vidur"),
    "vidur_mutated": mutated_case("vidur"),
    "frontier_valid": valid_case("frontier"),
    "frontier_mutated": mutated_case("frontier"),
    "aiconfigurator_valid": valid_case("aiconfigurator"),
    "aiconfigurator_mutated": mutated_case("aiconfigurator"),
    "profile_garbage": garbage_case(),
}


# ==== tests =================================================================================

N = 30
FUZZ = settings(max_examples=N, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def _check(case: ProfileCase) -> Outcome:
    with tempfile.TemporaryDirectory() as tmp:
        out = load_profile_case(case, Path(tmp))
    assert out.status not in ("crash", "hang", "unclear"), (out.status, out.message, case)
    assert out.seconds < 5.0, (out.seconds, case)
    if case.valid:
        assert out.status == "ok", (out.message, case)
    return out


@FUZZ
@given(st.sampled_from(["native", "vidur", "frontier", "aiconfigurator"]).flatmap(valid_case))
def test_valid_profiles_load_exactly(case: ProfileCase) -> None:
    _check(case)


@settings(FUZZ, max_examples=2 * N)
@given(st.sampled_from(["native", "vidur", "frontier", "aiconfigurator"]).flatmap(mutated_case))
def test_mutated_profiles_load_or_fail_clearly(case: ProfileCase) -> None:
    _check(case)


@FUZZ
@given(garbage_case())
def test_garbage_files_fail_clearly(case: ProfileCase) -> None:
    _check(case)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("PROFILE_FUZZ_EXAMPLES"), reason="set PROFILE_FUZZ_EXAMPLES to run")
@pytest.mark.parametrize("kind", sorted(PROFILE_KINDS))
def test_profile_fuzz_many(kind: str) -> None:
    """PROFILE_FUZZ_EXAMPLES=2000 pytest -m slow tests/test_profile_fuzz.py (or benchmarks/fuzz.py)."""

    @settings(FUZZ, max_examples=int(os.environ["PROFILE_FUZZ_EXAMPLES"]))
    @given(PROFILE_KINDS[kind])
    def run(case: ProfileCase) -> None:
        _check(case)

    run()


# ---- regressions and the documented policies ----------------------------------------------


def _native(tmp: Path, text: str) -> Path:
    p = tmp / "n.csv"
    p.write_text(text)
    return p


HEAD = "family,op,m,n,k,time_s\n"


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "<file>: empty (no header line); allowed: "),
    (HEAD, "<file>: no data rows (header only)"),
    ("family,op,m,n,k\nlinear,x,1,2,3\n", "not a Vidur/Frontier/aiconfigurator/native profile"),
    (HEAD + "linear,x,1,2,3,abc\n", "column time_s: row 1: got 'abc' (not a number)"),
    (HEAD + "linear,x,1,2,3,1e-5\nlinear,x,1,2,3,-1e-5\n", "column time_s: row 2: got -1e-05"),
    (HEAD + "linear,x,1,2,3,inf\n", "column time_s: row 1: got inf"),
    (HEAD + "linear,x,1,2,3,\n", "column time_s: all values are NaN"),
    (HEAD + "linear,x,1,2,3,0\n", "column time_s: row 1: got 0"),
    (HEAD + "linear,x,1,2,3,2.5\n", "looks like milliseconds or microseconds"),
    (HEAD + "linear,x,1,2,3,1e-9\n", "looks scaled down"),
    (HEAD + "conv,x,1,2,3,1e-5\n", "column family: row 1: got 'conv'; allowed: one of attention, linear, moe, collective"),
    (HEAD + "linear,x,1,-2,3,1e-5\n", "column n: row 1: got -2"),
    (HEAD + "linear,x,1,,3,1e-5\n", "column n: row 1: empty"),
    ("family,op,m,k,time_s\nlinear,x,1,3,1e-5\n", "column n: missing (required for linear rows)"),
    ("family,op,q_lens,c_lens,n_q_heads,n_kv_heads,head_dim,time_s\n"
     'attention,a,"[1, 2]","[3]",8,8,128,1e-5\n', "column c_lens: row 1: length 1 != q_lens length 2"),
    ("family,op,q_lens,c_lens,n_q_heads,n_kv_heads,head_dim,time_s\n"
     'attention,a,"[1, x]","[3, 4]",8,8,128,1e-5\n', "column q_lens: row 1: got '[1, x]' (not a list of integers)"),
    ("family,op,q_lens,c_lens,n_q_heads,n_kv_heads,head_dim,time_s\n"
     'attention,a,"[1, 2]","[3, -4]",8,8,128,1e-5\n', "column c_lens: row 1: got '[3, -4]' (entry -4)"),
    ("family,op,q_lens,c_lens,counts,n_q_heads,n_kv_heads,head_dim,time_s\n"
     'attention,a,"[1]","[3]","[0]",8,8,128,1e-5\n', "column counts: row 1: got '[0]' (entry 0)"),
    ("family,op,q_lens,c_lens,is_decode,n_q_heads,n_kv_heads,head_dim,time_s\n"
     'attention,a,"[1]","[3]","[maybe]",8,8,128,1e-5\n', "column is_decode: row 1: got '[maybe]'"),
])
def test_native_errors(tmp_path, text, fragment):
    p = _native(tmp_path, text)
    with pytest.raises(DataError) as e:
        load_file(p)
    assert is_clear_data_error(e.value, p), str(e.value)
    assert fragment in str(e.value), str(e.value)


def test_empty_times_are_dropped_and_counted(tmp_path):
    p = _native(tmp_path, HEAD + "linear,x,1,2,3,1e-5\nlinear,x,4,2,3,\nlinear,x,5,2,3,2e-5\n")
    got = load_file(p)["linear"]
    assert list(got["m"]) == [1, 5] and got.attrs["nan_times"] == {"n.csv": 1}
    assert load_profiles(tmp_path)["linear"].attrs["nan_times"] == {"n.csv": 1}


def _ts_text(op_cells: str) -> str:
    return ("n_embd,n_q_head,n_kv_head,num_tensor_parallel_workers,batch_size,kv_cache_size,"
            f"prefill_chunk_size,is_prefill,time_stats.attn_prefill.median\n{op_cells}\n")


@pytest.mark.parametrize(("row", "fragment"), [
    ("4096,32,8,1,1,0,64,True,abc", "column time_stats.attn_prefill.median: row 1: got 'abc'"),
    ("4096,32,8,1,1,0,64,True,-0.5", "column time_stats.attn_prefill.median: row 1: got -0.5"),
    ("4096,32,8,1,1,0,64,True,inf", "column time_stats.attn_prefill.median: row 1: got inf"),
    ("4096,32,8,0,1,0,64,True,0.5", "column num_tensor_parallel_workers: row 1: got 0"),
    ("4096,32,8,x,1,0,64,True,0.5", "column num_tensor_parallel_workers: row 1: got 'x' (not a number)"),
    ("4096,32,8,1,,0,64,True,0.5", "column batch_size: row 1: empty"),
    ("4096,32,8,1,99999999,0,64,True,0.5", "column batch_size: row 1: got 1e+08"),
    ("4096,32,8,1,1,0,64,True,2500", "looks like microseconds"),
    ("9" * 400 + ",32,8,1,1,0,64,True,0.5", "column n_embd: row 1: got inf"),  # int > 1e308 (fuzz)
])
def test_vidur_errors(tmp_path, row, fragment):
    p = tmp_path / "h100" / "m" / "attention.csv"
    p.parent.mkdir(parents=True)
    p.write_text(_ts_text(row))
    with pytest.raises(DataError) as e:
        load_file(p)
    assert is_clear_data_error(e.value, p), str(e.value)
    assert fragment in str(e.value), str(e.value)


def test_frontier_list_errors(tmp_path):
    p = tmp_path / "h100" / "m" / "attention.csv"
    p.parent.mkdir(parents=True)
    head = ("n_embd,n_q_head,n_kv_head,num_tensor_parallel_workers,batch_size,kv_cache_size,is_prefill,mode,"
            "measurement_type,is_true_mixed_batch,prefill_seq_lens,prefill_kv_cache_sizes,decode_kv_cache_sizes,"
            "time_stats.attn_prefill.median\n")
    p.write_text(head + '4096,32,8,1,1,0,True,true_mixed,CUDA_EVENT,True,"[64, 32]","[0]","[16]",0.5\n')
    with pytest.raises(DataError, match=r"column prefill_kv_cache_sizes: row 1: length 1 != prefill_seq_lens length 2"):
        load_file(p)
    p.write_text(head + '4096,32,8,1,1,0,True,true_mixed,CUDA_EVENT,True,"[64, 1e400]",,"[16]",0.5\n')
    with pytest.raises(DataError, match=r"column prefill_seq_lens: row 1: got '\[64, 1e400\]'"):
        load_file(p)


def test_unreadable_paths(tmp_path):
    for p, fragment in ((tmp_path / "nope.csv", "no such file"), (tmp_path, "not a regular file")):
        with pytest.raises(DataError, match=fragment):
            load_file(p)
    (tmp_path / "x.parquet").write_bytes(b"PAR1garbage")
    with pytest.raises(DataError, match=r"x.parquet: <file>: could not be parsed"):
        load_file(tmp_path / "x.parquet")
