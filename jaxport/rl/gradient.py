"""Differentiable training: gradient ascent on the episode objective, backpropagating through the env.

The env step is differentiable in the action, so a deterministic allocation policy can be trained by
direct gradient ascent on

    objective = mean_t log(E_{t+1} / E_t)  -  risk_penalty * var_t(E_{t+1} / E_t - 1)

(per-step log growth net of fees and financing, minus a penalty on the variance of per-step simple
returns; both per step, not annualised), averaged over ``num_envs`` episodes that start on random days.
Gradients use truncated backpropagation through time: each update rolls every env forward
``bptt_length`` steps, differentiates the chunk's objective w.r.t. the policy parameters and carries the
env state into the next chunk with ``stop_gradient``. Env ``i`` is re-drawn (new random start day) once
its episode of ``episode_length`` steps is over, it went bankrupt, or it reached the end of the data.
The variance term is taken within each chunk (a chunk of an episode sees the variance around that
chunk's mean).

Unlike the original's stage 3 (whose loss sign rewarded a LOW Sharpe), a larger ``risk_penalty`` here
always means less variance.

The whole training is one jitted function (PureJaxRL style)::

    train = make_gradient_train(GradientConfig(...), env, env_params)
    out = train(jax.random.PRNGKey(0))            # or jax.vmap(train)(keys) over seeds
    out["params"], out["metrics"]["objective"]    # metrics: one entry per update
    policy_fn = make_gradient_policy_fn(out["params"], config, env)   # (key, obs) -> action
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache, partial
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxport.data import DataError
from jaxport.env import EnvParams, EnvState, PortfolioEnv
from jaxport.rl.transformer import TransformerAllocator

POLICIES = ("mlp", "transformer")
METRIC_KEYS = (
    "objective",
    "mean_log_growth",
    "return_std",
    "mean_leverage",
    "fees",
    "financing",
    "grad_norm",
)


@dataclass(frozen=True)
class GradientConfig:
    """Static configuration of differentiable training (hashable; changes the compiled program).

    Units: ``lr`` per update; ``risk_penalty`` multiplies the per-step return variance (a fraction
    squared) and is subtracted from the per-step mean log growth. ``leverage_cap`` is the policy's
    output scale (``leverage_cap * tanh``): set it to the env's ``leverage_cap`` (the env then caps the
    gross exposure). ``episode_length`` and ``bptt_length`` are in env steps (days).
    """

    policy: str = "mlp"  # "mlp" | "transformer"
    hidden_sizes: tuple[int, ...] = (64, 64)  # MLP hidden widths
    hidden_size: int = 32  # transformer width (--rl-hidden-size)
    num_layers: int = 2  # transformer blocks (--rl-num-layers)
    num_heads: int = 4  # attention heads (--rl-num-heads)
    leverage_cap: float = 2.0
    output_init_scale: float = 0.01  # small: the untrained policy starts close to flat
    observe_equity: bool = False  # feed E/E0 - 1 (last obs entry) to the network
    num_envs: int = 64
    bptt_length: int = 32
    episode_length: int = 128
    num_updates: int = 500
    lr: float = 1e-3
    anneal_lr: bool = True  # cosine decay of lr to 0 over num_updates
    weight_decay: float = 0.0  # AdamW decoupled weight decay (0 -> plain Adam)
    max_grad_norm: float = 1.0
    risk_penalty: float = 0.0

    def validate(self) -> "GradientConfig":
        """Raise ``DataError`` naming the field on an invalid value; return ``self``."""
        if self.policy not in POLICIES:
            raise DataError(f"GradientConfig.policy must be one of {POLICIES}, got {self.policy!r}")
        for name in ("num_envs", "bptt_length", "episode_length", "num_updates", "hidden_size", "num_heads"):
            if int(getattr(self, name)) < 1:
                raise DataError(f"GradientConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_layers < 0:
            raise DataError(f"GradientConfig.num_layers must be >= 0, got {self.num_layers}")
        if not all(int(h) >= 1 for h in self.hidden_sizes):
            raise DataError(f"GradientConfig.hidden_sizes must be positive, got {self.hidden_sizes}")
        if self.policy == "transformer" and self.hidden_size % self.num_heads:
            raise DataError(
                f"GradientConfig.hidden_size={self.hidden_size} must be divisible by num_heads={self.num_heads}"
            )
        if not (self.lr > 0 and self.max_grad_norm > 0 and self.leverage_cap > 0):
            raise DataError("GradientConfig.lr, max_grad_norm and leverage_cap must be > 0")
        if self.risk_penalty < 0 or self.weight_decay < 0:
            raise DataError("GradientConfig.risk_penalty and weight_decay must be >= 0")
        return self


class MLPAllocator(nn.Module):
    """Deterministic MLP policy ``obs -> leverage_cap * tanh(.)`` per asset (tanh hidden layers)."""

    num_assets: int
    hidden_sizes: tuple[int, ...] = (64, 64)
    leverage_cap: float = 2.0
    output_init_scale: float = 0.01
    observe_equity: bool = False

    @nn.compact
    def __call__(self, obs: jnp.ndarray) -> jnp.ndarray:
        x = obs if self.observe_equity else obs[..., :-1]
        for i, width in enumerate(self.hidden_sizes):
            x = nn.Dense(width, name=f"dense_{i}")(x)
            x = jnp.tanh(x)
        out = nn.Dense(
            self.num_assets,
            kernel_init=nn.initializers.variance_scaling(self.output_init_scale**2, "fan_in", "normal"),
            bias_init=nn.initializers.zeros,
            name="out",
        )(x)
        return self.leverage_cap * jnp.tanh(out)


def make_policy_network(config: GradientConfig, env: PortfolioEnv) -> nn.Module:
    """The flax module of ``config.policy`` for ``env`` (maps one obs or a batch to actions)."""
    config.validate()
    if config.policy == "mlp":
        return MLPAllocator(
            num_assets=env.num_assets,
            hidden_sizes=tuple(int(h) for h in config.hidden_sizes),
            leverage_cap=float(config.leverage_cap),
            output_init_scale=float(config.output_init_scale),
            observe_equity=bool(config.observe_equity),
        )
    return TransformerAllocator(
        num_assets=env.num_assets,
        num_features=env.num_features,
        window=env.window,
        hidden_size=int(config.hidden_size),
        num_layers=int(config.num_layers),
        num_heads=int(config.num_heads),
        leverage_cap=float(config.leverage_cap),
        output_init_scale=float(config.output_init_scale),
        observe_equity=bool(config.observe_equity),
    )


def init_policy_params(config: GradientConfig, env: PortfolioEnv, key: jax.Array):
    """Fresh network parameters for ``config.policy`` (jitted: eager flax init is slow on CPU)."""
    return _init_params(_split_config(config)[0], env, key)


@partial(jax.jit, static_argnums=(0, 1))
def _init_params(config: GradientConfig, env: PortfolioEnv, key: jax.Array):
    return make_policy_network(config, env).init(key, jnp.zeros((env.obs_dim,), jnp.float32))


def make_gradient_policy_fn(params, config: GradientConfig, env: PortfolioEnv) -> Callable:
    """Deterministic ``policy_fn(key, obs[obs_dim]) -> action[N]`` (key unused) for eval/rollouts."""
    apply = gradient_policy_apply(config, env)
    return partial(apply, params)


@lru_cache(maxsize=64)
def _cached_apply(config: GradientConfig, env: PortfolioEnv) -> Callable:
    network = make_policy_network(config, env)

    def apply(net_params, key, obs):
        del key
        return network.apply(net_params, obs)

    return apply


def gradient_policy_apply(config: GradientConfig, env: PortfolioEnv) -> Callable:
    """``apply(net_params, key, obs) -> action``, one function object per network architecture.

    Passing it with ``policy_params=net_params`` to ``jaxport.eval.evaluate_policy`` evaluates many
    parameter sets of one architecture with a single compilation.
    """
    return _cached_apply(_split_config(config)[0], env)


def training_params(config: GradientConfig, env_params: EnvParams) -> EnvParams:
    """Env params used for training: random start days, ``config.episode_length`` steps per episode."""
    return env_params.replace(
        episode_length=jnp.asarray(config.episode_length, jnp.int32),
        eval_start=jnp.asarray(-1, jnp.int32),
    )


def _select(mask: jnp.ndarray, new: jnp.ndarray, old: jnp.ndarray) -> jnp.ndarray:
    """Per-env ``where(mask, new, old)`` with ``mask [B]`` broadcast over trailing axes."""
    return jnp.where(mask.reshape(mask.shape + (1,) * (new.ndim - 1)), new, old)


def _reset_envs(env: PortfolioEnv, params: EnvParams, key: jax.Array, num_envs: int):
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
) -> tuple[jnp.ndarray, dict[str, Any]]:
    """Objective of one BPTT chunk of ``config.bptt_length`` steps from a batch of env states.

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
        obs = _select(valid, n_obs, obs)
        state = jax.tree_util.tree_map(partial(_select, valid), n_state, state)
        done = done | (valid & terminated)
        out = dict(
            valid=valid.astype(jnp.float32),
            log_growth=jnp.where(valid, reward, 0.0),
            ret=jnp.where(valid, info["portfolio_return"], 0.0),
            leverage=jnp.where(valid, info["leverage"], 0.0),
            fees=jnp.where(valid, info["fees"], 0.0) / e_before,
            financing=jnp.where(valid, info["financing"], 0.0) / e_before,
        )
        return (obs, state, done), out

    (obs, state, done), traj = jax.lax.scan(body, (obs, state, done), None, length=config.bptt_length)
    valid = traj["valid"]  # [L, B]
    n = jnp.sum(valid, axis=0)  # [B]
    has = n > 0
    n_safe = jnp.maximum(n, 1.0)
    mean_lg = jnp.sum(traj["log_growth"], axis=0) / n_safe
    mean_ret = jnp.sum(traj["ret"], axis=0) / n_safe
    var_ret = jnp.sum(valid * (traj["ret"] - mean_ret) ** 2, axis=0) / n_safe
    per_env = jnp.where(has, mean_lg - risk_penalty * var_ret, 0.0)
    num_active = jnp.maximum(jnp.sum(has), 1)
    objective = jnp.sum(per_env) / num_active
    total = jnp.maximum(jnp.sum(valid), 1.0)
    metrics = dict(
        objective=objective,
        mean_log_growth=jnp.sum(traj["log_growth"]) / total,
        return_std=jnp.sum(jnp.where(has, jnp.sqrt(var_ret + 1e-20), 0.0)) / num_active,
        mean_leverage=jnp.sum(traj["leverage"]) / total,
        fees=jnp.sum(traj["fees"]) / total,
        financing=jnp.sum(traj["financing"]) / total,
    )
    return objective, dict(obs=obs, state=state, done=done, metrics=metrics)


