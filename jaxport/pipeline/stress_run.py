"""``jaxport stress RUN_DIR``: every policy of a finished run over bootstrapped markets.

For each completed basket of the run: the shipped policy, the learned candidate (the universe
policy, even where the gate shipped a baseline; in pair scope the learned policy only when it
shipped, since a gated-out pair-scope candidate has no checkpoint) and every standard allocator
(1/N, inverse volatility, minimum variance, risk parity, cash, buy-and-hold of each asset) run on
the SAME ``paths`` stationary-bootstrap paths of ``horizon`` days (common random numbers: every
comparison is paired) of the chosen source rows (see :mod:`jaxport.eval.stress`). A policy that is
the same as another (the shipped 1/N and 1/N, the shipped universe policy and the candidate) runs
once.

Walk-forward runs: each fold is stressed on its own source rows with its own policies (``folds``),
and the top-level ``baskets`` pool every fold's paths (``paths`` per fold, so ``K x paths`` in the
pooled statistics, each fold weighted equally).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from jaxport.errors import CheckpointError, ConfigError
from jaxport.pipeline.rundir import RunDir

SCHEMA_VERSION = 1
SOURCES = ("test", "validation", "train", "all")
METHOD = "stationary_bootstrap"
FAN_PATHS = 1000  # equity curves kept per policy for the fan chart
#: Default paths per compiled chunk by backend: small chunks stay in the CPU caches (measured on
#: 2 cores: 256 paths ~2x the path-steps/s of 4096); accelerators want large batches (memory:
#: a few MB per 1000 paths).
CHUNK_BY_BACKEND = {"cpu": 256}
ACCELERATOR_CHUNK = 65_536
SHIPPED, EQUAL = "shipped", "equal_weight"
PER_PATH = ("total_return", "log_growth", "sharpe", "max_drawdown", "ruin", "trade_pnl_error")


@dataclasses.dataclass(frozen=True)
class StressSettings:
    """What ``jaxport stress`` runs. ``block_length``: mean block length in days, or ``None`` for
    the Politis-White default; ``chunk``: paths per compiled chunk (``None``: automatic)."""

    paths: int = 10_000
    horizon: int = 252
    block_length: float | None = None
    source: str = "test"
    seed: int = 0
    devices: int | None = None
    chunk: int | None = None

    def validate(self) -> "StressSettings":
        if self.paths < 1:
            raise ConfigError(f"stress.paths must be >= 1, got {self.paths}")
        if self.horizon < 2:
            raise ConfigError(f"stress.horizon must be >= 2 days, got {self.horizon}")
        if self.block_length is not None and not self.block_length >= 1:
            raise ConfigError(f"stress.block_length must be >= 1 day, got {self.block_length}")
        if self.source not in SOURCES:
            raise ConfigError(f"stress.source {self.source!r} must be one of {', '.join(SOURCES)}")
        if self.chunk is not None and self.chunk < 1:
            raise ConfigError(f"stress.chunk must be >= 1, got {self.chunk}")
        if self.devices is not None and self.devices < 1:
            raise ConfigError(f"stress.devices must be >= 1, got {self.devices}")
        return self


@dataclasses.dataclass
class Basket:
    """One basket to stress: its env data, source rows and named policies."""

    name: str
    pair: Any  # PairData
    rows: np.ndarray  # [n] source days (each steps to the next day)
    policies: dict[str, Any]  # report name -> Policy
    shipped_as: str
    learned: str | None  # report name of the learned candidate (None: none saved)
    dates: tuple[str, str]  # first and last source day


def source_rows(pair, bounds, source: str) -> np.ndarray:
    """Days ``t`` whose step ``t -> t + 1`` lies inside the source split (int32)."""
    start_min = int(pair.train.start_min)
    lo, hi = {
        "train": (start_min, bounds.train_end - 1),
        "validation": (bounds.val_start - 1, bounds.val_end - 1),
        "test": (bounds.test_start - 1, bounds.test_end - 1),
        "all": (start_min, bounds.test_end - 1),
    }[source]
    return np.arange(max(lo, start_min), hi, dtype=np.int32)


def basket_policies(run: RunDir, name: str, pair) -> tuple[dict[str, Any], str]:
    """``({name: Policy}, shipped label)``: shipped, the learned candidate, every allocator."""
    from jaxport.eval import default_allocators
    from jaxport.rl.codec import load_policy_checkpoint, make_policy

    entry = run.pair_entry(name)
    policies = {SHIPPED: run.policy(name, env=pair.env)}
    universe = run.typed_summary.universe
    if universe is not None and universe.checkpoint:
        path = run.path(universe.checkpoint)
        if not path.exists():
            raise CheckpointError(f"{path}: universe checkpoint listed in the summary is missing")
        policies["universe"] = load_policy_checkpoint(path, pair.env)[0]
    elif entry.algo in ("gradient", "ppo"):
        policies[entry.algo] = policies[SHIPPED]
    for a in default_allocators(pair.env.num_assets):
        label = f"buy_and_hold:{pair.symbols[a.asset]}" if a.kind == "buy_and_hold" else a.name
        policies[label] = make_policy(f"baseline:{a.name}", a, pair.env)
    return policies, str(entry.shipped or entry.algo)


def run_baskets(run: RunDir, settings: StressSettings) -> list[Basket]:
    """Every completed basket of ``run`` (one fold), checked against ``settings``."""
    entries = {n: e for n, e in run.pairs().items() if e.completed}
    if not entries:
        raise CheckpointError(f"{run.summary_path}: the run has no completed portfolio basket")
    out = []
    for name in entries:
        pair = run.pair(name)
        rows = source_rows(pair, run.bounds, settings.source)
        if settings.horizon > rows.size:
            raise ConfigError(
                f"stress.horizon {settings.horizon} is longer than the {rows.size} {settings.source}"
                f" days of basket {name} (a path must fit in one block of the source)"
            )
        policies, shipped = basket_policies(run, name, pair)
        learned = next((k for k in ("universe", "gradient", "ppo") if k in policies), None)
        cal = pair.calendar
        dates = (str(cal[rows[0]]), str(cal[rows[-1]]))
        out.append(Basket(name, pair, rows, policies, shipped, learned, dates))
    return out


def _policy_key(policy) -> tuple:
    import jax

    digest = hashlib.sha1()
    for leaf in jax.tree_util.tree_leaves(policy.tree):
        digest.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return policy.kind, repr(policy.config), policy.env, digest.hexdigest()


def chunking(paths: int, chunk: int | None, devices: int) -> tuple[int, int]:
    """``(chunk size, number of chunks)``: at most ``chunk`` paths (default by backend,
    ``CHUNK_BY_BACKEND``), balanced, a multiple of ``devices`` (the last chunk is padded; its extra paths are dropped)."""
    if chunk is None:
        import jax

        chunk = CHUNK_BY_BACKEND.get(jax.default_backend(), ACCELERATOR_CHUNK)
    size = min(paths, chunk)
    count = -(-paths // size)
    size = -(-paths // count)
    size = -(-size // devices) * devices
    return size, count


def stress_basket(
    basket: Basket,
    settings: StressSettings,
    block_length: float,
    mesh=None,
    advance: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Roll every policy of ``basket`` over the same paths: per-path arrays (``PER_PATH``, numpy
    ``[paths]``), fan curves (``[<= FAN_PATHS, H + 1]``) and the number of policy runs."""
    import jax
    import jax.numpy as jnp

    from jaxport.eval.allocators import Allocator
    from jaxport.eval.stress import path_days, rollout_paths, warmup_days

    devices = 1 if mesh is None else mesh.devices.size
    size, count = chunking(settings.paths, settings.chunk, devices)
    warmup = warmup_days(basket.pair.env, basket.policies.values())
    params = basket.pair.test  # every row up to the end of the test split
    rows = jnp.asarray(basket.rows)
    key = jax.random.PRNGKey(settings.seed)
    fan = min(size, FAN_PATHS)
    unique: dict[tuple, str] = {}
    alias = {}
    for label, policy in basket.policies.items():
        alias[label] = unique.setdefault(_policy_key(policy), label)
    runs = {label: basket.policies[label] for label in unique.values()}
    allocators = [lab for lab, p in runs.items() if isinstance(p.config, Allocator)]
    groups = [[lab] for lab in runs if lab not in allocators] + ([allocators] if allocators else [])
    parts: dict[str, list] = {label: [] for label in runs}
    for c in range(count):
        ids = np.arange(c * size, (c + 1) * size, dtype=np.int32)
        days = path_days(key, ids, rows, block_length, warmup + settings.horizon)
        if mesh is not None:
            from jaxport.distributed import env_sharding

            days = jax.device_put(days, env_sharding(mesh, 0, 2))
        for group in groups:
            outs = rollout_paths(
                [runs[label] for label in group],
                params,
                days,
                horizon=settings.horizon,
                warmup=warmup,
                fan=fan,
            )
            keep_fan = c * size < FAN_PATHS  # fan curves only until FAN_PATHS are collected
            for label, out in zip(group, outs):
                out = {k: v for k, v in out.items() if keep_fan or k != "fan"}
                parts[label].append(jax.device_get(out))
        if advance:
            advance()
    results = {}
    for label, chunks in parts.items():
        res = {k: np.concatenate([c[k] for c in chunks])[: settings.paths] for k in PER_PATH}
        res["fan"] = np.concatenate([c["fan"] for c in chunks if "fan" in c])[:FAN_PATHS]
        results[label] = res
    return {
        "paths": {label: results[alias[label]] for label in basket.policies},
        "runs": len(runs),
        "warmup": warmup,
        "chunk": size,
    }


