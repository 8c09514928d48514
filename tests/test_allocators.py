"""Standard allocators (jaxport.eval.allocators) against hand / NumPy computations.

The NumPy side here is written independently: covariances with ``np.cov``, the N = 2 minimum-
variance closed form, KKT conditions for larger N, and the env stepped with tests/env_reference.py.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from env_reference import reference_reset_state, reference_step
from jaxport.data import DataError
from jaxport.env import EnvParams, PortfolioEnv
from jaxport.eval.allocators import (
    Allocator,
    default_allocators,
    equal_minimum_variance,
    evaluate_allocators,
    inverse_volatility,
    minimum_variance,
    minimum_variance_from_cov,
    risk_parity,
    risk_parity_from_cov,
    run_allocators,
    trailing_covariance,
    vol_managed_equal_weight,
    volatility_timing,
)

LOOKBACK = 60
SHRINK = 0.1


def _call(fn, prices, t, shrink=SHRINK) -> np.ndarray:
    """One call signature per estimator in every test (so each jitted estimator compiles once)."""
    args = (jnp.asarray(prices, jnp.float32), t, LOOKBACK)
    w = fn(*args, shrink) if fn is minimum_variance else fn(*args)
    chex.assert_shape(w, (prices.shape[1],))
    return np.asarray(w, np.float64)


def _prices(seed: int, num_days: int, vols, corr: float = 0.3, drift: float = 2e-4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = len(vols)
    chol = np.linalg.cholesky((1 - corr) * np.eye(n) + corr * np.ones((n, n)))
    r = drift + (rng.normal(size=(num_days, n)) @ chol.T) * np.asarray(vols)
    return 100.0 * np.cumprod(1.0 + r, axis=0)


def _np_cov(prices: np.ndarray, t: int, lookback: int) -> np.ndarray:
    """Sample covariance (ddof=1) of the returns p[s]/p[s-1]-1, s = max(1, t-L+1) .. t."""
    p = np.asarray(prices, np.float64)
    first = max(t - lookback, 0)
    r = p[first + 1 : t + 1] / p[first:t] - 1.0
    return np.cov(r.T, ddof=1)


def _np_min_var_2(cov: np.ndarray) -> np.ndarray:
    s1, s2, c = cov[0, 0], cov[1, 1], cov[0, 1]
    w1 = float(np.clip((s2 - c) / (s1 + s2 - 2 * c), 0.0, 1.0))
    return np.array([w1, 1.0 - w1])


def _np_inverse_vol(cov: np.ndarray) -> np.ndarray:
    inv = 1.0 / np.sqrt(np.diag(cov))
    return inv / inv.sum()


def _np_vol_timing(cov: np.ndarray, eta: float) -> np.ndarray:
    w = np.diag(cov) ** -eta
    return w / w.sum()


def _np_vol_managed(prices: np.ndarray, t: int, long_lookback: int = 252) -> np.ndarray:
    """1/N x min(1, sigma_long / sigma_short) of the 1/N book (np.cov of each window)."""
    n = prices.shape[1]
    var = [np.sum(_np_cov(prices, t, lb)) / n**2 for lb in (LOOKBACK, long_lookback)]
    return np.full(n, 1.0 / n) * min(1.0, np.sqrt(var[1] / var[0]))


# ----------------------------------------------------------------------------- estimators
@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    t=st.integers(2, 149),
    vol2=st.floats(0.003, 0.05),
    corr=st.floats(-0.8, 0.95),
    shrink=st.sampled_from([0.0, 0.1, 0.5]),
)
def test_two_asset_estimators_match_closed_forms(seed, t, vol2, corr, shrink):
    prices = _prices(seed, 150, [0.012, vol2], corr)
    cov = _np_cov(prices, t, LOOKBACK)
    shrunk = cov.copy()
    shrunk[0, 1] = shrunk[1, 0] = (1 - shrink) * cov[0, 1]
    w_mv = _call(minimum_variance, prices, t, shrink)
    w_iv = _call(inverse_volatility, prices, t)
    w_rp = _call(risk_parity, prices, t)
    np.testing.assert_allclose(w_mv, _np_min_var_2(shrunk), atol=2e-4)
    np.testing.assert_allclose(w_iv, _np_inverse_vol(cov), atol=1e-5)
    # N = 2: equal risk contribution is inverse volatility whatever the correlation
    np.testing.assert_allclose(w_rp, w_iv, atol=1e-5)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), t=st.integers(2, 149), n=st.integers(2, 5))
def test_literature_rules_special_cases(seed, t, n):
    prices = jnp.asarray(_prices(seed, 150, np.linspace(0.008, 0.03, n), 0.3), jnp.float32)
    # volatility timing: eta = 0.5 is inverse volatility, eta = 0 is 1/N
    vt_half = np.asarray(volatility_timing(prices, t, LOOKBACK, 0.5))
    np.testing.assert_allclose(
        vt_half, np.asarray(inverse_volatility(prices, t, LOOKBACK)), atol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(volatility_timing(prices, t, LOOKBACK, 0.0)), 1.0 / n, atol=1e-6
    )
    vt_one = np.asarray(volatility_timing(prices, t, LOOKBACK, 1.0), np.float64)
    np.testing.assert_allclose(
        vt_one, _np_vol_timing(_np_cov(np.asarray(prices), t, LOOKBACK), 1.0), atol=1e-4
    )
    # vol-managed 1/N: equal weights, gross in (0, max_gross]
    vm = np.asarray(vol_managed_equal_weight(prices, t, LOOKBACK, 252, 1.0), np.float64)
    assert np.allclose(vm, vm[0]) and 0.0 < vm.sum() <= 1.0 + 1e-6
    np.testing.assert_allclose(vm, _np_vol_managed(np.asarray(prices, np.float64), t), rtol=1e-3)
    # the 1/N / minimum-variance combination: mix = 1 is 1/N, mix = 0 is minimum variance
    mix = [np.asarray(equal_minimum_variance(prices, t, LOOKBACK, SHRINK, m)) for m in (0.0, 1.0)]
    np.testing.assert_allclose(
        mix[0], np.asarray(minimum_variance(prices, t, LOOKBACK, SHRINK)), atol=1e-6
    )
    np.testing.assert_allclose(mix[1], 1.0 / n, atol=1e-6)


def test_min_variance_clips_to_a_corner():
    # asset 0 much calmer and highly correlated: the unconstrained optimum shorts asset 1
    prices = _prices(1, 150, [0.005, 0.03], corr=0.95)
    cov = _np_cov(prices, 119, LOOKBACK)
    assert (cov[1, 1] - cov[0, 1]) / (cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]) > 1.0
    w = _call(minimum_variance, prices, 119, 0.0)
    np.testing.assert_allclose(w, [1.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_min_variance_satisfies_kkt_for_four_assets(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(4, 6))
    cov = a @ a.T / 6 + 0.05 * np.eye(4)
    w = np.asarray(minimum_variance_from_cov(jnp.asarray(cov, jnp.float32)), np.float64)
    assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-5
    g = cov @ w  # gradient / 2; KKT: g_i = lam on the support, g_i >= lam off it
    support = w > 1e-6
    lam = g[support].mean()
    np.testing.assert_allclose(g[support], lam, rtol=1e-3)
    assert np.all(g[~support] >= lam * (1 - 1e-3))
    # no random long-only portfolio beats it
    trials = rng.dirichlet(np.ones(4), size=2000)
    assert np.einsum("ki,ij,kj->k", trials, cov, trials).min() >= w @ cov @ w - 1e-7
    # the projected-gradient path (used for many assets) agrees
    w_pg = minimum_variance_from_cov(jnp.asarray(cov, jnp.float32), exact_max_assets=0)
    np.testing.assert_allclose(np.asarray(w_pg), w, atol=2e-3)


def test_risk_parity_equalises_risk_contributions():
    prices = _prices(3, 150, [0.01, 0.015, 0.02, 0.03, 0.012], corr=0.8)
    cov = _np_cov(prices, 149, LOOKBACK)
    w = np.asarray(risk_parity_from_cov(jnp.asarray(cov, jnp.float32)), np.float64)
    contrib = w * (cov @ w)
    assert np.all(w > 0) and abs(w.sum() - 1) < 1e-5
    np.testing.assert_allclose(contrib / contrib.sum(), 0.2, atol=2e-4)
    # uncorrelated assets: inverse volatility exactly
    diag = np.diag([1e-4, 4e-4, 9e-4])
    np.testing.assert_allclose(
        np.asarray(risk_parity_from_cov(jnp.asarray(diag, jnp.float32))),
        [6 / 11, 3 / 11, 2 / 11],
        atol=1e-5,
    )


@pytest.mark.parametrize("fn", [inverse_volatility, minimum_variance, risk_parity])
def test_estimators_are_causal(fn):
    prices = _prices(4, 150, [0.01, 0.02])
    t = 90
    changed = prices.copy()
    changed[t + 1 :] *= np.linspace(0.5, 3.0, 150 - t - 1)[:, None] ** np.array([1, -2])
    w = _call(fn, prices, t)
    w_changed = _call(fn, changed, t)
    np.testing.assert_array_equal(w, w_changed)
    # ... while day t's own close is used
    moved = prices.copy()
    moved[t, 0] *= 1.2
    assert not np.allclose(_call(fn, moved, t), w)


def test_warm_up_uses_the_available_days_and_falls_back_to_equal_weight():
    prices = _prices(5, 150, [0.01, 0.03])
    for t in (0, 1):  # fewer than 2 returns
        for fn in (inverse_volatility, minimum_variance, risk_parity):
            np.testing.assert_allclose(_call(fn, prices, t), [0.5, 0.5])
    cov, count = trailing_covariance(
        jnp.asarray(prices, jnp.float32), 10, LOOKBACK
    )  # 10 returns, days 0..10
    assert int(count) == 10
    np.testing.assert_allclose(np.asarray(cov), _np_cov(prices, 10, LOOKBACK), rtol=1e-4)


def test_allocator_spec_validation():
    with pytest.raises(ValueError, match="kind"):
        Allocator("momentum")
    with pytest.raises(ValueError, match="lookback"):
        Allocator("inverse_volatility", lookback=1)
    with pytest.raises(ValueError, match="rebalance_every"):
        Allocator("risk_parity", rebalance_every=-1)
    with pytest.raises(ValueError, match="asset"):
        Allocator("buy_and_hold")
    assert Allocator("buy_and_hold", asset=1).name == "buy_and_hold:1"
    names = [a.name for a in default_allocators(2)]
    assert names == [
        "buy_and_hold:0",
        "buy_and_hold:1",
        "equal_weight",
        "inverse_volatility",
        "minimum_variance",
        "risk_parity",
        "volatility_timing",
        "vol_managed_equal_weight",
        "equal_minimum_variance",
        "cash",
    ]
    for bad in (dict(eta=-1.0), dict(long_lookback=1), dict(max_gross=0.0), dict(mix=1.5)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Allocator("volatility_timing", **bad)


# ----------------------------------------------------------------------------- in the env
T_DAYS, START = 130, 70


@pytest.fixture(scope="module")
def market():
    prices = _prices(7, T_DAYS, [0.012, 0.025], corr=0.4)
    env = PortfolioEnv(2, 1, long_only=True)
    kwargs = dict(eval_start=START, episode_length=None, fee_rate=0.001, slippage_rate=0.0005)
    params = EnvParams.from_arrays(prices, np.zeros((T_DAYS, 2, 1)), **kwargs)
    return prices, env, params, kwargs


@pytest.fixture(scope="module")
def default_run(market):
    _, env, params, _ = market
    return evaluate_allocators(env, params, symbols=["A", "B"])


def test_default_report_layout(default_run):
    metrics, curves = default_run["metrics"], default_run["curves"]
    kinds = {"buy_and_hold", "equal_weight", "inverse_volatility", "minimum_variance"}
    literature = {"volatility_timing", "vol_managed_equal_weight", "equal_minimum_variance"}
    assert set(metrics) == set(curves) == kinds | literature | {"risk_parity", "cash"}
    assert set(metrics["buy_and_hold"]) == set(curves["buy_and_hold"]) == {"A", "B"}
    assert curves["cash"] == [1.0] * (T_DAYS - START)
    for key in ("inverse_volatility", "minimum_variance", "risk_parity"):
        m = metrics[key]
        assert len(curves[key]) == T_DAYS - START
        assert m["fees"] > 0 and not m["bankrupt"] and abs(m["mean_leverage"] - 1) < 0.01


def test_turnover_only_on_rebalance_days(market, default_run):
    _, env, params, _ = market
    allocs = default_allocators(2)
    reports = run_allocators(env, params, allocs)  # the program default_run compiled
    for alloc, rep in zip(allocs, reports):
        turnover = np.asarray(rep["turnover"])
        chex.assert_shape(turnover, (T_DAYS - 1 - START,))
        steps = np.arange(turnover.size)
        every = alloc.rebalance_every
        on = steps == 0 if every == 0 else steps % every == 0
        assert np.all(turnover[~on] == 0.0), alloc.name
        if alloc.kind != "cash":
            assert turnover[0] == pytest.approx(1.0, abs=1e-6)  # from cash into 1x gross
            assert np.all(turnover[on][1:] > 0), alloc.name


def _np_episode(prices, params_kwargs, weights_fn, every):
    """An allocator run with tests/env_reference.py: target on steps k % every == 0, else hold."""
    p = dict(params_kwargs, episode_length=T_DAYS)
    state = reference_reset_state(START, 2, p)
    equity = [1.0]
    for k in range(T_DAYS - 1 - START):
        t = START + k
        action = weights_fn(prices, t) if k % every == 0 else state["weights"]
        state, *_ = reference_step(state, action, t, prices, prices, p, dict(long_only=True))
        equity.append(state["equity"])
    return np.asarray(equity)


def _np_shrunk_cov(prices, t):
    cov = _np_cov(prices, t, LOOKBACK)
    return (1 - SHRINK) * cov + SHRINK * np.diag(np.diag(cov))


NP_WEIGHTS = {
    "minimum_variance": lambda p, t: _np_min_var_2(_np_shrunk_cov(p, t)),
    "inverse_volatility": lambda p, t: _np_inverse_vol(_np_cov(p, t, LOOKBACK)),
    "risk_parity": lambda p, t: _np_inverse_vol(_np_cov(p, t, LOOKBACK)),  # N = 2
    "equal_weight": lambda p, t: np.array([0.5, 0.5]),
    # Kirby & Ostdiek with eta = 1: w ~ 1 / sigma^2
    "volatility_timing": lambda p, t: _np_vol_timing(_np_cov(p, t, LOOKBACK), 1.0),
    "vol_managed_equal_weight": lambda p, t: _np_vol_managed(p, t),
    "equal_minimum_variance": lambda p, t: (
        0.5 * np.array([0.5, 0.5]) + 0.5 * _np_min_var_2(_np_shrunk_cov(p, t))
    ),
    "buy_and_hold:0": lambda p, t: np.array([1.0, 0.0]),
    "buy_and_hold:1": lambda p, t: np.array([0.0, 1.0]),
}


@pytest.mark.parametrize("kind", list(NP_WEIGHTS))
def test_env_run_matches_numpy_reference(market, default_run, kind):
    # fees, slippage and financing (on the fee-financed hair above 1x), as in the env reference
    prices, _, _, kwargs = market
    every = {a.name: a.rebalance_every for a in default_allocators(2)}[kind]
    ref = _np_episode(prices, kwargs, NP_WEIGHTS[kind], every or 10**9)
    curves = default_run["curves"]
    curve = curves["buy_and_hold"]["AB"[int(kind[-1])]] if ":" in kind else curves[kind]
    np.testing.assert_allclose(curve, ref, rtol=2e-5)


def test_bad_allocator_lists(market):
    _, env, params, _ = market
    with pytest.raises(DataError, match="unique"):
        run_allocators(env, params, [Allocator("cash"), Allocator("cash")])
    with pytest.raises(DataError, match="out of range"):
        run_allocators(env, params, [Allocator("buy_and_hold", asset=2)])