def make_objective_fn(config: GradientConfig, env: PortfolioEnv, env_params: EnvParams) -> Callable:
    """``objective(net_params, key) -> scalar``: one chunk of ``bptt_length`` steps from fresh resets.

    The same objective the training ascends (for gradient checks and evaluation of a parameter set).
    """
    config.validate()
    network = make_policy_network(config, env)
    params = training_params(config, env_params)

    def objective(net_params, key):
        obs, state = _reset_envs(env, params, key, config.num_envs)
        done = jnp.zeros((config.num_envs,), bool)
        value, _ = chunk_objective(net_params, network, config, env, params, obs, state, done, config.risk_penalty)
        return value

    return objective


# Numeric hyperparameters travel as traced arrays: configs that differ only in these share compiled code.
_DYNAMIC_FIELDS = ("lr", "weight_decay", "max_grad_norm", "risk_penalty")


def _split_config(config: GradientConfig) -> tuple[GradientConfig, dict[str, jnp.ndarray]]:
    static = replace(config, lr=1.0, weight_decay=0.0, max_grad_norm=1.0, risk_penalty=0.0)
    dynamic = {k: jnp.asarray(getattr(config, k), jnp.float32) for k in _DYNAMIC_FIELDS}
    return static, dynamic


def _make_optimizer(config: GradientConfig, hp: dict[str, jnp.ndarray]) -> optax.GradientTransformation:
    if config.anneal_lr:

        def lr(count):  # cosine decay from hp["lr"] to 0 over num_updates
            progress = jnp.minimum(count / config.num_updates, 1.0)
            return hp["lr"] * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))

    else:
        lr = hp["lr"]
    return optax.chain(
        optax.clip_by_global_norm(hp["max_grad_norm"]),
        optax.adamw(lr, weight_decay=hp["weight_decay"]),
    )


