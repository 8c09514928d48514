"""Defaults chosen on inner walk-forward folds that end before every reported test block.

Each inner run is ``jaxport train --walk-forward K`` on a copy of a universe's prices cut at the first
reported test block (the S&P 500 sample before 2005-03-03, where the README's run e starts testing),
changing one setting from the baseline run; ``benchmarks/walk_forward_gap.py`` turns each into a JSON.
This script reads those JSONs, checks that no inner test day reaches ``--reported-test-start``, and
applies the rules below, which were fixed before any inner run was read:

- **policy settings** (regularisers, objective, anchor): the run whose learned candidate has the
  highest pooled paired test-Sharpe gap to 1/N on the stitched inner test days (the gap the
  learned policy is meant to move);
- **gate rule and fallback**: the replayed gate variant (``walk_forward_gap.GATE_VARIANTS``, decided on
  each run's gate rows) with the highest mean shipped gap over every inner pair-fold of every run.

Usage: ``python benchmarks/default_selection.py GAP.json [GAP.json ...] --baseline LABEL
--reported-test-start YYYY-MM-DD [--label NAME] [--out FILE]``; prints the table, writes JSON
(default ``benchmarks/results/default_selection-<label>.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from jaxport.checkpoint import atomic_write_json  # noqa: E402
from jaxport.pipeline.provenance import git_commit  # noqa: E402
from jaxport.pipeline.summary import read_summary  # noqa: E402

#: the settings an inner run may change from the baseline
POLICY_SETTINGS = (
    "objective",
    "anchor",
    "turnover_penalty",
    "rebalance_rate",
    "feature_noise",
    "universe_size",  # symbols whose every pair trains the universe policy (--universe-symbols)
    "tilt_scales",  # the learned tilt's scales tried after training (--tilt-scales)
    "tilt_fraction",  # the share of the selection rows that chooses the scale (--tilt-fraction)
    "tilt_penalty",  # the training charge on the distance to the anchor rule (--tilt-penalty)
)


def inner_dates(run_dir: Path) -> dict:
    """First and last date of the run's data and of its inner test blocks (from its summary)."""
    summary = read_summary(run_dir)
    folds = summary["walk_forward"]["folds"]
    return {
        "data_first": summary["data"]["first_date"],
        "data_last": summary["data"]["last_date"],
        "folds": len(folds),
        "test_first": folds[0]["test_first_date"],
        "test_last": folds[-1]["test_last_date"],
        "split_fractions": summary["data"]["split_fractions"],
        "baskets": sorted(summary["walk_forward"].get("pairs") or {}),
        "symbols": summary["data"]["symbols"],
    }


#: the value a setting had in runs recorded before the setting existed
BEFORE_IT_EXISTED = {"tilt_scales": [1.0], "tilt_penalty": 0.0}


def changed(cfg: dict, base: dict) -> dict:
    """The policy settings where ``cfg`` differs from ``base`` (a setting a run did not record
    had its :data:`BEFORE_IT_EXISTED` value; the tilt fraction counts only with a scale to
    choose)."""

    def value(c: dict, k: str):
        return BEFORE_IT_EXISTED.get(k) if c.get(k) is None else c.get(k)

    out = {k: value(cfg, k) for k in POLICY_SETTINGS if value(cfg, k) != value(base, k)}
    if "tilt_scales" not in out:
        out.pop("tilt_fraction", None)
    return out


