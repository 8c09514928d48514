"""Many baskets at once: env params stacked over baskets ``[B, ...]`` (all baskets with the same
N, T and F), envs arranged ``[B, num_envs]`` and stepped with a nested vmap (outer over baskets
with params ``in_axes=0``, inner over envs with params ``None``, so market arrays are never copied
per env), and the deterministic validation episode of one basket."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxport.data import DataError
from jaxport.env import EnvParams, PortfolioEnv
from jaxport.rl.common import select
from jaxport.rl.universe.network import apply_policy

#: EnvState fields that only keep the episode's books (no effect on rewards or observations).
BOOKKEEPING = (
    "open_trade_pnl",
    "gross_pnl",
    "fees",
    "financing",
    "num_trades",
    "winning_trades",
    "last_reward",
)


def stack_env_params(params: Sequence[EnvParams]) -> EnvParams:
    """Stack baskets' ``EnvParams`` (same N, T, F) along a new leading basket axis ``[B, ...]``."""
    params = list(params)
    if not params:
        raise DataError("stack_env_params: no baskets")
    shapes = {(p.prices.shape, p.features.shape) for p in params}
    if len(shapes) != 1:
        raise DataError(f"stack_env_params: baskets differ in shape {sorted(shapes)}")
    return jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *params)


def basket(params: EnvParams, b: int) -> EnvParams:
    """Basket ``b`` of stacked params."""
    return jax.tree_util.tree_map(lambda x: x[b], params)


def check_stacked(env: PortfolioEnv, params: EnvParams, name: str) -> None:
    """One-line ``DataError`` unless ``params`` is stacked ``[B, T, N]`` with ``env``'s N and F."""
    if params.prices.ndim != 3:
        raise DataError(
            f"{name}: expected EnvParams stacked over baskets [B, T, N] "
            f"(see stack_env_params), got prices {params.prices.shape}"
        )
    n, f = params.prices.shape[-1], params.features.shape[-1]
    if n != env.num_assets or f != env.num_features:
        raise DataError(
            f"{name}: N={n}, F={f} do not match env ({env.num_assets}, {env.num_features})"
        )


def reset_baskets(env, params, key, num_envs):
    """``(obs [B, E, D], state [B, E, ...])``: random start days per basket."""
    num_baskets = params.prices.shape[0]
    keys = jax.random.split(key, num_baskets * num_envs).reshape(num_baskets, num_envs, -1)
    inner = jax.vmap(env.reset_env, in_axes=(0, None))
    return jax.vmap(inner, in_axes=(0, 0))(keys, params)


def training_params(episode_length: int, params: EnvParams) -> EnvParams:
    """Stacked params for training: random start days, ``episode_length`` steps per episode."""
    b = params.prices.shape[0]
    return params.replace(
        episode_length=jnp.full((b,), episode_length, jnp.int32),
        eval_start=jnp.full((b,), -1, jnp.int32),
    )


def nested_step(env):
    """``env.step_env`` (no auto-reset) vmapped over envs (params shared) inside baskets."""
    inner = jax.vmap(env.step_env, in_axes=(None, 0, 0, None))
    return jax.vmap(inner, in_axes=(None, 0, 0, 0))


def nested_autoreset_step(env):
    """``env.step`` (auto-reset) vmapped over envs (params shared) inside baskets."""
    inner = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    return jax.vmap(inner, in_axes=(0, 0, 0, 0))


def validation_rollout(env, network, cap, net_params, rate, params: EnvParams, num_steps: int):
    """Deterministic episode of ONE basket from ``params.eval_start``: per-step ``(valid,
    log_growth, ret, turnover)`` arrays ``[S]`` (zero after the episode ends)."""
    obs, state = env.reset_env(jax.random.PRNGKey(0), params)
    num_days = params.prices.shape[-2]

    def body(carry, _):
        obs, state, done = carry
        action = apply_policy(network, net_params, obs, rate, cap)
        n_obs, n_state, reward, term, info = env.step_env(None, state, action, params)
        valid = (~done) & (state.time < params.episode_length) & (state.t < num_days - 1)
        obs = jnp.where(valid, n_obs, obs)
        state = jax.tree_util.tree_map(lambda a, b: jnp.where(valid, a, b), n_state, state)
        out = (
            valid.astype(jnp.float32),
            jnp.where(valid, reward, 0.0),
            jnp.where(valid, info["portfolio_return"], 0.0),
            jnp.where(valid, info["turnover"], 0.0),
        )
        return (obs, state, done | (valid & term)), out

    _, traj = jax.lax.scan(body, (obs, state, jnp.zeros((), bool)), None, length=num_steps)
    return traj


def validation_steps(val_params: EnvParams) -> int:
    """Static length of the validation scan: the longest basket episode (host-side)."""
    starts = np.asarray(val_params.eval_start).reshape(-1)
    if np.any(starts < 0):
        raise DataError("val_params: every basket needs eval_start >= 0 (a fixed validation start)")
    num_days = int(val_params.prices.shape[-2])
    lengths = np.asarray(val_params.episode_length).reshape(-1)
    steps = int(np.max(np.minimum(lengths, num_days - 1 - starts)))
    if steps < 1:
        raise DataError("val_params: no validation step")
    return steps


__all__ = [
    "BOOKKEEPING",
    "basket",
    "check_stacked",
    "nested_autoreset_step",
    "nested_step",
    "reset_baskets",
    "select",
    "stack_env_params",
    "training_params",
    "validation_rollout",
    "validation_steps",
]
