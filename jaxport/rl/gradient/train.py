"""Differentiable training: gradient ascent on the episode objective, backprop through the env.

The env step is differentiable in the action, so a deterministic allocation policy is trained by
direct gradient ascent on :func:`~jaxport.rl.gradient.losses.chunk_objective` (per-step log growth
net of costs, minus ``risk_penalty`` x per-step return variance, minus ``turnover_penalty`` x mean
turnover), averaged over ``num_envs`` episodes that start on random days. Gradients use truncated
backpropagation through time: each update rolls every env forward ``bptt_length`` steps,
differentiates the chunk's objective w.r.t. the policy parameters and carries the env state into the
next chunk with ``stop_gradient``. Env ``i`` is re-drawn (new random start day) once its episode of
``episode_length`` steps is over, it went bankrupt, or it reached the end of the data.

Unlike the original's stage 3 (whose loss sign rewarded a LOW Sharpe), a larger ``risk_penalty``
here always means less variance.

The trainer is :func:`pair_gradient_member` (its ``init`` / ``update``); the loop over updates is
:func:`jaxport.rl.population.train_member`'s, one member without validation (as the universe
trainers' members, which differ in the env batch and the network).

Same builder as PPO (PureJaxRL style, one jitted program)::

    train = make_train(GradientConfig(...), env, env_params)
    out = train(jax.random.PRNGKey(0))           # or train(key, other_params); jax.vmap over keys
    out["params"], out["metrics"]["objective"]   # metrics: one entry per update
    policy_fn = make_policy_fn(out["params"], config, env)   # (key, obs) -> action
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from jaxport.data import DataError
from jaxport.env import EnvParams, PortfolioEnv
from jaxport.rl.common import check_env_params, constrain_batch, select
from jaxport.rl.gradient.config import GradientConfig, split_config
from jaxport.rl.gradient.losses import chunk_objective, reset_envs, training_params
from jaxport.rl.gradient.policy import make_policy_network
from jaxport.rl.optim import cosine_adamw
from jaxport.rl.population import MemberAlgorithm, train_member

METRIC_KEYS = (
    "objective",  # per-step objective of the update's chunk (the quantity ascended)
    "mean_log_growth",  # per-step log growth net of costs
    "return_std",  # per-step simple-return std within the chunk (fraction)
    "mean_leverage",  # gross exposure sum|w| (multiples of equity)
    "turnover",  # per-step turnover sum|dw| (fraction of equity)
    "fees",  # per-step trading cost (fraction of equity)
    "financing",  # per-step financing + borrow (fraction of equity)
    "grad_norm",  # global gradient norm before clipping
)


def pair_gradient_member(
    config: GradientConfig, env: PortfolioEnv, env_params: EnvParams, hp: dict[str, jnp.ndarray]
) -> MemberAlgorithm:
    """The per-pair gradient trainer as a :class:`~jaxport.rl.population.MemberAlgorithm`
    without validation: state ``(net_params, opt_state, obs, state, done)`` of the
    ``config.num_envs`` envs of one market (the env batch split over the context mesh, if any);
    one update = re-draw finished envs, one ``bptt_length`` chunk, one AdamW step (module
    docstring). ``hp``: the traced :data:`~jaxport.rl.gradient.config.DYNAMIC_FIELDS`."""
    params = training_params(config, env_params)
    network = make_policy_network(config, env)
    tx = cosine_adamw(hp, config.num_updates, config.anneal_lr)
    num_days = params.prices.shape[-2]
    objective = partial(chunk_objective, network=network, config=config, env=env, params=params)
    grad_fn = jax.value_and_grad(objective, has_aux=True)

    def init(k_init, k_reset):
        net_params = network.init(k_init, jnp.zeros((env.obs_dim,), jnp.float32))
        opt_state = tx.init(net_params)
        obs, state = reset_envs(env, params, k_reset, config.num_envs)
        done = jnp.zeros((config.num_envs,), bool)
        obs, state, done = constrain_batch((obs, state, done))  # env batch over the context mesh
        return (net_params, opt_state, obs, state, done)

    def update(carry, step_key):
        net_params, opt_state, obs, state, done = carry
        obs, state, done = constrain_batch((obs, state, done))
        # Re-draw envs whose episode is over (time limit, bankruptcy or end of data).
        finished = done | (state.time >= params.episode_length) | (state.t >= num_days - 1)
        r_obs, r_state = reset_envs(env, params, step_key, config.num_envs)
        obs = select(finished, r_obs, obs)
        state = jax.tree_util.tree_map(partial(select, finished), r_state, state)
        done = done & ~finished

        (_, aux), grads = grad_fn(
            net_params,
            obs=obs,
            state=state,
            done=done,
            risk_penalty=hp["risk_penalty"],
            turnover_penalty=hp["turnover_penalty"],
        )
        grads = jax.tree_util.tree_map(jnp.negative, grads)  # optax minimises: ascend the objective
        updates, opt_state = tx.update(grads, opt_state, net_params)
        net_params = optax.apply_updates(net_params, updates)
        obs, state, done = jax.lax.stop_gradient((aux["obs"], aux["state"], aux["done"]))
        metrics = dict(aux["metrics"], grad_norm=optax.tree.norm(grads))
        return (net_params, opt_state, obs, state, done), metrics

    return MemberAlgorithm(init=init, update=update, mark_members=False)


@partial(jax.jit, static_argnums=(0, 1))
def _train(
    config: GradientConfig,
    env: PortfolioEnv,
    env_params: EnvParams,
    hp: dict[str, jnp.ndarray],
    key: jax.Array,
) -> dict[str, Any]:
    """One :func:`pair_gradient_member` through the population loop (``train.jitted``)."""
    algo = pair_gradient_member(config, env, env_params, hp)
    out = train_member(algo, config.num_updates, None, None, key)
    return {"params": out["final_state"][0], "metrics": out["metrics"]}


def make_train(
    config: GradientConfig, env: PortfolioEnv, env_params: EnvParams | None = None
) -> Callable[..., dict]:
    """Build ``train(key, env_params=None) -> {"params", "metrics"}`` (same builder as PPO's).

    ``env_params`` holds the TRAINING data (the default market; ``train(key, other_params)`` trains
    on another of the same shapes, traced, without recompiling). Episodes start on random days (its
    ``eval_start`` is ignored) and last ``config.episode_length`` steps. ``metrics`` maps each of
    :data:`METRIC_KEYS` to a ``[num_updates]`` array. ``jax.vmap(train)(keys)`` trains one policy
    per seed. Compiled code is shared by calls whose config differs only in
    :data:`~jaxport.rl.gradient.config.DYNAMIC_FIELDS` and whose env params have the same shapes:
    ``train.jitted`` is that shared jitted program (``train.jitted._cache_size()`` counts its
    compilations). Training is one :func:`pair_gradient_member` run through
    :func:`jaxport.rl.population.train_member` (the keys: ``k_init, k_reset, k_loop = split(key,
    3)``, update ``i`` gets ``split(k_loop, num_updates)[i]``).
    """
    config.validate()
    if not isinstance(env, PortfolioEnv):
        raise DataError(f"gradient make_train needs a PortfolioEnv, got {type(env).__name__}")
    if env_params is not None:
        check_env_params(env, env_params)
    static, dynamic = split_config(config)
    default_params = env_params

    def train(key: jax.Array, env_params: EnvParams | None = None) -> dict:
        env_params = default_params if env_params is None else env_params
        if env_params is None:
            raise DataError("gradient train: no env_params given (to make_train or to train)")
        return _train(static, env, env_params, dynamic, key)

    train.jitted = _train
    return train
