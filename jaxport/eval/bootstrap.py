"""Stationary block bootstrap (Politis & Romano 1994) of whole days, as index arrays.

A *path* is an int32 array of row positions ``0 .. n - 1`` into a set of ``n`` source rows (days).
Every asset and feature of a day is resampled together (one index per day), so cross-asset
dependence and the features-to-next-return relation survive inside blocks.

Definition (stationary bootstrap): ``i_0 ~ U{0..n-1}``; for ``k >= 1``, with probability
``p = 1 / block_length`` a new block starts at ``i_k ~ U{0..n-1}``, else ``i_k = (i_{k-1} + 1) mod
n`` (circular continuation). Block lengths are geometric with mean ``block_length`` and every
``i_k`` is marginally uniform on the rows. ``block_length = inf`` gives one contiguous block.

The default block length is Politis & White (2004) with the correction of Patton, Politis & White
(2009), the estimator ``arch.bootstrap.optimal_block_length`` implements (re-implemented here in
NumPy so the core does not need ``arch``).
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np


def _one_path(key: jax.Array, num_rows, block_length, length: int) -> jnp.ndarray:
    """One path ``[length]`` of positions in ``0 .. num_rows - 1`` (traced ``num_rows`` and
    ``block_length``; no loop: a new-block flag and a uniform start per day, the day the current
    block began by a cumulative max, the offset into the block added circularly)."""
    k_new, k_start = jax.random.split(key)
    n = jnp.asarray(num_rows, jnp.int32)
    p_new = 1.0 / jnp.asarray(block_length, jnp.float32)  # 0 for an infinite block length
    new = (jax.random.uniform(k_new, (length,)) < p_new).at[0].set(True)
    starts = jax.random.randint(k_start, (length,), 0, n, dtype=jnp.int32)
    day = jnp.arange(length, dtype=jnp.int32)
    block_day = jax.lax.cummax(jnp.where(new, day, 0))
    return (starts[block_day] + (day - block_day)) % n


@partial(jax.jit, static_argnames=("num_paths", "length"))
def stationary_bootstrap_indices(
    key: jax.Array,
    num_rows: jnp.ndarray,
    block_length: jnp.ndarray,
    *,
    num_paths: int,
    length: int,
) -> jnp.ndarray:
    """``[num_paths, length]`` int32 row positions in ``0 .. num_rows - 1`` (see module docstring);
    path ``i`` is drawn from ``fold_in(key, i)``.

    ``num_rows`` and ``block_length`` (mean block length in rows, ``>= 1`` or ``inf``) are traced,
    so one compilation serves every source and block length of the same path shape.
    """
    keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(num_paths, dtype=jnp.int32))
    return jax.vmap(lambda k: _one_path(k, num_rows, block_length, length))(keys)


def contiguous_indices(start: int, length: int, num_paths: int = 1) -> np.ndarray:
    """``[num_paths, length]`` rows ``start .. start + length - 1`` (one block, a fixed start)."""
    return np.broadcast_to(np.arange(start, start + length, dtype=np.int32), (num_paths, length))


def politis_white_block_length(x: np.ndarray) -> float:
    """Politis-White optimal mean block length of the stationary bootstrap for one series ``[n]``
    (in rows; capped at ``ceil(min(3 sqrt(n), n / 3))``, as ``arch``)."""
    x = np.asarray(x, np.float64).reshape(-1)
    n = x.size
    if n < 8:
        return 1.0
    eps = x - x.mean()
    b_max = math.ceil(min(3 * math.sqrt(n), n / 3))
    kn = max(5, int(math.log10(n)))
    m_max = int(math.ceil(math.sqrt(n))) + kn
    cv = 2 * math.sqrt(math.log10(n) / n)
    lags = np.arange(m_max + 1)
    cross = np.array([eps[i:] @ eps[: n - i] for i in lags])
    v1 = np.array([eps[i + 1 :] @ eps[i + 1 :] for i in lags])
    v2 = np.array([eps[: n - i - 1] @ eps[: n - i - 1] for i in lags])
    acv = cross / n
    abs_acorr = np.abs(cross) / np.sqrt(np.maximum(v1 * v2, 1e-300))
    opt_m = None
    for i in range(kn, m_max + 1):  # first run of kn insignificant autocorrelations
        if np.all(abs_acorr[i - kn : i] < cv):
            opt_m = i - kn
            break
    m = min(2 * max(opt_m, 1) if opt_m is not None else m_max, m_max)
    k = np.arange(1, m + 1)
    lam = np.where(k / m <= 0.5, 1.0, 2 * (1 - k / m))
    g = float(np.sum(2 * lam * k * acv[1 : m + 1]))
    lr_acv = float(acv[0] + np.sum(2 * lam * acv[1 : m + 1]))
    if lr_acv <= 0 or g == 0:
        return 1.0
    b_sb = ((2 * g**2) / (2 * lr_acv**2)) ** (1 / 3) * n ** (1 / 3)
    return float(min(b_sb, b_max))


def default_block_length(returns: np.ndarray) -> int:
    """The default mean block length (rows) for a basket's daily returns ``[n, N]``: the largest
    Politis-White length over every asset's returns and squared returns (volatility clustering
    sets the block length that drawdowns need), rounded up, at least 1."""
    r = np.asarray(returns, np.float64)
    r = r.reshape(r.shape[0], -1)
    series = [r[:, i] for i in range(r.shape[1])] + [r[:, i] ** 2 for i in range(r.shape[1])]
    return max(1, math.ceil(max(politis_white_block_length(s) for s in series)))


__all__ = [
    "contiguous_indices",
    "default_block_length",
    "politis_white_block_length",
    "stationary_bootstrap_indices",
]
