"""Walk-forward statistics: each basket's shipped policy against 1/N over the folds of a
``jaxport train --walk-forward K`` run (Sharpe gap with its bootstrap CI, folds beating 1/N, PSR
and DSR; :mod:`jaxport.eval.stats` holds the estimators)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from jaxport.eval.stats import (
    pooled_sharpe_gap_bootstrap,
    returns_from_equity,
    sharpe_ratio,
    skill_vs_benchmark,
)


def fold_curves(folds: list[dict], read_curves: Callable[[str], dict]) -> dict[str, list[dict]]:
    """Per basket, one dict per completed fold: ``equity`` (the shipped policy's test equity
    curve), ``equal_weight`` (1/N's, same days), ``sr_trials`` (validation Sharpes of every
    candidate tried: gate entries, learned and baselines, and every population member but the
    selected one), ``candidates`` (name -> every learned candidate's test equity curve, shipped or
    not), ``pbo`` (the candidates' probability of backtest overfitting) and ``shipped``. ``folds`` are the summary's fold records; ``read_curves(path)`` reads
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
            # population members other than the selected one (already among "learned")
            best = (record["stages"].get("universe") or {}).get("best_member")
            pbo = []
            for cand in (entry.get("candidates") or {}).values():
                members = cand.get("members", [])
                trials += [m["val_sharpe"] for i, m in enumerate(members) if i != best]
                if (cand.get("pbo") or {}).get("pbo") is not None:
                    pbo.append(cand["pbo"]["pbo"])
            out.setdefault(name, []).append(
                {
                    "equity": curves["equity_curve"],
                    "equal_weight": curves["baseline_curves"]["equal_weight"],
                    "baselines": {
                        k: v
                        for k, v in curves["baseline_curves"].items()
                        if not isinstance(v, dict)  # buy_and_hold: {symbol: curve}
                    },
                    "candidates": curves.get("learned_curves") or {},
                    "sr_trials": trials,
                    "pbo": pbo,
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


def pooled_walk_forward(
    fold_curves: dict[str, list[dict]],
    *,
    periods_per_year: float = 252.0,
    seed: int = 0,
    versus: Sequence[str] = ("vol_managed_equal_weight", "volatility_timing"),
) -> dict[str, Any]:
    """The walk-forward verdict pooled over baskets, on the stitched test days of every fold.

    ``fold_curves[pair]``: per fold ``equity`` (shipped), ``equal_weight``, ``candidates`` (name
    -> test equity curve of each learned candidate, shipped or not), ``pbo`` and ``shipped``.
    Returns ``{"pair_folds", "learned_shipped_share", "learned_shipped": {count, mean_gap,
    win_rate} (the gate's precision: test Sharpe gap to 1/N of the pair-folds where a learned
    policy shipped), "shipped": pooled gap, "candidates": {name: pooled gap},
    "candidates_vs_baselines": {name: {baseline in versus: pooled gap to that rule}}, "pbo_mean"}``;
    pooled gaps come from :func:`~jaxport.eval.stats.pooled_sharpe_gap_bootstrap` (dates
    resampled jointly across baskets, within folds). Baskets of a fold must share its test days.
    """
    pairs = sorted(name for name, folds in fold_curves.items() if folds)
    if not pairs:
        return {}
    num_folds = min(len(fold_curves[p]) for p in pairs)
    ret = returns_from_equity
    sizes = [ret(fold_curves[pairs[0]][k]["equal_weight"]).size for k in range(num_folds)]

    def stitched(get) -> np.ndarray | None:
        rows = []
        for p in pairs:
            parts = [get(fold_curves[p][k]) for k in range(num_folds)]
            if any(x is None for x in parts):
                return None
            rows.append(np.concatenate([ret(x) for x in parts]))
        lengths = {r.size for r in rows}
        return np.stack(rows) if lengths == {sum(sizes)} else None

    ew = stitched(lambda f: f["equal_weight"])
    boot = dict(fold_sizes=sizes, periods_per_year=periods_per_year, seed=seed)
    out: dict[str, Any] = {"pairs": len(pairs), "folds": num_folds}
    gaps, learned = [], []
    for p in pairs:
        for f in fold_curves[p][:num_folds]:
            gap = sharpe_ratio(ret(f["equity"]), periods_per_year) - sharpe_ratio(
                ret(f["equal_weight"]), periods_per_year
            )
            gaps.append(gap)
            if not str(f["shipped"]).startswith("baseline"):
                learned.append(gap)
    out["pair_folds"] = len(gaps)
    out["learned_shipped_share"] = len(learned) / max(len(gaps), 1)
    out["learned_shipped"] = {
        "count": len(learned),
        "mean_gap": float(np.mean(learned)) if learned else None,
        "win_rate": float(np.mean(np.asarray(learned) > 0)) if learned else None,
    }
    shipped = stitched(lambda f: f["equity"])
    if ew is not None and shipped is not None:
        out["shipped"] = pooled_sharpe_gap_bootstrap(shipped, ew, **boot)
    names = sorted({n for p in pairs for f in fold_curves[p] for n in f.get("candidates", {})})
    out["candidates"], out["candidates_vs_baselines"] = {}, {}
    for name in names:
        cand = stitched(lambda f, n=name: (f.get("candidates") or {}).get(n))
        if ew is not None and cand is not None:
            out["candidates"][name] = pooled_sharpe_gap_bootstrap(cand, ew, **boot)
        for base in versus if cand is not None else ():
            ref = stitched(lambda f, b=base: (f.get("baselines") or {}).get(b))
            if ref is not None:
                vs = pooled_sharpe_gap_bootstrap(cand, ref, **boot)
                out["candidates_vs_baselines"].setdefault(name, {})[base] = vs
    pbo = [x for p in pairs for f in fold_curves[p] for x in f.get("pbo", [])]
    out["pbo_mean"] = float(np.mean(pbo)) if pbo else None
    return out


def losses_while_equal_weight_gains(
    fold_curves: dict[str, list[dict]], *, max_loss: float = 0.10
) -> dict[str, dict]:
    """The moonshot's "no basket loses more than 10 % while 1/N gains", per pair x fold test block.

    For the shipped policy (``equity``) and every learned candidate (``candidates``): ``count`` of
    pair-folds whose total test return ``E_end / E_0 - 1`` (a fraction) is below ``-max_loss``
    while 1/N's on the same days is above 0, out of ``pair_folds``, and ``worst``: the lowest
    total return of that policy in a pair-fold where 1/N gained (``None`` if 1/N never gained)."""

    def total(curve) -> float:
        eq = np.asarray(curve, np.float64).reshape(-1)
        return float(eq[-1] / eq[0] - 1.0)

    policies: dict[str, list[tuple[float, float]]] = {}
    for folds in fold_curves.values():
        for f in folds:
            ew = total(f["equal_weight"])
            policies.setdefault("shipped", []).append((total(f["equity"]), ew))
            for name, curve in (f.get("candidates") or {}).items():
                policies.setdefault(name, []).append((total(curve), ew))
    out = {}
    for name, pairs in policies.items():
        gained = [r for r, ew in pairs if ew > 0]
        out[name] = {
            "count": sum(r < -max_loss for r in gained),
            "pair_folds": len(pairs),
            "worst": min(gained) if gained else None,
            "max_loss": max_loss,
        }
    return out


__all__ = [
    "fold_curves",
    "losses_while_equal_weight_gains",
    "pooled_walk_forward",
    "walk_forward_statistics",
]
