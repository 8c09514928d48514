"""``jaxport eval RUN_DIR``: rebuild every pair's test episode from the checkpoints alone and re-run
the evaluation (policy and baselines), checking it against the numbers in the summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jaxport.checkpoint import atomic_write_json, load_checkpoint
from jaxport.data import DataError, load_market, split_bounds
from jaxport.eval import portfolio_report
from jaxport.pipeline.run import config_from_summary, pair_features
from jaxport.pipeline.summary import read_summary

COMPARED = ("total_return", "sharpe", "max_drawdown", "num_trades", "fees", "financing")


def summary_file(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    return run_dir if run_dir.is_file() else run_dir / "pipeline_summary.json"


def load_symbol_models(summary: dict, root: Path, symbols) -> dict[str, Any]:
    """symbol -> Forecaster (its specialist if kept, else the generic model) or None (fallback)."""
    from jaxport.forecast import Forecaster

    stages = summary["stages"]
    base_rel = stages.get("base", {}).get("checkpoint")
    cache: dict[str, Any] = {}

    def load(rel):
        if rel is None:
            return None
        if rel not in cache:
            path = Path(rel) if Path(rel).is_absolute() else root / rel
            if not path.exists():
                raise DataError(f"{path}: checkpoint listed in the summary is missing")
            cache[rel] = Forecaster.load(path)
        return cache[rel]

    models = {}
    for sym in symbols:
        spec = stages.get("specialists", {}).get(sym, {})
        models[sym] = load(spec["checkpoint"]) if spec.get("kept") else load(base_rel)
    return models


def evaluate_run(run_dir: str | Path, *, write: bool = True) -> dict[str, Any]:
    """Re-run each completed pair's test evaluation from its checkpoint; compare with the summary."""
    from jaxport.pipeline.portfolio import PairData, policy_from_checkpoint

    path = summary_file(run_dir)
    summary = read_summary(path)
    root = path.parent
    cfg = config_from_summary(summary)
    data = summary.get("data", {})
    data_dir = Path(data.get("trainingdata_dir", cfg.data.trainingdata_dir))
    out: dict[str, Any] = {"summary": str(path), "pairs": {}}
    for name, entry in summary["stages"].get("portfolio", {}).items():
        if entry.get("status") != "completed":
            out["pairs"][name] = {"status": entry.get("status"), "error": entry.get("error")}
            continue
        symbols = entry["symbols"]
        market = load_market(data_dir, data["symbols"]).select(symbols)
        bounds = split_bounds(market, cfg.data.split)
        models = load_symbol_models(summary, root, symbols)
        values, names, valid_from, _ = pair_features(cfg.data, market, symbols, models)
        pair = PairData.build(market, values, names, valid_from, bounds, cfg.rl)
        tree, meta = load_checkpoint(root / entry["checkpoint"])
        if meta.get("features", {}).get("names") != names:
            raise DataError(f"{root / entry['checkpoint']}: feature names differ from the recomputed features")
        stored_mean = np.asarray(meta["features"]["mean"])
        if not np.allclose(stored_mean, pair.feature_mean, rtol=1e-4, atol=1e-6):
            raise DataError(f"{root / entry['checkpoint']}: feature statistics differ from the recomputed data")
        policy_fn = policy_from_checkpoint(tree, meta, pair.env)
        report = portfolio_report(pair.env, pair.test, policy_fn, symbols)
        diffs = {
            k: abs(float(report["test"][k]) - float(entry["metrics"]["test"][k]))
            for k in COMPARED if k in report["test"] and k in entry["metrics"]["test"]
        }
        out["pairs"][name] = {
            "status": "completed",
            "algo": meta["algo"],
            "test": report["test"],
            "baselines": report["baselines"],
            "max_abs_diff_vs_summary": max(diffs.values()) if diffs else None,
            "matches_summary": all(d <= 1e-4 for d in diffs.values()),
        }
    if write:
        atomic_write_json(root / "evaluation.json", out)
    return out
