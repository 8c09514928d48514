"""PPO training, PureJaxRL style: the whole run is ONE jitted function.

``train = make_train(config, env, env_params)`` returns a pure ``train(key, env_params=None) ->
dict`` (vmapped env rollouts under ``lax.scan``, GAE, clipped PPO updates over minibatch epochs).
``env_params`` is a traced argument: one compilation serves every market of the same shapes
(``jax.jit(train)(key, other_params)`` does not recompile, and ``train`` called without an outer jit
runs a program cached per ``(config, env)``). ``jax.jit(jax.vmap(train))(keys)`` trains several
seeds at once, and ``jax.vmap(train)(keys, stacked_params)`` several markets.

One update = one rollout + ``update_epochs`` x ``num_minibatches`` Adam steps:

* Rollout: ``num_envs`` envs x ``num_steps`` steps with auto-reset. Observations are normalised with
  running mean/var kept in the train state (updated with every step's batch before acting, so the
  stored observation is exactly what the policy saw). Actions: tanh-squashed Gaussian, see
  :mod:`jaxport.rl.networks`.
* Reward: :func:`~jaxport.rl.ppo.losses.shaped_reward` (the env's log growth minus
  ``risk_penalty`` x squared deviation of the per-step return from its rollout mean minus
  ``turnover_penalty`` x turnover), times ``reward_scale``.
* Advantages: :func:`~jaxport.rl.ppo.losses.compute_gae`. Termination (bankruptcy) cuts the
  bootstrap; truncation (episode length / end of data) bootstraps from ``V(final_observation)`` when
  ``bootstrap_truncation``.
* Loss: :func:`~jaxport.rl.ppo.losses.ppo_loss`; Adam (eps 1e-5) with global-norm clipping and
  optional linear LR annealing to 0.

Metrics: ``train(key)["metrics"]`` maps each of :data:`METRIC_KEYS` to a ``[num_updates]`` array
(``[seeds, num_updates]`` under vmap); log them after the run with
:func:`jaxport.rl.metrics.metrics_per_update`. Host callbacks: only with ``debug_callback``.

The trainer is :func:`pair_ppo_member` (its ``init`` / ``update`` / key split); the loop over
updates is :func:`jaxport.rl.population.train_member`'s, one member without validation.
"""

from __future__ import annotations

from functools import lru_cache, partial
from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from jaxport.data import DataError
from jaxport.env import EnvParams, PortfolioEnv
from jaxport.rl.common import check_env_params
from jaxport.rl.metrics import format_metrics, nanmean_where
from jaxport.rl.networks import sample_action
from jaxport.rl.normalize import RunningMeanStd, normalize, update_running_stats
from jaxport.rl.population import MemberAlgorithm, train_member
from jaxport.rl.ppo.config import PPOConfig
from jaxport.rl.ppo.losses import Transition, ppo_loss_grad, shaped_reward, step_transition
from jaxport.rl.ppo.policy import make_network
from jaxport.rl.ppo.rollout import chained_keys, explained_variance, ppo_update
from jaxport.xla_options import tuned_jit

METRIC_KEYS = (
    "env_steps",  # cumulative env steps after this update (all envs)
    "episode_return",  # mean undiscounted return of episodes finished in this rollout (NaN if none)
    "episode_length",  # mean length (steps) of those episodes (NaN if none)
    "episode_equity",  # mean final equity E/E0 of those episodes (NaN if none)
    "num_episodes",  # episodes finished in this rollout
    "reward",  # mean per-step env reward (log growth net of costs for reward="log_return")
    "objective",  # mean per-step shaped reward (reward - risk and turnover penalties), unscaled
    "equity",  # mean equity E/E0 over all steps
    "leverage",  # mean gross exposure sum|w| (multiples of equity) over all steps
    "turnover",  # mean per-step turnover sum|dw| (fraction of equity)
    "fees",  # mean per-step trading cost (units of E0)
    "financing",  # mean per-step financing + borrow (units of E0)
    "policy_loss",
    "value_loss",
    "entropy",  # pre-squash Gaussian entropy (nats)
    "approx_kl",  # mean of (ratio - 1) - log ratio over all minibatches
    "clip_frac",  # fraction of samples with |ratio - 1| > clip_eps
    "total_loss",
    "grad_norm",  # global gradient norm before clipping (mean over minibatches)
    "explained_variance",  # 1 - Var(targets - values) / Var(targets) of the rollout
    "action_std",  # mean exp(log_std)
    "learning_rate",  # LR used for the last minibatch step of this update
)
_PRINTED = (
    "env_steps",
    "episode_return",
    "reward",
    "equity",
    "leverage",
    "policy_loss",
    "value_loss",
    "approx_kl",
)


