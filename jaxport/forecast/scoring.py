"""Out-of-sample evaluation of next-day close log-return forecasts against volatility baselines.

For every symbol and every origin day ``t`` whose next day ``t+1`` lies in the chosen split (default:
the chronological test split), the realised target is ``y = log(close[t+1] / close[t])`` and each
forecaster supplies a predictive distribution built from data up to day ``t`` only.  Metrics
(per symbol and pooled over all symbol-days; lower is better except ``directional_accuracy``):

* ``nll``  -- mean negative log-density of ``y`` (density of natural-log returns, so typically < 0);
* ``crps`` -- mean CRPS, closed forms for Student-T (Jordan et al. 2019) and Gaussian (log-return units);
* ``abs_return_mae`` -- mean |E|y_pred| - |y||: predicted expected absolute return vs realised;
* ``directional_accuracy`` -- fraction of days where the predicted direction (up iff the predictive
  median > 0, ties count as up) equals the realised one (up iff y > 0);
* ``mean_pred_std`` -- average predicted standard deviation, and ``n`` the number of symbol-days.

Baselines: ``rolling_gaussian`` -- zero-mean Gaussian with 20-day realised volatility
``sqrt(mean(r^2))`` over days ``t-19..t``; ``garch`` -- GARCH(1,1) with constant mean and Gaussian
innovations from the optional ``arch`` package, fitted per symbol on the train split's returns and
filtered forward causally with those fixed parameters over the evaluation days (``garch_t``: the same
with Student-t innovations).  Skipped with a note when ``arch`` is missing.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from jaxport.data.errors import DataError
from jaxport.data.market import MarketData
from jaxport.data.split import SplitBounds
from jaxport.forecast.distribution import (
    gaussian_crps,
    gaussian_expected_abs,
    gaussian_logpdf,
    student_t_crps,
    student_t_expected_abs,
    student_t_logpdf,
    student_t_std,
)


def close_log_returns(market: MarketData) -> np.ndarray:
    """``r[t] = log(close[t] / close[t-1])`` ``[T, N]`` (row 0 is 0)."""
    r = np.zeros_like(market.close)
    r[1:] = np.log(market.close[1:] / market.close[:-1])
    return r


def _metrics(y, loc, nll, crps, exp_abs, std) -> dict:
    up_pred = loc >= 0
    return {
        "n": int(y.size),
        "nll": float(np.mean(nll)),
        "crps": float(np.mean(crps)),
        "abs_return_mae": float(np.mean(np.abs(exp_abs - np.abs(y)))),
        "directional_accuracy": float(np.mean(up_pred == (y > 0))),
        "mean_pred_std": float(np.mean(std)),
    }


@jax.jit
def _t_terms(y, loc, scale, dof):
    return (
        -student_t_logpdf(y, loc, scale, dof),
        student_t_crps(y, loc, scale, dof),
        student_t_expected_abs(loc, scale, dof),
        student_t_std(scale, dof),
    )


@jax.jit
def _gauss_terms(y, loc, sigma):
    return (
        -gaussian_logpdf(y, loc, sigma),
        gaussian_crps(y, loc, sigma),
        gaussian_expected_abs(loc, sigma),
        sigma,
    )


def _score(y, loc, kind, **p) -> list:
    """Per-day arrays ``[D, N]``: y, loc, nll, crps, E|y_pred|, predicted std (float64 host copies)."""
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    y, loc = np.broadcast_arrays(np.asarray(y), np.asarray(loc))
    if kind == "t":
        terms = _t_terms(f32(y), f32(loc), f32(p["scale"]), f32(np.broadcast_to(p["dof"], y.shape)))
    else:
        terms = _gauss_terms(f32(y), f32(loc), f32(p["sigma"]))
    return [np.asarray(a, np.float64) for a in (y, loc, *terms)]


def _table(arrs, symbols) -> dict:
    y, loc, nll, crps, ea, std = arrs
    return {
        "pooled": _metrics(y, loc, nll, crps, ea, std),
        "per_symbol": {s: _metrics(*(a[:, i] for a in arrs)) for i, s in enumerate(symbols)},
    }


def rolling_gaussian_sigma(r: np.ndarray, window: int = 20) -> np.ndarray:
    """``sqrt(mean(r[t-window+1 .. t]^2))`` ``[T, N]`` (NaN before a full window)."""
    sq = np.concatenate([np.zeros((1,) + r.shape[1:]), np.cumsum(r * r, axis=0)], axis=0)
    out = np.full(r.shape, np.nan)
    t = np.arange(window, r.shape[0])
    out[t] = np.sqrt((sq[t + 1] - sq[t + 1 - window]) / window)
    return out


def garch_forecast(
    r: np.ndarray, fit_end: int, first_origin: int, last_origin: int, dist: str = "normal"
):
    """GARCH(1,1) one-step forecasts for origins ``first_origin..last_origin`` (day indices).

    Fitted on returns of days ``1 .. fit_end-1`` (the train split), then filtered with the fixed
    parameters over all later days (causal).  Returns ``(mu [D, N], sigma [D, N], nu [N] or None)``
    in log-return units.  Raises ImportError when ``arch`` is not installed.
    """
    from arch import arch_model

    D, N = last_origin - first_origin + 1, r.shape[1]
    mu = np.zeros((D, N))
    sig = np.zeros((D, N))
    nus = np.zeros(N) if dist == "t" else None
    for i in range(N):
        series = r[1:, i] * 100.0  # series index j is day j+1
        am = arch_model(series, mean="Constant", vol="GARCH", p=1, q=1, dist=dist, rescale=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = am.fit(last_obs=fit_end - 1, disp="off")
            fc = res.forecast(horizon=1, start=first_origin - 1, reindex=False)
        var = np.asarray(fc.variance)[:D, 0]
        mean = np.asarray(fc.mean)[:D, 0]
        mu[:, i] = mean / 100.0
        if dist == "t":
            nu = float(res.params["nu"])
            nus[i] = nu
            sig[:, i] = np.sqrt(var * (nu - 2) / nu) / 100.0  # Student-T scale with that variance
        else:
            sig[:, i] = np.sqrt(var) / 100.0
    return mu, sig, nus


def evaluate_forecaster(
    forecaster,
    market: MarketData,
    bounds: SplitBounds,
    *,
    split: str = "test",
    vol_window: int = 20,
    garch: bool = True,
) -> dict:
    """JSON-ready comparison of ``forecaster`` (a :class:`Forecaster`, or None for baselines only) with
    the baselines on next-day close log-returns of ``split``::

        {"split": {...}, "model": {"pooled": {...}, "per_symbol": {...}},
         "baselines": {"rolling_gaussian": {...}, "garch": {...}, "garch_t": {...}}, "notes": [...]}
    """
    a, b = bounds.ranges()[split]
    first = max(a - 1, vol_window, 1)
    if forecaster is not None:
        first = max(first, forecaster.config.context)
    last = b - 2
    if last < first:
        raise DataError(
            f"evaluate: split {split!r} has no origin day with enough history (rows {a}..{b - 1})"
        )
    r = close_log_returns(market)
    y = r[first + 1 : last + 2]  # [D, N]
    symbols = list(market.symbols)
    notes = []
    out = {
        "split": {
            "name": split,
            "first_target_date": str(market.dates[first + 1]),
            "last_target_date": str(market.dates[last + 1]),
            "num_days": int(y.shape[0]),
            "symbols": symbols,
            "target": "next-day close log-return log(close[t+1]/close[t])",
        }
    }
    if forecaster is not None:
        cfg = forecaster.config
        if "close" not in cfg.targets:
            raise DataError("evaluate: the forecaster does not predict the close column")
        k = cfg.targets.index("close")
        fc = forecaster.forecast_market(market, first_t=first)
        sl = slice(first, last + 1)
        out["model"] = _table(
            _score(
                y, fc.loc[sl, :, k, 0], "t", scale=fc.scale[sl, :, k, 0], dof=fc.dof[sl, :, k, 0]
            ),
            symbols,
        )
        out["model"]["num_params"] = forecaster.num_params
        out["model"]["mean_dof"] = float(np.mean(fc.dof[sl, :, k, 0]))
    baselines = {}
    sigma = rolling_gaussian_sigma(r, vol_window)[first : last + 1]
    baselines["rolling_gaussian"] = _table(
        _score(y, np.zeros_like(y), "gauss", sigma=np.maximum(sigma, 1e-6)), symbols
    )
    if garch:
        try:
            import arch  # noqa: F401
        except ImportError:
            notes.append("garch baseline skipped: the optional `arch` package is not installed")
        else:
            fit_end = bounds.train_end
            mu, sg, _ = garch_forecast(r, fit_end, first, last, "normal")
            baselines["garch"] = _table(_score(y, mu, "gauss", sigma=np.maximum(sg, 1e-6)), symbols)
            mu, sg, nus = garch_forecast(r, fit_end, first, last, "t")
            baselines["garch_t"] = _table(
                _score(y, mu, "t", scale=np.maximum(sg, 1e-6), dof=np.broadcast_to(nus, y.shape)),
                symbols,
            )
            baselines["garch_t"]["nu"] = {s: float(v) for s, v in zip(symbols, nus)}
    out["baselines"] = baselines
    out["notes"] = notes
    return out


def format_table(result: dict) -> str:
    """Plain-text pooled comparison table of an :func:`evaluate_forecaster` result."""
    rows = []
    if "model" in result:
        rows.append(("model", result["model"]["pooled"]))
    rows += [(k, v["pooled"]) for k, v in result["baselines"].items()]
    head = f"{'forecaster':<18}{'n':>7}{'NLL':>10}{'CRPS':>11}{'|r| MAE':>11}{'dir acc':>9}{'mean std':>10}"
    lines = [head, "-" * len(head)]
    for name, m in rows:
        lines.append(
            f"{name:<18}{m['n']:>7d}{m['nll']:>10.4f}{m['crps']:>11.6f}{m['abs_return_mae']:>11.6f}"
            f"{m['directional_accuracy']:>9.3f}{m['mean_pred_std']:>10.5f}"
        )
    return "\n".join(lines)
