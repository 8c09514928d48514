"""Toto-style decoder-only patch transformer (flax.linen) with a Student-T head.

Forward pass (``ForecasterNet.__call__``), for normalised inputs ``x [B, C, 6]`` (see
:mod:`jaxport.forecast.windows`; C = context, P = patch, L = C / P tokens, D = d_model)::

    tokens = x.reshape(B, L, P * 6)                 # day-major, channel-minor inside a patch
    h = patch_embed(tokens)                         # Dense(P*6 -> D), with bias
    for i in range(num_layers):                     # pre-norm causal blocks
        h = h + Dropout(attn(attn_norm(h)))         # RMSNorm(eps=1e-6, weight 'scale'), no bias
        h = h + Dropout(mlp(mlp_norm(h)))           # fc2(GELU_exact(fc1(.)))
    z = final_norm(h)[:, -1]                        # last token only
    raw = head(z).reshape(B, K, H, 3)               # K targets, H horizon steps
    loc = raw[..., 0]; scale = softplus(raw[..., 1]) + 1e-4; dof = min_dof + softplus(raw[..., 2])

Attention: ``qkv = Dense(D -> 3D, no bias)``, reshaped ``[B, L, 3, heads, D/heads]`` (q, k, v in that
order), rotary embedding (rotate-half / GPT-NeoX convention, ``inv_freq = base^(-arange(d/2)/(d/2))``
applied to q and k, positions 0..L-1), scores ``q.k / sqrt(d_head)`` with a causal mask, softmax, then
``out = Dense(D -> D, bias)``.  Dense kernels are ``[in, out]`` (a Torch ``Linear.weight`` is the
transpose).  The outputs are in *normalised* units; multiply ``loc`` and ``scale`` by the window scale
``s`` to get log-returns vs today's close (``predict_distribution`` does this).

Param tree (``params`` collection)::

    patch_embed/{kernel [P*6, D], bias [D]}
    blocks_{i}/attn_norm/scale [D]
    blocks_{i}/attn/qkv/kernel [D, 3D]
    blocks_{i}/attn/out/{kernel [D, D], bias [D]}
    blocks_{i}/mlp_norm/scale [D]
    blocks_{i}/mlp/fc1/{kernel [D, mlp_ratio*D], bias}
    blocks_{i}/mlp/fc2/{kernel [mlp_ratio*D, D], bias}
    final_norm/scale [D]
    head/{kernel [D, K*H*3], bias [K*H*3]}

The head is initialised so that the untrained model predicts, in normalised units, ``loc = 0``,
``dof = 5`` and a standard deviation of ``sqrt(h)`` -- i.e. the window's RMS volatility scaled by the
square root of the horizon; training learns the departures from that.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxport.forecast.config import ForecasterConfig
from jaxport.forecast.windows import normalise_window

INIT_DOF = 5.0
MIN_SCALE = 1e-4


def rope(x: jnp.ndarray, base: float) -> jnp.ndarray:
    """Rotary position embedding of ``x [B, L, heads, d]`` (rotate-half convention)."""
    L, d = x.shape[-3], x.shape[-1]
    half = d // 2
    inv_freq = 1.0 / (base ** (jnp.arange(half, dtype=jnp.float32) / half))
    ang = jnp.arange(L, dtype=jnp.float32)[:, None] * inv_freq[None, :]
    cos, sin = jnp.cos(ang)[:, None, :], jnp.sin(ang)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


class CausalSelfAttention(nn.Module):
    config: ForecasterConfig

    @nn.compact
    def __call__(self, x):
        cfg = self.config
        B, L, D = x.shape
        H = cfg.num_heads
        dh = D // H
        qkv = nn.Dense(3 * D, use_bias=False, name="qkv")(x).reshape(B, L, 3, H, dh)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        q, k = rope(q, cfg.rope_base), rope(k, cfg.rope_base)
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(dh)
        mask = jnp.tril(jnp.ones((L, L), dtype=bool))
        logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
        w = jax.nn.softmax(logits, axis=-1)
        out = jnp.einsum("bhqk,bkhd->bqhd", w, v).reshape(B, L, D)
        return nn.Dense(D, name="out")(out)


class MLP(nn.Module):
    config: ForecasterConfig

    @nn.compact
    def __call__(self, x):
        D = x.shape[-1]
        h = nn.Dense(self.config.mlp_ratio * D, name="fc1")(x)
        h = nn.gelu(h, approximate=False)
        return nn.Dense(D, name="fc2")(h)


class Block(nn.Module):
    config: ForecasterConfig

    @nn.compact
    def __call__(self, x, deterministic: bool):
        drop = nn.Dropout(self.config.dropout)
        h = CausalSelfAttention(self.config, name="attn")(
            nn.RMSNorm(epsilon=1e-6, name="attn_norm")(x)
        )
        x = x + drop(h, deterministic=deterministic)
        h = MLP(self.config, name="mlp")(nn.RMSNorm(epsilon=1e-6, name="mlp_norm")(x))
        return x + drop(h, deterministic=deterministic)


def _inv_softplus(y):
    return np.log(np.expm1(y))


def _head_bias_init(config: ForecasterConfig):
    K, H = config.num_targets, config.horizon
    bias = np.zeros((K, H, 3), dtype=np.float32)
    steps = np.arange(1, H + 1, dtype=np.float64)
    scale0 = np.sqrt(steps) * math.sqrt((INIT_DOF - 2.0) / INIT_DOF)  # std = sqrt(h)
    bias[..., 1] = _inv_softplus(scale0 - MIN_SCALE)[None, :]
    bias[..., 2] = _inv_softplus(INIT_DOF - config.min_dof)
    flat = bias.reshape(-1)

    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.asarray(flat, dtype=dtype).reshape(shape)

    return init


class ForecasterNet(nn.Module):
    """Patch transformer: normalised windows ``[B, C, 6]`` -> Student-T (loc, scale, dof) ``[B, K, H]``."""

    config: ForecasterConfig

    def setup(self):
        cfg = self.config
        self.patch_embed = nn.Dense(cfg.d_model, name="patch_embed")
        self.blocks = [Block(cfg) for _ in range(cfg.num_layers)]
        self.final_norm = nn.RMSNorm(epsilon=1e-6)
        self.head = nn.Dense(
            cfg.num_targets * cfg.horizon * 3,
            kernel_init=nn.initializers.normal(0.01),
            bias_init=_head_bias_init(cfg),
        )

    def encode(self, x, deterministic: bool = True):
        """Hidden states ``[B, L, D]`` of every patch token (causal: token j sees patches <= j)."""
        cfg = self.config
        B = x.shape[0]
        h = self.patch_embed(x.reshape(B, cfg.num_patches, cfg.patch * x.shape[-1]))
        for block in self.blocks:
            h = block(h, deterministic)
        return self.final_norm(h)

    def __call__(self, x, deterministic: bool = True):
        cfg = self.config
        z = self.encode(x, deterministic)[:, -1]
        raw = self.head(z).reshape(x.shape[0], cfg.num_targets, cfg.horizon, 3)
        loc = raw[..., 0]
        scale = jax.nn.softplus(raw[..., 1]) + MIN_SCALE
        dof = cfg.min_dof + jax.nn.softplus(raw[..., 2])
        return loc, scale, dof


def _init(config: ForecasterConfig, key) -> dict:
    dummy = jnp.zeros((1, config.context, config.num_channels), jnp.float32)
    return ForecasterNet(config).init(key, dummy)["params"]


_init_jit = jax.jit(_init, static_argnums=0)


def init_params(config: ForecasterConfig, key) -> dict:
    """Fresh parameters (the ``params`` collection) for ``config`` (one compiled program)."""
    return _init_jit(config, key)


def abstract_params(config: ForecasterConfig):
    """Shape/dtype tree of the parameters (no computation); used to restore checkpoints."""
    return jax.eval_shape(lambda k: _init(config, k), jax.random.PRNGKey(0))


def count_params(params) -> int:
    return int(sum(np.prod(p.shape) for p in jax.tree_util.tree_leaves(params)))


def predict_normalised(
    params, config: ForecasterConfig, x_norm, *, deterministic=True, dropout_key=None
):
    """(loc, scale, dof) ``[B, K, H]`` in normalised units for normalised windows."""
    rngs = None if deterministic else {"dropout": dropout_key}
    return ForecasterNet(config).apply({"params": params}, x_norm, deterministic, rngs=rngs)


def predict_distribution(params, config: ForecasterConfig, x_raw):
    """Raw windows ``[B, C, 6]`` -> (loc, scale, dof) ``[B, K, H]`` of ``log(col[t+h]/close[t])``.

    ``loc``/``scale`` are in natural-log-return units (0.01 = about 1 %); ``dof`` is unitless.
    """
    x_norm, s = normalise_window(x_raw, config)
    loc, scale, dof = predict_normalised(params, config, x_norm)
    s = s[:, None, None]
    return loc * s, scale * s, dof