def select(runs: list[dict], baseline: str) -> dict:
    """Apply the module's two rules to the inner runs (``walk_forward_gap`` JSONs)."""
    by_label = {r["label"]: r for r in runs}
    if baseline not in by_label:
        raise SystemExit(f"error: --baseline {baseline}: no run with that label")
    base_cfg = by_label[baseline]["config"]
    table = []
    for r in runs:
        cand = (r["pooled"].get("candidates") or {}).get("universe")
        if cand is None:
            raise SystemExit(f"error: {r['label']}: no pooled universe candidate in its JSON")
        table.append(
            {
                "label": r["label"],
                "changed": changed(r["config"], base_cfg),
                "settings": {k: r["config"].get(k) for k in POLICY_SETTINGS},
                "candidate_pooled_gap": cand["mean"],
                "candidate_ci95": cand["ci95"],
                "candidate_median_gap": r["aggregate"]["candidates"]["universe"]["test_gap"][
                    "median"
                ],
                "pbo": r["pooled"].get("pbo_mean"),
                "shipped_mean_gap": r["aggregate"]["shipped_gap"]["mean"],
                "test_turnover": (
                    r["aggregate"]["candidates"]["universe"]["test_turnover"] or {}
                ).get("median"),
                "test_gross": (r["aggregate"]["candidates"]["universe"]["test_leverage"] or {}).get(
                    "median"
                ),
            }
        )
    best = max(table, key=lambda t: t["candidate_pooled_gap"])
    variants: dict[str, list[float]] = {}
    learned: dict[str, list[bool]] = {}
    for r in runs:
        for row in r["rows"]:
            for name, v in row["gate_variants"].items():
                variants.setdefault(name, []).append(v["gap"])
                learned.setdefault(name, []).append(not v["shipped"].startswith("baseline:"))
    gates = {
        name: {
            "mean_gap": float(np.mean(g)),
            "median_gap": float(np.median(g)),
            "share_ge_0": float(np.mean(np.asarray(g) >= 0)),
            "learned_share": float(np.mean(learned[name])),
            "n": len(g),
        }
        for name, g in variants.items()
    }
    gate = max(gates, key=lambda n: gates[n]["mean_gap"])
    return {"runs": table, "chosen_run": best["label"], "gate_variants": gates, "chosen_gate": gate}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gap_json", type=Path, nargs="+")
    ap.add_argument("--baseline", required=True, help="label of the run with today's defaults")
    ap.add_argument("--reported-test-start", required=True, help="first reported test date")
    ap.add_argument("--label", default="inner")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    runs = [json.loads(p.read_text()) for p in args.gap_json]
    dates = {r["label"]: inner_dates(Path(r["run_dir"])) for r in runs}
    late = [lbl for lbl, d in dates.items() if d["data_last"] >= args.reported_test_start]
    if late:
        print(
            f"error: {', '.join(late)}: data reach {args.reported_test_start} (a reported test day)"
        )
        return 2
    out = {
        "label": args.label,
        "protocol": {
            "rule_policy": "highest pooled test-Sharpe gap of the learned candidate to 1/N on the "
            "inner folds' stitched test days",
            "rule_gate": "highest mean shipped gap over every inner pair-fold of every run, each "
            "variant decided on the run's gate rows",
            "reported_test_start": args.reported_test_start,
            "inner": dates,
        },
        **select(runs, args.baseline),
        "recorded": {"date": time.strftime("%Y-%m-%d"), "commit": git_commit()},
    }
    path = args.out or REPO_ROOT / "benchmarks" / "results" / f"default_selection-{args.label}.json"
    atomic_write_json(path, out)
    print(f"{'run':<12}{'changed':<44}{'pooled gap [95% CI]':>28}{'median':>9}{'PBO':>6}")
    for t in out["runs"]:
        ci = t["candidate_ci95"]
        print(
            f"{t['label']:<12}{json.dumps(t['changed']):<44}"
            f"{t['candidate_pooled_gap']:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]".rjust(28)
            + f"{t['candidate_median_gap']:>+9.3f}{(t['pbo'] or float('nan')):>6.2f}"
        )
    for name, g in out["gate_variants"].items():
        print(
            f"gate {name:<44} mean {g['mean_gap']:+.3f}, learned shipped {g['learned_share']:.0%}"
        )
    print(f"chosen: run {out['chosen_run']}, gate {out['chosen_gate']}; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
