"""Model inputs: per-day channels, window gathering, per-window instance normalisation, targets.

Per symbol and day ``i`` the raw (unnormalised) channels are, in this order (``INPUT_CHANNELS``)::

    r_close = log(close[i] / close[i-1])      r_open = log(open[i] / close[i-1])
    r_high  = log(high[i]  / close[i-1])      r_low  = log(low[i]  / close[i-1])
    abs_r_close = |r_close|                    log_volume = log1p(volume[i])

(all log-returns in natural-log units; day 0 has no previous close, its channels are 0).  On
close-only data (``MarketData.has_ohlc`` / ``has_volume`` false) the channels of absent columns
(``r_open, r_high, r_low``; ``log_volume``) are 0 on every day, so the model's inputs carry only
what the data has (a constant channel adds no information and normalises to 0), and only targets
the data has can be trained or forecast (:func:`check_market_columns`).  A window
ending at day ``t`` holds days ``t-context+1 .. t`` and is usable when ``t >= context`` (so day 0 is
never inside).  Targets of that window, for each target column and ``h = 1..horizon``, are
``log(col[t+h] / close[t])`` = the sum of close log-returns ``t+1 .. t+h-1`` plus ``r_col[t+h]``.

Instance normalisation (scale-free across symbols, as Toto/Chronos do): the window scale is
``s = sqrt(mean(r_close**2) + scale_eps**2)`` over the window (a 'context'-day RMS volatility, per-day
log-return units); the five return channels and the targets are divided by ``s``; the log-volume
channel is z-scored within the window.  Nothing is fitted globally, so checkpoints carry no
normalisation statistics beyond these settings.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxport.data.errors import DataError
from jaxport.data.market import MarketData
from jaxport.forecast.config import TARGET_COLUMNS, ForecasterConfig

_TARGET_CHANNEL = {
    name: i for i, name in enumerate(TARGET_COLUMNS)
}  # close 0, open 1, high 2, low 3


def symbol_indices(market: MarketData, symbols, context: str) -> list[int]:
    """Column indices of ``symbols`` (names or indices) in ``market``; ``DataError`` prefixed with
    ``context`` for a name that is not loaded."""
    out = []
    for s in symbols:
        if isinstance(s, (int, np.integer)):
            out.append(int(s))
        elif s in market.symbols:
            out.append(market.symbols.index(s))
        else:
            raise DataError(
                f"{context}: symbol {s!r} not loaded; loaded: {', '.join(market.symbols)}"
            )
    return out


def day_channels(open_, high, low, close, volume) -> np.ndarray:
    """Raw per-day channels ``[T, N, 6]`` float64 from ``[T, N]`` OHLCV arrays (see module doc).

    ``open_``, ``high``, ``low`` or ``volume`` may be None (absent): their channel is then 0.
    """
    close = np.asarray(close, dtype=np.float64)
    if close.ndim != 2:
        raise DataError(f"forecast inputs: close must be [T, N], got shape {close.shape}")
    prev = np.concatenate([close[:1], close[:-1]], axis=0)
    out = np.zeros(close.shape + (6,), dtype=np.float64)
    for k, arr in enumerate((close, open_, high, low)):
        if arr is not None:
            out[..., k] = np.log(np.asarray(arr, dtype=np.float64) / prev)
    out[0, :, :4] = 0.0
    out[..., 4] = np.abs(out[..., 0])
    if volume is not None:
        out[..., 5] = np.log1p(np.maximum(np.asarray(volume, dtype=np.float64), 0.0))
    if not np.all(np.isfinite(out)):
        raise DataError("forecast inputs: non-finite log-returns (non-positive prices?)")
    return out


@struct.dataclass
class SeriesArrays:
    """Device arrays for window gathering.

    days: ``[N, T + horizon, 6]`` float32 raw channels, zero-padded with ``horizon`` rows at the end so
    every window's target slice is in bounds.  num_days: T (static).
    """

    days: jnp.ndarray
    num_days: int = struct.field(pytree_node=False)
    horizon: int = struct.field(pytree_node=False)


def check_market_columns(config: ForecasterConfig, market: MarketData) -> None:
    """One-line ``DataError`` when ``config.targets`` name a column that ``market`` lacks."""
    market.require(config.targets, f"forecaster targets {','.join(config.targets)}")


def market_channels(market: MarketData) -> np.ndarray:
    """:func:`day_channels` of ``market``, with absent columns' channels 0 (see module doc)."""
    ohlc = market.has_ohlc
    return day_channels(
        market.open if ohlc else None,
        market.high if ohlc else None,
        market.low if ohlc else None,
        market.close,
        market.volume if market.has_volume else None,
    )


