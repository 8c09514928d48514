"""Running observation statistics (parallel Welford / Chan et al. update) and normalisation.

The statistics are a pytree of arrays so they live in the jitted train state and update inside
``lax.scan``. ``count`` is a float (number of observations seen, starting at a tiny epsilon).
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct


@struct.dataclass
class RunningMeanStd:
    mean: jnp.ndarray  # [D]
    var: jnp.ndarray  # [D] population variance
    count: jnp.ndarray  # scalar float32

    @classmethod
    def create(cls, dim: int, epsilon: float = 1e-4) -> "RunningMeanStd":
        """Zero mean, unit variance, weight ``epsilon`` (the first batch dominates immediately)."""
        return cls(
            mean=jnp.zeros((dim,), jnp.float32),
            var=jnp.ones((dim,), jnp.float32),
            count=jnp.asarray(epsilon, jnp.float32),
        )


def update_running_stats(stats: RunningMeanStd, batch: jnp.ndarray) -> RunningMeanStd:
    """Merge a batch ``[..., D]`` (leading axes: samples) into ``stats`` (Chan's parallel rule)."""
    x = batch.reshape(-1, batch.shape[-1]).astype(jnp.float32)
    n = jnp.asarray(x.shape[0], jnp.float32)
    b_mean = jnp.mean(x, axis=0)
    b_var = jnp.mean(jnp.square(x - b_mean), axis=0)
    delta = b_mean - stats.mean
    total = stats.count + n
    mean = stats.mean + delta * (n / total)
    m2 = stats.var * stats.count + b_var * n + jnp.square(delta) * (stats.count * n / total)
    return RunningMeanStd(mean=mean, var=m2 / total, count=total)


def normalize(
    stats: RunningMeanStd, obs: jnp.ndarray, clip: float = 10.0, eps: float = 1e-8
) -> jnp.ndarray:
    """``clip((obs - mean) / sqrt(var + eps), -clip, clip)``; works on one obs or a batch."""
    z = (obs - stats.mean) * jnp.reciprocal(jnp.sqrt(stats.var + eps))
    return jnp.clip(z, -clip, clip)