def _print_metrics(metrics: dict) -> None:
    print(format_metrics("ppo", metrics, _PRINTED), flush=True)


def make_train(
    config: PPOConfig, env: PortfolioEnv, env_params: EnvParams | None = None
) -> Callable[..., dict]:
    """Build ``train(key, env_params=None) -> {"runner_state", "params", "obs_norm", "metrics"}``.

    ``train`` is pure: call it directly (it runs a jitted program cached per ``(config, env)``, with
    ``env_params`` traced) or wrap it yourself (``jax.jit(train)``,
    ``jax.jit(jax.vmap(train))(jax.random.split(key, seeds))``). ``env_params`` given here is the
    default market; ``train(key, other_params)`` trains on another one of the same shapes without
    recompiling. ``params`` are the flax variables ``{"params": {...}}`` of :class:`ActorCritic`;
    ``obs_norm`` is a :class:`RunningMeanStd` (identity statistics when ``normalize_obs`` is off).
    ``runner_state`` is ``(train_state, obs_stats, env_state, obs, ep_ret, ep_len, rng)``.
    ``train.jitted`` is the jitted program it runs, shared by every ``make_train`` of the same
    ``(config, env)`` (``train.jitted._cache_size()`` counts its compilations, one per env-params
    shape). Training is one :func:`pair_ppo_member` run through
    :func:`jaxport.rl.population.train_member`.
    """
    config.validate()
    if env_params is not None:
        check_env_params(env, env_params)
    compiled = _compiled_train(config, env)
    default_params = env_params

    def train(key: jax.Array, env_params: EnvParams | None = None) -> dict:
        env_params = default_params if env_params is None else env_params
        if env_params is None:
            raise DataError("PPO train: no env_params given (to make_train or to train)")
        return compiled(key, env_params)

    train.jitted = compiled
    return train


@lru_cache(maxsize=16)
def _compiled_train(config: PPOConfig, env: PortfolioEnv) -> Callable[..., dict]:
    """``jax.jit(train_fn)`` per ``(config, env)`` with jaxport's per-compile XLA options
    (:func:`jaxport.xla_options.tuned_jit`): env params are traced arguments."""
    return tuned_jit(build_train_fn(config, env))