def series_arrays(market: MarketData, horizon: int) -> SeriesArrays:
    """Channels of ``market`` laid out symbol-major and padded for targets up to ``horizon``."""
    ch = market_channels(market)
    days = np.transpose(ch, (1, 0, 2))
    days = np.concatenate([days, np.zeros((days.shape[0], horizon, 6))], axis=1)
    return SeriesArrays(
        days=jnp.asarray(days, dtype=jnp.float32), num_days=market.num_days, horizon=horizon
    )


def normalise_window(x: jnp.ndarray, config: ForecasterConfig) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``x [..., C, 6]`` raw channels -> (normalised ``[..., C, 6]``, scale ``s [...]``).

    The scale is in per-day log-return units; the volume channel is z-scored within the window.
    """
    rc = x[..., 0]
    s = jnp.sqrt(jnp.mean(rc * rc, axis=-1) + config.scale_eps**2)
    rets = x[..., :5] / s[..., None, None]
    lv = x[..., 5]
    lv = (lv - jnp.mean(lv, axis=-1, keepdims=True)) / jnp.sqrt(
        jnp.var(lv, axis=-1, keepdims=True) + 1e-6
    )
    out = jnp.concatenate([rets, lv[..., None]], axis=-1)
    return jnp.clip(out, -config.input_clip, config.input_clip), s


def target_channels(config: ForecasterConfig) -> tuple[int, ...]:
    return tuple(_TARGET_CHANNEL[t] for t in config.targets)


def future_targets(future: jnp.ndarray, config: ForecasterConfig) -> jnp.ndarray:
    """``future [..., H, 6]`` raw channels of days ``t+1..t+H`` -> targets ``[..., K, H]``.

    ``targets[k, h-1] = log(col_k[t+h] / close[t])`` in log-return units.
    """
    rc = future[..., 0]
    carried = jnp.cumsum(rc, axis=-1) - rc  # sum of close returns t+1 .. t+h-1
    cols = [carried + future[..., c] for c in target_channels(config)]
    return jnp.stack(cols, axis=-2)


def gather_windows(series: SeriesArrays, index: jnp.ndarray, config: ForecasterConfig):
    """Windows for ``index [B, 2]`` = (symbol, end day t).

    Returns raw inputs ``[B, C, 6]`` and raw targets ``[B, K, horizon]`` (log-return units; targets past
    the last day are 0 and must be masked by the caller).
    """
    C, H = config.context, config.horizon
    if H > series.horizon:
        raise DataError(
            f"forecaster horizon {H} exceeds the padded series horizon {series.horizon}"
        )

    def one(sym_t):
        sym, t = sym_t[0], sym_t[1]
        row = series.days[sym]
        x = jax.lax.dynamic_slice(row, (t - C + 1, 0), (C, 6))
        fut = jax.lax.dynamic_slice(row, (t + 1, 0), (H, 6))
        return x, future_targets(fut, config)

    return jax.vmap(one)(index)


def window_index(num_symbols: int, first_t: int, last_t: int, symbols=None) -> np.ndarray:
    """All (symbol, t) pairs with ``first_t <= t <= last_t`` as int32 ``[M, 2]`` (symbol-major)."""
    syms = np.arange(num_symbols) if symbols is None else np.asarray(list(symbols), dtype=np.int64)
    ts = np.arange(first_t, last_t + 1)
    if ts.size == 0 or syms.size == 0:
        return np.zeros((0, 2), dtype=np.int32)
    grid = np.stack(np.meshgrid(syms, ts, indexing="ij"), axis=-1).reshape(-1, 2)
    return grid.astype(np.int32)


def split_window_range(split: str, bounds, config: ForecasterConfig) -> tuple[int, int]:
    """Inclusive range of window end days ``t`` whose targets (``t+1 .. t+horizon``) lie in ``split``.

    ``bounds`` is a :class:`jaxport.data.SplitBounds`; the context may reach back into earlier splits
    (that is past data, not leakage).
    """
    C, H = config.context, config.horizon
    a, b = bounds.ranges()[split]
    return max(C, a - 1), b - 1 - H
