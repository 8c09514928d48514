"""Small transformer allocation model over the env's observation window (deterministic policy).

The observation of a ``PortfolioEnv`` with ``window=K`` is
``concat(features[t-K+1..t].ravel(), w, 1 - sum w, sum|w|, E/E0 - 1)``. This module reads the first
``K*N*F`` entries as ``K`` day tokens of width ``N*F`` (all assets' features of one day), runs a
pre-LayerNorm transformer encoder over them (no causal mask: every token is in the past), pools the
most recent day's token, joins it with an embedding of the ``N + 3`` portfolio-state tail and
outputs target exposures ``leverage_cap * tanh(.)`` per asset (fractions of equity; the env then
scales the gross exposure down to its cap).

``hidden_size``, ``num_layers`` and ``num_heads`` correspond to the original's ``--rl-hidden-size``,
``--rl-num-layers`` and ``--rl-num-heads``.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxport.rl.networks import tanh_allocation_head


class TransformerBlock(nn.Module):
    """Pre-LN encoder block: ``x + MHA(LN(x))`` then ``x + MLP(LN(x))`` (MLP width 4 * hidden)."""

    hidden_size: int
    num_heads: int

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        h = nn.LayerNorm()(x)
        h = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads, qkv_features=self.hidden_size
        )(h, h)
        x = x + h
        h = nn.LayerNorm()(x)
        h = nn.Dense(4 * self.hidden_size)(h)
        h = nn.gelu(h)
        h = nn.Dense(self.hidden_size)(h)
        return x + h


class TransformerAllocator(nn.Module):
    """Deterministic allocation policy ``obs[obs_dim] -> action[N]`` in ``(-cap, cap)`` per asset.

    Works on one observation or a batch (leading axes are kept).
    """

    num_assets: int
    num_features: int
    window: int
    hidden_size: int = 32
    num_layers: int = 2
    num_heads: int = 4
    leverage_cap: float = 2.0
    output_init_scale: float = 0.01
    observe_equity: bool = False  # feed the last obs entry (E/E0 - 1) to the state embedding

    @nn.compact
    def __call__(self, obs: jnp.ndarray) -> jnp.ndarray:
        K, N, F = self.window, self.num_assets, self.num_features
        n_feat = K * N * F
        batch = obs.shape[:-1]
        tail = obs[..., n_feat:] if self.observe_equity else obs[..., n_feat:-1]  # portfolio state
        if F > 0:
            tokens = obs[..., :n_feat].reshape(*batch, K, N * F)
            x = nn.Dense(self.hidden_size, name="embed")(tokens)
            pos = self.param("pos_embedding", nn.initializers.normal(0.02), (K, self.hidden_size))
            x = x + pos
            for i in range(self.num_layers):
                x = TransformerBlock(self.hidden_size, self.num_heads, name=f"block_{i}")(x)
            x = nn.LayerNorm(name="final_norm")(x)
            pooled = x[..., -1, :]  # the most recent day attends to the whole window
        else:
            pooled = jnp.zeros((*batch, self.hidden_size), obs.dtype)
        state = nn.Dense(self.hidden_size, name="state_embed")(tail)
        h = jnp.concatenate([pooled, state], axis=-1)
        h = nn.gelu(nn.Dense(self.hidden_size, name="head_hidden")(h))
        return tanh_allocation_head(
            h, N, self.output_init_scale, self.leverage_cap, name="head_out"
        )
