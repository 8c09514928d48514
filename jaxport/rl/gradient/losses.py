"""The objective the gradient trainer ascends, differentiable through the env.

Per env and BPTT chunk (per step, not annualised)::

    objective = mean_t log(E_{t+1} / E_t)                       (log growth net of fees, financing)
                - risk_penalty     * var_t(E_{t+1} / E_t - 1)   (population variance in the chunk)
                - turnover_penalty * mean_t sum_i |dw_i,t|      (turnover, fraction of equity)

averaged over the envs with at least one valid step. PPO's
:func:`jaxport.rl.ppo.losses.shaped_reward` carries the same objective into a per-step reward.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxport.env import EnvParams, EnvState, PortfolioEnv
from jaxport.rl.common import select
from jaxport.rl.gradient.config import GradientConfig
from jaxport.rl.gradient.policy import make_policy_network


def training_params(config: GradientConfig, env_params: EnvParams) -> EnvParams:
    """Env params used for training: random start days, ``config.episode_length`` steps each."""
    return env_params.replace(
        episode_length=jnp.asarray(config.episode_length, jnp.int32),
        eval_start=jnp.asarray(-1, jnp.int32),
    )


def reset_envs(env: PortfolioEnv, params: EnvParams, key: jax.Array, num_envs: int):
    """``num_envs`` fresh ``(obs, state)`` (random start days when ``params.eval_start < 0``)."""
    return jax.vmap(env.reset_env, in_axes=(0, None))(jax.random.split(key, num_envs), params)


def chunk_objective(
    net_params,
    network: nn.Module,
    config: GradientConfig,
    env: PortfolioEnv,
    params: EnvParams,
    obs: jnp.ndarray,
    state: EnvState,
    done: jnp.ndarray,
    risk_penalty: jnp.ndarray | float = 0.0,
    turnover_penalty: jnp.ndarray | float = 0.0,
) -> tuple[jnp.ndarray, dict[str, Any]]:
    """Objective (module docstring) of one chunk of ``config.bptt_length`` steps of a batch of envs.

    Returns ``(objective, aux)``; ``aux`` holds the final ``obs``/``state``/``done`` (to carry into
    the next chunk) and the chunk's metrics. Steps of envs whose episode is over (``done``, time
    limit or end of data) are masked out and leave their state unchanged.
    """
    num_days = params.prices.shape[-2]
    batched_step = jax.vmap(env.step_env, in_axes=(None, 0, 0, None))
    dummy_key = jax.random.PRNGKey(0)  # step_env is deterministic

    def body(carry, _):
        obs, state, done = carry
        action = network.apply(net_params, obs)
        n_obs, n_state, reward, terminated, info = batched_step(dummy_key, state, action, params)
        valid = (~done) & (state.time < params.episode_length) & (state.t < num_days - 1)
        e_before = jnp.maximum(state.equity, 1e-12)
        obs = select(valid, n_obs, obs)
        state = jax.tree_util.tree_map(partial(select, valid), n_state, state)
        done = done | (valid & terminated)
        out = dict(
            valid=valid.astype(jnp.float32),
            log_growth=jnp.where(valid, reward, 0.0),
            ret=jnp.where(valid, info["portfolio_return"], 0.0),
            turnover=jnp.where(valid, info["turnover"], 0.0),
            leverage=jnp.where(valid, info["leverage"], 0.0),
            fees=jnp.where(valid, info["fees"], 0.0) / e_before,
            financing=jnp.where(valid, info["financing"], 0.0) / e_before,
        )
        return (obs, state, done), out

    (obs, state, done), traj = jax.lax.scan(
        body, (obs, state, done), None, length=config.bptt_length
    )
    valid = traj["valid"]  # [L, B]
    n = jnp.sum(valid, axis=0)  # [B]
    has = n > 0
    n_safe = jnp.maximum(n, 1.0)
    mean_lg = jnp.sum(traj["log_growth"], axis=0) / n_safe
    mean_ret = jnp.sum(traj["ret"], axis=0) / n_safe
    var_ret = jnp.sum(valid * (traj["ret"] - mean_ret) ** 2, axis=0) / n_safe
    mean_turnover = jnp.sum(traj["turnover"], axis=0) / n_safe
    per_env = mean_lg - risk_penalty * var_ret - turnover_penalty * mean_turnover
    per_env = jnp.where(has, per_env, 0.0)
    num_active = jnp.maximum(jnp.sum(has), 1)
    objective = jnp.sum(per_env) / num_active
    total = jnp.maximum(jnp.sum(valid), 1.0)
    metrics = dict(
        objective=objective,
        mean_log_growth=jnp.sum(traj["log_growth"]) / total,
        return_std=jnp.sum(jnp.where(has, jnp.sqrt(var_ret + 1e-20), 0.0)) / num_active,
        mean_leverage=jnp.sum(traj["leverage"]) / total,
        turnover=jnp.sum(traj["turnover"]) / total,
        fees=jnp.sum(traj["fees"]) / total,
        financing=jnp.sum(traj["financing"]) / total,
    )
    return objective, dict(obs=obs, state=state, done=done, metrics=metrics)


def make_objective_fn(config: GradientConfig, env: PortfolioEnv, env_params: EnvParams) -> Callable:
    """``objective(net_params, key) -> scalar``: one ``bptt_length`` chunk from fresh resets.

    The same objective the training ascends (for gradient checks and evaluation of a parameter set).
    """
    config.validate()
    network = make_policy_network(config, env)
    params = training_params(config, env_params)

    def objective(net_params, key):
        obs, state = reset_envs(env, params, key, config.num_envs)
        done = jnp.zeros((config.num_envs,), bool)
        value, _ = chunk_objective(
            net_params,
            network,
            config,
            env,
            params,
            obs,
            state,
            done,
            config.risk_penalty,
            config.turnover_penalty,
        )
        return value

    return objective
