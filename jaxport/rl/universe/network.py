"""The universe allocator network (:class:`UniverseAllocator`) and its action map.

Per asset ``x_i = concat(features[:, i, :].ravel(), w_i)`` goes through a shared MLP encoder
``e_i``; the pooled context is ``c = concat(mean_i e_i, cash, gross[, E/E0 - 1])``; a per-asset
head on ``[e_i, c]`` gives the score ``s_i``, a global head on ``c`` the gross logit ``g`` (and,
with ``critic=True``, a value head on ``c`` the state value for PPO). Assets only meet through
the mean, so permuting the assets of the observation permutes the output, and the same
parameters serve every N. Action: ``target = leverage_cap * sigmoid(g) * softmax(s)``
(long-only, multiples of equity), executed partially: ``w_old + rate * (target - w_old)``.
"""

from __future__ import annotations

import math
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxport.env import PortfolioEnv
from jaxport.rl.networks import module_from_config
from jaxport.rl.universe.config import ANCHOR_COLUMNS, UniverseConfig


def num_assets_from_obs(obs_dim: int, window: int, num_features: int) -> int:
    """N from ``obs_dim = K * N * F + N + 3`` (one-line ``ValueError`` when it does not divide)."""
    per = window * num_features + 1
    n, rem = divmod(obs_dim - 3, per)
    if rem or n < 1:
        raise ValueError(
            f"obs_dim={obs_dim} is not K*N*F + N + 3 for window={window}, features={num_features}"
        )
    return n


def split_obs(obs: jnp.ndarray, window: int, num_features: int):
    """``obs [..., D]`` -> ``(x [..., N, K*F + 1] per-asset inputs, w [..., N], scalars [..., 3])``
    (scalars: cash ``1 - sum w``, gross ``sum|w|``, ``E/E0 - 1``)."""
    n = num_assets_from_obs(obs.shape[-1], window, num_features)
    lead = obs.shape[:-1]
    kf = window * num_features
    feats = obs[..., : kf * n].reshape(lead + (window, n, num_features))
    feats = jnp.moveaxis(feats, -2, -3).reshape(lead + (n, kf))  # [..., N, K*F]
    w = obs[..., kf * n : kf * n + n]
    x = jnp.concatenate([feats, w[..., None]], axis=-1)
    return x, w, obs[..., kf * n + n :]


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


class UniverseAllocator(nn.Module):
    """Permutation-equivariant allocator network; returns ``(scores [..., N], gross_logit [...],
    value [...] or None)`` for ``obs [..., obs_dim]`` of any N (module docstring).

    Parameter tree (every ``Dense`` has ``kernel [in, out]``, ``bias [out]``; H = head_size,
    h_L = hidden_sizes[-1], C = h_L + 2 (+1 with observe_equity))::

        enc_0 .. enc_{L-1}   per-asset encoder   (K*F + 1 -> h_1 -> ... -> h_L), tanh
        head_0               per-asset head      (h_L + C -> H), tanh
        head_out             per-asset score     (H -> 1), zero init
        gross_0              global gross head   (C -> H), tanh
        gross_out            gross logit         (H -> 1), zero kernel, bias logit(init/cap)
        value_0, value_out   critic (critic=True only): C -> H (tanh) -> 1
        log_std              [2] (critic=True only): latent log std of (scores, gross logit)
    """

    window: int
    num_features: int
    hidden_sizes: tuple[int, ...] = (32, 32)
    head_size: int = 32
    leverage_cap: float = 2.0
    init_gross: float = 1.0
    observe_equity: bool = False
    critic: bool = False
    init_log_std: float = -1.0
    anchor: str = "none"
    anchor_eta: float = 1.0
    anchor_vol_managed: bool = False
    max_gross: float = 1.0

    @nn.compact
    def __call__(self, obs: jnp.ndarray):
        x, w, scalars = split_obs(obs, self.window, self.num_features)
        x_in = x
        for i, width in enumerate(self.hidden_sizes):
            x = jnp.tanh(nn.Dense(width, name=f"enc_{i}")(x))
        pooled = jnp.mean(x, axis=-2)
        tail = scalars if self.observe_equity else scalars[..., :2]
        ctx = jnp.concatenate([pooled, tail], axis=-1)
        ctx_i = jnp.broadcast_to(ctx[..., None, :], x.shape[:-1] + ctx.shape[-1:])
        h = jnp.tanh(nn.Dense(self.head_size, name="head_0")(jnp.concatenate([x, ctx_i], -1)))
        zeros = nn.initializers.zeros
        scores = nn.Dense(1, kernel_init=zeros, bias_init=zeros, name="head_out")(h)[..., 0]
        hg = jnp.tanh(nn.Dense(self.head_size, name="gross_0")(ctx))
        g_bias = nn.initializers.constant(_logit(self.init_gross / self.leverage_cap))
        if self.anchor != "none":
            g_bias = zeros  # the tilt of the anchor's gross starts at 0
        gross_logit = nn.Dense(1, kernel_init=zeros, bias_init=g_bias, name="gross_out")(hg)[..., 0]
        if self.anchor != "none":
            scores, gross_logit = self._anchored(x_in, scores, gross_logit)
        value = None
        if self.critic:
            hv = jnp.tanh(nn.Dense(self.head_size, name="value_0")(ctx))
            value = nn.Dense(1, name="value_out")(hv)[..., 0]
            self.param("log_std", nn.initializers.constant(self.init_log_std), (2,))
        return scores, gross_logit, value

    def _anchored(self, x_in, tilt, gross_tilt):
        """Scores and gross logit of ``anchor + tilt``: scores ``-2 eta log sigma_i + tilt_i``
        (softmax: volatility timing at zero tilt) and gross ``min(max_gross, a * exp(g))`` with
        ``a = min(max_gross, sigma_long / sigma_short)`` (vol-managed) or ``min(max_gross,
        init_gross)``, returned as the logit of ``gross / leverage_cap``."""
        col = (self.window - 1) * self.num_features + self.num_features - ANCHOR_COLUMNS
        log_vol, log_ratio = x_in[..., col], x_in[..., 0, col + 1]
        scores = tilt - 2.0 * self.anchor_eta * log_vol
        if self.anchor_vol_managed:
            base = jnp.minimum(self.max_gross, jnp.exp(log_ratio))
        else:
            base = jnp.full(gross_tilt.shape, min(self.max_gross, self.init_gross))
        gross = jnp.minimum(self.max_gross, base * jnp.exp(jnp.clip(gross_tilt, -10.0, 10.0)))
        frac = jnp.clip(gross / self.leverage_cap, 1e-6, 1.0 - 1e-6)
        return scores, jnp.log(frac) - jnp.log1p(-frac)


