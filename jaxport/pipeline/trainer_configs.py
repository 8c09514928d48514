"""The RL settings (:class:`~jaxport.pipeline.config.RLConfig`) turned into each trainer's config:
the pair trainers (:class:`~jaxport.rl.PPOConfig`, :class:`~jaxport.rl.GradientConfig`) and the
universe trainers (:class:`~jaxport.rl.universe.UniverseConfig`,
:class:`~jaxport.rl.universe_ppo.UniversePPOConfig`).

One place maps every RL setting, so a setting acts wherever its help says it does. A ``None``
setting leaves the trainer's own default (``learning_rate``) or takes the scope's default
(``hidden_size``, ``num_steps``: :data:`~jaxport.pipeline.config.PAIR_HIDDEN_SIZE` etc.).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from jaxport.pipeline.config import (
    PAIR_HIDDEN_SIZE,
    PAIR_NUM_STEPS,
    RL_ANCHOR_RULES,
    UNIVERSE_HIDDEN_SIZE,
    UNIVERSE_NUM_STEPS,
    RLConfig,
)

if TYPE_CHECKING:  # pragma: no cover
    from jaxport.rl.universe import UniverseConfig
    from jaxport.rl.universe_ppo import UniversePPOConfig


def _learning_rate(rl: RLConfig, gradient: bool) -> dict[str, float]:
    """``{"lr": value}`` when a learning rate is set for this trainer, else ``{}``."""
    value = (rl.gradient_learning_rate or rl.learning_rate) if gradient else rl.learning_rate
    return {} if value is None else {"lr": value}


def _shared_fields(rl: RLConfig, hidden: int) -> dict[str, Any]:
    """The fields every trainer takes from ``rl`` the same way: the gross-exposure cap (multiples
    of equity), ``rl.num_layers`` hidden layers of ``hidden`` units, and the risk penalty of the
    one objective all methods share (#13)."""
    return dict(
        leverage_cap=rl.leverage_limit,
        hidden_sizes=(hidden,) * rl.num_layers,
        risk_penalty=rl.risk_penalty,
    )


def ppo_config(rl: RLConfig, num_assets: int):
    """Pair-scope PPO: ``rl.batch_size`` envs, ``rl.num_steps`` per rollout, ``rl.epochs``
    updates."""
    from jaxport.rl import PPOConfig

    num_envs = rl.batch_size
    num_steps = rl.num_steps or PAIR_NUM_STEPS
    return PPOConfig(
        num_envs=num_envs,
        num_steps=num_steps,
        total_timesteps=rl.epochs * num_envs * num_steps,
        **_shared_fields(rl, rl.hidden_size or PAIR_HIDDEN_SIZE),
        **_learning_rate(rl, gradient=False),
    )


def gradient_config(rl: RLConfig, episode_length: int):
    """Pair-scope gradient method: ``rl.num_steps``-day BPTT chunks (at most the episode)."""
    from jaxport.rl import GradientConfig

    hidden = rl.hidden_size or PAIR_HIDDEN_SIZE
    return GradientConfig(
        policy=rl.policy,
        hidden_size=hidden,
        num_layers=rl.num_layers,
        num_heads=rl.num_heads,
        num_envs=rl.batch_size,
        bptt_length=min(rl.num_steps or PAIR_NUM_STEPS, episode_length),
        episode_length=episode_length,
        num_updates=rl.epochs,
        **_shared_fields(rl, hidden),
        **_learning_rate(rl, gradient=True),
    ).validate()


def eval_every(num_updates: int, target_evals: int = 10) -> int:
    """The largest divisor of ``num_updates`` that gives at least ``target_evals`` validation
    evaluations (every update when ``num_updates < target_evals``)."""
    best = 1
    for d in range(1, num_updates + 1):
        if num_updates % d == 0 and num_updates // d >= target_evals:
            best = d
    return best


def _universe_fields(rl: RLConfig, num_baskets: int, episode_length: int) -> dict[str, Any]:
    """The fields both universe trainers take from ``rl`` (envs, updates, network, objective,
    regularisation, population, selection)."""
    hidden = rl.hidden_size or UNIVERSE_HIDDEN_SIZE
    return dict(
        num_envs=max(4, math.ceil(rl.batch_size / max(num_baskets, 1))),
        episode_length=episode_length,
        num_updates=rl.epochs,
        head_size=hidden,
        **_shared_fields(rl, hidden),
        turnover_penalty=rl.turnover_penalty,
        feature_noise=rl.feature_noise,
        rebalance_rate=rl.rebalance_rate,
        num_seeds=rl.seeds,
        grid=tuple((k, tuple(v)) for k, v in dict(rl.grid).items()),
        eval_every=eval_every(rl.epochs),
        select_risk_penalty=rl.risk_penalty,
        select_turnover_penalty=rl.turnover_penalty,
        objective=rl.objective,
        **anchor_fields(rl),
    )


def anchor_fields(rl: RLConfig) -> dict[str, Any]:
    """The :class:`~jaxport.rl.universe.UniverseConfig` anchor fields of the rule named by
    ``rl.anchor`` (:data:`~jaxport.pipeline.config.RL_ANCHOR_RULES`)."""
    if rl.anchor == "none":
        return {"anchor": "none"}
    eta, vol_managed = RL_ANCHOR_RULES[rl.anchor]
    return {
        "anchor": "volatility_timing",
        "anchor_eta": rl.anchor_eta if eta is None else eta,
        "anchor_vol_managed": vol_managed,
        "max_gross": rl.max_gross,
    }


def universe_config(rl: RLConfig, num_baskets: int, episode_length: int) -> UniverseConfig:
    """The universe gradient trainer's config.

    ``rl.batch_size`` envs in total, split over the ``num_baskets`` baskets (at least 4 each);
    ``rl.epochs`` updates of ``rl.num_steps``-day BPTT chunks (at most the episode); width
    ``rl.hidden_size`` x ``rl.num_layers``; the objective (risk and turnover penalty),
    regularisation (rebalance rate, feature noise, weight decay, tilt penalty) and the population (``rl.seeds``
    seeds x the ``rl.grid`` combinations). Checkpoints and members are selected by the training
    objective on validation (risk and turnover penalty).
    """
    from jaxport.rl.universe import UniverseConfig

    return UniverseConfig(
        **_universe_fields(rl, num_baskets, episode_length),
        bptt_length=min(rl.num_steps or UNIVERSE_NUM_STEPS, episode_length),
        weight_decay=rl.weight_decay,
        tilt_penalty=rl.tilt_penalty,
        **_learning_rate(rl, gradient=True),
    ).validate()


def universe_ppo_config(rl: RLConfig, num_baskets: int, episode_length: int) -> UniversePPOConfig:
    """The universe PPO trainer's config: :func:`universe_config`'s shared fields with PPO's own
    optimiser defaults (gradient clip, no weight decay on the latent log std), ``rl.num_steps``
    days per rollout (at most the episode) and ``rl.learning_rate`` when set."""
    from jaxport.rl.universe_ppo import UniversePPOConfig

    fields = _universe_fields(rl, num_baskets, episode_length)
    num_steps = min(rl.num_steps or UNIVERSE_NUM_STEPS, episode_length)
    minibatches = math.gcd(UniversePPOConfig.num_minibatches, num_steps * fields["num_envs"])
    return UniversePPOConfig(
        **fields,
        num_steps=num_steps,
        num_minibatches=minibatches,
        **_learning_rate(rl, gradient=False),
    ).validate()


__all__ = [
    "anchor_fields",
    "eval_every",
    "gradient_config",
    "ppo_config",
    "universe_config",
    "universe_ppo_config",
]
