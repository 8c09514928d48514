"""Policy networks (Flax linen): PPO's actor-critic MLP with its tanh-squashed Gaussian policy, and
the gradient trainer's deterministic :class:`MLPAllocator` (its transformer lives in
:mod:`jaxport.rl.transformer`).

Parameter tree of ``ActorCritic(action_dim, hidden_sizes=(h_1, ..., h_L))`` (what the torch
exporter must mirror; every ``Dense_k`` has ``kernel [in, out]`` and ``bias [out]``,
``y = x @ kernel + bias``)::

    params:
      Dense_0 .. Dense_{L-1}     actor hidden layers  (obs_dim -> h_1 -> ... -> h_L), activated
      Dense_L                    actor mean head      (h_L -> action_dim), no activation
      Dense_{L+1} .. Dense_{2L}  critic hidden layers (obs_dim -> h_1 -> ... -> h_L), activated
      Dense_{2L+1}               critic head          (h_L -> 1), squeezed to a scalar
      log_std                    [action_dim], state-independent log standard deviation

For the default ``hidden_sizes=(64, 64)``: actor = Dense_0, Dense_1, Dense_2; critic = Dense_3,
Dense_4, Dense_5. Initialisation follows PureJaxRL: orthogonal(sqrt 2) hidden kernels,
orthogonal(0.01) actor head, orthogonal(1.0) critic head, zero biases, ``log_std = init_log_std``.
The orthogonal matrices come from :func:`orthogonal_init` (same distribution as
``flax.linen.initializers.orthogonal``, but a pure-JAX Householder QR instead of LAPACK: on the XLA
CPU backend a *batched* LAPACK QR, which is what ``jax.vmap(train)`` over seeds produces, fans out
into the intra-op thread pool it already runs on and can deadlock on small machines).

Policy (see :func:`sample_action`): the network's ``mean`` is the location of a Gaussian over the
PRE-squash action ``u ~ N(mean, exp(log_std)^2)``; the executed exposure is
``a = leverage_cap * tanh(u)`` (fraction of equity per asset, so every sampled exposure lies in
``(-cap, cap)``; the env then scales the gross ``sum |a|`` down to its cap). PPO stores ``u`` and
uses the exact change-of-variables likelihood ``log p(a) = log N(u) - sum log(cap * (1 -
tanh(u)^2))``; the log-det term does not depend on the parameters, so it cancels in the PPO ratio
and the ratio is computed from the Gaussian part alone. The entropy bonus is the (closed-form)
entropy of the pre-squash Gaussian. The deterministic action is ``cap * tanh(mean)``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.linen.initializers import constant

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "gelu": nn.gelu, "silu": nn.silu, "elu": nn.elu}
_LOG_2PI = math.log(2.0 * math.pi)


def activation_fn(name: str):
    """The activation called ``name`` (``tanh``, ``relu``, ``gelu``, ``silu``, ``elu``)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}") from None


@jax.jit
def householder_qr(a):
    """``(Q [m, n], diag(R) [n])`` of the thin QR of ``a [m, n]`` (``m >= n``) by Householder
    reflections.

    Pure ``jnp`` in a ``fori_loop`` (no LAPACK custom call), so it is safe under ``vmap`` on CPU.
    """
    m, n = a.shape
    idx = jnp.arange(m)

    def body(k, carry):
        r, q = carry
        x = jnp.where(idx >= k, r[:, k], 0.0)
        alpha = -jnp.where(x[k] >= 0, 1.0, -1.0) * jnp.sqrt(jnp.sum(x * x))
        v = x - alpha * (idx == k)
        v_norm = jnp.sqrt(jnp.sum(v * v))
        v = jnp.where(v_norm > 0, v / jnp.maximum(v_norm, 1e-30), 0.0)
        r = r - 2.0 * jnp.outer(v, v @ r)  # r <- H_k r
        q = q - 2.0 * jnp.outer(q @ v, v)  # q <- q H_k
        return r, q

    r, q = jax.lax.fori_loop(0, n, body, (a, jnp.eye(m, dtype=a.dtype)))
    return q[:, :n], jnp.diagonal(r)[:n]


def orthogonal_init(scale: float = 1.0):
    """Orthogonal kernel initialiser (like ``jax.nn.initializers.orthogonal(scale)``; last axis =
    columns)."""

    def init(key, shape, dtype=jnp.float32):
        n_cols = shape[-1]
        n_rows = math.prod(shape[:-1])
        tall = (n_rows, n_cols) if n_rows >= n_cols else (n_cols, n_rows)
        q, d = householder_qr(jax.random.normal(key, tall, jnp.float32))
        # unique QR with diag(R) > 0: Haar distributed
        q = q * jnp.where(d >= 0, 1.0, -1.0)[None, :]
        if n_rows < n_cols:
            q = q.T
        return (scale * q).reshape(shape).astype(dtype)

    return init


