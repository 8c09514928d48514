"""``Forecaster``: a trained model (config + params) with jitted prediction over windows or a market."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxport.data.errors import DataError
from jaxport.data.market import MarketData
from jaxport.forecast.checkpoint import load_forecaster, save_forecaster
from jaxport.forecast.config import ForecasterConfig
from jaxport.forecast.distribution import student_t_std
from jaxport.forecast.model import count_params, init_params, predict_distribution
from jaxport.forecast.windows import (
    SeriesArrays,
    check_market_columns,
    gather_windows,
    series_arrays,
    window_index,
)


@functools.partial(jax.jit, static_argnums=(1,))
def _predict(params, config, windows):
    return predict_distribution(params, config, windows)


@functools.partial(jax.jit, static_argnames=("config",))
def _predict_index(params, series: SeriesArrays, index, *, config):
    x_raw, _ = gather_windows(series, index, config)
    return predict_distribution(params, config, x_raw)


@dataclasses.dataclass(frozen=True)
class MarketForecast:
    """Per-day predictive Student-T of ``log(col[t+h] / close[t])`` for every symbol.

    loc, scale, dof: ``[T, N, K, H]`` float32 (K = config.targets, H = horizon); rows ``t < valid_from``
    (not enough history) are 0 (dof 0).  mean = loc; std = scale * sqrt(dof / (dof - 2)).
    """

    loc: np.ndarray
    scale: np.ndarray
    dof: np.ndarray
    targets: tuple
    valid_from: int

    @property
    def mean(self) -> np.ndarray:
        return self.loc

    @property
    def std(self) -> np.ndarray:
        valid = self.dof > 2
        return np.where(
            valid, np.asarray(student_t_std(self.scale, np.where(valid, self.dof, 3.0))), 0.0
        )


@dataclasses.dataclass(frozen=True)
class Forecaster:
    """A trained forecaster: static ``config`` + ``params`` (+ JSON-able ``extra`` metadata)."""

    config: ForecasterConfig
    params: dict
    extra: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def init(cls, config: ForecasterConfig, seed: int = 0) -> "Forecaster":
        """Untrained model (for tests and as the starting point of training)."""
        return cls(config, init_params(config, jax.random.PRNGKey(seed)))

    @property
    def num_params(self) -> int:
        return count_params(self.params)

    def predict(self, windows) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
        """Raw windows ``[B, context, 6]`` (channels of :func:`jaxport.forecast.windows.day_channels`)
        -> Student-T ``(loc, scale, dof)`` ``[B, K, H]`` of ``log(col[t+h] / close[t])`` (jitted)."""
        windows = jnp.asarray(windows, jnp.float32)
        if windows.ndim != 3 or windows.shape[1:] != (
            self.config.context,
            self.config.num_channels,
        ):
            raise DataError(
                f"forecaster predict: windows must be [B, {self.config.context}, {self.config.num_channels}], "
                f"got {tuple(windows.shape)}"
            )
        return _predict(self.params, self.config, windows)

    def forecast_market(
        self, market: MarketData, *, chunk: int = 4096, first_t: int | None = None
    ) -> MarketForecast:
        """Predict for every symbol and every day ``t >= max(context, first_t)`` (causal: the window of
        day t ends at t).  Batched over fixed-size chunks of windows (one compilation)."""
        cfg = self.config
        T, N = market.num_days, market.num_symbols
        start = max(cfg.context, first_t or 0)
        K, H = cfg.num_targets, cfg.horizon
        out = [np.zeros((N, T, K, H), np.float32) for _ in range(3)]
        check_market_columns(cfg, market)
        if start <= T - 1:
            series = series_arrays(market, cfg.horizon)
            index = window_index(N, start, T - 1)
            M = index.shape[0]  # chunks are padded to ``chunk`` windows: one compiled program
            for a in range(0, M, chunk):
                part = index[a : a + chunk]
                n = part.shape[0]
                if n < chunk:
                    part = np.concatenate([part, np.repeat(part[-1:], chunk - n, axis=0)])
                res = _predict_index(self.params, series, jnp.asarray(part), config=cfg)
                sym, t = index[a : a + n, 0], index[a : a + n, 1]
                for dst, src in zip(out, res):
                    dst[sym, t] = np.asarray(src)[:n]
        loc, scale, dof = (np.transpose(o, (1, 0, 2, 3)) for o in out)
        return MarketForecast(loc=loc, scale=scale, dof=dof, targets=cfg.targets, valid_from=start)

    def save(self, path, extra: dict | None = None):
        """Orbax checkpoint (see :func:`jaxport.forecast.checkpoint.save_forecaster`)."""
        return save_forecaster(path, self.params, self.config, {**self.extra, **(extra or {})})

    @classmethod
    def load(cls, path) -> "Forecaster":
        params, config, extra = load_forecaster(path)
        return cls(config, params, extra)
