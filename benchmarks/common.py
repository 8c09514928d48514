"""Helpers shared by the benchmark scripts: interleaved best-of-N timing, memory, JSON, tables.

Timing rule (the dev box is a shared 2-core CPU, so wall times are noisy): every implementation
measured at one size is timed round-robin (rep 1 of each, rep 2 of each, ...) and the BEST wall time
of ``repeats`` is kept, so load that drifts during the run hits all of them alike; ratios are only
formed between numbers of the same run. Process CPU time (all threads) is recorded beside it.
The measurement core (harness, ``best_of``, memory probes) lives in :mod:`jaxport.bench`, which
``jaxport bench`` also uses; this module re-exports it for the scripts.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
if str(REPO_ROOT) not in sys.path:  # `python benchmarks/x.py` from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from jaxport.bench import (  # noqa: E402  (re-exported)
    best_of,
    current_rss_mb,
    device_memory_stats,
    machine_info,
    peak_rss_mb,
    steps_for,
    synthetic_arrays,
)

__all__ = [
    "RESULTS_DIR",
    "best_of",
    "current_rss_mb",
    "device_memory_stats",
    "machine_info",
    "peak_rss_mb",
    "steps_for",
    "synthetic_arrays",
    "int_list",
    "interleaved_best",
    "rate_within",
    "estimate_env_bytes",
    "write_results",
    "format_rows",
]


def int_list(text: str) -> list[int]:
    """``"1,64,1k,4k,64k"`` -> ``[1, 64, 1024, 4096, 65536]`` (``k`` = 1024)."""
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        out.append(int(part[:-1]) * 1024 if part.endswith("k") else int(part))
    return out


def interleaved_best(
    fns: dict[str, Callable[[int], Any]], repeats: int
) -> dict[str, dict[str, float]]:
    """Time each ``fns[name](i)`` (blocking) round-robin ``repeats`` times; best/median wall and
    best process-CPU seconds per name. Warm-up is the caller's job."""
    walls: dict[str, list[float]] = {k: [] for k in fns}
    cpus: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(repeats):
        for name, fn in fns.items():
            c0, w0 = time.process_time(), time.perf_counter()
            fn(i)
            walls[name].append(time.perf_counter() - w0)
            cpus[name].append(time.process_time() - c0)
    return {
        k: {
            "best_s": min(walls[k]),
            "median_s": statistics.median(walls[k]),
            "cpu_best_s": min(cpus[k]),
        }
        for k in fns
    }


def rate_within(
    step_fn: Callable[[], int], seconds: float, repeats: int = 3, warmup_calls: int = 20
) -> dict[str, float]:
    """Throughput of a slow Python loop: ``step_fn()`` does some env-steps and returns how many.
    Calls it ``warmup_calls`` times, calibrates a chunk of ~``seconds / repeats``, keeps the best
    chunk."""
    for _ in range(warmup_calls):
        step_fn()
    t0 = time.perf_counter()
    done = calls = 0
    while time.perf_counter() - t0 < min(0.2, seconds / repeats):
        done += step_fn()
        calls += 1
    per_call = (time.perf_counter() - t0) / calls
    chunk = max(1, int(seconds / repeats / per_call))
    best, best_cpu, n_steps = float("inf"), float("inf"), 0
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        n_steps = sum(step_fn() for _ in range(chunk))
        best = min(best, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return {
        "steps_per_s": n_steps / best,
        "cpu_us_per_env_step": 1e6 * best_cpu / n_steps,
        "env_steps_timed": n_steps,
    }


def estimate_env_bytes(
    num_envs: int,
    num_assets: int,
    num_features: int,
    window: int = 1,
    num_days: int = 2768,
    temporaries: float = 8.0,
) -> int:
    """Rough peak bytes of one batched env step (float32): state + obs + action + per-asset
    temporaries (``temporaries`` x the ``[B, N]`` arrays) + the market tables."""
    per_env = 4 * (num_assets * (window * num_features + 2 + temporaries) + 16)
    tables = 4 * num_days * num_assets * (num_features + 2)
    return int(num_envs * per_env * 2 + tables)  # x2: input and output state live together


def write_results(name: str, payload: dict[str, Any], out: str | Path | None = None) -> Path:
    """Write ``payload`` as JSON to ``out`` or ``benchmarks/results/<name>-<UTC stamp>.json``, and a
    copy to ``benchmarks/results/<name>-latest.json``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    path = Path(out) if out else RESULTS_DIR / f"{name}-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=2, default=_json_default)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    if out is None:
        (RESULTS_DIR / f"{name}-latest.json").write_text(text)
    return path


def _json_default(obj):
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def format_rows(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """Fixed-width table: ``columns`` = (key, header, format) with format like ``"{:>8.2f}"``;
    missing values print as ``-``."""
    widths = []
    cells = []
    for key, header, fmt in columns:
        col = []
        for r in rows:
            v = r.get(key)
            col.append("-" if v is None else fmt.format(v).strip())
        widths.append(max([len(header)] + [len(c) for c in col]))
        cells.append(col)
    lines = ["  ".join(h.rjust(w) for (_, h, _), w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for i in range(len(rows)):
        lines.append("  ".join(cells[j][i].rjust(widths[j]) for j in range(len(columns))))
    return "\n".join(lines)
