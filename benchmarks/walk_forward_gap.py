"""Sharpe gap to 1/N of a finished ``jaxport train --walk-forward K`` run, per pair and fold.

For every pair x fold: the test Sharpe of each learned candidate and of the shipped policy minus
1/N's (``equal_weight``, daily rebalanced, same env and costs), the candidates' test turnover, and
what two gate rules would ship: the pipeline's (beat every standard allocator on validation, else
1/N) and a looser one (beat 1/N on validation by objective and Sharpe, else 1/N). Both rules read
validation numbers only; the test numbers are only reported.

Usage: ``python benchmarks/walk_forward_gap.py RUN_DIR [--label NAME] [--out FILE.json]``; prints a
table and writes JSON (default ``benchmarks/results/walk_forward_gap-<label>.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from jaxport.checkpoint import atomic_write_json  # noqa: E402
from jaxport.pipeline.basket_stage import baseline_gate  # noqa: E402
from jaxport.pipeline.config import GATE_RULES  # noqa: E402
from jaxport.pipeline.summary import read_summary  # noqa: E402

#: the gate rules replayed on every pair-fold's validation numbers: (--gate-rule, --gate-fallback)
GATE_VARIANTS = tuple(
    (rule, fallback)
    for rule in GATE_RULES
    for fallback in ("equal_weight", "vol_managed_equal_weight", "inverse_volatility")
)


def variant_name(rule: str, fallback: str) -> str:
    return f"{rule}/{fallback}"


def replay_gates(entry: dict, candidate_gaps: dict[str, float]) -> dict[str, dict]:
    """What each of :data:`GATE_VARIANTS` would have shipped for this basket x fold, decided by
    :func:`jaxport.pipeline.basket_stage.baseline_gate` on the run's own gate-row numbers (validation
    only), and that choice's test Sharpe gap to 1/N (the test numbers are only read afterwards)."""
    gate = entry["gate"]
    test_base = entry["metrics"]["baselines"]
    ew = test_base["equal_weight"]["sharpe"]
    out = {}
    for rule, fallback in GATE_VARIANTS:
        if fallback not in gate["baselines"] or fallback not in test_base:
            continue  # a run from before that allocator existed
        decision = baseline_gate(
            gate["learned"],
            gate["baselines"],
            objective=gate.get("objective", "mean-variance"),
            rule=rule,
            fallback=fallback,
        )
        shipped = decision["shipped"]
        if shipped.startswith("baseline:"):
            gap = test_base[shipped.split(":", 1)[1]]["sharpe"] - ew
        else:
            gap = candidate_gaps[shipped]
        out[variant_name(rule, fallback)] = {"shipped": shipped, "gap": gap}
    return out


def pair_fold_rows(summary: dict) -> list[dict]:
    """One row per completed pair x fold (``walk_forward.folds[i].stages.portfolio``)."""
    rows = []
    for fold in summary["walk_forward"]["folds"]:
        for name, entry in fold["stages"].get("portfolio", {}).items():
            if entry.get("status") != "completed":
                continue
            ew = entry["metrics"]["baselines"]["equal_weight"]["sharpe"]
            gate = entry["gate"]
            cands = entry["candidates"]
            row = {
                "fold": fold["fold"],
                "pair": name,
                "equal_weight_sharpe": ew,
                "shipped": entry["shipped"],
                "shipped_gap": entry["metrics"]["test"]["sharpe"] - ew,
                "candidates": {
                    a: {
                        # validation only: the gate's held-out rows (what defaults are chosen by)
                        "gate_gap": gate["learned"][a]["sharpe"]
                        - gate["baselines"]["equal_weight"]["sharpe"],
                        "test_gap": c["test"]["sharpe"] - ew,
                        "test_turnover": c["test"].get("turnover_mean"),
                        "test_leverage": c["test"].get("mean_leverage"),
                        "val_sharpe": c["validation"]["sharpe"],
                    }
                    for a, c in cands.items()
                },
            }
            row["gate_variants"] = replay_gates(
                entry, {a: c["test_gap"] for a, c in row["candidates"].items()}
            )
            loose = row["gate_variants"][variant_name("fallback", "equal_weight")]
            row["loose_gate_shipped"], row["loose_gate_gap"] = loose["shipped"], loose["gap"]
            rows.append(row)
    return rows


