"""Training metrics shared by the PPO and gradient trainers.

Both trainers return ``train(key)["metrics"]``: a dict mapping each name of the trainer's
``METRIC_KEYS`` to a ``[num_updates]`` array (``[seeds, num_updates]`` under ``jax.vmap``). The
helpers here turn that into per-update rows for logging and format one update for printing.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np

from jaxport.data import DataError


def nanmean_where(x: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """Mean of ``x`` over the entries where ``mask`` is true; NaN when there are none."""
    n = jnp.sum(mask)
    return jnp.where(n > 0, jnp.sum(jnp.where(mask, x, 0.0)) / jnp.maximum(n, 1), jnp.nan)


def metrics_per_update(metrics: dict, seed: int | None = None) -> list[dict[str, float]]:
    """``train(key)["metrics"]`` -> one ``{name: float}`` per update, for tensorboard-style logging.

    ``seed`` picks one run of a vmapped ``train`` (metrics ``[seeds, num_updates]``). Example::

        for row in metrics_per_update(out["metrics"]):
            for name, value in row.items():
                writer.add_scalar(f"ppo/{name}", value, int(row["env_steps"]))
    """
    arrays = {k: np.asarray(v) for k, v in metrics.items()}
    if seed is not None:
        arrays = {k: v[seed] for k, v in arrays.items()}
    if any(v.ndim != 1 for v in arrays.values()):
        raise DataError(
            "metrics_per_update: metrics must be [num_updates] (pass seed= for a vmapped run)"
        )
    n = len(next(iter(arrays.values()))) if arrays else 0
    return [{k: float(v[i]) for k, v in arrays.items()} for i in range(n)]


def format_metrics(prefix: str, metrics: dict, keys: Sequence[str]) -> str:
    """One line ``"<prefix> name=value ..."`` of the ``keys`` present in ``metrics`` (4 digits)."""
    m = {k: np.asarray(v) for k, v in metrics.items()}
    parts = (f"{k}={np.array2string(m[k], precision=4)}" for k in keys if k in m)
    return " ".join([prefix, *parts])
