"""benchmarks/walk_forward_gap.py: the per pair-fold gaps and both gate rules from a summary."""

from __future__ import annotations

import pytest

from helpers import load_benchmark


def _entry(shipped, learned_val, ew_val, learned_test, ew_test, best_base_val):
    cand = {
        "validation": {"sharpe": learned_val[1]},
        "test": {"sharpe": learned_test, "turnover_mean": 0.01, "mean_leverage": 1.0},
    }
    return {
        "status": "completed",
        "shipped": shipped,
        "metrics": {
            "test": {"sharpe": learned_test if shipped == "universe" else ew_test},
            "baselines": {"equal_weight": {"sharpe": ew_test}},
        },
        "gate": {
            "learned": {"universe": {"objective": learned_val[0], "sharpe": learned_val[1]}},
            "baselines": {
                "equal_weight": {"objective": ew_val[0], "sharpe": ew_val[1]},
                "buy_and_hold:0": {"objective": best_base_val[0], "sharpe": best_base_val[1]},
            },
        },
        "candidates": {"universe": cand},
    }


def test_gaps_and_gate_rules():
    mod = load_benchmark("walk_forward_gap")
    summary = {
        "walk_forward": {
            "folds": [
                {  # learned beats 1/N but not buy-and-hold: pipeline ships 1/N, loose gate learned
                    "fold": 0,
                    "stages": {
                        "portfolio": {
                            "A_B": _entry(
                                "baseline:equal_weight",
                                (2e-4, 1.0),
                                (1e-4, 0.5),
                                0.7,
                                0.9,
                                (5e-4, 2.0),
                            )
                        }
                    },
                },
                {  # learned beats every baseline: both rules ship it
                    "fold": 1,
                    "stages": {
                        "portfolio": {
                            "A_B": _entry(
                                "universe", (9e-4, 3.0), (1e-4, 0.5), 1.2, 1.0, (5e-4, 2.0)
                            )
                        }
                    },
                },
            ]
        }
    }
    rows = mod.pair_fold_rows(summary)
    assert [r["shipped_gap"] for r in rows] == pytest.approx([0.0, 0.2])
    assert [r["loose_gate_shipped"] for r in rows] == ["universe", "universe"]
    assert [r["loose_gate_gap"] for r in rows] == pytest.approx([-0.2, 0.2])
    agg = mod.aggregate(rows)
    assert agg["shipped_gap"]["median"] == pytest.approx(0.1)
    assert agg["loose_gate_gap"]["share_lt_-0.1"] == 0.5
    assert agg["candidates"]["universe"]["test_gap"]["mean"] == pytest.approx(0.0)
    assert agg["shipped_learned_share"] == 0.5


def test_gate_variants_replay_the_pipeline_gate_on_gate_rows():
    """Every (rule, fallback) variant is decided by the pipeline's own gate on the gate numbers;
    its gap is the shipped thing's TEST gap (the candidate's or the fallback allocator's)."""
    mod = load_benchmark("walk_forward_gap")
    entry = _entry("baseline:equal_weight", (2e-4, 1.0), (1e-4, 0.5), 0.7, 0.9, (5e-4, 2.0))
    entry["gate"]["baselines"]["vol_managed_equal_weight"] = {"objective": 3e-4, "sharpe": 1.5}
    entry["metrics"]["baselines"]["vol_managed_equal_weight"] = {"sharpe": 1.1}
    out = mod.replay_gates(entry, {"universe": 0.7 - 0.9})
    strict = out["every_baseline/equal_weight"]
    assert strict == {"shipped": "baseline:equal_weight", "gap": 0.0}
    # beats 1/N on the gate rows: the fallback rule ships it, with its test gap
    loose = out["fallback/equal_weight"]
    assert loose["shipped"] == "universe" and loose["gap"] == pytest.approx(-0.2)
    # against vol-managed 1/N (objective 3e-4 > 2e-4) it fails: vm ships, test gap 1.1 - 0.9
    vm = out["fallback/vol_managed_equal_weight"]
    assert vm["shipped"] == "baseline:vol_managed_equal_weight"
    assert vm["gap"] == pytest.approx(0.2)
    assert "fallback/inverse_volatility" not in out  # not evaluated in this entry
