"""Skill-vs-luck statistics from daily return series (host-side NumPy, float64).

Conventions (the same as :func:`jaxport.eval.metrics_from_equity` and ``empyrical``):
returns are simple per-period FRACTIONS (0.01 = 1 %); the Sharpe ratio is ``mean(r) / std(r,
ddof=1)`` with a zero risk-free rate, annualised by ``sqrt(periods_per_year)``, and 0.0 when the
standard deviation is zero. The probabilistic and deflated Sharpe ratios are probabilities in
[0, 1].

Fold-aware inputs: where a function takes ``returns`` it also accepts a sequence of 1-D arrays (one
per walk-forward fold); they are pooled (concatenated) for point estimates, and the bootstrap
resamples days within each fold so no block straddles two folds.

References: Politis & Romano (1994), the stationary bootstrap; Bailey & López de Prado (2012), "The
Sharpe ratio efficient frontier" (PSR); Bailey & López de Prado (2014), "The deflated Sharpe
ratio" (DSR).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, Sequence

import numpy as np

from jaxport.data import DataError

EULER_MASCHERONI = 0.5772156649015329
_NEGLIGIBLE = 1e-12  # a per-period std below this is float noise: Sharpe 0 (as metrics_from_equity)
_NORMAL = NormalDist()


def _folds(returns, name: str) -> list[np.ndarray]:
    """``returns`` as a list of 1-D float64 arrays (one per fold), checked finite and non-empty."""
    if isinstance(returns, np.ndarray) and returns.ndim == 1:
        parts = [returns]
    elif isinstance(returns, (list, tuple)) and returns and np.ndim(returns[0]) == 1:
        parts = list(returns)
    else:
        parts = [np.asarray(returns)]
    out = []
    for p in parts:
        a = np.asarray(p, dtype=np.float64)
        if a.ndim != 1 or a.size < 1 or not np.all(np.isfinite(a)):
            raise DataError(f"{name} must be non-empty 1-D arrays of finite returns")
        out.append(a)
    return out


def returns_from_equity(equity_curve) -> np.ndarray:
    """Per-period simple returns ``E_t / E_{t-1} - 1`` of an equity curve ``[n + 1]`` -> ``[n]``."""
    eq = np.asarray(equity_curve, dtype=np.float64).reshape(-1)
    if eq.size < 2 or not np.all(np.isfinite(eq)) or np.any(eq <= 0):
        raise DataError("equity_curve must hold >= 2 finite positive values")
    return eq[1:] / eq[:-1] - 1.0


def _sharpe_rows(r: np.ndarray) -> np.ndarray:
    """Per-period Sharpe of each row of ``r [..., n]`` (ddof=1; 0 where the std is ~0)."""
    n = r.shape[-1]
    if n < 2:
        return np.zeros(r.shape[:-1])
    mean = r.mean(axis=-1)
    std = r.std(axis=-1, ddof=1)
    ok = std > _NEGLIGIBLE
    return np.where(ok, mean / np.where(ok, std, 1.0), 0.0)


def sharpe_ratio(returns, periods_per_year: float = 252.0) -> float:
    """Sharpe ratio ``mean / std(ddof=1) * sqrt(periods_per_year)`` (risk-free 0; 0.0 if std 0).

    ``periods_per_year=1`` gives the per-period Sharpe used by the PSR and DSR.
    """
    r = np.concatenate(_folds(returns, "returns"))
    return float(_sharpe_rows(r) * math.sqrt(periods_per_year))


def _stationary_indices(rng: np.random.Generator, n: int, n_boot: int, block: float) -> np.ndarray:
    """``[n_boot, n]`` stationary-bootstrap day indices (geometric blocks of mean ``block``,
    circular within ``[0, n)``)."""
    starts = rng.integers(0, n, size=(n_boot, n))
    new = rng.random((n_boot, n)) < 1.0 / block
    new[:, 0] = True
    pos = np.arange(n)
    last = np.maximum.accumulate(np.where(new, pos, 0), axis=1)  # where the current block began
    first = np.take_along_axis(starts, last, axis=1)
    return (first + (pos - last)) % n


def _moving_block_indices(rng: np.random.Generator, n: int, n_boot: int, block: int) -> np.ndarray:
    """``[n_boot, n]`` circular moving-block bootstrap indices (fixed blocks of ``block`` days)."""
    num_blocks = -(-n // block)
    starts = rng.integers(0, n, size=(n_boot, num_blocks))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]) % n
    return idx.reshape(n_boot, -1)[:, :n]


def sharpe_gap_bootstrap(
    returns_a,
    returns_b,
    *,
    block: int = 20,
    n_boot: int = 2000,
    seed: int = 0,
    periods_per_year: float = 252.0,
    method: str = "stationary",
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Paired block bootstrap of the annualised Sharpe gap ``SR(a) - SR(b)`` over days.

    ``returns_a`` and ``returns_b`` are daily returns on the same days (1-D arrays, or per-fold
    sequences of equal lengths). Each replicate draws one set of day indices (stationary bootstrap
    with mean block ``block``, or circular moving blocks of ``block`` days with
    ``method="moving"``), within each fold, and applies it to both series, so their correlation is
    kept. Returns ``{"mean": gap on the observed days, "ci95": [lo, hi] percentile interval,
    "boot_mean", "boot_std", "p_gap_le_0": share of replicates with gap <= 0, "n_boot", "block",
    "num_days"}`` (Sharpe units, annualised). ``ci95`` holds the ``confidence`` interval (0.95 by
    default).
    """
    folds_a = _folds(returns_a, "returns_a")
    folds_b = _folds(returns_b, "returns_b")
    if [f.size for f in folds_a] != [f.size for f in folds_b]:
        raise DataError("returns_a and returns_b must cover the same days (equal fold lengths)")
    if block < 1 or n_boot < 1:
        raise DataError(f"block and n_boot must be >= 1, got {block} and {n_boot}")
    if method not in ("stationary", "moving"):
        raise DataError(f"method must be 'stationary' or 'moving', got {method!r}")
    if not 0.0 < confidence < 1.0:
        raise DataError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    scale = math.sqrt(periods_per_year)
    a = np.concatenate(folds_a)
    b = np.concatenate(folds_b)
    gap = float((_sharpe_rows(a) - _sharpe_rows(b)) * scale)
    idx_parts, offset = [], 0
    for f in folds_a:
        n = f.size
        if method == "stationary":
            idx = _stationary_indices(rng, n, n_boot, float(block))
        else:
            idx = _moving_block_indices(rng, n, n_boot, min(int(block), n))
        idx_parts.append(idx + offset)
        offset += n
    idx = np.concatenate(idx_parts, axis=1)
    gaps = (_sharpe_rows(a[idx]) - _sharpe_rows(b[idx])) * scale
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(gaps, [tail, 1.0 - tail])
    return {
        "mean": gap,
        "ci95": [float(lo), float(hi)],
        "boot_mean": float(np.mean(gaps)),
        "boot_std": float(np.std(gaps, ddof=1)) if n_boot > 1 else 0.0,
        "p_gap_le_0": float(np.mean(gaps <= 0.0)),
        "n_boot": int(n_boot),
        "block": int(block),
        "num_days": int(a.size),
    }


