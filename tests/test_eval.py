"""Portfolio evaluation (jaxport.eval): metrics on hand-computed curves, baselines, trade
accounting."""

from __future__ import annotations

import json
import math

import chex
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from jaxport.data import DataError
from jaxport.env import EnvParams, PortfolioEnv
from jaxport.eval import (
    POLICY_METRIC_KEYS,
    buy_and_hold_curve,
    evaluate_baselines,
    evaluate_policy,
    metrics_from_equity,
    portfolio_report,
)

T, START = 300, 200  # the test episode runs from day START to T - 1 (99 steps)
ENV = PortfolioEnv(num_assets=2, num_features=1)


def market(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    r = 0.0005 + 0.015 * rng.standard_normal((T - 1, 2))
    prices = 50.0 * np.concatenate([np.ones((1, 2)), np.cumprod(1.0 + r, axis=0)])
    feats = rng.standard_normal((T, 2, 1))
    return prices, feats


def eval_params(**kw) -> EnvParams:
    prices, feats = market()
    return EnvParams.from_arrays(prices, feats, eval_start=START, episode_length=None, **kw)


# Module-level policies: the same function object is reused, so its episode compiles once.
def long_first(key, obs):
    return jnp.array([1.0, 0.0])


def flipping(key, obs):
    """Long/short/flat by the sign of a noisy feature: many opened, closed and flipped trades."""
    z = obs[:2]
    return jnp.where(jnp.abs(z) < 0.3, 0.0, 1.5 * jnp.sign(z))


# ---------------------------------------------------------------- metrics_from_equity (hand values)
def test_metrics_hand_computed_curve():
    # r = +10 %, -10 %, +20 %; 3 periods per year -> exactly one year
    m = metrics_from_equity([1.0, 1.1, 0.99, 1.188], periods_per_year=3)
    assert m["num_periods"] == 3 and m["years"] == pytest.approx(1.0)
    assert m["total_return"] == pytest.approx(0.188)
    assert m["cagr"] == pytest.approx(0.188)  # one year: CAGR == total return
    # mean r = 1/15; sample variance = (1/30**2 + 1/6**2 + 2/15**2) / 2 = 0.07 / 3 per period
    assert m["ann_volatility"] == pytest.approx(math.sqrt(0.07))
    assert m["sharpe"] == pytest.approx((1 / 15) / math.sqrt(0.07 / 3) * math.sqrt(3))
    # downside deviation = sqrt(0.1**2 / 3); Sortino = (1/15) / that * sqrt(3) = 2 exactly
    assert m["sortino"] == pytest.approx(2.0)
    assert m["max_drawdown"] == pytest.approx(0.1)  # 1.1 -> 0.99
    assert m["calmar"] == pytest.approx(1.88)


def test_metrics_drawdown_later_peak_and_multi_year_cagr():
    m = metrics_from_equity([1.0, 2.0, 1.5, 3.0, 1.2], periods_per_year=2)
    assert m["max_drawdown"] == pytest.approx(0.6)  # 3.0 -> 1.2, deeper than 2.0 -> 1.5
    assert m["cagr"] == pytest.approx(1.2**0.5 - 1.0)  # 4 periods = 2 years
    assert m["calmar"] == pytest.approx((1.2**0.5 - 1.0) / 0.6)
    # 504 daily steps = 2 years: CAGR is the square root of the growth
    curve = np.linspace(1.0, 1.44, 505)
    assert metrics_from_equity(curve, 252)["cagr"] == pytest.approx(0.2)


def test_metrics_degenerate_curves_are_finite():
    up = metrics_from_equity([1.0, 2.0, 4.0], periods_per_year=1)
    assert up["cagr"] == pytest.approx(1.0)
    assert up["max_drawdown"] == 0.0 and up["calmar"] == 0.0  # no drawdown -> ratio reported as 0
    assert up["sortino"] == 0.0 and up["sharpe"] == 0.0 and up["ann_volatility"] == 0.0
    flat = metrics_from_equity([1.0] * 10)
    assert all(v == 0 for k, v in flat.items() if k not in ("num_periods", "years"))
    # constant growth: the std of the returns is float noise, not volatility
    steady = metrics_from_equity(3.7 * 1.01 ** np.arange(50), 252)
    assert steady["sharpe"] == 0.0 and steady["ann_volatility"] == 0.0 and steady["calmar"] == 0.0
    one = metrics_from_equity([1.0])
    assert one["num_periods"] == 0 and one["total_return"] == 0.0
    with pytest.raises(DataError):
        metrics_from_equity([1.0, -1.0])
    with pytest.raises(DataError):
        metrics_from_equity([1.0, 1.1], periods_per_year=0)


@settings(max_examples=25, deadline=None)
@given(
    st.one_of(
        st.lists(st.floats(-0.5, 0.5), min_size=2, max_size=40),
        st.builds(
            lambda r, n: [r] * n, st.floats(-0.5, 0.5), st.integers(2, 40)
        ),  # constant returns
    ),
    # powers of two: the scaled curve is exact, so its returns are the same bits and the metrics
    # must match to rounding; another scale re-rounds each return by ~1e-16 absolute, which a
    # tiny downside return turns into a large relative change (sortino 56699066.22 vs .12 for
    # returns [0.301, -5.96e-8] at scale 7)
    st.sampled_from([0.125, 0.25, 0.5, 2.0, 4.0, 8.0]),
)
@example([0.3010723158783668, -5.960464477539063e-08], 8.0)
def test_metrics_scale_invariant_and_bounded(returns, scale):
    curve = np.cumprod(np.concatenate([[1.0], 1.0 + np.asarray(returns)]))
    a = metrics_from_equity(curve, 252)
    b = metrics_from_equity(curve * scale, 252)
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-12), k
    assert 0.0 <= a["max_drawdown"] < 1.0
    if len(set(returns)) == 1:  # constant returns: no volatility, the ratios are reported as 0
        assert a["ann_volatility"] == 0.0 and a["sharpe"] == 0.0
    assert a["total_return"] == pytest.approx(curve[-1] - 1.0)
    json.dumps(a, allow_nan=False)


