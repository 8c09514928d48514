"""The batched Torch reference of the benchmark (benchmarks/torch_reference.py) computes exactly
what ``PortfolioEnv.step`` computes, so the JAX-vs-Torch ratios compare equal work.

Both are driven with the same actions (including NaN/inf and over-cap ones) through bankruptcies,
truncations and auto-resets; the Torch reference is handed the JAX env's reset days (its own draws
are checked separately), and every output and state field must agree to float32 rounding.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import ENV_STATE_FIELDS, load_benchmark
from jaxport.env import EnvParams, PortfolioEnv

torch = pytest.importorskip("torch")
torch_reference = load_benchmark("torch_reference")
TorchPortfolioReference = torch_reference.TorchPortfolioReference
draw_starts, portfolio_step = torch_reference.draw_starts, torch_reference.portfolio_step

T, N, F, B, STEPS = 60, 3, 2, 24, 40
STATE_FIELDS = ENV_STATE_FIELDS
INFO_FIELDS = (
    "equity",
    "leverage",
    "turnover",
    "fees",
    "financing",
    "gross_pnl",
    "portfolio_return",
    "closed_trade_pnl",
    "num_closed",
)


def _market(seed=0):
    rng = np.random.default_rng(seed)
    # wild daily moves (+-25 %) and crashes so that 2x positions go bankrupt within an episode
    log_ret = rng.normal(0.0, 0.12, (T, N)) - 0.6 * (rng.random((T, N)) < 0.04)
    close = (50.0 * np.exp(np.cumsum(log_ret, axis=0))).astype(np.float32)
    opens = (
        close.copy()
    )  # open = previous close with a small gap, so open-to-close holds the day's move
    opens[1:] = close[:-1] * np.exp(rng.normal(0, 0.01, (T - 1, N))).astype(np.float32)
    feats = rng.normal(size=(T, N, F)).astype(np.float32)
    return close, opens, feats


def _actions(seed=1):
    rng = np.random.default_rng(seed)
    a = (rng.normal(size=(STEPS, B, N)) * 1.5).astype(np.float32)
    a[rng.random(a.shape) < 0.15] = 0.0  # flat positions: trades close
    a[3, 0, 0], a[5, 1, 1], a[7, 2, 2] = np.nan, np.inf, -np.inf
    return a


CASES = {
    "log_close_window2": dict(
        env=dict(window=2),
        params=dict(
            bankruptcy_fraction=0.3, slippage_rate=0.0007, short_borrow_rate=0.04, episode_length=9
        ),
    ),
    "net_open_longonly": dict(
        env=dict(long_only=True, reward="net_profit", return_mode="open_to_close"),
        params=dict(
            bankruptcy_fraction=0.6,
            fee_rate=0.002,
            leverage_cap=1.5,
            annual_financing_rate=0.2,
            episode_length=12,
            initial_equity=3.0,
        ),
    ),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def both(request):
    case = CASES[request.param]
    close, opens, feats = _market()
    params_kw = dict(case["params"], open_prices=opens)
    env = PortfolioEnv(num_assets=N, num_features=F, **case["env"])
    params = EnvParams.from_arrays(close, feats, window=env.window, **params_kw)
    ref = TorchPortfolioReference(close, feats, num_envs=B, **case["env"], **params_kw)
    return env, params, ref


def _close(name, got, want, rtol=2e-5, atol=2e-6):
    np.testing.assert_allclose(
        np.asarray(got, np.float64),
        np.asarray(want, np.float64),
        rtol=rtol,
        atol=atol,
        err_msg=name,
    )


def test_torch_reference_matches_jax_step(both):
    env, params, ref = both
    vreset = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
    vstep = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    obs, state = vreset(jax.random.split(jax.random.key(0), B), params)
    t_obs = ref.reset(torch.as_tensor(np.array(state.t), dtype=torch.int64))
    _close("reset obs", t_obs, obs, atol=0)
    actions = _actions()
    n_term = n_trunc = n_closed = 0
    for i in range(STEPS):
        keys = jax.random.split(jax.random.key(100 + i), B)
        obs, state, reward, term, trunc, info = vstep(keys, state, jnp.asarray(actions[i]), params)
        starts = torch.as_tensor(
            np.array(state.t), dtype=torch.int64
        )  # JAX's reset days (used where done)
        t_obs, t_reward, t_term, t_trunc, t_info = ref.step(
            torch.as_tensor(actions[i]), starts, with_info=True
        )
        where = f"step {i}"
        np.testing.assert_array_equal(
            t_term.numpy(), np.asarray(term), err_msg=f"{where} terminated"
        )
        np.testing.assert_array_equal(
            t_trunc.numpy(), np.asarray(trunc), err_msg=f"{where} truncated"
        )
        _close(f"{where} reward", t_reward, reward)
        _close(f"{where} obs", t_obs, obs)
        for k in INFO_FIELDS:
            _close(f"{where} info[{k}]", t_info[k], info[k])
        for k in STATE_FIELDS:
            _close(f"{where} state.{k}", getattr(ref.state, k), getattr(state, k))
        n_term += int(np.sum(term))
        n_trunc += int(np.sum(trunc))
        n_closed += int(np.sum(info["num_closed"]))
    # the run must exercise every branch it claims to check
    assert n_term > 0, "no bankruptcy happened"
    assert n_trunc > 0, "no truncation happened"
    assert n_closed > 0, "no trade closed"


def test_torch_reference_random_starts_cover_the_range():
    close, _, feats = _market()
    ref = TorchPortfolioReference(close, feats, num_envs=4, episode_length=20, start_min=5)
    starts = draw_starts(3000, ref.consts, "cpu").numpy()
    assert set(starts.tolist()) == set(range(5, T - 1 - 20 + 1))  # [start_min, T-1-L] inclusive
    # and the auto-reset inside the step draws from the same range (no starts handed in)
    ref = TorchPortfolioReference(close, feats, num_envs=3000, episode_length=1, start_min=5)
    ref.reset()
    ref.step(torch.zeros(3000, N))  # episode_length 1: every env truncates and resets
    assert set(ref.state.t.numpy().tolist()) == set(range(5, T - 1 - 1 + 1))
    assert np.all(ref.state.time.numpy() == 0)


@pytest.mark.skipif(
    not os.environ.get("JAXPORT_TEST_TORCH_COMPILE"),
    reason="torch.compile takes ~30 s on 2 cores; set JAXPORT_TEST_TORCH_COMPILE=1",
)
def test_compiled_reference_equals_eager():
    close, opens, feats = _market()
    eager = TorchPortfolioReference(
        close, feats, num_envs=B, bankruptcy_fraction=0.3, episode_length=9
    )
    comp = TorchPortfolioReference(
        close, feats, num_envs=B, bankruptcy_fraction=0.3, episode_length=9
    ).compile()
    starts = torch.arange(B) % 20 + 1
    eager.reset(starts)
    comp.reset(starts)
    for i, a in enumerate(_actions()[:12]):
        a = torch.as_tensor(a)
        e, c = eager.step(a, starts), comp.step(a, starts)
        for x, y in zip(e, c):
            _close(f"step {i}", y, x)
    assert portfolio_step is not None