def _moments(r: np.ndarray) -> tuple[float, float, float]:
    """(per-period Sharpe with ddof=1, skewness, kurtosis) of ``r``; the skewness and (non-excess,
    normal = 3) kurtosis are the population moment ratios ``m3 / m2^1.5`` and ``m4 / m2^2``."""
    sr = float(_sharpe_rows(r))
    d = r - r.mean()
    m2 = float(np.mean(d**2))
    if m2 <= _NEGLIGIBLE**2:
        return sr, 0.0, 3.0
    return sr, float(np.mean(d**3) / m2**1.5), float(np.mean(d**4) / m2**2)


def psr_from_moments(
    sr: float, sr_benchmark: float, num_obs: int, skew: float, kurtosis: float
) -> float:
    """Bailey & López de Prado (2012) PSR from its ingredients (per-period Sharpes, kurtosis
    non-excess): ``Phi((sr - sr*) sqrt(n - 1) / sqrt(1 - skew sr + (kurtosis - 1) / 4 sr^2))``."""
    if num_obs < 2:
        return 0.5 if sr == sr_benchmark else float(sr > sr_benchmark)
    var = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if (
        var <= 0.0
    ):  # extreme moments make the asymptotic variance meaningless: a coin flip either way
        var = _NEGLIGIBLE
    z = (sr - sr_benchmark) * math.sqrt(num_obs - 1) / math.sqrt(var)
    return float(_NORMAL.cdf(z))


def probabilistic_sharpe_ratio(
    returns, sr_benchmark: float = 0.0, *, periods_per_year: float = 1.0
) -> float:
    """Probability that the true Sharpe of ``returns`` exceeds ``sr_benchmark`` (PSR, Bailey &
    López de Prado 2012), using the sample skewness and kurtosis.

    ``sr_benchmark`` is in the units of ``periods_per_year``: with the default 1.0 it is a
    per-period Sharpe; with 252 it is an annualised Sharpe (divided by sqrt(252) internally).
    Folds are pooled.
    """
    r = np.concatenate(_folds(returns, "returns"))
    sr, skew, kurt = _moments(r)
    return psr_from_moments(sr, sr_benchmark / math.sqrt(periods_per_year), r.size, skew, kurt)