# ---------------------------------------------------------------- baselines and policies in the env
@pytest.fixture(scope="module")
def zero_fee():
    params = eval_params(fee_rate=0.0, annual_financing_rate=0.0675)
    return params, evaluate_baselines(ENV, params, ["AAA", "BBB"])


def test_cash_baseline_is_flat(zero_fee):
    _, base = zero_fee
    cash = base["metrics"]["cash"]
    assert cash["total_return"] == 0.0 and cash["fees"] == 0.0 and cash["num_trades"] == 0
    assert cash["mean_leverage"] == 0.0
    np.testing.assert_array_equal(base["curves"]["cash"], np.ones(T - START))


def test_buy_and_hold_matches_price_ratio_without_fees(zero_fee):
    params, base = zero_fee
    prices, _ = market()
    expected = buy_and_hold_curve(prices, START, T - 1 - START)
    chex.assert_shape(expected, (T - START, 2))
    for i, sym in enumerate(["AAA", "BBB"]):
        curve = np.asarray(base["curves"]["buy_and_hold"][sym])
        np.testing.assert_allclose(curve, expected[:, i], rtol=2e-5)
        m = base["metrics"]["buy_and_hold"][sym]
        assert m["total_return"] == pytest.approx(prices[-1, i] / prices[START, i] - 1, rel=1e-4)
        assert m["turnover_total"] == pytest.approx(1.0, abs=1e-5)  # bought once, never rebalanced
        assert m["num_trades"] == 1 and m["num_closed_trades"] == 0
        assert m["financing"] == pytest.approx(0.0, abs=1e-6)
    # equal weight: 1/2 each, rebalanced daily, gross exactly 1
    eq = base["metrics"]["equal_weight"]
    assert eq["mean_leverage"] == pytest.approx(1.0, abs=1e-6)
    assert eq["turnover_mean"] > 0.0  # drift is traded back every day


def test_buy_and_hold_holds_shares_with_fees():
    """With fees the entry fee is paid once (financed) and the shares ride: E_T = P_T/P_0 - fee."""
    fee = 0.001
    params = eval_params(fee_rate=fee, annual_financing_rate=0.0)
    base = evaluate_baselines(ENV, params)
    prices, _ = market()
    final = base["metrics"]["buy_and_hold"]["asset0"]["final_equity"]
    assert final == pytest.approx(prices[-1, 0] / prices[START, 0] - fee, rel=1e-5)
    assert base["metrics"]["buy_and_hold"]["asset0"]["fees"] == pytest.approx(fee, rel=1e-5)
    # daily rebalancing of equal weight pays more than the entry fee
    assert base["metrics"]["equal_weight"]["fees"] > fee


def test_constant_one_x_policy_is_buy_and_hold(zero_fee):
    """One asset at a constant 1x: drift keeps the weight at exactly 1, so nothing is rebalanced."""
    params, base = zero_fee
    res = evaluate_policy(ENV, params, long_first)
    np.testing.assert_allclose(
        res["equity_curve"], base["curves"]["buy_and_hold"]["AAA"], rtol=1e-5
    )
    assert res["metrics"]["sharpe"] == pytest.approx(
        base["metrics"]["buy_and_hold"]["AAA"]["sharpe"], rel=1e-3
    )
    assert res["metrics"]["fees"] == 0.0


