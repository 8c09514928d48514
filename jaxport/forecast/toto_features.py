"""Forecast features for the environment (the original's "Toto features", same column names).

For every symbol and day ``t``, each target column ``col`` and step ``h = 1..horizon``:

* ``{col}_toto_mean_t+{h}`` -- predicted mean of ``log(col[t+h] / close[t])``;
* ``{col}_toto_std_t+{h}``  -- its predicted standard deviation;

laid out per column as the original did (the ``horizon`` means, then the ``horizon`` stds),
followed by

* ``close_toto_residual`` --
  ``(log(close[t]/close[t-1]) - mean_close_{t-1}^{t+1}) / std_close_{t-1}^{t+1}``: today's close
  log-return against yesterday's one-step forecast, in forecast standard deviations.

Differences from the original (documented on purpose):

* Units: everything is a natural-log return relative to *today's close* (scale-free across symbols
  and time), whereas the original emitted raw price-level forecasts and z-scored them afterwards;
  the residual is standardised by the forecast std instead of being a raw price difference.
* Names carry no symbol prefix (the array is ``[T, N, F]``, the symbol is the N axis).
* Statistical fallback (``model=None``): with ``x_i = log(col[i] / close[i-1])`` over the last
  ``sequence_length`` days *including day t*, ``mean_t+h = mean(x) * h`` and
  ``std_t+h = sqrt(h) * (std(x) + 1e-6)`` (population std, ddof=0, as ``np.std``).  The original
  used the column's own log-difference and a window ending at ``t-1``; here the window ends at ``t``
  (data up to day t's close, still causal) and uses the same "vs previous close" returns as the
  model.

Moments: ``moments="std"`` keeps only the ``_toto_std_`` columns and the residual (the
``_toto_mean_`` columns are dropped; the names of the kept columns do not change).  Out of sample
the forecast means carry no measurable signal while the stds do
(benchmarks/results/forecast_feature_oos.json).

Causality: the value at row ``t`` depends on data up to and including day ``t``'s close only.  Rows
before ``valid_from`` (warm-up: not enough history for a full window plus one day for the residual)
are 0.  ``valid_from`` is ``sequence_length + 1`` for the fallback and ``context + 1`` for a model
(with ``append_stat``, at least the stat block's ``warmup_days()``); see :func:`feature_valid_from`.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxport.data.errors import DataError
from jaxport.data.market import MarketData
from jaxport.forecast.config import TARGET_COLUMNS

STD_EPS = 1e-6
#: Which forecast moments become feature columns: ``mean+std`` (all) or ``std`` (no mean columns).
MOMENTS = ("mean+std", "std")


@dataclasses.dataclass(frozen=True)
class ForecastFeatures:
    """values ``[T, N, F]`` float32, names (F), valid_from (first fully valid row), source."""

    values: np.ndarray
    names: tuple
    valid_from: int
    source: str  # "statistical" | "forecaster"


def _check_moments(moments: str) -> None:
    if moments not in MOMENTS:
        raise DataError(f"toto features: moments {moments!r} unknown; expected one of {MOMENTS}")


def feature_names(
    targets: Sequence[str] = TARGET_COLUMNS, horizon: int = 8, moments: str = "mean+std"
) -> tuple:
    """Column names in output order (see module doc)."""
    _check_moments(moments)
    names = []
    for col in targets:
        if moments == "mean+std":
            names += [f"{col}_toto_mean_t+{h}" for h in range(1, horizon + 1)]
        names += [f"{col}_toto_std_t+{h}" for h in range(1, horizon + 1)]
    return tuple(names) + ("close_toto_residual",)


def _vs_prev_close(market: MarketData, col: str) -> np.ndarray:
    prev = np.concatenate([market.close[:1], market.close[:-1]], axis=0)
    x = np.log(market.field(col) / prev)
    x[0] = 0.0
    return x


@functools.partial(jax.jit, static_argnames=("length",))
def _rolling_mean_std(x, ends, *, length):
    """Mean and population std over days ``ends-length+1 .. ends`` of ``x [T, ...]``
    -> ``[c, ...]``."""
    idx = ends[:, None] - length + 1 + jnp.arange(length)[None, :]
    w = x[jnp.clip(idx, 0, x.shape[0] - 1)]
    m = jnp.mean(w, axis=1)
    sd = jnp.sqrt(jnp.mean((w - m[:, None]) ** 2, axis=1))
    return m, sd


def statistical_forecast(
    market: MarketData,
    *,
    targets: Sequence[str] = TARGET_COLUMNS,
    horizon: int = 8,
    sequence_length: int = 60,
    chunk: int = 512,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Rolling-statistics forecast: ``(mean, std)`` ``[T, N, K, H]`` and the first valid row.

    Rows ``t >= sequence_length`` use the ``sequence_length`` returns of days ``t-L+1 .. t``.
    """
    L = int(sequence_length)
    if L < 2:
        raise DataError(f"toto features: sequence_length={L} must be >= 2")
    T, N = market.num_days, market.num_symbols
    K = len(targets)
    x = np.stack([_vs_prev_close(market, c) for c in targets], axis=-1)  # [T, N, K]
    mean = np.zeros((T, N, K), np.float32)
    std = np.zeros((T, N, K), np.float32)
    if L <= T - 1:
        ends = np.arange(L, T)
        xj = jnp.asarray(x, jnp.float32)
        c = int(min(chunk, ends.size))
        for a in range(0, ends.size, c):
            part = ends[a : a + c]
            n = part.size
            padded = np.concatenate([part, np.full(c - n, part[-1])]) if n < c else part
            m, s = _rolling_mean_std(xj, jnp.asarray(padded, jnp.int32), length=L)
            mean[part], std[part] = np.asarray(m)[:n], np.asarray(s)[:n]
    h = np.arange(1, horizon + 1, dtype=np.float32)
    valid = (np.arange(T) >= L)[:, None, None, None]
    mean_h = np.where(valid, mean[..., None] * h, 0.0).astype(np.float32)
    std_h = np.where(valid, np.sqrt(h) * (std[..., None] + STD_EPS), 0.0).astype(np.float32)
    return mean_h, std_h, L


