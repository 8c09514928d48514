"""Shrinking the universe policy's learned tilt toward its untrained start, with the shrinkage
chosen on validation rows (a learned rule combined with the rule it starts from, as Tu & Zhou 2011
combine 1/N with an estimated rule).

The network's two output heads, ``head_out`` (the per-asset score tilt) and ``gross_out`` (the
gross tilt), are constant at init (zeros, and the gross bias). :func:`scale_tilt` moves them to
``start + s x (trained - start)``; the heads are linear, so the score tilt and the gross logit tilt
are multiplied by ``s`` and the encoder is untouched:

- ``s = 0`` is exactly the untrained policy: the anchor rule (e.g. vol-managed 1/N), or 1/N at
  ``init_gross`` for an unanchored network;
- ``s = 1`` is the trained policy.

:func:`choose_tilt_scale` scores every scale by the member-selection score (the mean over baskets
of the validation objective) on the same validation rows that picked the checkpoint, and keeps
the best (ties: the smaller scale). The gate then judges the result on its own later rows.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxport.data import DataError
from jaxport.env import EnvParams
from jaxport.rl.codec import Policy
from jaxport.rl.universe.baskets import check_stacked, validation_steps
from jaxport.rl.universe.network import init_params, make_network
from jaxport.rl.universe.train import make_validator, selection_penalties

TILT_HEADS = ("head_out", "gross_out")  # the output heads that carry the learned tilt


def _variables(tree: dict) -> dict:
    """The flax variables ``{"params": {...}}`` of a universe policy tree."""
    return tree["params"]


def scale_tilt(net_params: dict, start: dict, scale) -> dict:
    """``net_params`` (flax variables ``{"params": {...}}``) with every :data:`TILT_HEADS` leaf
    moved to ``start + scale x (leaf - start)`` (``start``: the untrained variables; ``scale`` a
    scalar, traced or not); every other leaf unchanged."""
    inner = dict(net_params["params"])
    for name in TILT_HEADS:
        inner[name] = jax.tree_util.tree_map(
            lambda p, s0: s0 + scale * (p - s0), inner[name], start["params"][name]
        )
    return {**net_params, "params": inner}


def untrained_variables(policy: Policy) -> dict:
    """The variables of ``policy``'s network at init (the tilt heads' init is constant, so the
    key does not matter for them)."""
    return init_params(policy.config, policy.env, jax.random.PRNGKey(0))


def with_tilt_scale(policy: Policy, scale: float) -> Policy:
    """``policy`` with its tilt scaled by ``scale`` (module docstring): a plain ``"universe"``
    policy whose checkpoint stores the scaled weights."""
    start = untrained_variables(policy)
    scaled = scale_tilt(_variables(policy.tree), start, jnp.float32(scale))
    tree = jax.tree_util.tree_map(np.asarray, {**policy.tree, "params": scaled})
    return dataclasses.replace(policy, tree=tree)


def tilt_scale_scores(policy: Policy, val_params: EnvParams, scales: Sequence[float]) -> dict:
    """Every scale's validation numbers on every basket of the stacked ``val_params`` (the
    deterministic validation episodes member selection scores): ``{stat: [S, B]}`` for
    ``objective`` (``policy.config.objective`` with its selection penalties), ``sharpe``
    (annualised), ``log_growth`` and ``turnover`` (per step)."""
    check_stacked(policy.env, val_params, "val_params")
    out = _scale_scores(
        policy.config,
        policy.env,
        validation_steps(val_params),
        _variables(policy.tree),
        untrained_variables(policy),
        jnp.asarray(policy.tree["rebalance_rate"], jnp.float32),
        val_params,
        jnp.asarray(scales, jnp.float32),
    )
    return {k: np.asarray(v) for k, v in out.items()}


@partial(jax.jit, static_argnums=(0, 1, 2))
def _scale_scores(config, env, num_steps, variables, start, rate, val_params, scales):
    """One program per (config, env, validation length): the scales vmapped."""
    network = make_network(config, env)
    sel = selection_penalties(config)
    validate = make_validator(
        config, env, network, num_steps, val_params, sel, {"rebalance_rate": rate}
    )
    return jax.vmap(lambda s: validate(scale_tilt(variables, start, s)))(scales)


def choose_tilt_scale(policy: Policy, val_params: EnvParams, scales: Sequence[float]) -> dict:
    """The scale of ``scales`` with the best member-selection score (mean over baskets of the
    validation objective; ties: the smallest) and ``policy`` at that scale: ``{"policy",
    "scale", "scales", "score" [S], "sharpe" [S] (mean over baskets)}``."""
    scales = sorted(float(s) for s in scales)
    if not scales or min(scales) < 0.0 or max(scales) > 1.0:
        raise DataError(f"tilt scales must be in [0, 1], got {scales}")
    stats = tilt_scale_scores(policy, val_params, scales)
    score = stats["objective"].mean(axis=-1)
    best = int(np.argmax(score))  # the first maximum: the smallest scale on a tie
    return {
        "policy": with_tilt_scale(policy, scales[best]),
        "scale": scales[best],
        "scales": scales,
        "score": score.tolist(),
        "sharpe": stats["sharpe"].mean(axis=-1).tolist(),
    }


__all__ = [
    "TILT_HEADS",
    "choose_tilt_scale",
    "scale_tilt",
    "tilt_scale_scores",
    "untrained_variables",
    "with_tilt_scale",
]