def aggregate(rows: list[dict]) -> dict:
    """Medians / means / shares over pair x fold."""

    def stats(values):
        v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
        if not v.size:
            return None
        return {
            "median": float(np.median(v)),
            "mean": float(np.mean(v)),
            "share_ge_0": float(np.mean(v >= 0)),
            "share_lt_-0.1": float(np.mean(v < -0.1)),
            "n": int(v.size),
        }

    algos = sorted({a for r in rows for a in r["candidates"]})
    learned = [r["shipped_gap"] for r in rows if not r["shipped"].startswith("baseline:")]
    return {
        "shipped_gap": stats(r["shipped_gap"] for r in rows),
        # the gate's precision: how the learned shipments did on test
        "learned_shipped": {
            "count": len(learned),
            "share": len(learned) / max(len(rows), 1),
            "mean_gap": float(np.mean(learned)) if learned else None,
            "win_rate": float(np.mean(np.asarray(learned) > 0)) if learned else None,
        },
        "loose_gate_gap": stats(r["loose_gate_gap"] for r in rows),
        # every replayed gate rule: its shipped test gap and how often it shipped the learned policy
        "gate_variants": {
            v: {
                **(stats(r["gate_variants"][v]["gap"] for r in rows) or {}),
                "learned_share": float(
                    np.mean(
                        [not r["gate_variants"][v]["shipped"].startswith("baseline:") for r in rows]
                    )
                ),
            }
            for v in (variant_name(*g) for g in GATE_VARIANTS)
            if rows and all(v in r.get("gate_variants", {}) for r in rows)
        },
        "shipped_learned_share": float(
            np.mean([not r["shipped"].startswith("baseline:") for r in rows])
        ),
        "candidates": {
            a: {
                "gate_gap": stats(
                    r["candidates"][a]["gate_gap"] for r in rows if a in r["candidates"]
                ),
                "test_gap": stats(
                    r["candidates"][a]["test_gap"] for r in rows if a in r["candidates"]
                ),
                "test_turnover": stats(
                    r["candidates"][a]["test_turnover"] for r in rows if a in r["candidates"]
                ),
                "test_leverage": stats(
                    r["candidates"][a]["test_leverage"] for r in rows if a in r["candidates"]
                ),
            }
            for a in algos
        },
    }


def run_facts(summary: dict) -> dict:
    """Wall time and RL training numbers of the run (last fold's stages for the universe)."""
    facts = {"total_s": summary["timings"].get("total_this_session")}
    folds = summary["walk_forward"]["folds"]
    universe = [f["stages"].get("universe") for f in folds if f["stages"].get("universe")]
    if universe:
        facts["universe_env_steps_per_s"] = [u["training"]["env_steps_per_s"] for u in universe]
        facts["universe_wall_s"] = [u["training"]["wall_s"] for u in universe]
        # the learned tilt's scale each fold kept (rl.tilt_scales; None: only the trained policy)
        facts["tilt_scale"] = [(u.get("tilt") or {}).get("scale") for u in universe]
    ppo = [
        e["candidates"]["ppo"]["final_train_metrics"]
        for f in folds
        for e in f["stages"].get("portfolio", {}).values()
        if "ppo" in (e.get("candidates") or {})
    ]
    if ppo:
        facts["ppo_final"] = {
            k: float(np.median([m[k] for m in ppo if k in m]))
            for k in ("approx_kl", "clip_frac", "action_std", "turnover")
            if any(k in m for m in ppo)
        }
    return facts