@partial(jax.jit, static_argnums=(0, 1))
def _train(
    config: GradientConfig, env: PortfolioEnv, params: EnvParams, hp: dict[str, jnp.ndarray], key: jax.Array
) -> dict[str, Any]:
    network = make_policy_network(config, env)
    tx = _make_optimizer(config, hp)
    k_init, k_reset, k_loop = jax.random.split(key, 3)
    net_params = network.init(k_init, jnp.zeros((env.obs_dim,), jnp.float32))
    opt_state = tx.init(net_params)
    obs, state = _reset_envs(env, params, k_reset, config.num_envs)
    done = jnp.zeros((config.num_envs,), bool)
    num_days = params.prices.shape[-2]
    grad_fn = jax.value_and_grad(chunk_objective, has_aux=True)

    def update(carry, step_key):
        net_params, opt_state, obs, state, done = carry
        # Re-draw envs whose episode is over (time limit, bankruptcy or end of data).
        finished = done | (state.time >= params.episode_length) | (state.t >= num_days - 1)
        r_obs, r_state = _reset_envs(env, params, step_key, config.num_envs)
        obs = _select(finished, r_obs, obs)
        state = jax.tree_util.tree_map(partial(_select, finished), r_state, state)
        done = done & ~finished

        (_, aux), grads = grad_fn(net_params, network, config, env, params, obs, state, done, hp["risk_penalty"])
        grads = jax.tree_util.tree_map(jnp.negative, grads)  # optax minimises: ascend the objective
        updates, opt_state = tx.update(grads, opt_state, net_params)
        net_params = optax.apply_updates(net_params, updates)
        obs, state, done = jax.lax.stop_gradient((aux["obs"], aux["state"], aux["done"]))
        metrics = dict(aux["metrics"], grad_norm=optax.tree.norm(grads))
        return (net_params, opt_state, obs, state, done), metrics

    carry = (net_params, opt_state, obs, state, done)
    (net_params, *_), metrics = jax.lax.scan(update, carry, jax.random.split(k_loop, config.num_updates))
    return {"params": net_params, "metrics": metrics}


