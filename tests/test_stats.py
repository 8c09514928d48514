"""Skill-vs-luck statistics (jaxport.eval.stats) and the equity metrics against empyrical.

empyrical-reloaded (imported as ``empyrical``) is a test dependency. Its conventions equal
jaxport's: Sharpe and annual volatility use std(ddof=1) and sqrt(252), risk-free 0; Sortino uses
the root mean square of min(r, 0) over all periods; ``annual_return`` is the CAGR over
len(returns) / 252 years. The one difference is the sign of the drawdown: empyrical's
``max_drawdown`` is negative (-0.2), jaxport's is a positive fraction (0.2); and where a ratio's
denominator is zero (no downside, no drawdown) empyrical gives inf/nan, jaxport 0.0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxport.data import DataError
from jaxport.eval import metrics_from_equity
from jaxport.eval.stats import (
    EULER_MASCHERONI,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    folds_beating,
    probabilistic_sharpe_ratio,
    psr_from_moments,
    returns_from_equity,
    sharpe_gap_bootstrap,
    sharpe_ratio,
    skill_vs_benchmark,
)

empyrical = pytest.importorskip("empyrical")  # the [test] extra installs empyrical-reloaded


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


# ----------------------------------------------------------------------------- vs empyrical
@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(3, 400),
    mu=st.floats(-0.002, 0.003),
    sigma=st.floats(0.001, 0.04),
)
def test_equity_metrics_match_empyrical(seed, n, mu, sigma):
    r = np.random.default_rng(seed).normal(mu, sigma, n)
    equity = np.concatenate([[1.0], np.cumprod(1.0 + r)])
    m = metrics_from_equity(equity, 252.0)
    assert m["sharpe"] == pytest.approx(empyrical.sharpe_ratio(r), rel=1e-9, abs=1e-12)
    assert sharpe_ratio(r) == pytest.approx(empyrical.sharpe_ratio(r), rel=1e-9, abs=1e-12)
    if np.any(r < 0):
        assert m["sortino"] == pytest.approx(empyrical.sortino_ratio(r), rel=1e-9, abs=1e-12)
    else:  # no downside: empyrical says inf, jaxport reports 0.0 (finite, JSON-ready)
        assert m["sortino"] == 0.0 and empyrical.sortino_ratio(r) == np.inf
    assert m["ann_volatility"] == pytest.approx(empyrical.annual_volatility(r), rel=1e-9)
    assert m["max_drawdown"] == pytest.approx(-empyrical.max_drawdown(r), rel=1e-9, abs=1e-12)
    assert m["cagr"] == pytest.approx(empyrical.annual_return(r), rel=1e-9, abs=1e-12)
    if m["max_drawdown"] > 0:
        assert m["calmar"] == pytest.approx(empyrical.calmar_ratio(r), rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(returns_from_equity(equity), r, rtol=1e-9, atol=1e-15)


def test_first_day_loss_counts_in_drawdown_like_empyrical():
    r = np.array([-0.1, 0.05, 0.02])  # the peak is the starting equity
    m = metrics_from_equity(np.concatenate([[1.0], np.cumprod(1 + r)]))
    assert m["max_drawdown"] == pytest.approx(0.1)
    assert m["max_drawdown"] == pytest.approx(-empyrical.max_drawdown(r))


# ----------------------------------------------------------------------------- PSR / DSR
def test_psr_from_moments_by_hand():
    sr, sr_star, n, skew, kurt = 0.1, 0.05, 253, -0.5, 5.0
    z = (0.1 - 0.05) * math.sqrt(252) / math.sqrt(1 + 0.5 * 0.1 + (5 - 1) / 4 * 0.01)
    assert psr_from_moments(sr, sr_star, n, skew, kurt) == pytest.approx(_phi(z), abs=1e-12)
    assert psr_from_moments(0.07, 0.07, 100, 1.0, 9.0) == pytest.approx(0.5)
    # fatter tails and negative skew widen the Sharpe's error: less confidence for a positive gap
    assert psr_from_moments(0.1, 0.0, 253, -1.0, 9.0) < psr_from_moments(0.1, 0.0, 253, 0.0, 3.0)


def test_psr_uses_the_sample_moments():
    r = np.array([0.01, -0.02, 0.03, 0.005, -0.001, 0.04, -0.03, 0.002, 0.012, -0.007])
    n = r.size
    mean = r.mean()
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / (n - 1))
    m2 = sum((x - mean) ** 2 for x in r) / n
    skew = sum((x - mean) ** 3 for x in r) / n / m2**1.5
    kurt = sum((x - mean) ** 4 for x in r) / n / m2**2
    sr = mean / sd
    sr_star = 0.02
    z = (sr - sr_star) * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    assert probabilistic_sharpe_ratio(r, sr_star) == pytest.approx(_phi(z), abs=1e-12)
    # an annualised benchmark is converted with sqrt(periods_per_year)
    annual = probabilistic_sharpe_ratio(r, sr_star * math.sqrt(252), periods_per_year=252)
    assert annual == pytest.approx(_phi(z), abs=1e-12)


def test_dsr_reproduces_bailey_lopez_de_prado_2014_example():
    # The paper's numerical example: 100 trials whose annualised Sharpes have variance 1/2,
    # 250 days a year, a selected strategy with annualised Sharpe 2.5 over 1250 days, skew -3,
    # kurtosis 10: E[max SR] = 0.1132 per day and DSR = 0.9004.
    sr0 = expected_max_sharpe(0.5 / 250, 100)
    by_hand = math.sqrt(0.5 / 250) * (
        # Phi^-1(1 - 1/100) and Phi^-1(1 - 1/(100 e)), from tables (scipy.stats.norm.ppf)
        (1 - EULER_MASCHERONI) * 2.3263478740408408 + EULER_MASCHERONI * 2.6802104449668875
    )
    assert sr0 == pytest.approx(by_hand, rel=1e-9)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = psr_from_moments(2.5 / math.sqrt(250), sr0, 1250, -3.0, 10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-4)
    assert expected_max_sharpe(0.5, 1) == 0.0 and expected_max_sharpe(0.0, 50) == 0.0


def test_deflated_sharpe_ratio_on_returns():
    rng = np.random.default_rng(3)
    r = rng.normal(0.001, 0.01, 750)
    trials = np.array([1.4, 0.2, -0.3, 0.8, 0.5])  # annualised Sharpes of the candidates
    sr0 = expected_max_sharpe(float(np.var(trials / math.sqrt(252), ddof=1)), 5)
    dsr = deflated_sharpe_ratio(r, trials, periods_per_year=252)
    assert dsr == pytest.approx(probabilistic_sharpe_ratio(r, sr0), abs=1e-12)
    # more (unlisted) trials deflate further; one trial is the plain PSR against 0
    assert deflated_sharpe_ratio(r, trials, 500, periods_per_year=252) < dsr
    assert deflated_sharpe_ratio(r, [1.0]) == pytest.approx(probabilistic_sharpe_ratio(r, 0.0))
    assert dsr < probabilistic_sharpe_ratio(r, 0.0)
    with pytest.raises(DataError, match="n_trials"):
        deflated_sharpe_ratio(r, trials, 3)


# ----------------------------------------------------------------------------- bootstrap
def _pair(rng, n, mu_a, mu_b, sigma=0.01, rho=0.5):
    common = rng.normal(size=n)
    a = mu_a + sigma * (rho**0.5 * common + (1 - rho) ** 0.5 * rng.normal(size=n))
    b = mu_b + sigma * (rho**0.5 * common + (1 - rho) ** 0.5 * rng.normal(size=n))
    return a, b


def test_bootstrap_ci_covers_the_true_gap():
    # true annualised Sharpe gap = (mu_a - mu_b) / sigma * sqrt(252) = 0.05 * 15.87 = 0.79
    rng = np.random.default_rng(11)
    true_gap = 0.0005 / 0.01 * math.sqrt(252)
    covered = 0
    for seed in range(30):
        a, b = _pair(rng, 500, 0.0007, 0.0002)
        ci = sharpe_gap_bootstrap(a, b, n_boot=400, seed=seed)["ci95"]
        covered += ci[0] <= true_gap <= ci[1]
    assert covered >= 25  # nominal 95 %: 28.5 of 30 expected


def test_bootstrap_zero_gap_contains_zero_and_planted_gap_is_positive():
    rng = np.random.default_rng(5)
    a, b = _pair(rng, 750, 0.0003, 0.0003)
    null = sharpe_gap_bootstrap(a, b, seed=0)
    assert null["ci95"][0] < 0.0 < null["ci95"][1]
    assert null["ci95"][0] <= null["mean"] <= null["ci95"][1]
    a, b = _pair(rng, 750, 0.0025, 0.0)
    for method in ("stationary", "moving"):
        planted = sharpe_gap_bootstrap(a, b, seed=1, method=method)
        assert planted["ci95"][0] > 0.0 and planted["p_gap_le_0"] == 0.0
        assert planted["mean"] == pytest.approx(sharpe_ratio(a) - sharpe_ratio(b))
        assert planted["n_boot"] == 2000 and planted["num_days"] == 750


def test_bootstrap_is_paired_and_reproducible():
    rng = np.random.default_rng(2)
    a = rng.normal(0.001, 0.01, 300)
    same = sharpe_gap_bootstrap(a, a.copy(), n_boot=200)
    assert same["ci95"] == [0.0, 0.0] and same["mean"] == 0.0  # same days for both series
    b = rng.normal(0.0, 0.01, 300)
    assert sharpe_gap_bootstrap(a, b, seed=7) == sharpe_gap_bootstrap(a, b, seed=7)
    assert sharpe_gap_bootstrap(a, b, seed=7) != sharpe_gap_bootstrap(a, b, seed=8)


def test_bootstrap_resamples_within_folds():
    # fold 1 alternates around +1 %, fold 2 around -1 %: resampling within folds keeps 100 vs
    # 50 days of each regime, so the pooled mean of every replicate is the sample's
    f1 = 0.01 + 0.001 * np.tile([1.0, -1.0], 50)
    f2 = -0.01 + 0.001 * np.tile([1.0, -1.0], 25)
    zero1, zero2 = np.zeros(100), np.zeros(50)
    out = sharpe_gap_bootstrap([f1, f2], [zero1, zero2], n_boot=300, block=10)
    assert out["num_days"] == 150
    pooled = np.concatenate([f1, f2])
    assert out["mean"] == pytest.approx(sharpe_ratio(pooled))
    boot = sharpe_gap_bootstrap([f1, f2], [zero1, zero2], n_boot=300, block=10, method="moving")
    for res in (out, boot):  # the std changes a little with the +-0.1 % mix; the mean cannot
        assert res["ci95"][1] - res["ci95"][0] < 0.05 * abs(res["mean"])
    with pytest.raises(DataError, match="same days"):
        sharpe_gap_bootstrap([f1, f2], [zero1, np.zeros(49)])


# ----------------------------------------------------------------------------- helpers
def test_folds_beating_and_skill_summary():
    assert folds_beating([0.5, 1.2, -0.1], [0.4, 1.3, -0.2]) == 2
    with pytest.raises(DataError, match="one score per fold"):
        folds_beating([1.0], [1.0, 2.0])
    rng = np.random.default_rng(9)
    folds = [_pair(rng, 200, 0.002, 0.0) for _ in range(3)]
    out = skill_vs_benchmark(
        [a for a, _ in folds], [b for _, b in folds], sr_trials=[2.0, 1.0, 0.3], n_boot=300
    )
    assert out["num_folds"] == 3 and 0 <= out["folds_beating"] <= 3
    assert out["sharpe_gap"]["mean"] == pytest.approx(out["sharpe"] - out["benchmark_sharpe"])
    for key in ("probabilistic_sharpe", "deflated_sharpe"):
        assert 0.0 <= out[key] <= 1.0
    assert out["deflated_sharpe"] <= probabilistic_sharpe_ratio([a for a, _ in folds], 0.0)
