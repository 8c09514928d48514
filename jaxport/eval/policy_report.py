"""The test report of a policy: the policy and the standard allocators on the same deterministic
episode (:func:`portfolio_report`), what the pipeline stores for every basket."""

from __future__ import annotations

from typing import Any, Sequence

import jax

from jaxport.env import EnvParams, PortfolioEnv
from jaxport.eval.allocators import evaluate_allocators
from jaxport.eval.episode import PolicyFn, evaluate_policy
from jaxport.rl.codec import Policy


def portfolio_report(
    env: PortfolioEnv,
    params: EnvParams,
    policy_fn: PolicyFn | Policy,
    symbols: Sequence[str] | None = None,
    *,
    key: jax.Array | None = None,
    policy_params: Any = None,
) -> dict[str, Any]:
    """The JSON-ready test report: the policy and the baselines on the same test episode.

    Baselines are the standard allocators of :func:`jaxport.eval.allocators.default_allocators`
    (buy-and-hold per asset, daily-rebalanced 1/N, inverse volatility, minimum variance, risk
    parity, cash). ``{"test": metrics, "baselines": {"buy_and_hold": {SYM: metrics},
    "equal_weight": metrics, "inverse_volatility": ..., "minimum_variance": ..., "risk_parity": ...,
    "cash": metrics}, "equity_curve": [...], "baseline_curves": {"buy_and_hold": {SYM: [...]},
    "equal_weight": [...], "cash": [...]}, "leverage": [...], "weights": [[...]], "start_index":
    int, "num_steps": int}`` (curves are E/E0 with ``num_steps + 1`` points starting at
    ``start_index``).
    """
    policy = evaluate_policy(env, params, policy_fn, key=key, policy_params=policy_params)
    base = evaluate_allocators(env, params, symbols=symbols)
    return {
        "test": policy["metrics"],
        "baselines": base["metrics"],
        "equity_curve": policy["equity_curve"],
        "baseline_curves": base["curves"],
        "leverage": policy["leverage"],
        "weights": policy["weights"],
        "start_index": policy["start_index"],
        "num_steps": policy["num_steps"],
    }


__all__ = ["portfolio_report"]