def _lr_schedule(config: PPOConfig) -> Callable | float:
    """Adam's learning rate: ``config.lr`` decayed linearly per update to 0 when ``anneal_lr``."""
    if not config.anneal_lr:
        return config.lr

    def lr_schedule(count):
        frac = 1.0 - (count // (config.num_minibatches * config.update_epochs)) / config.num_updates
        return config.lr * frac

    return lr_schedule


def split_pair_ppo_key(key: jax.Array, num_updates: int) -> tuple[tuple, jax.Array]:
    """PPO's member keys (:attr:`~jaxport.rl.population.MemberAlgorithm.split_key`):
    ``_, k_init, k_reset, k_run = split(key, 4)`` for ``init``; the runner carries ``k_run`` and
    splits it per step, so the per-update inputs are the update indices ``0..num_updates-1``."""
    _, k_init, k_reset, k_run = jax.random.split(key, 4)
    return (k_init, k_reset, k_run), jnp.arange(num_updates)


def pair_ppo_member(config: PPOConfig, env: PortfolioEnv, env_params: EnvParams) -> MemberAlgorithm:
    """The per-pair PPO trainer as a :class:`~jaxport.rl.population.MemberAlgorithm` without
    validation: state = the runner ``(train_state, obs_stats, env_state, obs, ep_ret, ep_len,
    rng)`` of ``config.num_envs`` envs of one market; one update = one rollout + PPO epochs
    (module docstring); keys: :func:`split_pair_ppo_key`."""
    network = make_network(config, env.num_actions)
    tx = optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.adam(learning_rate=_lr_schedule(config), eps=1e-5),
    )

    def init(k_init, k_reset, k_run):
        variables = network.init(k_init, jnp.zeros((env.obs_dim,), jnp.float32))
        train_state = TrainState.create(apply_fn=network.apply, params=variables, tx=tx)
        reset = jax.vmap(env.reset, in_axes=(0, None))
        obs, env_state = reset(jax.random.split(k_reset, config.num_envs), env_params)
        zeros_b = jnp.zeros((config.num_envs,), jnp.float32)
        ep_len0 = jnp.zeros((config.num_envs,), jnp.int32)
        stats = RunningMeanStd.create(env.obs_dim)
        return (train_state, stats, env_state, obs, zeros_b, ep_len0, k_run)

    coefficients = ("clip_eps", "vf_clip", "vf_coef", "ent_coef", "normalize_advantages")
    grad_fn = ppo_loss_grad(network.apply, **{k: getattr(config, k) for k in coefficients})
    update = partial(_update_step, config, env, network, grad_fn, env_params)
    return MemberAlgorithm(
        init=init, update=update, mark_members=False, split_key=split_pair_ppo_key
    )


def build_train_fn(config: PPOConfig, env: PortfolioEnv) -> Callable[..., dict]:
    """The un-jitted ``train_fn(key, env_params) -> dict`` of :func:`make_train`: one
    :func:`pair_ppo_member` run through :func:`jaxport.rl.population.train_member`."""
    config.validate()

    def train(key: jax.Array, env_params: EnvParams) -> dict:
        out = train_member(
            pair_ppo_member(config, env, env_params), config.num_updates, None, None, key
        )
        runner = out["final_state"]
        return {
            "runner_state": runner,
            "params": runner[0].params,
            "obs_norm": runner[1],
            "metrics": out["metrics"],
        }

    return train


def _norm_obs(config: PPOConfig, stats: RunningMeanStd, obs: jnp.ndarray) -> jnp.ndarray:
    return normalize(stats, obs, config.obs_clip) if config.normalize_obs else obs


def _env_step(config: PPOConfig, env: PortfolioEnv, network, env_params, carry, _):
    """One step of the ``num_envs`` envs (auto-reset) under the acting policy: ``(carry,
    Transition)`` with ``carry = (train_state, obs_stats, env_state, obs, ep_ret, ep_len, rng)``."""
    ts, stats, env_state, obs, ep_ret, ep_len, rng = carry
    rng, k_act, k_env = jax.random.split(rng, 3)
    if config.normalize_obs:
        stats = update_running_stats(stats, obs)
    obs_n = _norm_obs(config, stats, obs)
    mean, log_std, value = network.apply(ts.params, obs_n)
    action, u, log_prob = sample_action(k_act, mean, log_std, jnp.float32(config.leverage_cap))
    next_obs, env_state, reward, terminated, truncated, info = jax.vmap(
        env.step, in_axes=(0, 0, 0, None)
    )(jax.random.split(k_env, config.num_envs), env_state, action, env_params)
    done = terminated | truncated
    boot = jnp.zeros((config.num_envs,), jnp.float32)
    if config.bootstrap_truncation:
        need = truncated & ~terminated
        final_obs = info["final_observation"]
        # Truncation is rare: only run the critic on steps where some env truncates.
        boot = jax.lax.cond(
            jnp.any(need),
            lambda: network.apply(ts.params, _norm_obs(config, stats, final_obs), value_only=True),
            lambda: boot,
        )
    ep_ret_new = ep_ret + reward
    ep_len_new = ep_len + 1
    step_info = {
        "done": done,
        "episode_return": ep_ret_new,
        "episode_length": ep_len_new.astype(jnp.float32),
        "equity": info["equity"] / env_params.initial_equity,
        "leverage": info["leverage"],
        "turnover": info["turnover"],
        "fees": info["fees"],
        "financing": info["financing"],
    }
    if config.risk_penalty > 0 or config.turnover_penalty > 0:
        step_info["portfolio_return"] = info["portfolio_return"]
    tr = step_transition(obs_n, u, log_prob, value, reward, terminated, truncated, boot, step_info)
    ep_ret = jnp.where(done, 0.0, ep_ret_new)
    ep_len = jnp.where(done, 0, ep_len_new)
    return (ts, stats, env_state, next_obs, ep_ret, ep_len, rng), tr


