"""benchmarks/default_selection.py: the two fixed rules, and the refusal of runs that reach a
reported test day."""

from __future__ import annotations

import pytest

from helpers import load_benchmark


def _run(label, cfg, pooled, variant_gaps):
    stats = {"median": pooled, "mean": pooled}
    return {
        "label": label,
        "config": cfg,
        "pooled": {"candidates": {"universe": {"mean": pooled, "ci95": [pooled - 1, pooled + 1]}}},
        "aggregate": {
            "shipped_gap": {"mean": 0.0},
            "candidates": {
                "universe": {"test_gap": stats, "test_turnover": stats, "test_leverage": stats}
            },
        },
        "rows": [
            {"gate_variants": {k: {"gap": g, "shipped": "baseline:x"} for k, g in row.items()}}
            for row in variant_gaps
        ],
    }


def test_rules_pick_the_best_pooled_candidate_and_the_best_mean_gate():
    mod = load_benchmark("default_selection")
    base = {"objective": "sharpe", "turnover_penalty": 0.002}
    runs = [
        _run("a", base, -0.2, [{"strict": 0.0, "loose": 0.1}, {"strict": 0.0, "loose": -0.3}]),
        _run("b", {**base, "objective": "mean-variance"}, -0.05, [{"strict": 0.0, "loose": 0.05}]),
    ]
    out = mod.select(runs, "a")
    assert out["chosen_run"] == "b"
    assert out["runs"][1]["changed"] == {"objective": "mean-variance"}
    # strict: mean 0 over 3 pair-folds; loose: (0.1 - 0.3 + 0.05) / 3 < 0
    assert out["chosen_gate"] == "strict"
    assert out["gate_variants"]["loose"]["mean_gap"] == pytest.approx(-0.05)
    with pytest.raises(SystemExit, match="--baseline"):
        mod.select(runs, "zzz")