def _statistics(per_path: dict[str, dict]) -> dict[str, Any]:
    from jaxport.eval.stress import policy_statistics

    ref = per_path.get(EQUAL)
    return {label: policy_statistics(p, ref) for label, p in per_path.items()}


def _pool(groups: list[dict[str, dict]]) -> dict[str, dict]:
    """Concatenate per-path results of several folds, policy by policy (policies of every fold)."""
    labels = [lab for lab in groups[0] if all(lab in g for g in groups)]
    return {
        lab: {k: np.concatenate([g[lab][k] for g in groups]) for k in PER_PATH + ("fan",)}
        for lab in labels
    }


def _block_length(baskets: list[Basket], settings: StressSettings) -> float:
    """The given block length, else the largest Politis-White default over the baskets."""
    if settings.block_length is not None:
        return float(settings.block_length)
    from jaxport.eval.bootstrap import default_block_length

    lengths = []
    for b in baskets:
        close = np.asarray(b.pair.test.prices, np.float64)
        lengths.append(default_block_length(close[b.rows + 1] / close[b.rows] - 1.0))
    return float(max(lengths))


def stress_run(
    run_dir: str | Path | RunDir,
    settings: StressSettings,
    *,
    progress: Callable[[int, int], Callable[[], None]] | None = None,
) -> dict[str, Any]:
    """Stress every basket (every fold's, in a walk-forward run). Returns the ``stress.json`` dict
    plus ``"_per_path"`` (numpy per-path results by basket and policy, for the plots).

    ``progress(total_chunks, num_groups)`` returns the callback called after each chunk. Every
    check (settings, run, horizon) happens before the first rollout; nothing is written here.
    """
    import jax

    t_start = time.perf_counter()
    settings = settings.validate()
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    if not run.summary.get("stages", {}).get("portfolio"):
        raise CheckpointError(f"{run.summary_path}: the run has no portfolio stage")
    views = [run.fold(k) for k in range(run.num_folds)] if run.num_folds else [run]
    groups = [run_baskets(v, settings) for v in views]
    block = _block_length([b for g in groups for b in g], settings)
    mesh = _mesh(settings.devices)
    devices = 1 if mesh is None else mesh.devices.size
    _, count = chunking(settings.paths, settings.chunk, devices)
    advance = progress(count * sum(len(g) for g in groups), len(groups)) if progress else None
    t0 = time.perf_counter()
    fold_paths, runs, info = [], 0, {}
    for baskets in groups:
        per = {}
        for b in baskets:
            res = stress_basket(b, settings, block, mesh, advance)
            per[b.name], runs = res["paths"], runs + res["runs"]
            info = {"warmup_days": res["warmup"], "chunk": res["chunk"]}
        fold_paths.append(per)
    rollout_s = time.perf_counter() - t0
    wall = time.perf_counter() - t_start
    path_steps = runs * settings.paths * settings.horizon
    names = [b.name for b in groups[0]]
    pooled = {n: _pool([f[n] for f in fold_paths if n in f]) for n in names}
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_dir": str(run.root),
        "paths": settings.paths,
        "horizon": settings.horizon,
        "method": METHOD,
        "block_length": block,
        "block_length_rule": "given" if settings.block_length else "politis_white",
        "source": settings.source,
        "seed": settings.seed,
        "devices": devices,
        **info,
        "throughput": {
            "wall_s": wall,
            "rollout_s": rollout_s,
            "path_steps": path_steps,
            "path_steps_per_s": path_steps / rollout_s if rollout_s > 0 else None,
            "policy_runs": runs,
            "backend": jax.default_backend(),
        },
        "shipped_as": {b.name: b.shipped_as for b in groups[-1]},
        "learned_as": {b.name: b.learned for b in groups[-1] if b.learned},
        "source_dates": {b.name: list(b.dates) for b in groups[-1]},
        "baskets": {n: _statistics(p) for n, p in pooled.items()},
    }
    if run.num_folds:
        out["pooling"] = "baskets pool every fold's paths; folds[k] holds each fold's own"
        out["folds"] = [
            {
                "fold": k,
                "shipped_as": {b.name: b.shipped_as for b in g},
                "source_dates": {b.name: list(b.dates) for b in g},
                "baskets": {n: _statistics(p) for n, p in f.items()},
            }
            for k, (g, f) in enumerate(zip(groups, fold_paths))
        ]
    out["_per_path"] = pooled
    return out