def expected_max_sharpe(sr_variance: float, n_trials: int) -> float:
    """Expected maximum of ``n_trials`` Sharpe estimates under the null of zero skill (Bailey &
    López de Prado 2014): ``sqrt(V) ((1 - g) Phi^-1(1 - 1/N) + g Phi^-1(1 - 1/(N e)))``, with g
    the Euler-Mascheroni constant and V the variance of the trial Sharpes (same units). 0.0 when
    ``n_trials <= 1`` or ``V <= 0``."""
    if n_trials <= 1 or sr_variance <= 0.0:
        return 0.0
    g = EULER_MASCHERONI
    z1 = _NORMAL.inv_cdf(1.0 - 1.0 / n_trials)
    z2 = _NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(sr_variance) * ((1.0 - g) * z1 + g * z2))


def deflated_sharpe_ratio(
    returns,
    sr_trials: Sequence[float],
    n_trials: int | None = None,
    *,
    periods_per_year: float = 1.0,
) -> float:
    """Deflated Sharpe ratio (Bailey & López de Prado 2014): the PSR of ``returns`` against the
    expected maximum Sharpe of ``n_trials`` skill-less candidates.

    ``sr_trials``: the Sharpe ratios of every candidate that was tried (including the chosen one),
    in the units of ``periods_per_year`` (1.0: per-period; 252: annualised, converted internally);
    their variance (ddof=1) sets the null's spread. ``n_trials`` defaults to ``len(sr_trials)``
    (pass more when candidates were tried that are not listed). With a single trial this is
    ``PSR(0)``.
    """
    trials = np.asarray(sr_trials, dtype=np.float64).reshape(-1)
    if trials.size < 1 or not np.all(np.isfinite(trials)):
        raise DataError("sr_trials must hold at least one finite Sharpe ratio")
    n = int(trials.size if n_trials is None else n_trials)
    if n < trials.size:
        raise DataError(f"n_trials={n} is below the {trials.size} Sharpe ratios given")
    trials = trials / math.sqrt(periods_per_year)
    variance = float(np.var(trials, ddof=1)) if trials.size > 1 else 0.0
    sr0 = expected_max_sharpe(variance, n)
    return probabilistic_sharpe_ratio(returns, sr0, periods_per_year=1.0)


