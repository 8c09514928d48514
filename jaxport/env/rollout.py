"""Vectorised rollouts: ``vmap`` over environments, ``lax.scan`` over time, one jitted program."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import struct

from jaxport.env.params import EnvParams
from jaxport.env.portfolio_env import PortfolioEnv
from jaxport.env.state import EnvState
from jaxport.xla_options import tuned_jit

PolicyFn = Callable[[jax.Array, jnp.ndarray], jnp.ndarray]  # (key, obs[obs_dim]) -> action[N]


@struct.dataclass
class Trajectory:
    """Stacked transitions, leading axes ``[num_steps, num_envs]``."""

    obs: jnp.ndarray  # observation the action was taken on
    action: jnp.ndarray
    reward: jnp.ndarray
    terminated: jnp.ndarray
    truncated: jnp.ndarray
    info: dict


@struct.dataclass
class RolloutResult:
    trajectory: Trajectory
    final_obs: jnp.ndarray  # [num_envs, obs_dim]
    final_state: EnvState  # batched


def batch_reset(env: PortfolioEnv, params: EnvParams, key: jax.Array, num_envs: int):
    """Reset ``num_envs`` environments on the same params: ``(obs[B, D], state)``."""
    return jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, num_envs), params)


def scan_steps(
    env: PortfolioEnv,
    params: EnvParams,
    policy_fn: PolicyFn,
    key: jax.Array,
    obs: jnp.ndarray,
    state: EnvState,
    num_steps: int,
) -> RolloutResult:
    """Continue a batched rollout for ``num_steps`` (auto-reset), from ``(obs, state)``."""
    num_envs = obs.shape[0]
    batched_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    batched_policy = jax.vmap(policy_fn)

    def body(carry, step_key):
        obs, state = carry
        k_act, k_step = jax.random.split(step_key)
        action = batched_policy(jax.random.split(k_act, num_envs), obs)
        next_obs, next_state, reward, terminated, truncated, info = batched_step(
            jax.random.split(k_step, num_envs), state, action, params
        )
        info = {k: v for k, v in info.items() if k != "final_observation"}
        return (next_obs, next_state), Trajectory(obs, action, reward, terminated, truncated, info)

    (obs, state), traj = jax.lax.scan(body, (obs, state), jax.random.split(key, num_steps))
    return RolloutResult(trajectory=traj, final_obs=obs, final_state=state)


@tuned_jit(static_argnames=("env", "policy_fn", "num_envs", "num_steps", "place_batch"))
def rollout(
    env: PortfolioEnv,
    params: EnvParams,
    policy_fn: PolicyFn,
    key: jax.Array,
    num_envs: int,
    num_steps: int,
    place_batch: Callable | None = None,
) -> RolloutResult:
    """Reset ``num_envs`` envs and roll ``policy_fn`` for ``num_steps`` steps, as one jitted
    program.

    ``policy_fn(key, obs) -> action`` acts on ONE observation; it is vmapped over envs. Must be
    hashable (a module-level function or ``functools.partial`` of one): it is a static argument.
    ``place_batch((obs, state)) -> (obs, state)``, if given (static, hashable), places the fresh
    batch before the scan: :func:`jaxport.distributed.sharded_rollout` passes its sharding
    constraint.
    """
    k_reset, k_run = jax.random.split(key)
    obs, state = batch_reset(env, params, k_reset, num_envs)
    if place_batch is not None:
        obs, state = place_batch((obs, state))
    return scan_steps(env, params, policy_fn, k_run, obs, state, num_steps)


def random_policy(env: PortfolioEnv) -> PolicyFn:
    """Uniform random exposures in ``[-cap, cap]`` per asset (the cap is applied by the env)."""

    def policy(key, obs):
        del obs
        low = 0.0 if env.long_only else -2.0
        return jax.random.uniform(key, (env.num_assets,), minval=low, maxval=2.0)

    return policy
