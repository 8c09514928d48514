"""Tests of jaxport.env.PortfolioEnv against notes/env_spec.md and the NumPy reference.

The reference (tests/env_reference.py) is written from the spec text, independently of the env.

Tolerances: the env runs in float32, the reference in float64. Parity is checked step by step (the
reference is fed the env's own float32 state before every step, so errors cannot compound):
rtol 1e-5 plus atol 1e-6 * E0 for money amounts / weights / rewards (a float32 ulp of E is
~1e-7 * E, so a log-return or a per-asset pnl near zero needs an absolute floor). The
free-running equity path (reference run on its own float64 state) is checked separately with
rtol 1e-4 (float32 compounding over 1,000 steps; measured max drift 2.2e-6 on the three
non-bankrupt cases).
"""

from __future__ import annotations

import functools
import zlib
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from env_reference import ReferencePortfolio, reference_observation, reference_step
from helpers import ENV_STATE_FIELDS
from jaxport.data import load_market
from jaxport.env import EnvParams, EnvState, PortfolioEnv

ROOT = Path(__file__).resolve().parents[1]
KEY0 = jax.random.PRNGKey(0)
HYP = dict(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

MONEY_KEYS = ("gross_pnl", "fees", "financing")
SCALAR_PARAM_KEYS = (
    "leverage_cap",
    "annual_financing_rate",
    "periods_per_year",
    "fee_rate",
    "slippage_rate",
    "short_borrow_rate",
    "bankruptcy_fraction",
    "initial_equity",
    "episode_length",
)


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def _data_dir() -> Path:
    """The repository's own ``trainingdata/`` (shipped with every clone: never skipped)."""
    return ROOT / "trainingdata"


@functools.lru_cache(maxsize=None)
def _market():
    return load_market(_data_dir())


def synth_market(seed: int, T: int = 32, N: int = 3, F: int = 2, vol: float = 0.03):
    """Positive random-walk closes/opens [T, N] and features [T, N, F], float32-representable."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, (T, N)), axis=0))
    opn = close * np.exp(rng.normal(0.0, vol / 2, (T, N)))
    feats = rng.normal(size=(T, N, F))
    f32 = lambda x: np.asarray(x, np.float32).astype(np.float64)  # noqa: E731
    return f32(close), f32(opn), f32(feats)


def params_dict(params: EnvParams) -> dict:
    return {k: float(np.asarray(getattr(params, k))) for k in SCALAR_PARAM_KEYS}


def mode_dict(env: PortfolioEnv) -> dict:
    return dict(
        reward=env.reward_mode,
        return_mode=env.return_mode,
        long_only=env.long_only,
        window=env.window,
    )


def state_at(states: EnvState, i: int | None = None) -> dict:
    """EnvState (optionally row i of a stacked one) -> dict of float64 NumPy values."""
    out = {}
    for k in ENV_STATE_FIELDS:
        v = np.asarray(getattr(states, k))
        if i is not None:
            v = v[i]
        out[k] = v.astype(np.float64) if v.dtype.kind == "f" else v.astype(np.int64)
    out["t"] = int(out["t"])
    out["time"] = int(out["time"])
    return out


@functools.partial(jax.jit, static_argnums=0)
def scan_step_env(env: PortfolioEnv, state: EnvState, actions, params: EnvParams):
    """step_env (no auto-reset) over actions [S, N]; returns stacked per-step outputs."""

    def body(s, a):
        obs, s2, reward, terminated, info = env.step_env(KEY0, s, a, params)
        return s2, dict(obs=obs, state=s2, reward=reward, terminated=terminated, info=info)

    return jax.lax.scan(body, state, actions)[1]


@functools.partial(jax.jit, static_argnums=0)
def jit_reset(env, key, params):
    return env.reset(key, params)


def episode(env, params, actions, key=KEY0):
    """Traceable: reset then step_env over actions -> (obs0, state0, stacked outputs)."""
    obs0, state0 = env.reset(key, params)
    return obs0, state0, scan_step_env(env, state0, jnp.asarray(actions, jnp.float32), params)


def run_episode(env, params, actions, key=KEY0):
    """(obs0, state0, outputs) with outputs as NumPy trees."""
    obs0, state0 = jit_reset(env, key, params)
    out = scan_step_env(env, state0, jnp.asarray(actions, jnp.float32), params)
    return obs0, state0, jax.tree.map(np.asarray, out)


def prev_equity(state0, out):
    """Equity before each step, [S]."""
    eq = np.asarray(out["state"].equity, np.float64)
    return np.concatenate([[float(state0.equity)], eq[:-1]])


def prev_weights(state0, out):
    w = np.asarray(out["state"].weights, np.float64)
    return np.concatenate([np.asarray(state0.weights, np.float64)[None], w[:-1]], axis=0)


def target_weights_np(actions, cap, long_only=False):
    a = np.asarray(actions, np.float64)
    a = np.where(np.isfinite(a), a, 0.0)
    if long_only:
        a = np.maximum(a, 0.0)
    g = np.abs(a).sum(-1, keepdims=True)
    return a * np.minimum(1.0, cap / np.maximum(g, 1e-12))


def assert_close(name, got, want, rtol=1e-5, atol=1e-6, step=None):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    ok = np.allclose(got, want, rtol=rtol, atol=atol)
    assert ok, (
        f"{name}{'' if step is None else f' at step {step}'}: env {got} != reference/spec {want} "
        f"(max abs diff {np.max(np.abs(got - want)):.3g}, rtol={rtol}, atol={atol})"
    )


# A fixed synthetic env shared by the hypothesis properties (one compile for all examples).
SYN_T, SYN_N, SYN_F, SYN_S = 32, 3, 2, 24
SYN_ENV = PortfolioEnv(num_assets=SYN_N, num_features=SYN_F)


def syn_params(seed, **kw):
    close, opn, feats = synth_market(seed, SYN_T, SYN_N, SYN_F)
    kw.setdefault("eval_start", 0)
    kw.setdefault("episode_length", 1000)
    return EnvParams.from_arrays(close, feats, open_prices=opn, **kw), close, opn, feats


# ----------------------------------------------------------------------------------------------
# hypothesis properties
# ----------------------------------------------------------------------------------------------


@settings(**HYP)
@given(
    seed=st.integers(0, 2**31 - 1),
    cap=st.floats(0.25, 5.0),
    log_scale=st.floats(-3.0, 9.0),
)
def test_gross_exposure_never_exceeds_cap(seed, cap, log_scale):
    params, *_ = syn_params(seed, leverage_cap=cap)
    rng = np.random.default_rng(seed)
    scales = 10.0 ** rng.uniform(-3.0, log_scale, (SYN_S, 1))
    actions = (rng.normal(size=(SYN_S, SYN_N)) * scales).astype(np.float32)
    _, _, out = run_episode(SYN_ENV, params, actions)
    lev = np.asarray(out["info"]["leverage"], np.float64)
    cap32 = float(np.float32(cap))
    assert np.all(lev <= cap32 * (1 + 1e-6)), f"leverage {lev.max()} > cap {cap32}"
    want = np.minimum(np.abs(actions.astype(np.float64)).sum(-1), cap32)
    assert_close("info['leverage'] == min(sum|a|, cap)", lev, want)


@settings(**HYP)
@given(
    seed=st.integers(0, 2**31 - 1),
    e0=st.sampled_from([1.0, 1000.0, 0.37]),
    fee=st.floats(0.0, 0.01),
    fin=st.floats(0.0, 0.2),
    sbr=st.floats(0.0, 0.2),
)
def test_zero_action_keeps_equity_constant(seed, e0, fee, fin, sbr):
    params, *_ = syn_params(
        seed, initial_equity=e0, fee_rate=fee, annual_financing_rate=fin, short_borrow_rate=sbr
    )
    _, state0, out = run_episode(SYN_ENV, params, np.zeros((SYN_S, SYN_N), np.float32))
    eq = out["state"].equity
    assert np.all(eq == np.float32(e0)), f"equity moved with zero action: {eq}"
    assert np.all(out["reward"] == 0.0), f"nonzero reward with zero action: {out['reward']}"
    assert np.all(out["info"]["fees"] == 0) and np.all(out["info"]["financing"] == 0)
    assert np.all(out["state"].weights == 0)


@settings(**HYP)
@given(
    seed=st.integers(0, 2**31 - 1),
    asset=st.integers(0, SYN_N - 1),
    fin=st.floats(0.0, 0.2),
    cap=st.floats(1.0, 4.0),
)
def test_full_long_one_asset_tracks_price(seed, asset, fin, cap):
    params, close, _, _ = syn_params(
        seed, fee_rate=0.0, slippage_rate=0.0, annual_financing_rate=fin, leverage_cap=cap
    )
    actions = np.zeros((SYN_S, SYN_N), np.float32)
    actions[:, asset] = 1.0
    _, _, out = run_episode(SYN_ENV, params, actions)
    eq = out["state"].equity.astype(np.float64)
    want = close[1 : SYN_S + 1, asset] / close[0, asset]  # E0 = 1, start t = 0
    assert_close("E_t/E_0 vs P_t/P_0 (1x long, no fees)", eq, want, rtol=1e-5, atol=0)
    assert np.all(out["info"]["financing"] == 0), "1x exposure must not pay financing"


@settings(**HYP)
@given(
    seed=st.integers(0, 2**31 - 1),
    fin=st.floats(0.0, 0.3),
    e0=st.sampled_from([1.0, 250.0]),
    ppy=st.sampled_from([252.0, 365.0]),
)
def test_two_x_long_pays_financing_on_one_x(seed, fin, e0, ppy):
    params, *_ = syn_params(
        seed, leverage_cap=2.0, annual_financing_rate=fin, initial_equity=e0, periods_per_year=ppy
    )
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.1, 1.0, (SYN_S, SYN_N))
    a = (2.0 * a / a.sum(-1, keepdims=True)).astype(np.float32)  # long only, gross exactly ~2
    _, state0, out = run_episode(SYN_ENV, params, a)
    e_prev = prev_equity(state0, out)
    want = e_prev * 1.0 * np.float32(fin) / ppy
    assert_close("financing of 2x long", out["info"]["financing"], want, rtol=1e-5, atol=1e-9 * e0)
    assert_close("state.financing total", out["state"].financing[-1], want.sum(), atol=1e-8 * e0)


@settings(**HYP)
@given(
    seed=st.integers(0, 2**31 - 1),
    fin=st.floats(0.01, 0.3),
    sbr=st.floats(0.0, 0.3),
    gross=st.floats(0.1, 1.0),
)
def test_one_x_pays_no_financing_only_short_borrow(seed, fin, sbr, gross):
    params, *_ = syn_params(seed, annual_financing_rate=fin, short_borrow_rate=sbr)
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(SYN_S, SYN_N))
    a[0] = [-1.0, 0.0, 0.0]  # a pure 1x short
    a[1] = [1.0, 0.0, 0.0]  # a pure 1x long
    a = (gross * a / np.abs(a).sum(-1, keepdims=True)).astype(np.float32)
    _, state0, out = run_episode(SYN_ENV, params, a)
    e_prev = prev_equity(state0, out)
    short = np.maximum(0.0, -a.astype(np.float64)).sum(-1)
    want = e_prev * short * np.float32(sbr) / 252.0
    # gross <= 1 up to float32 rounding, so leverage financing must be ~0 (<= 1e-6 * rate / 252)
    assert_close(
        "financing at <= 1x (borrow only)", out["info"]["financing"], want, rtol=1e-5, atol=1e-9
    )
    if sbr == 0.0:
        assert np.all(np.abs(out["info"]["financing"]) <= 1e-9)


@settings(**HYP)
@given(
    seed=st.integers(0, 2**31 - 1),
    fee=st.floats(0.0, 0.01),
    slip=st.floats(0.0, 0.005),
    e0=st.sampled_from([1.0, 100.0]),
    cap=st.floats(0.5, 3.0),
)
def test_cost_is_fee_times_turnover_times_equity(seed, fee, slip, e0, cap):
    params, *_ = syn_params(
        seed, fee_rate=fee, slippage_rate=slip, initial_equity=e0, leverage_cap=cap
    )
    rng = np.random.default_rng(seed)
    a = (rng.normal(size=(SYN_S, SYN_N)) * 2.0).astype(np.float32)
    a[rng.random((SYN_S, SYN_N)) < 0.2] = 0.0
    _, state0, out = run_episode(SYN_ENV, params, a)
    e_prev = prev_equity(state0, out)
    w_new = target_weights_np(a, float(np.float32(cap)))
    turnover = np.abs(w_new - prev_weights(state0, out)).sum(-1)
    assert_close(
        "info['turnover'] == sum|w_new - w|",
        out["info"]["turnover"],
        turnover,
        rtol=1e-5,
        atol=1e-6,
    )
    rate = float(np.float32(fee)) + float(np.float32(slip))
    assert_close(
        "info['fees'] == (fee+slip)*turnover*E",
        out["info"]["fees"],
        rate * turnover * e_prev,
        rtol=1e-5,
        atol=1e-9 * e0,
    )


# ----------------------------------------------------------------------------------------------
# NumPy reference parity on real prices
# ----------------------------------------------------------------------------------------------


def random_actions(rng, S, N, p_hold=0.3, p_zero=0.25, p_bad=0.02):
    """Targets with holds, exits to zero, sign flips, huge values and NaN/inf entries."""
    acts = np.zeros((S, N), np.float32)
    prev = np.zeros(N)
    for s in range(S):
        u = rng.random()
        if u < p_hold:
            a = prev.copy()
        elif u < p_hold + 0.15:
            a = -prev * rng.uniform(0.5, 2.0)
        else:
            a = rng.normal(size=N) * rng.choice([0.2, 0.7, 1.5, 4.0])
            a[rng.random(N) < p_zero] = 0.0
            if rng.random() < 0.03:
                a = a * 1e6
        bad = rng.random(N) < p_bad
        a = np.where(bad, rng.choice([np.nan, np.inf, -np.inf], N), a)
        acts[s] = a
        prev = np.where(np.isfinite(a), a, 0.0)
    return acts


PARITY_CASES = {
    # name: (env kwargs, params kwargs, symbols, F)
    "log_c2c_w1": (
        dict(reward="log_return", return_mode="close_to_close", long_only=False, window=1),
        dict(
            leverage_cap=2.0,
            fee_rate=5e-4,
            slippage_rate=2e-4,
            short_borrow_rate=0.03,
            annual_financing_rate=0.0675,
        ),
        7,
        2,
    ),
    "net_o2c_longonly_w3": (
        dict(reward="net_profit", return_mode="open_to_close", long_only=True, window=3),
        dict(leverage_cap=1.5, fee_rate=1e-3, initial_equity=1000.0, annual_financing_rate=0.05),
        4,
        3,
    ),
    "log_o2c_w2_bankrupt": (
        dict(reward="log_return", return_mode="open_to_close", long_only=False, window=2),
        dict(
            leverage_cap=3.0,
            fee_rate=2e-3,
            short_borrow_rate=0.05,
            bankruptcy_fraction=0.6,
            annual_financing_rate=0.1,
        ),
        5,
        1,
    ),
    "net_c2c_w5": (
        dict(reward="net_profit", return_mode="close_to_close", long_only=False, window=5),
        dict(
            leverage_cap=2.5,
            fee_rate=5e-4,
            slippage_rate=5e-4,
            short_borrow_rate=0.01,
            initial_equity=3.0,
        ),
        7,
        2,
    ),
}
PARITY_STEPS = 1000
PARITY_START = 700


def _parity_setup(name):
    env_kw, p_kw, n_sym, F = PARITY_CASES[name]
    m = _market()
    close = m.close[:, :n_sym].astype(np.float32).astype(np.float64)
    opn = m.open[:, :n_sym].astype(np.float32).astype(np.float64)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    feats = rng.normal(size=(close.shape[0], n_sym, F)).astype(np.float32).astype(np.float64)
    env = PortfolioEnv(num_assets=n_sym, num_features=F, **env_kw)
    params = EnvParams.from_arrays(
        close,
        feats,
        open_prices=opn,
        eval_start=PARITY_START,
        episode_length=252,
        window=env.window,
        **p_kw,
    )
    actions = random_actions(rng, PARITY_STEPS, n_sym)
    return env, params, close, opn, feats, actions


@pytest.mark.parametrize("name", list(PARITY_CASES))
def test_reference_parity_real_prices(name):
    env, params, close, opn, feats, actions = _parity_setup(name)
    pd_, md = params_dict(params), mode_dict(env)
    e0 = pd_["initial_equity"]
    obs0, state0, out = run_episode(env, params, actions)

    # reset observation
    want0 = reference_observation(feats, PARITY_START, np.zeros(close.shape[1]), e0, e0, env.window)
    assert_close("reset obs", obs0, want0)
    chex.assert_shape(obs0, (env.window * close.shape[1] * feats.shape[2] + close.shape[1] + 3,))

    # step by step: the reference gets the env's own state before every step; the per-step results
    # are stacked and compared at once (the message names the first failing step)
    ref_rows = []
    for s in range(PARITY_STEPS):
        before = state_at(state0) if s == 0 else state_at(out["state"], s - 1)
        ref_state, ref_obs, ref_rew, ref_term, _, ref_info = reference_step(
            before, actions[s], before["t"], close, opn, pd_, md, features=feats
        )
        ref_rows.append(
            dict(
                state=ref_state,
                obs=ref_obs,
                reward=ref_rew,
                terminated=ref_term,
                info={k: ref_info[k] for k in out["info"] if k in ref_info},
            )
        )
    ref_out = jax.tree.map(lambda *xs: np.stack(xs), *ref_rows)
    got_state = {k: np.asarray(getattr(out["state"], k)) for k in ref_out["state"]}
    atol = 1e-6 * e0
    exact = ("t", "time", "num_trades", "winning_trades")
    money = ("equity", "open_trade_pnl") + MONEY_KEYS
    pairs = [
        (f"state.{k}", got_state[k], ref_out["state"][k], k in money) for k in ref_out["state"]
    ]
    pairs += [(k, out[k], ref_out[k], False) for k in ("obs", "reward", "terminated")]
    pairs += [
        (
            f"info[{k!r}]",
            out["info"][k],
            ref_out["info"][k],
            k in ("equity", "fees", "financing", "gross_pnl", "closed_trade_pnl"),
        )
        for k in (
            "equity",
            "leverage",
            "turnover",
            "fees",
            "financing",
            "portfolio_return",
            "closed_trade_pnl",
            "num_closed",
            "gross_pnl",
        )
    ]
    for label, got, want, is_money in pairs:
        got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
        assert got.shape == want.shape, (label, got.shape, want.shape)
        if label.split(".")[-1] in exact or label in ("terminated", "info['num_closed']"):
            bad = got != want
        else:
            bad = ~np.isclose(got, want, rtol=1e-5, atol=atol if is_money else 1e-6)
        bad = bad.reshape(PARITY_STEPS, -1).any(-1)
        if bad.any():
            s = int(np.argmax(bad))
            pytest.fail(
                f"{name}: {label} differs from the reference at {bad.sum()} steps; first "
                f"at step {s}: env {got[s]} vs reference {want[s]}"
            )
    n_closed = int(ref_out["info"]["num_closed"].sum())
    n_term = int(ref_out["terminated"].sum())
    assert n_closed > 100, f"too few closed trades exercised ({n_closed})"
    if name == "log_o2c_w2_bankrupt":
        assert n_term > 0, "this case is meant to exercise bankruptcy"
        return  # after a bankruptcy the free-running paths legitimately split (threshold test)

    # free running: the float64 reference on its own state, looser tolerance (float32 compounding)
    ref = ReferencePortfolio(close, feats, open_prices=opn, params=pd_, mode=md)
    ref.reset(PARITY_START)
    ref_eq = np.empty(PARITY_STEPS)
    for s in range(PARITY_STEPS):
        ref.step(actions[s])
        ref_eq[s] = ref.state["equity"]
    assert_close("free-running equity path", out["state"].equity, ref_eq, rtol=1e-4, atol=0)
    assert ref.state["num_trades"] == int(out["state"].num_trades[-1])


# ----------------------------------------------------------------------------------------------
# per-trade accounting
# ----------------------------------------------------------------------------------------------


def test_trade_accounting_hand_computed_step():
    """Costs per asset (own turnover), financing pro rata to |w_i|, closing rules; by hand."""
    T, N = 6, 4
    r = np.array([0.02, -0.01, 0.03, 0.05])
    close = np.ones((T, N)) * 50.0
    close[3] = close[2] * (1 + r)
    env = PortfolioEnv(num_assets=N, num_features=1)
    params = EnvParams.from_arrays(
        close,
        np.zeros((T, N, 1)),
        leverage_cap=3.0,
        fee_rate=0.001,
        slippage_rate=0.0005,
        annual_financing_rate=0.1,
        short_borrow_rate=0.05,
        eval_start=2,
        episode_length=100,
    )
    _, s0 = jit_reset(env, KEY0, params)
    E = 2.0
    s0 = s0.replace(
        equity=jnp.asarray(E, s0.equity.dtype),
        weights=jnp.asarray([0.5, -0.3, 0.0, 0.2], s0.weights.dtype),
        open_trade_pnl=jnp.asarray([0.01, -0.02, 0.0, 0.003], s0.open_trade_pnl.dtype),
    )
    a = jnp.asarray([1.2, 0.4, -0.6, 0.0], jnp.float32)  # gross 2.2 < cap
    out = jax.tree.map(np.asarray, scan_step_env(env, s0, a[None], params))
    c, fin_tot = 0.0015, E * (2.2 - 1.0) * 0.1 / 252
    fin = fin_tot * np.array([1.2, 0.4, 0.6, 0.0]) / 2.2
    borrow2 = E * 0.6 * 0.05 / 252
    pnl = E * np.array([1.2, 0.4, -0.6, 0.0]) * r
    want_open = np.array(
        [
            0.01 + pnl[0] - E * c * 0.7 - fin[0],  # long -> bigger long: accumulate
            -E * c * 0.4 + pnl[1] - fin[1],  # short -> long flip: fresh trade pays its entry cost
            pnl[2] - E * c * 0.6 - fin[2] - borrow2,  # flat -> short: opens (no close)
            0.0,  # long -> flat: closed
        ]
    )
    want_closed = np.array([0.0, -0.02 - E * c * 0.3, 0.0, 0.003 - E * c * 0.2])
    info = out["info"]
    assert_close(
        "open_trade_pnl after hand step", out["state"].open_trade_pnl[0], want_open, atol=1e-7
    )
    assert_close("closed_trade_pnl", info["closed_trade_pnl"][0], want_closed, atol=1e-7)
    assert int(info["num_closed"][0]) == 2
    assert int(out["state"].num_trades[0]) == 2
    assert int(out["state"].winning_trades[0]) == 1  # the long->flat exit made +0.0024
    cost = E * c * np.array([0.7, 0.7, 0.6, 0.2])
    assert_close("info fees", info["fees"][0], cost.sum(), atol=1e-7)
    assert_close(
        "info financing (incl. borrow)", info["financing"][0], fin_tot + borrow2, atol=1e-8
    )
    want_e = E + pnl.sum() - cost.sum() - fin_tot - borrow2
    assert_close("equity", out["state"].equity[0], want_e, atol=1e-6)
    want_w = np.array([1.2, 0.4, -0.6, 0.0]) * (1 + r) * E / want_e
    assert_close("drifted weights", out["state"].weights[0], want_w, atol=1e-6)


@settings(**HYP)
@given(
    seed=st.integers(0, 2**31 - 1),
    fee=st.floats(0.0, 0.005),
    sbr=st.floats(0.0, 0.1),
    cap=st.floats(0.5, 3.0),
)
def test_trade_pnl_conservation(seed, fee, sbr, cap):
    params, *_ = syn_params(
        seed,
        fee_rate=fee,
        slippage_rate=fee / 3,
        short_borrow_rate=sbr,
        leverage_cap=cap,
        annual_financing_rate=0.08,
    )
    rng = np.random.default_rng(seed)
    a = random_actions(rng, SYN_S, SYN_N, p_hold=0.25, p_zero=0.35, p_bad=0.0)
    a = np.clip(a, -5, 5)
    _, state0, out = run_episode(SYN_ENV, params, a)
    assert not out["terminated"].any()
    closed = out["info"]["closed_trade_pnl"].astype(np.float64)
    total = closed.sum() + out["state"].open_trade_pnl[-1].astype(np.float64).sum()
    e_t, e_0 = float(out["state"].equity[-1]), float(state0.equity)
    assert abs(total - (e_t - e_0)) < 1e-5, f"sum(trade pnl) {total} != E_T - E_0 {e_t - e_0}"
    # counters: a trade closes when an asset's old sign is nonzero and the new sign differs
    w_old = np.sign(prev_weights(state0, out))
    w_new = np.sign(target_weights_np(a, float(np.float32(cap))))
    closes = (w_old != 0) & (w_new != w_old)
    assert int(out["state"].num_trades[-1]) == closes.sum()
    assert np.array_equal(out["info"]["num_closed"], closes.sum(-1))
    assert int(out["state"].winning_trades[-1]) == int((closed[closes] > 0).sum())
    assert np.all(closed[~closes] == 0.0)


V_IS_TERMINATED = jax.jit(jax.vmap(SYN_ENV.is_terminated, in_axes=(0, None)))


@settings(**HYP)
@given(
    seed=st.integers(0, 2**31 - 1),
    wipeout=st.booleans(),
    fee=st.floats(0.0, 0.005),
    bf=st.floats(0.3, 0.9),
    zero_bf=st.booleans(),
    drop=st.floats(0.3, 0.9),
    k=st.integers(1, SYN_S - 3),
    e0=st.sampled_from([1.0, 250.0]),
)
def test_trade_pnl_conservation_through_bankruptcy(seed, wipeout, fee, bf, zero_bf, drop, k, e0):
    """sum(closed + open trade PnL) == E_t - E_0 at EVERY step, bankruptcies included.

    A market crash of ``drop`` on step k, into a position sized so that the step terminates:
    ``wipeout`` (E' < 0: equity 1e-6 E0 and a write-off) or not (E' ~ bf/2 E0 > 0: equity is the
    liquidation value). Random trading continues after the termination (step_env, no reset); the
    invariant, ``is_terminated == terminated`` and the NumPy reference at the terminating step hold.
    """
    bf = 0.0 if (wipeout and zero_bf) else bf
    close, opn, feats = synth_market(seed, SYN_T, SYN_N, SYN_F)
    drop = max(drop, 0.6) if wipeout else drop
    close[k + 1 :] *= np.float32(1.0 - drop)
    cap = 5.0
    params = EnvParams.from_arrays(
        close,
        feats,
        open_prices=opn,
        eval_start=0,
        episode_length=1000,
        leverage_cap=cap,
        fee_rate=fee,
        short_borrow_rate=0.02,
        bankruptcy_fraction=bf,
        initial_equity=e0,
    )
    rng = np.random.default_rng(seed)
    a = np.clip(random_actions(rng, SYN_S, SYN_N, p_hold=0.25, p_zero=0.35, p_bad=0.0), -5, 5)
    a[:k] *= 0.02  # small positions before the crash (no earlier bankruptcy), trades still open
    a[k] = 0.0
    _, state0, out = run_episode(SYN_ENV, params, a)
    e_k = float(out["state"].equity[k - 1])
    r_k = close[k + 1] / close[k] - 1.0
    gross = cap if wipeout else (1.0 - 0.5 * bf * e0 / e_k) / float(-r_k.mean())
    a[k] = np.float32(gross / SYN_N)  # long every asset into the crash
    _, state0, out = run_episode(SYN_ENV, params, a)
    term = out["terminated"]
    assert term[k] and not term[:k].any(), (k, term)

    eq = out["state"].equity.astype(np.float64)
    closed = out["info"]["closed_trade_pnl"].astype(np.float64).sum(-1)
    open_ = out["state"].open_trade_pnl.astype(np.float64).sum(-1)
    err = np.abs(np.cumsum(closed) + open_ - (eq - e0))
    assert err.max() < 2e-5 * e0, (
        f"sum(trade pnl) != E_t - E_0 by {err.max():.3g} at {err.argmax()}"
    )
    st_ = out["state"]
    split = (st_.gross_pnl - st_.fees - st_.financing).astype(np.float64)
    assert np.abs(split - (eq - e0)).max() < 2e-5 * e0, "gross - fees - financing != E_t - E_0"
    assert np.array_equal(np.asarray(V_IS_TERMINATED(out["state"], params)), term), "two floors"
    floor = max(bf, 1e-6) * e0
    assert np.all(eq[term] <= floor * (1 + 1e-6)) and np.all(eq[term] >= 1e-6 * e0 * (1 - 1e-6))
    assert np.all(st_.weights[term] == 0) and np.all(st_.open_trade_pnl[term] == 0)
    if wipeout:
        assert eq[k] == pytest.approx(1e-6 * e0, rel=1e-6)
    else:
        assert 1e-6 * e0 < eq[k] < bf * e0, (eq[k], bf)
    # the float64 reference, fed the env's state before step k
    before = state_at(out["state"], k - 1)
    ref_state, _, ref_rew, ref_term, _, ref_info = reference_step(
        before, a[k], before["t"], close, opn, params_dict(params), mode_dict(SYN_ENV)
    )
    assert ref_term
    atol = 1e-6 * e0
    assert_close("equity at the bankruptcy", eq[k], ref_state["equity"], atol=atol)
    assert_close(
        "closed_trade_pnl at the bankruptcy",
        out["info"]["closed_trade_pnl"][k],
        ref_info["closed_trade_pnl"],
        atol=atol,
    )
    assert_close("fees at the bankruptcy", out["info"]["fees"][k], ref_info["fees"], atol=atol)
    assert_close(
        "gross_pnl at the bankruptcy", out["info"]["gross_pnl"][k], ref_info["gross_pnl"], atol=atol
    )
    assert_close("turnover at the bankruptcy", out["info"]["turnover"][k], ref_info["turnover"])
    assert int(out["info"]["num_closed"][k]) == ref_info["num_closed"]
    assert int(st_.winning_trades[k]) == ref_state["winning_trades"]
    assert_close("reward at the bankruptcy", out["reward"][k], ref_rew, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# jit / vmap
# ----------------------------------------------------------------------------------------------


def _tree_close(a, b, rtol=1e-6, atol=1e-7, what=""):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb), what
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol, err_msg=what)


def test_jit_equals_no_jit():
    params, *_ = syn_params(3, episode_length=2, eval_start=-1)
    rng = np.random.default_rng(0)
    acts = jnp.asarray(rng.normal(size=(3, SYN_N)) * 1.5, jnp.float32)
    keys = jax.random.split(jax.random.PRNGKey(7), 4)

    def run():
        obs, state = SYN_ENV.reset(keys[0], params)
        outs = [(obs, state)]
        for i in range(3):  # episode_length 2: includes an auto-reset
            out = SYN_ENV.step(keys[i + 1], state, acts[i], params)
            state = out[1]
            outs.append(out)
        return outs

    jitted = run()
    with jax.disable_jit():
        eager = run()
    assert bool(jitted[2][4]), "expected a truncation at step 2"
    _tree_close(jitted, eager, what="jit vs disable_jit")


V_RESET = jax.jit(jax.vmap(SYN_ENV.reset, in_axes=(0, None)))
V_STEP = jax.jit(jax.vmap(SYN_ENV.step, in_axes=(0, 0, 0, None)))


def test_vmap_64_envs_equals_loop():
    params, *_ = syn_params(5, eval_start=-1, episode_length=2)
    B = 64
    keys = jax.random.split(jax.random.PRNGKey(1), B)
    acts = jnp.asarray(np.random.default_rng(1).normal(size=(3, B, SYN_N)) * 2, jnp.float32)
    obs, state = V_RESET(keys, params)
    batched = [(obs, state)]
    for i in range(3):  # episode_length 2: includes an auto-reset
        out = V_STEP(keys, state, acts[i], params)
        state = out[1]
        batched.append(out)
    assert len(set(np.asarray(batched[0][1].t).tolist())) > 1, "random starts should differ"
    singles = []
    for b in range(B):
        o, s = SYN_ENV.reset(keys[b], params)
        single = [(o, s)]
        for i in range(3):
            out = SYN_ENV.step(keys[b], s, acts[i, b], params)
            s = out[1]
            single.append(out)
        singles.append(single)
    looped = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *singles)
    # vectorised float32 code may round differently by an ulp: tight but not bitwise
    _tree_close(batched, looped, rtol=1e-5, atol=1e-6, what="vmap over 64 envs vs Python loop")


def test_vmap_over_two_param_sets():
    p1, *_ = syn_params(11, fee_rate=5e-4, leverage_cap=2.0)
    p2, *_ = syn_params(11, fee_rate=2e-3, leverage_cap=1.0, annual_financing_rate=0.2)
    stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), p1, p2)
    acts = jnp.asarray(np.random.default_rng(2).normal(size=(SYN_S, SYN_N)) * 2, jnp.float32)
    vrun = jax.jit(jax.vmap(lambda p: episode(SYN_ENV, p, acts), in_axes=0))
    both = vrun(stacked)
    for i, p in enumerate((p1, p2)):
        single = run_episode(SYN_ENV, p, acts)
        _tree_close(jax.tree.map(lambda x: x[i], both), single, what=f"params set {i}")
    lev = np.asarray(both[2]["info"]["leverage"])
    assert lev[1].max() <= 1.0 + 1e-6 < lev[0].max(), "each env must use its own leverage_cap"


# ----------------------------------------------------------------------------------------------
# gradient
# ----------------------------------------------------------------------------------------------


def test_grad_of_episode_reward_matches_finite_differences():
    """d(sum of 64 log-rewards)/dW for action = tanh(obs @ W) * cap vs central differences.

    Run under enable_x64 with float64 params so the state is float64; the env still rounds the
    action and the obs to float32 (its documented dtypes), which puts ~1e-9 noise on the episode
    reward, so eps = 3e-5. The objective has kinks (|w_new - w|, the cap, max(0, G - 1)); a
    coordinate whose +-eps probe straddles one can disagree, so we demand the bulk to agree
    (>= 90% of all 36 coordinates within 2%, median within 3e-3; measured: 35/36 within 1%,
    median 4.6e-4) rather than every coordinate.
    """
    m = _market()
    N, F, S, t0 = 3, 2, 64, 300
    close = m.close[:, :N]
    feats = np.random.default_rng(4).normal(size=(close.shape[0], N, F)) * 0.5
    env = PortfolioEnv(num_assets=N, num_features=F)
    with jax.enable_x64(True):
        params = EnvParams.from_arrays(
            close, feats, leverage_cap=2.0, eval_start=t0, episode_length=1000
        )

        def to64(x):
            return x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x

        params = jax.tree.map(to64, params)
        obs0, s0 = env.reset(KEY0, params)
        obs0, s0 = jax.tree.map(to64, (obs0, s0))
        D = obs0.shape[0]

        def total_reward(W):
            def body(carry, _):
                obs, s = carry
                a = jnp.tanh(obs.astype(W.dtype) @ W) * 2.0
                obs2, s2, rew, _, _ = env.step_env(KEY0, s, a, params)
                # the env emits float32 obs and (under x64) int64 counters: keep the carry types
                s2 = jax.tree.map(lambda x, y: x.astype(y.dtype), s2, s)
                return (obs2.astype(obs.dtype), s2), rew

            _, rews = jax.lax.scan(body, (obs0, s0), None, length=S)
            return rews.sum()

        W = jnp.asarray(np.random.default_rng(5).normal(size=(D, N)) * 0.1)
        value, g = jax.jit(jax.value_and_grad(total_reward))(W)
        assert value.dtype == jnp.float64, "expected a float64 episode reward under x64"
        g = np.asarray(g)
        assert np.all(np.isfinite(g)) and np.isfinite(float(value))
        assert np.abs(g).max() > 1e-2, "gradient suspiciously zero"
        eps = 3e-5
        bump = jax.jit(jax.vmap(lambda d: total_reward(W + d)))
        deltas = np.zeros((D * N, D, N))
        deltas.reshape(D * N, D * N)[np.arange(D * N), np.arange(D * N)] = eps
        fd = (np.asarray(bump(deltas)) - np.asarray(bump(-deltas))) / (2 * eps)
        rel = np.abs(fd - g.ravel()) / np.maximum(np.abs(fd), 1e-2)
        worst = int(np.argmax(rel))
        msg = (
            f"grad vs central differences: median rel err {np.median(rel):.2e}, "
            f"{(rel > 2e-2).sum()}/{rel.size} coords > 2%; worst W{divmod(worst, N)}: "
            f"grad {g.ravel()[worst]:.6g} vs fd {fd[worst]:.6g}"
        )
        assert np.median(rel) < 3e-3 and np.mean(rel <= 2e-2) >= 0.9, msg


# ----------------------------------------------------------------------------------------------
# robustness: 1e6 steps of extreme actions
# ----------------------------------------------------------------------------------------------


def test_million_extreme_steps_stay_finite():
    B, S, N = 1000, 1000, 3
    rng = np.random.default_rng(9)
    T = 200
    # daily moves up to +-45% with occasional -80% crashes, so bankruptcies and resets happen
    rets = rng.normal(0, 0.05, (T, N))
    rets[rng.random((T, N)) < 0.03] = -0.8
    close = 10.0 * np.exp(np.cumsum(np.log1p(np.clip(rets, -0.8, 0.45)), axis=0))
    feats = rng.normal(size=(T, N, 2))
    env = PortfolioEnv(num_assets=N, num_features=2, window=2)
    params = EnvParams.from_arrays(
        close,
        feats,
        open_prices=close * 1.01,
        leverage_cap=5.0,
        short_borrow_rate=0.05,
        bankruptcy_fraction=0.0,
        episode_length=60,
        window=2,
    )
    specials = jnp.asarray([jnp.nan, jnp.inf, -jnp.inf, 1e9, -1e9, 1e30, -3.4e38, 0.0], jnp.float32)

    @jax.jit
    def run(key):
        k0, k1 = jax.random.split(key)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k0, B), params)
        vstep = jax.vmap(env.step, in_axes=(0, 0, 0, None))

        def body(carry, k):
            obs, state, ok = carry
            ka, kb, kc = jax.random.split(k, 3)
            idx = jax.random.randint(ka, (B, N), 0, specials.shape[0] + 3)
            normal = jax.random.normal(kb, (B, N)) * 3.0
            act = jnp.where(idx < specials.shape[0], specials[jnp.minimum(idx, 7)], normal)
            obs, state, rew, term, trunc, info = vstep(jax.random.split(kc, B), state, act, params)
            fin = lambda tree: jnp.all(
                jnp.stack(
                    [  # noqa: E731
                        jnp.all(jnp.isfinite(x))
                        for x in jax.tree.leaves(tree)
                        if jnp.issubdtype(x.dtype, jnp.floating)
                    ]
                )
            )
            info_ok = fin({k_: v for k_, v in info.items() if k_ != "final_observation"})
            ok = ok & jnp.stack([fin(obs), fin(rew), fin(state), info_ok])
            return (obs, state, ok), (term.sum(), trunc.sum())

        init = (obs, state, jnp.ones(4, bool))
        (_, _, ok), (nterm, ntrunc) = jax.lax.scan(body, init, jax.random.split(k1, S))
        return ok, nterm.sum(), ntrunc.sum()

    ok, nterm, ntrunc = run(jax.random.PRNGKey(42))
    ok = np.asarray(ok)
    assert ok.all(), f"non-finite values in (obs, reward, state, info): ok flags {ok.tolist()}"
    assert int(nterm) > 0 and int(ntrunc) > 0, (int(nterm), int(ntrunc))


# ----------------------------------------------------------------------------------------------
# reset, truncation, bankruptcy
# ----------------------------------------------------------------------------------------------

W3_ENV = PortfolioEnv(num_assets=2, num_features=2, window=3)
W3_V_RESET = jax.jit(jax.vmap(W3_ENV.reset, in_axes=(0, None)))


def _w3_params(T=30, **kw):
    close, _, feats = synth_market(21, T, 2, 2)
    return EnvParams.from_arrays(close, feats, window=3, **kw), close, feats


def test_reset_with_eval_start_is_fixed_and_clean():
    params, close, feats = _w3_params(eval_start=7, episode_length=5)
    for seed in range(3):
        obs, s = jit_reset(W3_ENV, jax.random.PRNGKey(seed), params)
        assert int(s.t) == 7 and int(s.time) == 0
        assert float(s.equity) == 1.0
        for k in ENV_STATE_FIELDS[3:]:  # everything after t, time, equity
            assert np.all(np.asarray(getattr(s, k)) == 0), k
        assert_close("reset obs", obs, reference_observation(feats, 7, np.zeros(2), 1.0, 1.0, 3))


def test_random_reset_covers_inclusive_range():
    keys = jax.random.split(jax.random.PRNGKey(3), 2000)
    # T=30, L=20: t in [start_min, T-1-L] = [4, 9]
    params, *_ = _w3_params(episode_length=20, start_min=4)
    ts = set(np.asarray(W3_V_RESET(keys, params)[1].t).tolist())
    assert ts == set(range(4, 10)), f"random starts {sorted(ts)} != [4..9]"
    # default start_min = window - 1 = 2; L=25 -> [2, 4]
    params, *_ = _w3_params(episode_length=25)
    ts = set(np.asarray(W3_V_RESET(keys, params)[1].t).tolist())
    assert ts == {2, 3, 4}, f"random starts {sorted(ts)} != [2..4]"
    # range empty (T-1-L < start_min): clipped to start_min
    params, *_ = _w3_params(episode_length=100, start_min=5)
    ts = set(np.asarray(W3_V_RESET(keys, params)[1].t).tolist())
    assert ts == {5}, f"random starts {sorted(ts)} != [5]"


@functools.partial(jax.jit, static_argnums=0)
def scan_step(env, state, actions, params):
    """env.step (auto-reset) over actions [S, N] from state; returns stacked outputs."""

    def body(s, a):
        obs, s2, reward, term, trunc, info = env.step(KEY0, s, a, params)
        return s2, dict(
            obs=obs, state=s2, reward=reward, terminated=term, truncated=trunc, info=info
        )

    return jax.lax.scan(body, state, actions)[1]


def run_auto(env, params, actions):
    state0 = jit_reset(env, KEY0, params)[1]
    return jax.tree.map(
        np.asarray, scan_step(env, state0, jnp.asarray(actions, jnp.float32), params)
    )


def test_truncation_at_episode_length_and_end_of_data():
    acts = np.full((SYN_S, SYN_N), 0.4, np.float32)
    # episode_length = 4 from day 5
    params, *_ = syn_params(1, eval_start=5, episode_length=4)
    out = run_auto(SYN_ENV, params, acts)
    assert out["truncated"][:6].tolist() == [False, False, False, True, False, False]
    assert out["truncated"].sum() == SYN_S // 4
    assert not out["terminated"].any()
    assert out["state"].time[:6].tolist() == [1, 2, 3, 0, 1, 2], "auto-reset after truncation"
    assert out["state"].t[:6].tolist() == [6, 7, 8, 5, 6, 7]
    assert out["state"].equity[3] == 1.0 and out["state"].equity[2] != 1.0
    # end of data: T=32, start 28: 28->29, 29->30, 30->31 (= T-1) truncates
    params, *_ = syn_params(1, eval_start=28, episode_length=100)
    out = run_auto(SYN_ENV, params, acts)
    assert out["truncated"][:3].tolist() == [False, False, True], out["truncated"]
    assert out["state"].t[:4].tolist() == [29, 30, 28, 29]


def _crash_params(bf, fee=0.0, N=SYN_N):
    close = np.full((SYN_T, N), 100.0)
    close[3:, 0] = 40.0  # -60% on day 2 -> 3
    return EnvParams.from_arrays(
        close,
        np.zeros((SYN_T, N, SYN_F)),
        eval_start=1,
        bankruptcy_fraction=bf,
        fee_rate=fee,
        episode_length=50,
    )


def test_bankruptcy_terminates_liquidates_and_creates_no_money():
    """README item 8: terminated iff E' <= max(bf, 1e-6) E0; E_T = max(liquidation, 1e-6 E0)."""
    acts = np.zeros((SYN_S, SYN_N), np.float32)
    acts[0, 0], acts[1, 0] = 1.0, 2.0  # flat day, then 2x long into the -60% crash: E' < 0
    for bf in (0.0, 0.5):
        params = _crash_params(bf)
        _, s0, out = run_episode(SYN_ENV, params, acts)
        assert out["terminated"][:2].tolist() == [False, True], f"bf={bf}: {out['terminated']}"
        e1 = float(out["state"].equity[0])
        # the liquidation value is negative: equity is 1e-6 E0 (kept positive), not bf * E0
        assert_close(
            f"equity after a wipe-out (bf={bf})", out["state"].equity[1], 1e-6, rtol=1e-6, atol=0
        )
        assert np.all(out["state"].weights[1] == 0), "position must be liquidated"
        assert np.all(out["state"].open_trade_pnl[1] == 0), "no trade may stay open"
        assert int(out["state"].num_trades[1]) == 1 and int(out["info"]["num_closed"][1]) == 1
        assert_close("bankrupt log reward", out["reward"][1], np.log(1e-6 / e1), rtol=1e-5)
        assert_close(
            "bankrupt obs tail (w, cash, lev, E/E0-1)",
            out["obs"][1][-(SYN_N + 3) :],
            [0] * SYN_N + [1, 0, 1e-6 - 1],
            atol=1e-6,
        )
        # env.step: terminated is reported and the state auto-resets
        o2 = run_auto(SYN_ENV, params, acts)
        assert o2["terminated"][:2].tolist() == [False, True]
        assert float(o2["state"].equity[1]) == 1.0 and int(o2["state"].t[1]) == 1
        assert int(o2["state"].time[1]) == 0
        assert_close("reward of the bankrupt step", o2["reward"][1], np.log(1e-6 / e1), rtol=1e-5)
    # 1x long through the same crash: E' = 0.4 E0 -> terminated with bf=0.5 and equity stays 0.4
    # (not raised to 0.5), survives with bf=0.3, and bf=0.4 is the boundary (E' == bf * E0 in
    # float32 terminates: the test is <=)
    acts1 = np.zeros((SYN_S, SYN_N), np.float32)
    acts1[:2, 0] = 1.0
    for bf, term in ((0.5, True), (0.3, False), (0.4, True)):
        params = _crash_params(bf)
        _, _, out = run_episode(SYN_ENV, params, acts1)
        assert bool(out["terminated"][1]) == term, (bf, out["terminated"][:2])
        assert_close(f"equity after the 1x crash (bf={bf})", out["state"].equity[1], 0.4, rtol=1e-6)
        st1 = jax.tree.map(lambda x: x[1], out["state"])
        assert bool(SYN_ENV.is_terminated(st1, params)) == term, (
            "one floor for step and is_terminated"
        )


def test_one_floor_for_step_and_is_terminated_below_one_millionth():
    """bankruptcy_fraction 0: E' = 5e-7 E0 terminates (before: terminated=False while equity was
    raised to 1e-6, creating money); E' = 3e-6 E0 does not and is kept as is."""
    for frac_left, term in ((5e-7, True), (3e-6, False)):
        close = np.full((SYN_T, SYN_N), 100.0)
        close[3:, 0] = 100.0 * frac_left
        params = EnvParams.from_arrays(
            close,
            np.zeros((SYN_T, SYN_N, SYN_F)),
            eval_start=2,
            fee_rate=0.0,
            annual_financing_rate=0.0,
            episode_length=50,
        )
        acts = np.zeros((SYN_S, SYN_N), np.float32)
        acts[0, 0] = 1.0  # 1x long: E' = frac_left * E0
        _, _, out = run_episode(SYN_ENV, params, acts[:1])
        e1 = float(out["state"].equity[0])
        assert bool(out["terminated"][0]) == term, (frac_left, out["terminated"][0])
        st0 = jax.tree.map(lambda x: x[0], out["state"])
        assert bool(SYN_ENV.is_terminated(st0, params)) == term
        # kept positive: a write-off of 1e-6 - E' when below; E' = 1 + r carries float32's
        # absolute rounding of r (~6e-8)
        want = max(frac_left, 1e-6)
        assert e1 == pytest.approx(want, abs=1.2e-7), (frac_left, e1)
        closed = float(out["info"]["closed_trade_pnl"][0].sum())
        open_ = float(out["state"].open_trade_pnl[0].sum())
        assert closed + open_ == pytest.approx(e1 - 1.0, abs=1e-7)
        assert float(out["info"]["gross_pnl"][0]) == pytest.approx(e1 - 1.0, abs=1e-7)


def test_net_profit_reward_on_bankruptcy_uses_final_equity():
    """Items 7 and 8: the reward uses the equity after liquidation (as log_return does)."""
    acts = np.zeros((SYN_S, SYN_N), np.float32)
    acts[0, 0], acts[1, 0] = 1.0, 2.0  # flat day, then 2x long into the -60% crash
    env_np = PortfolioEnv(num_assets=SYN_N, num_features=SYN_F, reward="net_profit")
    for bf in (0.0, 0.5):
        _, _, out = run_episode(env_np, _crash_params(bf), acts)
        e1 = float(out["state"].equity[0])
        assert bool(out["terminated"][1])
        got = float(out["reward"][1])
        assert abs(got - (1e-6 - e1)) < 1e-6, (bf, got, 1e-6 - e1)


@pytest.mark.parametrize("num_assets", [1, 3])
def test_two_x_long_into_sixty_pct_drop_books_the_liquidation(num_assets):
    """Issue #16 item 2 regression: the liquidation is a closed trade that pays its exit cost, and
    the trade profits sum to E_T - E_0 (before: trade_pnl_total -1.2, the trade open, 0 closed)."""
    env = PortfolioEnv(num_assets=num_assets, num_features=SYN_F)
    fee = 5e-4
    params = _crash_params(0.0, fee=fee, N=num_assets)
    acts = np.zeros((SYN_S, num_assets), np.float32)
    acts[:, 0] = 2.0  # 2x long from day 1: flat day, then the -60% day
    _, s0, out = run_episode(env, params, acts[:2])
    e1 = float(out["state"].equity[0])
    assert out["terminated"].tolist() == [False, True]
    # fees of the step: the rebalance back to 2x, plus the exit cost on the liquidated notional
    # E * w * (1 + r) = e1 * 2 * 0.4
    w1 = float(out["state"].weights[0, 0])
    assert_close(
        "fees of the bankrupt step (incl. exit cost)",
        out["info"]["fees"][1],
        fee * e1 * (abs(2.0 - w1) + 2 * 0.4),
        rtol=1e-5,
        atol=1e-9,
    )
    assert int(out["state"].num_trades[-1]) == 1 and np.all(out["state"].open_trade_pnl[-1] == 0)
    total = out["info"]["closed_trade_pnl"].astype(np.float64).sum()
    assert total == pytest.approx(float(out["state"].equity[-1]) - 1.0, abs=1e-6)
    assert float(out["state"].equity[-1]) == pytest.approx(1e-6, rel=1e-6)
    st = out["state"]
    assert float(st.gross_pnl[-1] - st.fees[-1] - st.financing[-1]) == pytest.approx(
        1e-6 - 1.0, abs=1e-6
    )
    # the same through jaxport.eval, where the issue was seen
    from jaxport.eval import evaluate_policy

    p_eval = EnvParams.from_arrays(
        np.asarray(params.prices),
        np.zeros((SYN_T, num_assets, SYN_F)),
        eval_start=1,
        fee_rate=fee,
        episode_length=None,
    )
    res = evaluate_policy(env, p_eval, lambda key, obs: jnp.asarray(acts[0]))
    m = res["metrics"]
    assert m["bankrupt"] is True
    assert m["final_equity"] == pytest.approx(1e-6, rel=1e-6)
    assert m["trade_pnl_total"] == pytest.approx(m["final_equity"] - 1.0, abs=1e-6)
    assert (m["num_closed_trades"], m["num_open_trades"]) == (1, 0)


@pytest.mark.parametrize("return_mode", ["close_to_close", "open_to_close"])
def test_stepping_past_the_last_bar_moves_nothing(return_mode):
    """Issue #16 item 3: from day T-1 on there is no next bar: returns are 0 (no reuse of the
    last bar's move), and the state reports truncation."""
    close, opn, feats = synth_market(5, SYN_T, SYN_N, SYN_F)
    opn[-1] = close[-1] / 1.02  # the last bar returns +2 % open-to-close
    env = PortfolioEnv(num_assets=SYN_N, num_features=SYN_F, return_mode=return_mode)
    params = EnvParams.from_arrays(
        close,
        feats,
        open_prices=opn,
        eval_start=SYN_T - 2,
        fee_rate=0.0,
        annual_financing_rate=0.0,
        episode_length=10,
    )
    for t in (SYN_T - 1, SYN_T, SYN_T + 5):
        assert np.all(np.asarray(env.asset_returns(jnp.int32(t), params)) == 0), t
    acts = np.tile(np.asarray([[1.0, 0.0, 0.0]], np.float32), (4, 1))
    _, s0, out = run_episode(env, params, acts)
    eq = out["state"].equity.astype(np.float64)
    base = opn[-1, 0] if return_mode == "open_to_close" else close[-2, 0]
    assert_close("the last real step", eq[0], close[-1, 0] / base, rtol=1e-6)
    assert np.all(eq[1:] == eq[0]), f"equity moved past the last bar: {eq}"
    assert np.all(out["info"]["gross_pnl"][1:] == 0) and np.all(out["reward"][1:] == 0)
    for i in range(4):
        st_i = jax.tree.map(lambda x: x[i], out["state"])
        assert bool(env.is_truncated(st_i, params)), i
    # the NumPy reference agrees step by step (same masking)
    before = state_at(s0)
    for i in range(4):
        ref_state, _, ref_rew, *_ = reference_step(
            before, acts[i], before["t"], close, opn, params_dict(params), mode_dict(env)
        )
        assert_close(f"reference equity step {i}", eq[i], ref_state["equity"], rtol=1e-6)
        before = state_at(out["state"], i)


# ----------------------------------------------------------------------------------------------
# shapes
# ----------------------------------------------------------------------------------------------


def test_shapes_and_dtypes():
    cases = (
        (SYN_ENV, syn_params(0)[0], V_RESET),
        (W3_ENV, _w3_params(eval_start=4)[0], W3_V_RESET),
    )
    for env, params, vreset in cases:
        window, N, F = env.window, env.num_assets, env.num_features
        obs, s = jit_reset(env, KEY0, params)
        D = window * N * F + N + 3
        chex.assert_shape(obs, (D,))
        chex.assert_type(obs, jnp.float32)
        out = scan_step_env(env, s, jnp.ones((SYN_S, N), jnp.float32), params)
        chex.assert_shape(out["obs"], (SYN_S, D))
        chex.assert_shape([out["reward"], out["terminated"]], (SYN_S,))
        chex.assert_shape(out["info"]["closed_trade_pnl"], (SYN_S, N))
        chex.assert_shape(
            [
                out["info"][k]
                for k in (
                    "equity",
                    "leverage",
                    "turnover",
                    "fees",
                    "financing",
                    "portfolio_return",
                    "num_closed",
                    "gross_pnl",
                )
            ],
            (SYN_S,),
        )
        for st_ in (s, jax.tree.map(lambda x: x[0], out["state"])):
            chex.assert_shape(
                [
                    st_.t,
                    st_.time,
                    st_.equity,
                    st_.gross_pnl,
                    st_.fees,
                    st_.financing,
                    st_.num_trades,
                    st_.winning_trades,
                ],
                (),
            )
            chex.assert_shape([st_.weights, st_.open_trade_pnl], (N,))
            chex.assert_type([st_.t, st_.time, st_.num_trades, st_.winning_trades], jnp.int32)
            chex.assert_type([st_.equity, st_.weights, st_.open_trade_pnl], jnp.float32)
        B = 2000
        vobs, vs = vreset(jax.random.split(KEY0, B), params)
        chex.assert_shape(vobs, (B, D))
        chex.assert_shape(vs.weights, (B, N))
