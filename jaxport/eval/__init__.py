"""Evaluation: deterministic test-split episodes, return/risk/trade metrics and baselines."""

from jaxport.eval.portfolio import (
    EQUITY_METRIC_KEYS,
    POLICY_METRIC_KEYS,
    baseline_specs,
    buy_and_hold_curve,
    evaluate_baselines,
    evaluate_policy,
    evaluation_steps,
    metrics_from_equity,
    portfolio_report,
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
]