def test_trade_stats_consistent_with_env():
    params = eval_params(fee_rate=0.001, annual_financing_rate=0.2, short_borrow_rate=0.05)
    res = evaluate_policy(ENV, params, flipping)
    m = res["metrics"]
    assert set(POLICY_METRIC_KEYS) <= set(m)
    n = res["num_steps"]
    assert n == T - 1 - START and len(res["equity_curve"]) == n + 1 and res["start_index"] == START
    chex.assert_shape(np.asarray(res["weights"]), (n, 2))
    # conservation: closed trades + trades still open at the end == final equity - initial
    assert m["trade_pnl_total"] == pytest.approx(m["final_equity"] - 1.0, abs=1e-4)
    assert m["avg_trade_net_profit"] * m["num_trades"] == pytest.approx(
        m["trade_pnl_total"], abs=1e-6
    )
    # closed trades counted independently from the target weights: a trade closes when a non-zero
    # position's sign changes (weights keep their sign under drift)
    w = np.sign(np.asarray(res["weights"]))
    prev = np.vstack([np.zeros((1, 2)), w[:-1]])
    assert m["num_closed_trades"] == int(np.sum((prev != 0) & (w != prev)))
    assert m["num_open_trades"] == int(np.sum(w[-1] != 0))
    assert m["num_trades"] == m["num_closed_trades"] + m["num_open_trades"] > 10
    assert 0.0 < m["win_rate"] < 1.0
    # costs: fees on turnover; financing on gross beyond 1x
    assert m["fees"] > 0 and m["financing"] > 0
    assert m["turnover_total"] == pytest.approx(sum(res["turnover"]), rel=1e-6)
    assert m["turnover_mean"] == pytest.approx(m["turnover_total"] / n)
    assert m["mean_leverage"] == pytest.approx(
        np.mean(np.abs(res["weights"]).sum(axis=1)), rel=1e-5
    )
    assert m["final_equity"] == pytest.approx(
        1.0 + m["gross_pnl"] - m["fees"] - m["financing"], abs=1e-4
    )


def test_bankruptcy_freezes_the_episode():
    prices, feats = market()
    prices = prices.copy()
    prices[START + 5 :] *= 0.3  # a 70 % crash on one day
    params = EnvParams.from_arrays(
        prices, feats, eval_start=START, episode_length=None, bankruptcy_fraction=0.5
    )
    res = evaluate_policy(
        ENV, params, lambda key, obs: jnp.array([1.0, 1.0])
    )  # 2x long into the crash
    curve = np.asarray(res["equity_curve"])  # curve[k] is the equity on day START + k
    assert res["metrics"]["bankrupt"] is True
    # 2x into -70 % leaves nothing: liquidated at the 1e-6 * E0 floor, not raised to the 0.5 mark
    assert 0 < curve[5] <= 1e-6 * (1 + 1e-6)
    assert np.all(curve[5:] == curve[5])  # frozen after bankruptcy: no more trading
    assert np.all(np.asarray(res["leverage"])[5:] == 0.0)
    assert res["metrics"]["max_drawdown"] == pytest.approx(1 - curve[5] / curve[:5].max(), rel=1e-5)


def test_report_is_json_ready():
    params = eval_params()
    report = portfolio_report(ENV, params, flipping, ["AAA", "BBB"])
    assert set(report) >= {
        "test",
        "baselines",
        "equity_curve",
        "baseline_curves",
        "leverage",
        "weights",
    }
    assert set(report["baselines"]) == {
        "buy_and_hold",
        "equal_weight",
        "inverse_volatility",
        "minimum_variance",
        "risk_parity",
        "volatility_timing",
        "vol_managed_equal_weight",
        "equal_minimum_variance",
        "cash",
    }
    assert set(report["baselines"]["buy_and_hold"]) == {"AAA", "BBB"}
    assert (
        len(report["baseline_curves"]["equal_weight"]) == len(report["equity_curve"]) == T - START
    )
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text)["test"]["num_trades"] == report["test"]["num_trades"]


def test_bad_inputs():
    prices, feats = market()
    train_like = EnvParams.from_arrays(prices, feats)  # random starts: no fixed test episode
    with pytest.raises(DataError, match="eval_start"):
        evaluate_policy(ENV, train_like, long_first)
    with pytest.raises(DataError, match="symbols"):
        evaluate_baselines(ENV, eval_params(), ["ONLY_ONE"])
