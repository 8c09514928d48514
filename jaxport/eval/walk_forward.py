"""Walk-forward statistics: each basket's shipped policy against 1/N over the folds of a
``jaxport train --walk-forward K`` run (Sharpe gap with its bootstrap CI, folds beating 1/N, PSR
and DSR; :mod:`jaxport.eval.stats` holds the estimators)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from jaxport.eval.stats import returns_from_equity, skill_vs_benchmark


def fold_curves(folds: list[dict], read_curves: Callable[[str], dict]) -> dict[str, list[dict]]:
    """Per basket, one dict per completed fold: ``equity`` (the shipped policy's test equity
    curve), ``equal_weight`` (1/N's, same days), ``sr_trials`` (validation Sharpes of every
    candidate tried: gate entries, learned and baselines, and the population members beyond the
    first) and ``shipped``. ``folds`` are the summary's fold records; ``read_curves(path)`` reads
    a basket's evaluation file (the ``evaluation`` entry of its summary record)."""
    out: dict[str, list[dict]] = {}
    for record in folds:
        for name, entry in record["stages"].get("portfolio", {}).items():
            if entry.get("status") != "completed":
                continue
            curves = read_curves(entry["evaluation"])
            gate = entry.get("gate") or {}
            trials = [
                d.get("sharpe")
                for group in ("learned", "baselines")
                for d in (gate.get(group) or {}).values()
                if d.get("sharpe") is not None
            ]
            for cand in (entry.get("candidates") or {}).values():  # population members
                trials += [m["val_sharpe"] for m in cand.get("members", [])[1:]]
            out.setdefault(name, []).append(
                {
                    "equity": curves["equity_curve"],
                    "equal_weight": curves["baseline_curves"]["equal_weight"],
                    "sr_trials": trials,
                    "shipped": entry.get("shipped") or entry.get("algo"),
                }
            )
    return out


def walk_forward_statistics(
    fold_curves: dict[str, list[dict]], *, periods_per_year: float = 252.0, seed: int = 0
) -> dict[str, Any]:
    """Per-basket skill-vs-luck statistics over the folds.

    ``fold_curves[pair]``: one dict per completed fold with ``equity`` (the shipped policy's test
    equity curve), ``equal_weight`` (1/N's, same days) and ``sr_trials`` (validation Sharpes of
    every candidate tried in that fold: learned ones and baselines). Returns ``{pair:
    {sharpe_gap_vs_equal_weight: {mean, ci95}, folds_beating_equal_weight, probabilistic_sharpe,
    deflated_sharpe, num_folds, sharpe, equal_weight_sharpe, n_trials}}`` (Sharpes annualised).
    """
    out: dict[str, Any] = {}
    for name, folds in fold_curves.items():
        if not folds:
            continue
        r = [returns_from_equity(f["equity"]) for f in folds]
        b = [returns_from_equity(f["equal_weight"]) for f in folds]
        trials = [float(x) for f in folds for x in f["sr_trials"] if np.isfinite(x)]
        stats = skill_vs_benchmark(
            r,
            b,
            sr_trials=trials if len(trials) >= 2 else None,
            n_trials=len(trials) if len(trials) >= 2 else None,
            periods_per_year=periods_per_year,
            seed=seed,
        )
        gap = stats["sharpe_gap"]
        out[name] = {
            "sharpe_gap_vs_equal_weight": {"mean": gap["mean"], "ci95": list(gap["ci95"])},
            "folds_beating_equal_weight": stats["folds_beating"],
            "probabilistic_sharpe": stats["probabilistic_sharpe"],
            "deflated_sharpe": stats["deflated_sharpe"],
            "num_folds": stats["num_folds"],
            "sharpe": stats["sharpe"],
            "equal_weight_sharpe": stats["benchmark_sharpe"],
            "n_trials": len(trials),
            "shipped": [f["shipped"] for f in folds],
        }
    return out


__all__ = ["fold_curves", "walk_forward_statistics"]
