"""PPO for the portfolio environment, PureJaxRL style: the whole training run is ONE jitted function.

``train = make_train(config, env, env_params)`` returns a pure ``train(key) -> dict``; ``jax.jit(train)``
compiles the full run (vmapped env rollouts under ``lax.scan``, GAE, clipped PPO updates over
minibatch epochs) and ``jax.jit(jax.vmap(train))(keys)`` trains several seeds at once.

Algorithm (one update = one rollout + ``update_epochs`` x ``num_minibatches`` Adam steps):

* Rollout: ``num_envs`` envs x ``num_steps`` steps with auto-reset. Observations are normalised with
  running mean/var kept in the train state (updated with every step's batch before acting, so the
  stored observation is exactly what the policy saw). Actions: tanh-squashed Gaussian, see
  :mod:`jaxport.rl.networks`.
* Advantages: GAE(gamma, lambda). Termination (bankruptcy) cuts the bootstrap; truncation (episode
  length / end of data) bootstraps from ``V(final_observation)`` when ``bootstrap_truncation``.
* Loss: clipped surrogate + ``vf_coef`` x clipped value loss (PureJaxRL form, clip ``vf_clip``) -
  ``ent_coef`` x entropy; advantages normalised per minibatch; Adam (eps 1e-5) with global-norm
  clipping and optional linear LR annealing to 0.

Metrics: ``train(key)["metrics"]`` is a dict of ``[num_updates]`` arrays (``[seeds, num_updates]``
under vmap), see :data:`METRIC_NAMES`; the caller logs them after the run (:func:`metrics_per_update`).
Host callbacks are only used when ``config.debug_callback`` is set.

Usage::

    cfg = PPOConfig(num_envs=256, num_steps=64, total_timesteps=2_000_000, leverage_cap=2.0)
    train = jax.jit(make_train(cfg, env, env_params))
    out = train(jax.random.PRNGKey(0))                 # or train(key, other_env_params_same_shapes)
    rows = metrics_per_update(out["metrics"])          # list of {name: float}, one per update
    policy_fn = make_policy_fn(out["params"], out["obs_norm"], cfg)   # (key, obs) -> action
    save_policy("ppo.npz", out["params"], out["obs_norm"], cfg)       # or export_policy(...) for orbax
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState

from jaxport.data import DataError
from jaxport.env import EnvParams, PortfolioEnv
from jaxport.rl.networks import (
    ACTIVATIONS,
    ActorCritic,
    gaussian_entropy,
    gaussian_log_prob,
    sample_action,
    squash,
)
from jaxport.rl.normalize import RunningMeanStd, normalize, update_running_stats

METRIC_NAMES = (
    "env_steps",  # cumulative env steps after this update (all envs)
    "episode_return",  # mean undiscounted return of episodes finished in this rollout (NaN if none)
    "episode_length",  # mean length (steps) of those episodes (NaN if none)
    "episode_equity",  # mean final equity E/E0 of those episodes (NaN if none)
    "num_episodes",  # episodes finished in this rollout
    "reward",  # mean per-step reward
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


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Static PPO hyperparameters (hashable; changes the compiled program)."""

    num_envs: int = 64
    num_steps: int = 128  # steps per env per rollout
    total_timesteps: int = 1_000_000  # env steps over all envs; num_updates = total // (envs * steps)
    update_epochs: int = 4
    num_minibatches: int = 4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2  # policy ratio clip
    vf_clip: float = 0.2  # value clip around the rollout's value; <= 0 disables value clipping
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5  # global-norm gradient clip
    lr: float = 3e-4
    anneal_lr: bool = True  # linear decay to 0 over the run
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    init_log_std: float = 0.0  # initial log std of the pre-squash Gaussian
    normalize_obs: bool = True
    obs_clip: float = 10.0  # normalised observations are clipped to [-obs_clip, obs_clip]
    normalize_advantages: bool = True
    bootstrap_truncation: bool = True  # bootstrap V(final obs) at truncation (else treat as terminal)
    reward_scale: float = 1.0  # rewards are multiplied by this for learning (metrics are unscaled)
    leverage_cap: float = 2.0  # per-asset squash bound: action = leverage_cap * tanh(u)
    debug_callback: bool | Callable[[dict], None] = False  # True: print per update; callable(metrics)

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.batch_size

    def validate(self) -> "PPOConfig":
        """Raise :class:`jaxport.data.DataError` naming the bad field; return ``self``."""
        ints = ("num_envs", "num_steps", "update_epochs", "num_minibatches")
        for name in ints:
            if int(getattr(self, name)) < 1:
                raise DataError(f"PPOConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size % self.num_minibatches:
            raise DataError(
                f"PPOConfig.num_minibatches={self.num_minibatches} must divide num_envs*num_steps={self.batch_size}"
            )
        if self.num_updates < 1:
            raise DataError(
                f"PPOConfig.total_timesteps={self.total_timesteps} is below one rollout (num_envs*num_steps={self.batch_size})"
            )
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise DataError(f"PPOConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("clip_eps", "lr", "max_grad_norm", "leverage_cap", "obs_clip"):
            if not getattr(self, name) > 0:
                raise DataError(f"PPOConfig.{name} must be > 0, got {getattr(self, name)}")
        if not self.hidden or min(self.hidden) < 1:
            raise DataError(f"PPOConfig.hidden must be non-empty positive widths, got {self.hidden}")
        if self.activation not in ACTIVATIONS:
            raise DataError(f"PPOConfig.activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (``debug_callback`` is dropped)."""
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        d.pop("debug_callback")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PPOConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``DataError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise DataError(f"PPOConfig: unknown field(s) {unknown}")
        d = dict(d)
        if "hidden" in d:
            d["hidden"] = tuple(d["hidden"])
        return cls(**d)


class Transition(NamedTuple):
    obs: jnp.ndarray  # [B, D] normalised observation the action was taken on
    u: jnp.ndarray  # [B, N] pre-squash action
    log_prob: jnp.ndarray  # [B] Gaussian log-density of u under the acting policy
    value: jnp.ndarray  # [B]
    reward: jnp.ndarray  # [B] (scaled)
    terminated: jnp.ndarray  # [B] bool
    done: jnp.ndarray  # [B] bool, terminated | truncated
    bootstrap: jnp.ndarray  # [B] V(final obs) where truncated & not terminated, else 0
    info: dict  # per-step scalars for metrics


def make_network(config: PPOConfig, action_dim: int) -> ActorCritic:
    return ActorCritic(
        action_dim=action_dim, hidden=config.hidden, activation=config.activation, init_log_std=config.init_log_std
    )


def _nanmean_where(x, mask):
    n = jnp.sum(mask)
    return jnp.where(n > 0, jnp.sum(jnp.where(mask, x, 0.0)) / jnp.maximum(n, 1), jnp.nan)


def _print_metrics(metrics: dict) -> None:
    m = {k: np.asarray(v) for k, v in metrics.items()}
    keys = ("env_steps", "episode_return", "reward", "equity", "leverage", "policy_loss", "value_loss", "approx_kl")
    print("ppo " + " ".join(f"{k}={np.array2string(m[k], precision=4)}" for k in keys if k in m), flush=True)


def compute_gae(reward, value, done, bootstrap, last_value, gamma: float, gae_lambda: float):
    """GAE over time-major ``[S, B]`` arrays; returns ``(advantages, value targets)``.

    ``done[t]`` ends the episode after step ``t`` (terminated or truncated): the next state's value is
    then replaced by ``bootstrap[t]`` (``V(final obs)`` for truncation, 0 for termination), and the
    trace is cut. ``last_value`` [B] is ``V`` of the observation after the last step.
    """

    def body(carry, xs):
        adv, next_value = carry
        r, v, d, b = xs
        not_done = 1.0 - d.astype(jnp.float32)
        delta = r + gamma * (next_value * not_done + b) - v
        adv = delta + gamma * gae_lambda * not_done * adv
        return (adv, v), adv

    _, adv = jax.lax.scan(
        body, (jnp.zeros_like(last_value), last_value), (reward, value, done, bootstrap), reverse=True, unroll=16
    )
    return adv, adv + value


def make_train(config: PPOConfig, env: PortfolioEnv, env_params: EnvParams) -> Callable[..., dict]:
    """Build ``train(key, env_params=env_params) -> {"runner_state", "params", "obs_norm", "metrics"}``.

    ``train`` is pure and jittable; jit it yourself (``jax.jit(train)``) or vmap it over keys
    (``jax.jit(jax.vmap(train))(jax.random.split(key, seeds))``). ``env_params`` may also be passed
    to ``train`` as a traced argument (avoids embedding large market arrays as constants).
    ``params`` are the flax variables ``{"params": {...}}`` of :class:`ActorCritic`; ``obs_norm`` is
    a :class:`RunningMeanStd` (identity statistics when ``normalize_obs`` is off).
    """
    config.validate()
    num_updates = config.num_updates
    num_envs, num_steps = config.num_envs, config.num_steps
    batch_size, minibatch_size = config.batch_size, config.minibatch_size
    action_dim = env.num_actions
    obs_dim = env.obs_dim
    network = make_network(config, action_dim)
    default_params = env_params

    def lr_schedule(count):
        frac = 1.0 - (count // (config.num_minibatches * config.update_epochs)) / num_updates
        return config.lr * frac

    lr = lr_schedule if config.anneal_lr else config.lr
    tx = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(learning_rate=lr, eps=1e-5))
    batched_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    batched_reset = jax.vmap(env.reset, in_axes=(0, None))
    cap = jnp.float32(config.leverage_cap)

    def norm_obs(stats, obs):
        return normalize(stats, obs, config.obs_clip) if config.normalize_obs else obs

    def train(key: jax.Array, env_params: EnvParams | None = None) -> dict:
        env_params = default_params if env_params is None else env_params
        key, k_init, k_reset, k_run = jax.random.split(key, 4)
        variables = network.init(k_init, jnp.zeros((obs_dim,), jnp.float32))
        train_state = TrainState.create(apply_fn=network.apply, params=variables, tx=tx)
        obs, env_state = batched_reset(jax.random.split(k_reset, num_envs), env_params)
        obs_stats = RunningMeanStd.create(obs_dim)
        zeros_b = jnp.zeros((num_envs,), jnp.float32)

        # ------------------------------------------------------------------ rollout
        def env_step(carry, _):
            ts, stats, env_state, obs, ep_ret, ep_len, rng = carry
            rng, k_act, k_env = jax.random.split(rng, 3)
            if config.normalize_obs:
                stats = update_running_stats(stats, obs)
            obs_n = norm_obs(stats, obs)
            mean, log_std, value = network.apply(ts.params, obs_n)
            action, u, log_prob = sample_action(k_act, mean, log_std, cap)
            next_obs, env_state, reward, terminated, truncated, info = batched_step(
                jax.random.split(k_env, num_envs), env_state, action, env_params
            )
            done = terminated | truncated
            if config.bootstrap_truncation:
                need = truncated & ~terminated
                final_obs = info["final_observation"]
                # Truncation is rare: only run the critic on steps where some env truncates.
                boot = jax.lax.cond(
                    jnp.any(need),
                    lambda: network.apply(ts.params, norm_obs(stats, final_obs), value_only=True),
                    lambda: zeros_b,
                )
                boot = jnp.where(need, boot, 0.0)
            else:
                boot = zeros_b
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
                "raw_reward": reward,
            }
            tr = Transition(
                obs=obs_n,
                u=u,
                log_prob=log_prob,
                value=value,
                reward=reward * config.reward_scale,
                terminated=terminated,
                done=done,
                bootstrap=boot,
                info=step_info,
            )
            ep_ret = jnp.where(done, 0.0, ep_ret_new)
            ep_len = jnp.where(done, 0, ep_len_new)
            return (ts, stats, env_state, next_obs, ep_ret, ep_len, rng), tr

        # ------------------------------------------------------------------ loss
        def loss_fn(params, tr: Transition, adv, targets):
            mean, log_std, value = network.apply(params, tr.obs)
            log_prob = gaussian_log_prob(tr.u, mean, log_std)
            if config.vf_clip > 0:
                v_clipped = tr.value + jnp.clip(value - tr.value, -config.vf_clip, config.vf_clip)
                v_loss = 0.5 * jnp.mean(jnp.maximum(jnp.square(value - targets), jnp.square(v_clipped - targets)))
            else:
                v_loss = 0.5 * jnp.mean(jnp.square(value - targets))
            log_ratio = log_prob - tr.log_prob
            ratio = jnp.exp(log_ratio)
            if config.normalize_advantages:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            pg1 = ratio * adv
            pg2 = jnp.clip(ratio, 1.0 - config.clip_eps, 1.0 + config.clip_eps) * adv
            pg_loss = -jnp.mean(jnp.minimum(pg1, pg2))
            entropy = jnp.mean(gaussian_entropy(log_std))
            total = pg_loss + config.vf_coef * v_loss - config.ent_coef * entropy
            approx_kl = jnp.mean((ratio - 1.0) - log_ratio)
            clip_frac = jnp.mean((jnp.abs(ratio - 1.0) > config.clip_eps).astype(jnp.float32))
            return total, (pg_loss, v_loss, entropy, approx_kl, clip_frac)

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

        def update_minibatch(ts, batch):
            tr, adv, targets = batch
            (total, aux), grads = grad_fn(ts.params, tr, adv, targets)
            ts = ts.apply_gradients(grads=grads)
            return ts, (total, *aux, optax.tree.norm(grads))

        def update_epoch(carry, _):
            ts, tr, adv, targets, rng = carry
            rng, k_perm = jax.random.split(rng)
            perm = jax.random.permutation(k_perm, batch_size)
            flat = jax.tree.map(lambda x: x.reshape((batch_size,) + x.shape[2:]), (tr, adv, targets))
            shuffled = jax.tree.map(lambda x: jnp.take(x, perm, axis=0), flat)
            minibatches = jax.tree.map(
                lambda x: x.reshape((config.num_minibatches, minibatch_size) + x.shape[1:]), shuffled
            )
            ts, losses = jax.lax.scan(update_minibatch, ts, minibatches)
            return (ts, tr, adv, targets, rng), losses

        # ------------------------------------------------------------------ one update
        def update_step(runner, update_idx):
            runner, traj = jax.lax.scan(env_step, runner, None, num_steps)
            ts, stats, env_state, last_obs, ep_ret, ep_len, rng = runner
            last_val = network.apply(ts.params, norm_obs(stats, last_obs), value_only=True)
            adv, targets = compute_gae(
                traj.reward, traj.value, traj.done, traj.bootstrap, last_val, config.gamma, config.gae_lambda
            )
            # only what the loss reads is shuffled into minibatches
            learn = traj._replace(info={}, reward=None, terminated=None, done=None, bootstrap=None)
            (ts, _, _, _, rng), losses = jax.lax.scan(
                update_epoch, (ts, learn, adv, targets, rng), None, config.update_epochs
            )
            total, pg_loss, v_loss, entropy, approx_kl, clip_frac, gnorm = (jnp.mean(x) for x in losses)

            info = traj.info
            done = info["done"]
            var_t = jnp.var(targets)
            metrics = {
                "env_steps": ((update_idx + 1) * batch_size).astype(jnp.float32),
                "episode_return": _nanmean_where(info["episode_return"], done),
                "episode_length": _nanmean_where(info["episode_length"], done),
                "episode_equity": _nanmean_where(info["equity"], done),
                "num_episodes": jnp.sum(done).astype(jnp.float32),
                "reward": jnp.mean(info["raw_reward"]),
                "equity": jnp.mean(info["equity"]),
                "leverage": jnp.mean(info["leverage"]),
                "turnover": jnp.mean(info["turnover"]),
                "fees": jnp.mean(info["fees"]),
                "financing": jnp.mean(info["financing"]),
                "policy_loss": pg_loss,
                "value_loss": v_loss,
                "entropy": entropy,
                "approx_kl": approx_kl,
                "clip_frac": clip_frac,
                "total_loss": total,
                "grad_norm": gnorm,
                "explained_variance": 1.0 - jnp.var(targets - traj.value) / jnp.maximum(var_t, 1e-12),
                "action_std": jnp.mean(jnp.exp(ts.params["params"]["log_std"])),
                "learning_rate": jnp.asarray(
                    lr_schedule(ts.step - 1) if config.anneal_lr else config.lr, jnp.float32
                ),
            }
            if config.debug_callback:
                cb = config.debug_callback if callable(config.debug_callback) else _print_metrics
                jax.debug.callback(cb, metrics)
            return (ts, stats, env_state, last_obs, ep_ret, ep_len, rng), metrics

        runner = (train_state, obs_stats, env_state, obs, zeros_b, jnp.zeros((num_envs,), jnp.int32), k_run)
        runner, metrics = jax.lax.scan(update_step, runner, jnp.arange(num_updates))
        return {"runner_state": runner, "params": runner[0].params, "obs_norm": runner[1], "metrics": metrics}

    return train


def metrics_per_update(metrics: dict, seed: int | None = None) -> list[dict[str, float]]:
    """``train(key)["metrics"]`` -> one ``{name: float}`` per update, for tensorboard-style logging.

    ``seed`` picks one run of a vmapped ``train`` (metrics ``[seeds, num_updates]``). Example::

        for i, row in enumerate(metrics_per_update(out["metrics"])):
            for name, value in row.items():
                writer.add_scalar(f"ppo/{name}", value, int(row["env_steps"]))
    """
    arrays = {k: np.asarray(v) for k, v in metrics.items()}
    if seed is not None:
        arrays = {k: v[seed] for k, v in arrays.items()}
    if any(v.ndim != 1 for v in arrays.values()):
        raise DataError("metrics_per_update: metrics must be [num_updates] (pass seed= for a vmapped run)")
    n = len(next(iter(arrays.values())))
    return [{k: float(v[i]) for k, v in arrays.items()} for i in range(n)]


# ---------------------------------------------------------------------- trained policy
def make_policy_apply(config: PPOConfig, action_dim: int) -> Callable:
    """Pure ``apply(params, obs_norm, key, obs, deterministic) -> action`` (arrays traced; for evaluators).

    ``obs`` is ``[D]`` or ``[B, D]`` (raw, un-normalised env observations); the action is the target
    exposure ``cap * tanh(u)`` per asset, ``u = mean`` when ``deterministic`` else sampled.
    """
    network = make_network(config, action_dim)
    cap = jnp.float32(config.leverage_cap)

    def apply(params, obs_norm, key, obs, deterministic: bool = True):
        x = normalize(obs_norm, obs, config.obs_clip) if (config.normalize_obs and obs_norm is not None) else obs
        mean, log_std, _ = network.apply(params, x)
        if deterministic:
            return squash(mean, cap)
        return sample_action(key, mean, log_std, cap)[0]

    return apply


def make_policy_fn(params, obs_norm, config: PPOConfig, deterministic: bool = True) -> Callable:
    """``policy_fn(key, obs) -> action`` for :func:`jaxport.env.rollout` and the evaluator.

    Closes over the trained ``params`` (flax variables) and ``obs_norm``; acts on one raw
    observation ``[D]`` (or a batch ``[B, D]``). Deterministic: ``cap * tanh(mean)``.
    """
    action_dim = int(np.shape(params["params"]["log_std"])[-1])
    apply = make_policy_apply(config, action_dim)

    def policy_fn(key, obs):
        return apply(params, obs_norm, key, obs, deterministic)

    return policy_fn


# ---------------------------------------------------------------------- save / load
def export_policy(params, obs_norm: RunningMeanStd | None, config: PPOConfig) -> dict[str, Any]:
    """Plain nested dict of numpy arrays + JSON-able config (what orbax / npz checkpoints store).

    ``{"params": {"params": {"Dense_0": {"kernel", "bias"}, ..., "log_std"}},
    "obs_norm": {"mean", "var", "count"}, "config": PPOConfig.to_dict()}``.
    """
    out = {"params": jax.tree.map(np.asarray, _to_plain(params)), "config": config.to_dict()}
    if obs_norm is None:
        obs_norm = RunningMeanStd.create(int(np.shape(out["params"]["params"]["Dense_0"]["kernel"])[0]))
    out["obs_norm"] = {"mean": np.asarray(obs_norm.mean), "var": np.asarray(obs_norm.var), "count": np.asarray(obs_norm.count)}
    return out


def _to_plain(tree):
    """Nested mappings (dict / FrozenDict) -> nested plain dicts."""
    if hasattr(tree, "items"):
        return {str(k): _to_plain(v) for k, v in tree.items()}
    return tree


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


def save_policy(path, params, obs_norm: RunningMeanStd | None, config: PPOConfig) -> Path:
    """Write a single ``.npz`` (arrays under ``params/...`` and ``obs_norm/...``, config as JSON)."""
    path = Path(path)
    d = export_policy(params, obs_norm, config)
    flat = {}

    def walk(prefix, tree):
        if isinstance(tree, dict):
            for k, v in tree.items():
                walk(f"{prefix}/{k}" if prefix else k, v)
        else:
            flat[prefix] = np.asarray(tree)

    walk("params", d["params"])
    walk("obs_norm", d["obs_norm"])
    flat["config_json"] = np.asarray(json.dumps(d["config"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, **flat)
    return path


def load_policy(path) -> tuple[dict, RunningMeanStd, PPOConfig]:
    """Read :func:`save_policy`'s file: ``(params, obs_norm, config)``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: policy file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            flat = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{path}: not a policy .npz ({type(e).__name__})") from None
    if "config_json" not in flat:
        raise DataError(f"{path}: missing config_json")
    tree: dict = {}
    for k, v in flat.items():
        if k == "config_json":
            continue
        node = tree
        parts = k.split("/")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    tree["config"] = json.loads(str(flat["config_json"]))
    return import_policy(tree)