def make_gradient_train(config: GradientConfig, env: PortfolioEnv, env_params: EnvParams) -> Callable:
    """Build ``train(key) -> {"params", "metrics"}``: the whole training as one jitted program.

    ``env_params`` holds the TRAINING data; episodes start on random days of it (its ``eval_start`` is
    ignored) and last ``config.episode_length`` steps. ``metrics`` maps each of ``METRIC_KEYS`` to a
    ``[num_updates]`` array: ``objective`` (per-step, the quantity ascended), ``mean_log_growth``
    (per-step log return net of costs), ``return_std`` (per-step, within-chunk), ``mean_leverage``
    (gross exposure, x equity), ``fees`` and ``financing`` (per step, fraction of equity) and
    ``grad_norm`` (before clipping). ``jax.vmap(train)(keys)`` trains one policy per seed.
    Compiled code is shared by calls whose config differs only in ``lr``, ``weight_decay``,
    ``max_grad_norm`` or ``risk_penalty`` and whose env params have the same shapes.
    """
    config.validate()
    if not isinstance(env, PortfolioEnv):
        raise DataError(f"make_gradient_train needs a PortfolioEnv, got {type(env).__name__}")
    if env_params.features.shape[-1] != env.num_features or env_params.prices.shape[-1] != env.num_assets:
        raise DataError(
            f"env_params shapes {env_params.prices.shape}/{env_params.features.shape} do not match env "
            f"(num_assets={env.num_assets}, num_features={env.num_features})"
        )
    static, dynamic = _split_config(config)
    return partial(_train, static, env, training_params(config, env_params), dynamic)