def _as_model(model):
    from jaxport.forecast.forecaster import Forecaster

    if isinstance(model, (str, Path)):
        return Forecaster.load(model)
    return model


def _model_forecast(model, market, targets, horizon):
    """(mean, std) [T, N, K+close?, H] for ``targets`` plus close, and the first valid row."""
    from jaxport.forecast.forecaster import Forecaster

    if isinstance(model, Forecaster):
        cfg = model.config
        need = list(dict.fromkeys(list(targets) + ["close"]))
        missing = [c for c in need if c not in cfg.targets]
        if missing:
            raise DataError(
                f"toto features: the forecaster does not predict {missing}; "
                f"it predicts {list(cfg.targets)}"
            )
        if horizon > cfg.horizon:
            raise DataError(
                f"toto features: horizon={horizon} exceeds the forecaster's horizon {cfg.horizon}"
            )
        fc = model.forecast_market(market)
        pick = [cfg.targets.index(c) for c in need]
        return (
            fc.mean[:, :, pick, :horizon],
            fc.std[:, :, pick, :horizon],
            fc.valid_from,
            "forecaster",
        )
    raise DataError(
        f"toto features: unsupported model object {type(model).__name__}; "
        "pass a Forecaster, a checkpoint path or None"
    )


def compute_features(
    model,
    market: MarketData,
    *,
    targets: Sequence[str] = TARGET_COLUMNS,
    horizon: int = 8,
    sequence_length: int = 60,
    append_stat: bool = False,
    moments: str = "mean+std",
) -> ForecastFeatures:
    """Forecast features with their warm-up boundary (see module doc; :func:`features` is the
    tuple form).

    model: None (statistical fallback), a :class:`~jaxport.forecast.forecaster.Forecaster`, a
    checkpoint directory.
    ``sequence_length`` applies to the fallback only; a model uses its own context.
    moments: ``mean+std`` (every column) or ``std`` (no ``_toto_mean_`` columns); see
    :data:`MOMENTS`.
    """
    _check_moments(moments)
    targets = tuple(str(t).lower() for t in targets)
    bad = [t for t in targets if t not in TARGET_COLUMNS]
    if bad or not targets:
        raise DataError(
            f"toto features: targets {list(targets)} must be non-empty names from "
            f"{list(TARGET_COLUMNS)}"
        )
    if horizon < 1:
        raise DataError(f"toto features: horizon={horizon} must be >= 1")
    market.require(targets, f"toto features: targets {','.join(targets)}")  # close-only data
    need = list(dict.fromkeys(list(targets) + ["close"]))
    model = _as_model(model)
    if model is None:
        mean, std, first, source = (
            *statistical_forecast(
                market, targets=need, horizon=horizon, sequence_length=sequence_length
            ),
            "statistical",
        )
    else:
        mean, std, first, source = _model_forecast(model, market, targets, horizon)
    T, N = market.num_days, market.num_symbols
    K = len(targets)
    if moments == "mean+std":  # [T, N, K, 2H]: means then stds
        blocks = np.concatenate([mean[:, :, :K], std[:, :, :K]], axis=-1)
    else:  # [T, N, K, H]: stds only
        blocks = np.asarray(std[:, :, :K])
    close_k = need.index("close")
    r = _vs_prev_close(market, "close")
    prev_mean = np.concatenate([np.zeros((1, N)), mean[:-1, :, close_k, 0]], axis=0)
    prev_std = np.concatenate([np.ones((1, N)), std[:-1, :, close_k, 0]], axis=0)
    residual = (r - prev_mean) / np.where(prev_std > 0, prev_std, 1.0)
    values = np.concatenate([blocks.reshape(T, N, -1), residual[..., None]], axis=-1)
    valid_from = min(first + 1, T)
    values[:valid_from] = 0.0
    values = values.astype(np.float32)
    names = feature_names(targets, horizon, moments)
    if append_stat:
        try:
            from jaxport.features import stat as stat_module
        except ImportError as exc:
            raise DataError(
                f"toto features: append_stat needs jaxport.features.stat ({exc})"
            ) from None
        stat, stat_names = stat_module.market_stat_features(market)
        warmup = getattr(stat_module, "warmup_days", None)
        if callable(warmup):  # the stat block's own warm-up rows are zeros too
            valid_from = min(max(valid_from, int(warmup())), T)
        stat = np.asarray(stat, np.float32)
        if stat.shape[:2] != (T, N) or stat.shape[2] != len(stat_names):
            raise DataError(
                f"toto features: stat features have shape {stat.shape} for {len(stat_names)} names"
            )
        values = np.concatenate([values, stat], axis=-1)
        names = names + tuple(stat_names)
        source += "+stat"
    if not np.all(np.isfinite(values)):
        raise DataError("toto features: non-finite feature values (check prices and volumes)")
    return ForecastFeatures(values=values, names=names, valid_from=int(valid_from), source=source)


def features(model, market: MarketData, **settings) -> tuple[np.ndarray, tuple]:
    """``([T, N, F] float32, names)`` forecast features; rows before
    ``feature_valid_from(model, sequence_length)`` are 0. ``settings``: the keyword settings of
    :func:`compute_features` (targets, horizon, sequence_length, append_stat, moments)."""
    out = compute_features(model, market, **settings)
    return out.values, out.names


def feature_valid_from(model, *, sequence_length: int = 60, append_stat: bool = False) -> int:
    """First row of :func:`features` that is fully computed (earlier rows are warm-up zeros)."""
    model = _as_model(model)
    if model is None:
        first = int(sequence_length) + 1
    elif getattr(model, "config", None) is not None:
        first = int(model.config.context) + 1
    else:
        first = int(model.context) + 1
    if append_stat:
        from jaxport.features import stat as stat_module

        warmup = getattr(stat_module, "warmup_days", None)
        if callable(warmup):
            first = max(first, int(warmup()))
    return first