def _mesh(devices: int | None):
    """A 1-D mesh over ``devices`` devices (``None`` or 1: no mesh)."""
    import jax

    if devices is None or devices == 1:
        return None
    available = jax.device_count()
    if devices > available:
        raise ConfigError(f"stress.devices {devices} exceeds the {available} available device(s)")
    from jaxport.distributed import make_env_mesh

    return make_env_mesh(jax.devices()[:devices])


def check_output(out_dir: Path, overwrite: bool) -> None:
    """Refuse to replace a finished stress result unless ``overwrite``."""
    if (out_dir / "stress.json").exists() and not overwrite:
        raise ConfigError(
            f"stress.out {out_dir} already holds stress.json (pass --overwrite to replace it)"
        )


def write_stress(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write ``stress.json`` (atomic) and the PNGs into ``out_dir``; returns the written files."""
    from jaxport.checkpoint import atomic_write_json
    from jaxport.pipeline.stress_plots import plot_stress

    out_dir.mkdir(parents=True, exist_ok=True)
    per_path = result["_per_path"]
    data = {k: v for k, v in result.items() if k != "_per_path"}
    files = [atomic_write_json(out_dir / "stress.json", data)]
    for name, paths in per_path.items():
        files += plot_stress(name, paths, data, out_dir)
    return files


__all__ = [
    "SOURCES",
    "StressSettings",
    "check_output",
    "chunking",
    "source_rows",
    "stress_run",
    "write_stress",
]
