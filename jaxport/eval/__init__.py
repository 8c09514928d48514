"""Evaluation: deterministic test-split episodes, return/risk/trade metrics and baselines."""

from jaxport.eval.allocators import (
    ALLOCATOR_KINDS,
    Allocator,
    allocator_action,
    default_allocators,
    evaluate_allocators,
    run_allocators,
)
from jaxport.eval.episode import (
    EQUITY_METRIC_KEYS,
    POLICY_METRIC_KEYS,
    baseline_specs,
    buy_and_hold_curve,
    evaluate_baselines,
    evaluate_policy,
    evaluation_steps,
    metrics_from_equity,
)
from jaxport.eval.policy_report import portfolio_report
from jaxport.eval.stats import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    folds_beating,
    probabilistic_sharpe_ratio,
    returns_from_equity,
    sharpe_gap_bootstrap,
    sharpe_ratio,
    skill_vs_benchmark,
)

__all__ = [
    "EQUITY_METRIC_KEYS",
    "POLICY_METRIC_KEYS",
    "baseline_specs",
    "buy_and_hold_curve",
    "evaluate_baselines",
    "evaluate_policy",
    "evaluation_steps",
    "metrics_from_equity",
    "portfolio_report",
    "ALLOCATOR_KINDS",
    "Allocator",
    "allocator_action",
    "default_allocators",
    "evaluate_allocators",
    "run_allocators",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "folds_beating",
    "probabilistic_sharpe_ratio",
    "returns_from_equity",
    "sharpe_gap_bootstrap",
    "sharpe_ratio",
    "skill_vs_benchmark",
]
