"""The trained PPO policy: network construction, the deterministic mean-action policy, param trees.

``make_policy_fn(params, obs_norm, config)`` returns a :class:`jax.tree_util.Partial` of a cached
apply function: the trained arrays are pytree leaves (traced when passed through ``jax.jit``) and
the function is one object per architecture, so evaluating many trained policies of one architecture
(e.g. one per basket) reuses one compiled evaluator.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxport.data import DataError
from jaxport.rl.networks import ActorCritic, sample_action, squash
from jaxport.rl.normalize import RunningMeanStd, normalize
from jaxport.rl.ppo.config import PPOConfig


def make_network(config: PPOConfig, action_dim: int) -> ActorCritic:
    """The :class:`ActorCritic` of ``config`` with ``action_dim`` outputs (one per asset)."""
    return ActorCritic(
        action_dim=action_dim,
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        init_log_std=config.init_log_std,
    )


@lru_cache(maxsize=64)
def _policy_apply(
    hidden_sizes: tuple[int, ...],
    activation: str,
    init_log_std: float,
    leverage_cap: float,
    normalize_obs: bool,
    obs_clip: float,
    action_dim: int,
) -> Callable:
    network = ActorCritic(
        action_dim=action_dim,
        hidden_sizes=hidden_sizes,
        activation=activation,
        init_log_std=init_log_std,
    )

    def apply(params, obs_norm, key, obs, deterministic: bool = True):
        if normalize_obs and obs_norm is not None:
            obs = normalize(obs_norm, obs, obs_clip)
        mean, log_std, _ = network.apply(params, obs)
        if deterministic:
            return squash(mean, jnp.float32(leverage_cap))
        return sample_action(key, mean, log_std, jnp.float32(leverage_cap))[0]

    return apply


def make_policy_apply(config: PPOConfig, action_dim: int) -> Callable:
    """Pure ``apply(params, obs_norm, key, obs, deterministic=True) -> action`` (arrays traced).

    ``obs`` is ``[D]`` or ``[B, D]`` (raw, un-normalised env observations); the action is the target
    exposure ``leverage_cap * tanh(u)`` per asset (fraction of equity), ``u = mean`` when
    ``deterministic`` (the key is then unused) else ``u ~ N(mean, std^2)``. One function object per
    architecture (cached), so it is a stable static argument for jitted evaluators.
    """
    return _policy_apply(
        tuple(config.hidden_sizes),
        str(config.activation),
        float(config.init_log_std),
        float(config.leverage_cap),
        bool(config.normalize_obs),
        float(config.obs_clip),
        int(action_dim),
    )


@lru_cache(maxsize=128)
def _bound_apply(apply: Callable, deterministic: bool) -> Callable:
    def policy(params, obs_norm, key, obs):
        return apply(params, obs_norm, key, obs, deterministic)

    return policy


def make_policy_fn(
    params, obs_norm: RunningMeanStd | None, config: PPOConfig, deterministic: bool = True
) -> jax.tree_util.Partial:
    """``policy_fn(key, obs) -> action`` for :func:`jaxport.env.rollout` and the evaluator.

    Deterministic (the default, used for every evaluation) acts at the Gaussian's mean:
    ``leverage_cap * tanh(mean(obs))``, the same action for every key. ``obs`` is one raw
    observation ``[D]`` or a batch ``[B, D]``. The result is a ``jax.tree_util.Partial`` whose
    leaves are ``params`` and ``obs_norm``: jitted evaluators trace them (no recompile per policy).
    """
    action_dim = int(np.shape(params["params"]["log_std"])[-1])
    apply = _bound_apply(make_policy_apply(config, action_dim), bool(deterministic))
    return jax.tree_util.Partial(apply, params, obs_norm)


# ---------------------------------------------------------------------- parameter trees
def _to_plain(tree):
    """Nested mappings (dict / FrozenDict) -> nested plain dicts."""
    if hasattr(tree, "items"):
        return {str(k): _to_plain(v) for k, v in tree.items()}
    return tree


def export_policy(params, obs_norm: RunningMeanStd | None, config: PPOConfig) -> dict[str, Any]:
    """Plain nested dict of numpy arrays + JSON-able config (what checkpoints store).

    ``{"params": {"params": {"Dense_0": {"kernel", "bias"}, ..., "log_std"}},
    "obs_norm": {"mean", "var", "count"}, "config": PPOConfig.to_dict()}``.
    """
    out = {"params": jax.tree.map(np.asarray, _to_plain(params)), "config": config.to_dict()}
    if obs_norm is None:
        obs_dim = int(np.shape(out["params"]["params"]["Dense_0"]["kernel"])[0])
        obs_norm = RunningMeanStd.create(obs_dim)
    out["obs_norm"] = {
        "mean": np.asarray(obs_norm.mean),
        "var": np.asarray(obs_norm.var),
        "count": np.asarray(obs_norm.count),
    }
    return out


def import_policy(d: dict[str, Any]) -> tuple[dict, RunningMeanStd, PPOConfig]:
    """Inverse of :func:`export_policy`: ``(params, obs_norm, config)`` with jnp arrays."""
    try:
        params = jax.tree.map(jnp.asarray, _to_plain(d["params"]))
        on = d["obs_norm"]
        obs_norm = RunningMeanStd(
            mean=jnp.asarray(on["mean"], jnp.float32),
            var=jnp.asarray(on["var"], jnp.float32),
            count=jnp.asarray(on["count"], jnp.float32),
        )
        config = PPOConfig.from_dict(dict(d["config"]))
    except KeyError as e:
        raise DataError(f"policy checkpoint: missing key {e}") from None
    return params, obs_norm, config