def target_weights(scores, gross_logit, leverage_cap):
    """``leverage_cap * sigmoid(g) * softmax(s)`` (long-only target exposures, fractions)."""
    return (leverage_cap * jax.nn.sigmoid(gross_logit))[..., None] * jax.nn.softmax(scores, -1)


def rebalance(target, w_old, rate):
    """``w_old + rate * (target - w_old)``; a flat book (``sum|w_old| = 0``) takes the target."""
    flat = jnp.sum(jnp.abs(w_old), axis=-1, keepdims=True) <= 0
    rate = jnp.where(flat, 1.0, jnp.asarray(rate, target.dtype))
    return w_old + rate * (target - w_old)


def make_network(config: UniverseConfig, env: PortfolioEnv, critic: bool = False):
    """The :class:`UniverseAllocator` of ``config`` (its fields by name) for ``env``'s shapes."""
    shapes = dict(window=env.window, num_features=env.num_features)
    return module_from_config(UniverseAllocator, config, **shapes, critic=critic)


def policy_target(network: UniverseAllocator, params, obs, leverage_cap):
    """Deterministic target exposures ``[..., N]`` (before partial rebalancing) for ``obs``."""
    scores, g, _ = network.apply(params, obs)
    return target_weights(scores, g, leverage_cap)


def untrained_target(network: UniverseAllocator, obs):
    """Target exposures ``[..., N]`` of the untrained policy (every tilt 0) for ``obs [...,
    obs_dim]``: the anchor rule, or 1/N at ``init_gross`` without an anchor (no parameters)."""
    x, _, _ = split_obs(obs, network.window, network.num_features)
    zero = jnp.zeros(x.shape[:-1], x.dtype)
    cap = network.leverage_cap
    if network.anchor == "none":
        g = jnp.full(zero.shape[:-1], _logit(network.init_gross / cap), x.dtype)
        return target_weights(zero, g, cap)
    scores, g = network.apply({}, x, zero, zero[..., 0], method=UniverseAllocator._anchored)
    return target_weights(scores, g, cap)


def apply_policy(network: UniverseAllocator, params, obs, rebalance_rate, leverage_cap):
    """Deterministic executed exposures ``[..., N]`` for ``obs [..., obs_dim]``."""
    _, w_old, _ = split_obs(obs, network.window, network.num_features)
    return rebalance(policy_target(network, params, obs, leverage_cap), w_old, rebalance_rate)


def init_params(config: UniverseConfig, env: PortfolioEnv, key: jax.Array, critic: bool = False):
    """Fresh network variables (jitted init)."""
    return _init(config.static(), env, critic, key)


@partial(jax.jit, static_argnums=(0, 1, 2))
def _init(config, env, critic, key):
    return make_network(config, env, critic).init(key, jnp.zeros((env.obs_dim,), jnp.float32))
