"""Causal risk estimates from close prices: trailing returns, covariances and the raw *anchor*
features that the standard allocators and the universe policy's anchor share.

Causality: an estimate at day ``t`` reads prices ``p[:t + 1]`` only (the ``lookback`` simple
returns ``p[s] / p[s - 1] - 1`` for ``s = t - lookback + 1 .. t``). Volatilities are per-step
(daily) standard deviations of simple returns (fractions), never annualised.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_LOOKBACK = 60  # trading days of close-to-close returns (short window)
DEFAULT_LONG_LOOKBACK = 252  # trading days (long window of the volatility-management ratio)
_RIDGE = 1e-9  # ridge of the unit-mean-diagonal covariance (keeps singular solves well posed)
_TINY = 1e-12

#: Names of the raw anchor columns that :func:`anchor_features` appends (in this order).
ANCHOR_FEATURE_NAMES = ("anchor_log_vol", "anchor_log_vol_ratio")


@partial(jax.jit, static_argnames=("lookback",))
def trailing_returns(prices: jnp.ndarray, t: jnp.ndarray, lookback: int):
    """The ``lookback`` simple returns ending at day ``t``: ``(r [L, N], valid [L] bool)``.

    Row ``j`` is the return from day ``t - L + j`` to ``t - L + j + 1``; rows that would need a
    day before 0 are zero with ``valid`` False. Only prices ``prices[:t + 1]`` are read.
    """
    num_days = prices.shape[-2]
    idx = jnp.asarray(t, jnp.int32) - lookback + jnp.arange(lookback + 1, dtype=jnp.int32)
    p = jnp.take(prices, jnp.clip(idx, 0, num_days - 1), axis=-2)
    valid = idx[:-1] >= 0
    r = p[1:] / p[:-1] - 1.0
    return jnp.where(valid[:, None], r, 0.0), valid


@partial(jax.jit, static_argnames=("lookback",))
def trailing_covariance(prices: jnp.ndarray, t: jnp.ndarray, lookback: int):
    """Sample covariance (ddof=1, per-step units) of the trailing returns: ``(C [N, N], count)``.

    ``count`` is the number of valid returns (``min(lookback, t)``); ``C`` is zero when ``count <
    2``.
    """
    r, valid = trailing_returns(prices, t, lookback)
    m = valid.astype(r.dtype)[:, None]
    count = jnp.sum(valid)
    mean = jnp.sum(r * m, axis=0) / jnp.maximum(count, 1)
    d = (r - mean) * m
    cov = d.T @ d / jnp.maximum(count - 1, 1)
    return jnp.where(count >= 2, cov, 0.0), count


def normalised_covariance(cov: jnp.ndarray) -> jnp.ndarray:
    """``C / mean(diag C) + ridge I``: same optimal weights, unit scale for float32 solves (the
    ridge only matters for singular C: fewer returns than assets or a constant price)."""
    n = cov.shape[-1]
    scale = jnp.maximum(jnp.mean(jnp.diag(cov)), _TINY)
    return cov / scale + _RIDGE * jnp.eye(n, dtype=cov.dtype)


def relative_log_volatility(cov: jnp.ndarray) -> jnp.ndarray:
    """``log sigma_i`` of the normalised covariance (:func:`normalised_covariance`) ``[N]``: each
    asset's log volatility up to one common additive constant (0 for every asset when ``C = 0``).
    Volatility timing with exponent ``eta`` is ``softmax(-2 eta * this)``."""
    return 0.5 * jnp.log(jnp.diag(normalised_covariance(cov)))


def book_volatility_ratio(
    prices: jnp.ndarray, t: jnp.ndarray, lookback: int, long_lookback: int
) -> jnp.ndarray:
    """``sigma_long / sigma_short`` of the daily-rebalanced 1/N book at day ``t`` (``sigma^2 =
    1'C1 / N^2`` from ``long_lookback`` and ``lookback`` trailing returns); 1 until the short
    window has 2 returns. Volatility management scales exposure by ``min(max_gross, this)``."""
    n = prices.shape[-1]
    short, count = trailing_covariance(prices, t, lookback)
    long, _ = trailing_covariance(prices, t, long_lookback)
    var_s = jnp.sum(short) / n**2
    var_l = jnp.sum(long) / n**2
    ratio = jnp.sqrt(jnp.maximum(var_l, _TINY) / jnp.maximum(var_s, _TINY))
    return jnp.where((count >= 2) & (var_s > _TINY), ratio, 1.0)


@partial(jax.jit, static_argnames=("lookback", "long_lookback"))
def _anchor_columns(prices, lookback: int, long_lookback: int):
    def at(t):
        cov, _ = trailing_covariance(prices, t, lookback)
        log_ratio = jnp.log(book_volatility_ratio(prices, t, lookback, long_lookback))
        return jnp.stack(
            [relative_log_volatility(cov), jnp.full((prices.shape[-1],), log_ratio)], axis=-1
        )

    return jax.vmap(at)(jnp.arange(prices.shape[0], dtype=jnp.int32))


def anchor_features(
    close: np.ndarray,
    lookback: int = DEFAULT_LOOKBACK,
    long_lookback: int = DEFAULT_LONG_LOOKBACK,
) -> np.ndarray:
    """Raw (never standardised) anchor columns ``[T, N, 2]`` for close prices ``[T, N]``, named
    :data:`ANCHOR_FEATURE_NAMES`, causal (row ``t`` reads ``close[:t + 1]``):

    - ``anchor_log_vol``: :func:`relative_log_volatility` of the ``lookback``-day covariance
      (log of a per-step volatility, up to a constant shared by the basket's assets);
    - ``anchor_log_vol_ratio``: ``log`` of :func:`book_volatility_ratio` (same for every asset).

    The columns of one asset depend on the other assets of its basket (the shared constant), so
    they are computed per basket.
    """
    prices = jnp.asarray(close, jnp.float32)
    return np.asarray(_anchor_columns(prices, int(lookback), int(long_lookback)), np.float32)


__all__ = [
    "ANCHOR_FEATURE_NAMES",
    "DEFAULT_LONG_LOOKBACK",
    "DEFAULT_LOOKBACK",
    "anchor_features",
    "book_volatility_ratio",
    "normalised_covariance",
    "relative_log_volatility",
    "trailing_covariance",
    "trailing_returns",
]