def _update_step(config: PPOConfig, env, network, grad_fn, env_params, runner, update_idx):
    """One update: a rollout of ``num_steps`` steps, then :func:`~jaxport.rl.ppo.rollout.
    ppo_update`; returns ``(runner, metrics)`` (:data:`METRIC_KEYS`)."""
    runner, traj = jax.lax.scan(
        partial(_env_step, config, env, network, env_params), runner, None, config.num_steps
    )
    ts, stats, env_state, last_obs, ep_ret, ep_len, rng = runner
    objective = traj.reward
    if config.risk_penalty > 0 or config.turnover_penalty > 0:
        objective = shaped_reward(
            traj.reward,
            traj.info["portfolio_return"],
            traj.info["turnover"],
            config.risk_penalty,
            config.turnover_penalty,
        )
    learn_reward = objective * config.reward_scale if config.reward_scale != 1 else objective
    last_val = network.apply(ts.params, _norm_obs(config, stats, last_obs), value_only=True)
    rng, epoch_keys = chained_keys(rng, config.update_epochs)
    params, opt_state, _, targets, losses = ppo_update(
        grad_fn,
        ts.tx,
        ts.params,
        ts.opt_state,
        traj,
        learn_reward,
        last_val,
        config.gamma,
        config.gae_lambda,
        epoch_keys,
        config.num_minibatches,
    )
    num_steps = config.update_epochs * config.num_minibatches
    ts = ts.replace(step=ts.step + num_steps, params=params, opt_state=opt_state)
    schedule = _lr_schedule(config)
    lr_now = schedule(ts.step - 1) if config.anneal_lr else schedule
    metrics = {
        **_rollout_metrics(config, traj, objective, update_idx),
        **losses,
        "explained_variance": explained_variance(targets, traj.value),
        "action_std": jnp.mean(jnp.exp(ts.params["params"]["log_std"])),
        "learning_rate": jnp.asarray(lr_now, jnp.float32),
    }
    if config.debug_callback:
        cb = config.debug_callback if callable(config.debug_callback) else _print_metrics
        jax.debug.callback(cb, metrics)
    return (ts, stats, env_state, last_obs, ep_ret, ep_len, rng), metrics


def _rollout_metrics(config: PPOConfig, traj: Transition, objective, update_idx) -> dict:
    """The rollout's part of :data:`METRIC_KEYS` (episodes finished in it, per-step means)."""
    info, done = traj.info, traj.info["done"]
    return {
        "env_steps": ((update_idx + 1) * config.batch_size).astype(jnp.float32),
        "episode_return": nanmean_where(info["episode_return"], done),
        "episode_length": nanmean_where(info["episode_length"], done),
        "episode_equity": nanmean_where(info["equity"], done),
        "num_episodes": jnp.sum(done).astype(jnp.float32),
        "reward": jnp.mean(traj.reward),
        "objective": jnp.mean(objective),
        "equity": jnp.mean(info["equity"]),
        "leverage": jnp.mean(info["leverage"]),
        "turnover": jnp.mean(info["turnover"]),
        "fees": jnp.mean(info["fees"]),
        "financing": jnp.mean(info["financing"]),
    }