def folds_beating(scores_a: Sequence[float], scores_b: Sequence[float]) -> int:
    """How many folds have ``scores_a[k] > scores_b[k]`` (e.g. test Sharpe vs 1/N's)."""
    a = np.asarray(scores_a, dtype=np.float64).reshape(-1)
    b = np.asarray(scores_b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise DataError(f"scores_a and scores_b need one score per fold, got {a.size} and {b.size}")
    return int(np.sum(a > b))


def skill_vs_benchmark(
    returns,
    benchmark_returns,
    *,
    sr_trials: Sequence[float] | None = None,
    n_trials: int | None = None,
    periods_per_year: float = 252.0,
    block: int = 20,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """The per-basket walk-forward statistics against a benchmark (e.g. 1/N) from per-fold daily
    test returns of the shipped policy and of the benchmark (same days).

    Returns ``{"sharpe_gap": {mean, ci95, ...} (annualised, see :func:`sharpe_gap_bootstrap`),
    "folds_beating": int (folds whose test Sharpe beats the benchmark's), "num_folds",
    "sharpe": annualised pooled Sharpe, "benchmark_sharpe", "probabilistic_sharpe": PSR against
    the benchmark's pooled Sharpe, "deflated_sharpe": DSR over ``sr_trials`` (annualised Sharpes of
    all candidates tried; None when not given)}``.
    """
    folds = _folds(returns, "returns")
    bench = _folds(benchmark_returns, "benchmark_returns")
    gap = sharpe_gap_bootstrap(
        folds, bench, block=block, n_boot=n_boot, seed=seed, periods_per_year=periods_per_year
    )
    per_fold = [sharpe_ratio(f, periods_per_year) for f in folds]
    per_fold_bench = [sharpe_ratio(f, periods_per_year) for f in bench]
    sr_bench = sharpe_ratio(bench, periods_per_year)
    dsr = None
    if sr_trials is not None:
        dsr = deflated_sharpe_ratio(folds, sr_trials, n_trials, periods_per_year=periods_per_year)
    return {
        "sharpe_gap": gap,
        "folds_beating": folds_beating(per_fold, per_fold_bench),
        "num_folds": len(folds),
        "sharpe": sharpe_ratio(folds, periods_per_year),
        "benchmark_sharpe": sr_bench,
        "probabilistic_sharpe": probabilistic_sharpe_ratio(
            folds, sr_bench, periods_per_year=periods_per_year
        ),
        "deflated_sharpe": dsr,
    }


def probability_of_backtest_overfitting(returns, num_blocks: int = 8) -> dict[str, Any]:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation (Bailey,
    Borwein, Lopez de Prado & Zhu 2017) of ``M`` trials (e.g. population members).

    ``returns [T, M]``: per-period returns of every trial on the same days (the rows selection
    could see). The days are cut into ``num_blocks`` (even) contiguous blocks; for each of the
    ``C(S, S/2)`` ways to pick half of them as in-sample, the trial with the best in-sample
    Sharpe is located in the out-of-sample ranking: ``omega = rank / (M + 1)`` (rank 1 = worst),
    ``logit = log(omega / (1 - omega))``. PBO is the share of splits with ``logit <= 0`` (the
    in-sample winner is at or below the out-of-sample median). Returns ``{"pbo", "logit_median",
    "num_splits", "num_trials", "num_blocks"}``; ``pbo`` is None with fewer than 2 trials or
    fewer than 2 days per block.
    """
    import itertools

    r = np.asarray(returns, np.float64)
    if r.ndim != 2:
        raise DataError(f"returns must be [T, M], got shape {r.shape}")
    if num_blocks < 2 or num_blocks % 2:
        raise DataError(f"num_blocks must be even and >= 2, got {num_blocks}")
    t, m = r.shape
    out = {"num_trials": int(m), "num_blocks": int(num_blocks)}
    if m < 2 or t < 2 * num_blocks:
        return {**out, "pbo": None, "logit_median": None, "num_splits": 0}
    blocks = np.array_split(np.arange(t), num_blocks)
    logits = []
    for ins in itertools.combinations(range(num_blocks), num_blocks // 2):
        is_rows = np.concatenate([blocks[i] for i in ins])
        oos_rows = np.concatenate([blocks[i] for i in range(num_blocks) if i not in ins])
        best = int(np.argmax(_sharpe_rows(r[is_rows].T)))
        oos = _sharpe_rows(r[oos_rows].T)
        rank = 1 + np.sum(oos < oos[best]) + 0.5 * (np.sum(oos == oos[best]) - 1)
        omega = rank / (m + 1.0)
        logits.append(math.log(omega / (1.0 - omega)))
    logits = np.asarray(logits)
    return {
        **out,
        "pbo": float(np.mean(logits <= 0.0)),
        "logit_median": float(np.median(logits)),
        "num_splits": int(logits.size),
    }


def pooled_sharpe_gap_bootstrap(
    returns_a,
    returns_b,
    *,
    fold_sizes: Sequence[int] | None = None,
    block: int = 20,
    n_boot: int = 2000,
    seed: int = 0,
    periods_per_year: float = 252.0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Paired Sharpe gap ``SR(a) - SR(b)`` pooled over baskets, with a stationary block bootstrap
    that resamples DATES jointly across baskets.

    ``returns_a``, ``returns_b``: ``[B, T]`` per-period returns of B baskets on the same T days
    (e.g. the stitched out-of-sample days of every fold). The statistic is the mean over baskets
    of each basket's annualised Sharpe gap; every replicate draws one set of day indices (within
    each fold of ``fold_sizes``, which sum to T) and applies it to every basket and both series,
    so the baskets' common market moves are kept together (resampling baskets as independent
    would overstate confidence). Returns ``{"mean", "ci95", "p_gap_le_0", "num_baskets",
    "num_days", "n_boot", "block"}``.
    """
    a = np.asarray(returns_a, np.float64)
    b = np.asarray(returns_b, np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise DataError(f"returns_a and returns_b must both be [B, T], got {a.shape}, {b.shape}")
    num_b, t = a.shape
    sizes = [t] if fold_sizes is None else [int(s) for s in fold_sizes]
    if sum(sizes) != t or min(sizes) < 1:
        raise DataError(f"fold_sizes {sizes} must be positive and sum to T={t}")
    if block < 1 or n_boot < 1:
        raise DataError(f"block and n_boot must be >= 1, got {block} and {n_boot}")
    scale = math.sqrt(periods_per_year)
    rng = np.random.default_rng(seed)
    gap = float(np.mean(_sharpe_rows(a) - _sharpe_rows(b)) * scale)
    parts, offset = [], 0
    for n in sizes:
        parts.append(_stationary_indices(rng, n, n_boot, float(block)) + offset)
        offset += n
    idx = np.concatenate(parts, axis=1)  # [n_boot, T]
    gaps = np.mean(_sharpe_rows(a[:, idx]) - _sharpe_rows(b[:, idx]), axis=0) * scale  # [n_boot]
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(gaps, [tail, 1.0 - tail])
    return {
        "mean": gap,
        "ci95": [float(lo), float(hi)],
        "p_gap_le_0": float(np.mean(gaps <= 0.0)),
        "num_baskets": int(num_b),
        "num_days": int(t),
        "n_boot": int(n_boot),
        "block": int(block),
    }
