"""Statistical features: the fallback feature set, causal, O(1)-scaled, for all symbols at once.

Row ``t`` of every feature uses only data up to and including day ``t``'s close (the high, low and
volume of day ``t`` are known at that close). Nothing is normalised with full-series statistics:
returns and ranges are divided by a fixed typical daily volatility ``RETURN_SCALE`` (2 % per day,
about 32 % annualised) times ``sqrt(horizon)``, so a value of 1 means "one typical daily move over
that horizon"; z-scores use trailing windows that include day ``t``.

Features (``STAT_FEATURE_NAMES``, in order; all dimensionless):

``ret_1, ret_5, ret_20``  log(close_t / close_{t-k}) / (RETURN_SCALE * sqrt(k))
``vol_5, vol_20``         sqrt(mean over the last k daily log returns of r^2) / RETURN_SCALE
                          (realised daily volatility in units of 2 %; ~1 for a typical stock)
``mom_60``                log(close_t / close_{t-60}) / (RETURN_SCALE * sqrt(60))
``rsi_14``                (RSI - 50) / 50 in [-1, 1], RSI with simple 14-day averages of close-to-close
                          price gains G and losses L (Cutler's RSI): (G - L) / (G + L); 0 if G + L = 0
``close_z_20``            (close_t - mean) / std of the last 20 closes (population std; bounded by
                          sqrt(19) ~ 4.4); 0 if the window is flat
``hl_range``              log(high_t / low_t) / RETURN_SCALE
``volume_z_20``           z-score of log(1 + volume_t) against the last 20 days (same convention)

Close-only data (``MarketData.has_ohlc`` / ``has_volume`` false): ``hl_range`` needs high and low,
``volume_z_20`` needs volume; each is left out when its inputs are absent, and the returned names
(:func:`stat_feature_names`) say which features are there. The other eight use the close only.

The first ``warmup_days()`` rows (60: the momentum look-back) are not fully defined and are all 0.
Rolling sums use ``lax.reduce_window`` (a causal convolution); z-scores sum over the ``w`` lagged
slices (static ``w``), so everything is vectorised, jit-able and differentiable (finite gradients,
also on flat windows).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

RETURN_SCALE = 0.02  # typical daily log-return volatility (fraction per day) used to scale features
RETURN_HORIZONS = (1, 5, 20)
VOL_WINDOWS = (5, 20)
MOMENTUM_WINDOW = 60
RSI_WINDOW = 14
ZSCORE_WINDOW = 20

STAT_FEATURE_NAMES: tuple[str, ...] = (
    *(f"ret_{k}" for k in RETURN_HORIZONS),
    *(f"vol_{k}" for k in VOL_WINDOWS),
    f"mom_{MOMENTUM_WINDOW}",
    f"rsi_{RSI_WINDOW}",
    f"close_z_{ZSCORE_WINDOW}",
    "hl_range",
    f"volume_z_{ZSCORE_WINDOW}",
)

_TINY = 1e-12


def stat_feature_names(has_range: bool = True, has_volume: bool = True) -> tuple[str, ...]:
    """``STAT_FEATURE_NAMES`` without ``hl_range`` (no high/low) and ``volume_z_20`` (no volume)."""
    drop = {"hl_range"} if not has_range else set()
    if not has_volume:
        drop.add(f"volume_z_{ZSCORE_WINDOW}")
    return tuple(n for n in STAT_FEATURE_NAMES if n not in drop)


def warmup_days() -> int:
    """Initial rows of ``stat_features`` that are not fully defined (they are 0)."""
    # first defined row of each feature: ret_k / vol_k at k, mom at 60, rsi at 14, z-scores at w - 1
    return max(*RETURN_HORIZONS, *VOL_WINDOWS, MOMENTUM_WINDOW, RSI_WINDOW, ZSCORE_WINDOW - 1)


def _front_pad(x: jnp.ndarray, n: int) -> jnp.ndarray:
    """``x`` with ``n`` copies of row 0 prepended (axis 0 is time)."""
    return jnp.concatenate([jnp.broadcast_to(x[:1], (n,) + x.shape[1:]), x], axis=0)


def _lag(x: jnp.ndarray, k: int) -> jnp.ndarray:
    """Row ``t`` holds ``x[t - k]``; rows before ``k`` repeat ``x[0]``."""
    return _front_pad(x, k)[: x.shape[0]] if k else x


def _window_lags(x: jnp.ndarray, w: int) -> list[jnp.ndarray]:
    """``[x lagged by 0, 1, ..., w-1]`` (row 0 repeated before the start), each ``x.shape``.

    Static-size ``dynamic_slice``s of one padded copy: XLA fuses the elementwise work on them (no
    ``[w, T, N]`` array, no gather; both are slow on CPU), and eager mode compiles one slice.
    """
    padded = _front_pad(x, w - 1)
    return [lax.dynamic_slice_in_dim(padded, w - 1 - k, x.shape[0], axis=0) for k in range(w)]


def _rolling_sum(x: jnp.ndarray, w: int) -> jnp.ndarray:
    """Sum of rows ``t-w+1 .. t`` (zero-padded before row 0)."""
    ones = (1,) * (x.ndim - 1)
    return lax.reduce_window(
        x,
        np.zeros((), x.dtype),  # a concrete 0: lowers to the differentiable window-sum primitive
        lax.add,
        window_dimensions=(w,) + ones,
        window_strides=(1,) + ones,
        padding=((w - 1, 0),) + ((0, 0),) * (x.ndim - 1),
    )


def _safe_sqrt(x: jnp.ndarray) -> jnp.ndarray:
    """``sqrt(x)`` for ``x >= 0`` with a finite gradient at 0."""
    return jnp.sqrt(jnp.maximum(x, 1e-30))


def _safe_div(num: jnp.ndarray, den: jnp.ndarray, fill: float = 0.0) -> jnp.ndarray:
    """``num / den`` where ``den > tiny``, else ``fill`` (NaN-free in value and gradient)."""
    ok = den > _TINY
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), fill)


def _rolling_zscore(x: jnp.ndarray, w: int) -> jnp.ndarray:
    """``(x_t - mean) / std`` over rows ``t-w+1 .. t`` (population std; 0 if the window is flat).

    Computed from the deviations ``x_{t-k} - x_t`` (exact in floating point for nearby values), so
    float32 keeps its precision even when the spread is tiny next to the level (prices ~ 1e3).
    """
    devs = [lagged - x for lagged in _window_lags(x, w)]
    mean = sum(devs) / w  # = mean_window - x_t
    std = _safe_sqrt(sum(jnp.square(d - mean) for d in devs) / w)
    # a spread at float32 rounding level of the values counts as flat
    flat = std <= 1e-6 * jnp.abs(x)
    return jnp.where(flat, 0.0, _safe_div(-mean, std))


def stat_feature_array(open_, high, low, close, volume) -> jnp.ndarray:
    """Pure, jit-able core of ``stat_features``: ``[T, N, ...]`` inputs -> ``[T, N, ..., F]`` float32.

    Prices must be positive and volume non-negative (as ``jaxport.data`` validates). ``open_`` is
    accepted for API symmetry; no current feature uses it. ``high``/``low`` (together) and
    ``volume`` may be None: their features are then left out (``F`` = len of
    :func:`stat_feature_names`).
    """
    del open_
    close = jnp.asarray(close, jnp.float32)
    r1 = jnp.log(close / _lag(close, 1))  # daily log return, fraction
    feats = []
    for k in RETURN_HORIZONS:
        feats.append(jnp.log(close / _lag(close, k)) / (RETURN_SCALE * math.sqrt(k)))
    for k in VOL_WINDOWS:
        feats.append(_safe_sqrt(_rolling_sum(jnp.square(r1), k) / k) / RETURN_SCALE)
    feats.append(
        jnp.log(close / _lag(close, MOMENTUM_WINDOW)) / (RETURN_SCALE * math.sqrt(MOMENTUM_WINDOW))
    )
    diff = close - _lag(close, 1)
    gains = _rolling_sum(jnp.maximum(diff, 0.0), RSI_WINDOW)
    losses = _rolling_sum(jnp.maximum(-diff, 0.0), RSI_WINDOW)
    feats.append(_safe_div(gains - losses, gains + losses))
    feats.append(_rolling_zscore(close, ZSCORE_WINDOW))
    if high is not None:
        high, low = jnp.asarray(high, jnp.float32), jnp.asarray(low, jnp.float32)
        feats.append(jnp.log(high / low) / RETURN_SCALE)
    if volume is not None:
        volume = jnp.asarray(volume, jnp.float32)
        feats.append(_rolling_zscore(jnp.log1p(volume), ZSCORE_WINDOW))
    out = jnp.stack(feats, axis=-1)
    defined = jnp.arange(out.shape[0]) >= warmup_days()
    out = jnp.where(defined.reshape((-1,) + (1,) * (out.ndim - 1)), out, 0.0)
    return out.astype(jnp.float32)


_stat_feature_array_jit = jax.jit(stat_feature_array)


def stat_features(open_, high, low, close, volume) -> tuple[jnp.ndarray, tuple[str, ...]]:
    """Causal statistical features of aligned ``[T, N]`` OHLCV arrays (NumPy or JAX).

    Returns ``(features [T, N, F] float32, names)``: ``STAT_FEATURE_NAMES`` for full OHLCV; pass
    None for absent ``high``/``low`` (both) or ``volume`` and their features are left out (see
    :func:`stat_feature_names`). See the module docstring for the definitions and scaling. Runs
    jitted (one compilation per input shape).
    """
    if (high is None) != (low is None):
        raise ValueError("stat_features: give both high and low, or neither")
    given = [a for a in (open_, high, low, close, volume) if a is not None]
    shapes = {tuple(jnp.shape(a)) for a in given}
    if len(shapes) != 1:
        raise ValueError(
            f"stat_features: open/high/low/close/volume shapes differ: {sorted(shapes)}"
        )
    (shape,) = shapes
    if len(shape) < 1:
        raise ValueError("stat_features: inputs need a leading time axis, got scalars")
    names = stat_feature_names(high is not None, volume is not None)
    return _stat_feature_array_jit(open_, high, low, close, volume), names


def market_stat_features(market) -> tuple[jnp.ndarray, tuple[str, ...]]:
    """``stat_features`` of a ``jaxport.data.MarketData``: ``([T, N, F] float32, names)``; on
    close-only data the range and volume features are left out (``market.has_ohlc`` /
    ``has_volume``)."""
    ohlc, vol = market.has_ohlc, market.has_volume
    return stat_features(
        market.open if ohlc else None,
        market.high if ohlc else None,
        market.low if ohlc else None,
        market.close,
        market.volume if vol else None,
    )
