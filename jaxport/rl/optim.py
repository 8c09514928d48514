"""The optimisers the RL trainers share: global-norm clipping then AdamW, with traced
hyperparameters ``hp`` (``{name: scalar}``, the population axis under vmap)."""

from __future__ import annotations

from typing import Mapping

import jax.numpy as jnp
import optax


def adamw_with_clip(hp: Mapping[str, jnp.ndarray], lr, **adamw_kwargs):
    """Global-norm clip at ``hp["max_grad_norm"]`` then AdamW (``lr`` a float, traced scalar or
    schedule of the step count; decoupled weight decay ``hp["weight_decay"]``)."""
    return optax.chain(
        optax.clip_by_global_norm(hp["max_grad_norm"]),
        optax.adamw(lr, weight_decay=hp["weight_decay"], **adamw_kwargs),
    )


def cosine_adamw(hp: Mapping[str, jnp.ndarray], num_updates: int, anneal: bool):
    """:func:`adamw_with_clip` whose learning rate ``hp["lr"]`` decays as a cosine to 0 over
    ``num_updates`` steps when ``anneal`` (the gradient trainers' optimiser)."""
    if not anneal:
        return adamw_with_clip(hp, hp["lr"])

    def lr(count):
        progress = jnp.minimum(count / num_updates, 1.0)
        return hp["lr"] * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))

    return adamw_with_clip(hp, lr)


__all__ = ["adamw_with_clip", "cosine_adamw"]