def recompute_pooled(run_dir: Path, summary: dict) -> dict:
    """The pooled verdict recomputed from the run's evaluation files (every candidate against 1/N
    and against the literature rules; :func:`jaxport.eval.walk_forward.pooled_walk_forward`), for
    runs written before it was in the summary or with fewer comparisons."""
    from jaxport.eval.walk_forward import losses_while_equal_weight_gains, pooled_walk_forward

    curves = run_fold_curves(run_dir, summary)
    ppy = float(summary["config"]["rl"].get("trading_days_per_year", 252))
    out = pooled_walk_forward(curves, periods_per_year=ppy, seed=int(summary["config"]["seed"]))
    out["losses_while_equal_weight_gains"] = losses_while_equal_weight_gains(curves)
    return out


def run_fold_curves(run_dir: Path, summary: dict) -> dict:
    """Every basket's per-fold test curves, read from the run's evaluation files."""
    from jaxport.eval.walk_forward import fold_curves

    root = Path(run_dir)
    return fold_curves(
        summary["walk_forward"]["folds"], lambda rel: json.loads((root / rel).read_text())
    )


def variant_pooled(run_dir: Path, summary: dict, rows: list[dict]) -> dict:
    """Each replayed gate variant's shipped policy, pooled like the run's own ``shipped``: its
    paired Sharpe gap to 1/N on the stitched test days, dates resampled jointly across baskets
    (the shipped test curve is the learned candidate's or the fallback allocator's)."""
    from jaxport.eval.walk_forward import pooled_walk_forward

    curves = run_fold_curves(run_dir, summary)
    order = {}  # pair -> its rows in fold order (fold_curves' order)
    for r in sorted(rows, key=lambda r: r["fold"]):
        order.setdefault(r["pair"], []).append(r)
    ppy = float(summary["config"]["rl"].get("trading_days_per_year", 252))
    out = {}
    names = [
        v for v in rows[0].get("gate_variants", {}) if all(v in r["gate_variants"] for r in rows)
    ]
    for name in names if rows else ():
        swapped = {}
        for pair, folds in curves.items():
            swapped[pair] = []
            for fold, row in zip(folds, order.get(pair, [])):
                shipped = row["gate_variants"][name]["shipped"]
                curve = (
                    fold["baselines"][shipped.split(":", 1)[1]]
                    if shipped.startswith("baseline:")
                    else fold["candidates"][shipped]
                )
                swapped[pair].append({**fold, "equity": curve, "shipped": shipped})
        pooled = pooled_walk_forward(
            swapped, periods_per_year=ppy, seed=int(summary["config"]["seed"])
        )
        out[name] = pooled.get("shipped")
    return out


def pooled_facts(summary: dict) -> dict:
    """The run's pooled verdict (``walk_forward.pooled``: every candidate's paired gap on the
    stitched test days, dates resampled jointly across baskets; PBO) and the median deflated
    Sharpe ratio of the shipped policy over pairs. Runs from before ``pooled`` existed: ``{}``."""
    wf = summary["walk_forward"]
    out = dict(wf.get("pooled") or {})
    dsr = [p.get("deflated_sharpe") for p in (wf.get("pairs") or {}).values()]
    dsr = [x for x in dsr if x is not None and np.isfinite(x)]
    out["dsr_median"] = float(np.median(dsr)) if dsr else None
    out["protocol"] = {
        k: summary["config"]["rl"].get(k)
        for k in ("objective", "anchor", "gate_fraction", "gate_rule", "gate_fallback")
    }
    return out


#: the run's RL settings recorded beside its numbers (what a default study compares)
RUN_CONFIG_KEYS = (
    "scope",
    "algo",
    "seeds",
    "epochs",
    "objective",
    "anchor",
    "turnover_penalty",
    "rebalance_rate",
    "feature_noise",
    "gate_fraction",
    "tilt_scales",
    "tilt_fraction",
    "tilt_penalty",
)


