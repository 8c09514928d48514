"""Probability of backtest overfitting (CSCV) and the pooled, date-resampled Sharpe gap."""

from __future__ import annotations

import numpy as np
import pytest

from jaxport.data import DataError
from jaxport.eval.stats import (
    pooled_sharpe_gap_bootstrap,
    probability_of_backtest_overfitting,
    sharpe_ratio,
)


def test_pbo_zero_when_one_trial_dominates_everywhere():
    rng = np.random.default_rng(0)
    r = rng.standard_normal((400, 5)) * 0.01
    r[:, 2] += 0.02  # best in every block, in and out of sample
    out = probability_of_backtest_overfitting(r, num_blocks=8)
    assert out["pbo"] == 0.0 and out["num_splits"] == 70 and out["num_trials"] == 5


def test_pbo_one_when_in_sample_winner_always_loses_out_of_sample():
    # two trials that alternate by block: whichever wins the chosen half loses the other half
    t, blocks = 400, 4
    r = np.zeros((t, 2))
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(t) * 1e-3
    for k, rows in enumerate(np.array_split(np.arange(t), blocks)):
        r[rows, k % 2] = 0.01 + noise[rows]
        r[rows, 1 - k % 2] = -0.01 + noise[rows]
    # splits with one block of each kind in sample tie; the others are perfectly anti-persistent
    out = probability_of_backtest_overfitting(r, num_blocks=blocks)
    assert out["pbo"] >= 2 / 6


def test_pbo_of_pure_noise_averages_one_half():
    # no skill: the in-sample winner is a random draw out of sample; single draws vary a lot (the
    # splits share blocks), their mean over independent universes does not
    pbo = [
        probability_of_backtest_overfitting(
            np.random.default_rng(seed).standard_normal((600, 20)) * 0.01, num_blocks=8
        )["pbo"]
        for seed in range(12)
    ]
    assert 0.3 <= float(np.mean(pbo)) <= 0.7, pbo


def test_pbo_degenerate_inputs():
    assert probability_of_backtest_overfitting(np.zeros((100, 1)))["pbo"] is None
    assert probability_of_backtest_overfitting(np.zeros((10, 3)), num_blocks=8)["pbo"] is None
    with pytest.raises(DataError, match="even"):
        probability_of_backtest_overfitting(np.zeros((100, 3)), num_blocks=3)
    with pytest.raises(DataError, match=r"\[T, M\]"):
        probability_of_backtest_overfitting(np.zeros(100))


def test_pooled_gap_is_mean_of_per_basket_gaps_and_zero_for_identical():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 300)) * 0.01 + 5e-4
    b = rng.standard_normal((3, 300)) * 0.01
    out = pooled_sharpe_gap_bootstrap(a, b, fold_sizes=[100, 200], n_boot=300)
    want = np.mean([sharpe_ratio(a[i]) - sharpe_ratio(b[i]) for i in range(3)])
    assert out["mean"] == pytest.approx(want, rel=1e-9)
    assert out["ci95"][0] <= out["mean"] <= out["ci95"][1]
    same = pooled_sharpe_gap_bootstrap(a, a, n_boot=100)
    assert same["mean"] == 0.0 and same["ci95"] == [0.0, 0.0] and same["p_gap_le_0"] == 1.0


def test_pooled_gap_resamples_dates_jointly():
    # baskets that are the same series: joint date resampling keeps them identical, so the
    # pooled CI equals the single-basket CI (independent resampling would narrow it)
    rng = np.random.default_rng(3)
    a1 = rng.standard_normal(250) * 0.01 + 4e-4
    b1 = rng.standard_normal(250) * 0.01
    one = pooled_sharpe_gap_bootstrap(a1[None], b1[None], n_boot=400, seed=7)
    many = pooled_sharpe_gap_bootstrap(np.tile(a1, (4, 1)), np.tile(b1, (4, 1)), n_boot=400, seed=7)
    np.testing.assert_allclose(one["ci95"], many["ci95"], rtol=1e-9)
    with pytest.raises(DataError, match="fold_sizes"):
        pooled_sharpe_gap_bootstrap(a1[None], b1[None], fold_sizes=[100])
