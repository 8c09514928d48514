"""Synthetic daily OHLCV universes with realistic stylised facts and an optional planted signal.

Model (all returns are daily log returns, fractions per day; ``t`` indexes business days):

* Regime: a 2-state Markov chain (calm / stress; P(calm->stress) = 1 %, P(stress->calm) = 5 % per
  day). Stress lowers the market drift (-0.15 %/day vs +0.03 %/day) and doubles every volatility.
* Factor model: ``r[t, i] = mu_i + beta_i * (m_t + d(s_t)) + gamma_i * g_t + e[t, i] + planted[t, i]``
  with a market factor ``m`` (betas in [0.7, 1.3]), a style factor ``g`` (loadings ~ N(0, 0.5)) and
  idiosyncratic noise ``e``; symbols are therefore positively correlated through ``m``.
* Every source (``m``, ``g``, each ``e_i``) has GARCH(1,1) variance ``h`` in units of its base
  variance, ``h_t = (1 - a - b) + a z_{t-1}^2 h_{t-1} + b h_{t-1}`` (capped at 25), and
  unit-variance Student-t innovations ``z`` (``tail_df`` degrees of freedom): volatility clustering
  and fat tails.
* Planted signal: ``planted[t, i] = planted_signal * sign(r[t-1, i])`` (0 at ``t = 0``), so
  ``log(close[t+1] / close[t]) = base[t+1] + planted_signal * planted_predictor(close)[t]`` exactly,
  where ``planted_predictor`` is a pure function of closes up to ``t`` (see below). 0 disables it.
* Open = previous close times an overnight gap ``N(0, (0.3 sigma_t)^2)``; high/low extend
  ``max/min(open, close)`` by ``|N(0, (0.5 sigma_t)^2)|`` in log terms (so high >= max(open, close)
  and low <= min(open, close)), ``sigma_t`` the symbol's conditional daily volatility.
* Volume (shares, integers): log-normal around a per-symbol level, AR(1) in logs, rising with
  ``|r_t| / sigma_t`` and in the stress regime.

Deterministic given ``seed`` (a NumPy ``Generator``; all draws are made up front in a fixed order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from jaxport.data.errors import DataError
from jaxport.data.market import MarketData

_H_CAP = 25.0  # GARCH variance cap, in units of the base variance (vol <= 5x base)
_MAX_ABS_RETURN = 0.5  # clip on a single day's log return


def synthetic_symbols(num_symbols: int) -> tuple[str, ...]:
    """``SYN000, SYN001, ...``."""
    return tuple(f"SYN{i:03d}" for i in range(num_symbols))


def planted_predictor(close) -> np.ndarray:
    """The planted predictor at each row: ``sign(log(close[t] / close[t-1]))``, row 0 = 0.

    ``[T, N]`` float64 from ``[T, N]`` closes; row ``t`` uses closes up to ``t`` only and predicts the
    return from ``t`` to ``t+1`` (its planted part is ``planted_signal * predictor[t]``).
    """
    close = np.asarray(close, dtype=np.float64)
    out = np.zeros_like(close)
    out[1:] = np.sign(np.log(close[1:] / close[:-1]))
    return out


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise DataError(f"synthetic market: {message}")


def _check_arguments(
    num_symbols, num_days, planted_signal, tail_df, vols, garch_alpha, garch_beta
) -> None:
    """``DataError`` naming the first bad argument of :func:`generate_synthetic_market`."""
    _check(int(num_symbols) >= 1, f"num_symbols must be >= 1, got {num_symbols}")
    _check(int(num_days) >= 2, f"num_days must be >= 2, got {num_days}")
    _check(
        np.isfinite(planted_signal) and abs(planted_signal) < 0.1,
        f"planted_signal must be finite with |value| < 0.1 (a daily log return), got {planted_signal}",
    )
    _check(tail_df > 2, f"tail_df must be > 2 (finite variance), got {tail_df}")
    _check(
        garch_alpha >= 0 and garch_beta >= 0 and garch_alpha + garch_beta < 1,
        f"need garch_alpha, garch_beta >= 0 and alpha + beta < 1, got {garch_alpha}, {garch_beta}",
    )
    _check(min(vols) >= 0, "vols must be non-negative")


def _factor_returns(
    z, base, mu, beta, gamma, regime_drift, regime_mult, garch_alpha, garch_beta, planted_signal
):
    """``(returns [T, N], sigma [T, N])``: daily log returns of the factor model with GARCH(1,1)
    variances, and each symbol's conditional daily vol (fractions per day). ``z`` ``[T, N + 2]``
    holds the unit-variance innovations (market, style, idiosyncratic...), ``base`` ``[N + 2]``
    their base daily vols."""
    T, N = z.shape[0], z.shape[1] - 2
    a, b = garch_alpha, garch_beta
    h = np.ones(N + 2)
    returns = np.empty((T, N))
    sigma = np.empty((T, N))  # conditional daily vol of each symbol's return
    prev = np.zeros(N)
    for t in range(T):
        if t:
            h = np.minimum((1.0 - a - b) + (a * z[t - 1] ** 2 + b) * h, _H_CAP)
        sd = base * np.sqrt(h) * regime_mult[t]
        shock = sd * z[t]
        r = mu + beta * (shock[0] + regime_drift[t]) + gamma * shock[1] + shock[2:]
        if t:
            r = r + planted_signal * np.sign(prev)
        r = np.clip(r, -_MAX_ABS_RETURN, _MAX_ABS_RETURN)
        returns[t] = r
        sigma[t] = np.sqrt((beta * sd[0]) ** 2 + (gamma * sd[1]) ** 2 + sd[2:] ** 2)
        prev = r
    return returns, sigma


def _volume(log_volume0, vol_z, returns, sigma, stress) -> np.ndarray:
    """Daily volume ``[T, N]`` (integer shares): log-normal around ``log_volume0``, AR(1) in logs,
    rising with ``|r_t| / sigma_t`` and in the stress regime."""
    T, N = returns.shape
    surprise = np.abs(returns) / np.maximum(sigma, 1e-12) - np.sqrt(2.0 / np.pi)
    log_vol = np.empty((T, N))
    u = np.zeros(N)
    for t in range(T):
        u = 0.8 * u + 0.25 * vol_z[t]
        log_vol[t] = log_volume0 + u + 0.35 * surprise[t] + 0.3 * stress[t]
    return np.round(np.exp(log_vol))


def generate_synthetic_market(
    num_symbols: int = 8,
    num_days: int = 1500,
    seed: int = 0,
    *,
    start_date: str = "2015-01-02",
    planted_signal: float = 0.0,
    tail_df: float = 5.0,
    market_vol: float = 0.01,
    style_vol: float = 0.005,
    idio_vol: float = 0.012,
    garch_alpha: float = 0.08,
    garch_beta: float = 0.90,
    regime_switching: bool = True,
) -> MarketData:
    """A ``num_days`` x ``num_symbols`` business-day OHLCV universe (see the module docstring).

    ``planted_signal`` is in log-return units (fraction per day): e.g. 0.004 adds +/-0.4 % to each
    day's return according to the sign of the previous day's return. Vols are base daily standard
    deviations (fractions). Bad arguments raise ``DataError``.
    """
    _check_arguments(
        num_symbols,
        num_days,
        planted_signal,
        tail_df,
        (market_vol, style_vol, idio_vol),
        garch_alpha,
        garch_beta,
    )
    try:
        dates = pd.bdate_range(start=start_date, periods=int(num_days))
    except (ValueError, TypeError) as exc:
        raise DataError(f"synthetic market: bad start_date {start_date!r} ({exc})") from None
    N, T = int(num_symbols), int(num_days)
    rng = np.random.default_rng(seed)

    # per-symbol parameters
    beta = rng.uniform(0.7, 1.3, N)
    gamma = rng.normal(0.0, 0.5, N)
    idio_scale = idio_vol * rng.uniform(0.7, 1.4, N)
    mu = rng.normal(0.0002, 0.0002, N)
    price0 = np.exp(rng.uniform(np.log(20.0), np.log(300.0), N))
    log_volume0 = rng.uniform(np.log(1e6), np.log(5e7), N)

    # all innovations, drawn up front in a fixed order
    t_scale = np.sqrt((tail_df - 2.0) / tail_df)  # unit variance
    z = rng.standard_t(tail_df, size=(T, N + 2)) * t_scale  # columns: market, style, idio...
    regime_u = rng.uniform(size=T)
    gap_z = rng.normal(size=(T, N))
    hl_z = np.abs(rng.normal(size=(2, T, N)))
    vol_z = rng.normal(size=(T, N))

    # regime path
    stress = np.zeros(T, dtype=bool)
    if regime_switching:
        for t in range(1, T):
            stress[t] = regime_u[t] < (0.95 if stress[t - 1] else 0.01)
    regime_drift = np.where(stress, -0.0015, 0.0003)
    regime_mult = np.where(stress, 2.0, 1.0)

    base = np.concatenate([[market_vol, style_vol], idio_scale])  # [N + 2]
    returns, sigma = _factor_returns(
        z, base, mu, beta, gamma, regime_drift, regime_mult, garch_alpha, garch_beta, planted_signal
    )

    close = price0 * np.exp(np.cumsum(returns, axis=0))
    prev_close = np.vstack([price0[None], close[:-1]])
    open_ = prev_close * np.exp(0.3 * sigma * gap_z)
    high = np.maximum(open_, close) * np.exp(0.5 * sigma * hl_z[0])
    low = np.minimum(open_, close) * np.exp(-0.5 * sigma * hl_z[1])

    volume = _volume(log_volume0, vol_z, returns, sigma, stress)

    symbols = synthetic_symbols(N)
    return MarketData(
        symbols=symbols,
        dates=dates.to_numpy().astype("datetime64[D]"),
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
        rows_dropped={s: 0 for s in symbols},
    )


def write_synthetic_csvs(out_dir: str | Path, **kwargs) -> list[Path]:
    """Write ``generate_synthetic_market(**kwargs)`` as ``out_dir/SYM.csv`` files.

    Columns ``Date,Open,High,Low,Close,Volume`` (ISO dates, full-precision floats, integer volume);
    ``out_dir`` is created if needed and existing files of the same name are overwritten.
    """
    market = generate_synthetic_market(**kwargs)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    dates = pd.DatetimeIndex(market.dates).strftime("%Y-%m-%d")
    paths = []
    for i, sym in enumerate(market.symbols):
        frame = pd.DataFrame(
            {
                "Date": dates,
                "Open": market.open[:, i],
                "High": market.high[:, i],
                "Low": market.low[:, i],
                "Close": market.close[:, i],
                "Volume": market.volume[:, i].astype(np.int64),
            }
        )
        path = out / f"{sym}.csv"
        frame.to_csv(path, index=False)
        paths.append(path)
    return paths