def run_config(summary: dict) -> dict:
    """The RL settings that matter here; in universe scope ``algo`` is the trainer(s) the
    universe stage actually used (runs from before ``stages.universe.trainer`` existed trained
    with the gradient method only); pair scope trains one seed."""
    cfg = {k: summary["config"]["rl"].get(k) for k in RUN_CONFIG_KEYS}
    # how many symbols' pairs trained the universe policy (None: pair scope, or an older run)
    trained_on = summary["config"].get("universe_symbols")
    cfg["universe_size"] = len(trained_on) if trained_on else None
    if cfg["scope"] != "universe":
        cfg["seeds"] = 1  # pair scope trains one seed per algorithm
    else:
        used = {
            f["stages"]["universe"].get("trainer", "gradient")
            for f in summary["walk_forward"]["folds"]
            if f["stages"].get("universe")
        }
        cfg["algo"] = ",".join(sorted(used))
    return cfg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--label", default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    summary = read_summary(args.run_dir)
    if not summary.get("walk_forward"):
        print(f"error: {args.run_dir}: not a walk-forward run (no walk_forward block)")
        return 2
    label = args.label or args.run_dir.resolve().parent.name
    rows = pair_fold_rows(summary)
    out = {
        "label": label,
        "run_dir": str(args.run_dir),
        "config": run_config(summary),
        "aggregate": aggregate(rows),
        "facts": run_facts(summary),
        "pooled": {**pooled_facts(summary), **recompute_pooled(args.run_dir, summary)},
        "rows": rows,
    }
    out["pooled"]["gate_variants"] = variant_pooled(args.run_dir, summary, rows)
    path = args.out or REPO_ROOT / "benchmarks" / "results" / f"walk_forward_gap-{label}.json"
    atomic_write_json(path, out)
    agg = out["aggregate"]
    print(f"{label}: {len(rows)} pair-folds, learned shipped in {agg['shipped_learned_share']:.0%}")
    print(
        f"{'policy':<28}{'median gap':>12}{'mean gap':>10}{'>= 0':>7}{'< -0.1':>8}{'turnover':>10}"
    )
    lines = [
        ("shipped", agg["shipped_gap"], None),
        ("gate: beat 1/N only", agg["loose_gate_gap"], None),
    ]
    lines += [
        (f"candidate {a}", c["test_gap"], c["test_turnover"]) for a, c in agg["candidates"].items()
    ]
    for name, s, to in lines:
        if s is None:
            continue
        turnover = f"{to['median']:.3f}" if to else ""
        print(
            f"{name:<28}{s['median']:>12.3f}{s['mean']:>10.3f}{s['share_ge_0']:>7.0%}"
            f"{s['share_lt_-0.1']:>8.0%}{turnover:>10}"
        )
    for name, g in agg["gate_variants"].items():
        p = out["pooled"]["gate_variants"].get(name) or {}
        pooled = f"pooled {p['mean']:+.3f} [{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}]" if p else ""
        print(
            f"gate {name:<38} median {g['median']:+.3f} mean {g['mean']:+.3f} "
            f">= 0 {g['share_ge_0']:.0%}, learned shipped {g['learned_share']:.0%} {pooled}"
        )
    ls = agg["learned_shipped"]
    if ls["count"]:
        print(
            f"learned shipments: {ls['count']} ({ls['share']:.0%}), mean test gap "
            f"{ls['mean_gap']:+.3f}, beat 1/N in {ls['win_rate']:.0%} (the gate's precision)"
        )
    for name, p in (out["pooled"].get("candidates") or {}).items():
        print(
            f"pooled {name}: gap {p['mean']:+.3f} [{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}] "
            f"over {p['num_baskets']} baskets x {p['num_days']} test days"
        )
    for name, against in (out["pooled"].get("candidates_vs_baselines") or {}).items():
        for base, p in against.items():
            print(
                f"pooled {name} vs {base}: {p['mean']:+.3f} "
                f"[{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}]"
            )
    for name, lo in (out["pooled"].get("losses_while_equal_weight_gains") or {}).items():
        worst = "—" if lo["worst"] is None else f"{lo['worst']:+.1%}"
        print(
            f"{name}: lost > {lo['max_loss']:.0%} while 1/N gained in {lo['count']} of "
            f"{lo['pair_folds']} pair-folds (worst test return when 1/N gained: {worst})"
        )
    print(f"PBO (mean over pair-folds): {out['pooled'].get('pbo_mean')}")
    print(f"facts: {json.dumps(out['facts'])}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