class ActorCritic(nn.Module):
    """Separate actor and critic MLP towers; returns ``(mean, log_std, value)``.

    ``mean`` [..., action_dim] is the pre-squash Gaussian location, ``log_std`` is broadcast to the
    shape of ``mean``, ``value`` [...] is the critic's state value. ``value_only=True`` runs the
    critic tower only and returns just ``value`` (uses the same parameters; for bootstrapping).
    """

    action_dim: int
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    init_log_std: float = 0.0

    def _tower(self, x, first_index: int, out_dim: int, out_scale: float):
        act = activation_fn(self.activation)
        for i, width in enumerate(self.hidden_sizes):
            x = nn.Dense(
                width,
                kernel_init=orthogonal_init(np.sqrt(2.0)),
                bias_init=constant(0.0),
                name=f"Dense_{first_index + i}",
            )(x)
            x = act(x)
        return nn.Dense(
            out_dim,
            kernel_init=orthogonal_init(out_scale),
            bias_init=constant(0.0),
            name=f"Dense_{first_index + len(self.hidden_sizes)}",
        )(x)

    @nn.compact
    def __call__(self, x, value_only: bool = False):
        depth = len(self.hidden_sizes)
        value = jnp.squeeze(self._tower(x, depth + 1, 1, 1.0), axis=-1)
        if value_only:
            return value
        mean = self._tower(x, 0, self.action_dim, 0.01)
        log_std = self.param("log_std", constant(self.init_log_std), (self.action_dim,))
        return mean, jnp.broadcast_to(log_std, mean.shape), value


def tanh_allocation_head(x, num_assets: int, init_scale: float, leverage_cap: float, name: str):
    """``leverage_cap * tanh(Dense(x))`` per asset (multiples of equity); the ``Dense`` (named
    ``name``, created in the calling module's ``compact`` scope) starts with kernel std
    ``init_scale / sqrt(fan_in)`` and zero bias, so an untrained policy starts near flat."""
    out = nn.Dense(
        num_assets,
        kernel_init=nn.initializers.variance_scaling(init_scale**2, "fan_in", "normal"),
        bias_init=nn.initializers.zeros,
        name=name,
    )(x)
    return leverage_cap * jnp.tanh(out)


class MLPAllocator(nn.Module):
    """Deterministic MLP policy ``obs -> leverage_cap * tanh(.)`` per asset (tanh hidden layers).

    Parameter tree: ``dense_0 .. dense_{L-1}`` (hidden) and ``out`` (``[h_L, num_assets]``,
    initialised with std ``output_init_scale / sqrt(fan_in)`` so the untrained policy starts near
    flat). Without ``observe_equity`` the last observation entry (``E/E0 - 1``) is dropped before
    the first layer.
    """

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
        return tanh_allocation_head(
            x, self.num_assets, self.output_init_scale, self.leverage_cap, name="out"
        )


# ---------------------------------------------------------------- squashed Gaussian policy
def module_from_config(module: type[nn.Module], config: Any, **given: Any) -> nn.Module:
    """``module(**given, **shared)``, where ``shared`` holds every field of the flax ``module`` that
    the static ``config`` has under the same name (and ``given`` does not), cast to the type of the
    field's default (``leverage_cap`` -> float, ``hidden_sizes`` -> tuple, ...): a trainer's config
    builds its network without listing each shared field twice. ``given``: what the config does not
    hold (env shapes such as ``num_assets``, flags such as ``critic``)."""
    shared = {}
    for field in dataclasses.fields(module):
        name = field.name
        if not field.init or name in ("parent", "name") or name in given:
            continue
        if hasattr(config, name):
            value = getattr(config, name)
            default = field.default
            shared[name] = value if default is dataclasses.MISSING else type(default)(value)
    return module(**given, **shared)


def gaussian_log_prob(u, mean, log_std):
    """Log density of the diagonal Gaussian at the pre-squash action ``u`` (summed, last axis)."""
    z = (u - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z * z - log_std - 0.5 * _LOG_2PI, axis=-1)


def gaussian_entropy(log_std):
    """Entropy of the diagonal Gaussian (nats), summed over the last axis."""
    return jnp.sum(log_std + 0.5 * (1.0 + _LOG_2PI), axis=-1)


def squash(u, leverage_cap):
    """Executed exposure ``cap * tanh(u)`` (fraction of equity per asset)."""
    return leverage_cap * jnp.tanh(u)


def squash_log_det(u, leverage_cap):
    """``sum log |d a / d u|`` of :func:`squash`, numerically stable (summed over the last axis)."""
    # log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u))
    return jnp.sum(
        jnp.log(leverage_cap) + 2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1
    )


def squashed_log_prob(u, mean, log_std, leverage_cap):
    """Exact log density of the executed action ``a = cap * tanh(u)`` (change of variables)."""
    return gaussian_log_prob(u, mean, log_std) - squash_log_det(u, leverage_cap)


def sample_action(key, mean, log_std, leverage_cap):
    """Sample ``u ~ N(mean, std^2)``; return ``(action = cap * tanh(u), u, log N(u))``."""
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
    return squash(u, leverage_cap), u, gaussian_log_prob(u, mean, log_std)
