"""torch_compat: Gymnasium/Torch envs over the JAX PortfolioEnv, and the differentiable reward.

Parity tolerance: the JAX env, the Torch env and the vector env run the same float32 math (different
XLA programs may fuse differently), so observations/rewards agree to rtol = atol = 1e-6.
Gradients: the differentiable reward runs the JAX step in float32 (whatever the Torch dtype) and is
compared to central finite differences (eps 1e-6) of the float64 NumPy reference
(tests/env_reference.py): atol 2e-5 (float32 rounding of per-step log-returns ~1e-7, over a few
steps and assets; the measured max error is ~1e-7 against gradients of ~5e-2).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import ArrayConversion

import torch_compat as tc
from env_reference import reference_reset_state, reference_step
from helpers import random_walk_market
from jaxport.data import DataError, load_market
from jaxport.errors import JaxportError
from jaxport.features import STAT_FEATURE_NAMES, warmup_days

ROOT = Path(__file__).resolve().parents[1]
T, N, F = 48, 3, 2
OPTS = dict(
    episode_length=3,
    fee_rate=0.001,
    annual_financing_rate=0.1,
    short_borrow_rate=0.05,
    leverage_cap=1.5,
)
TOL = dict(rtol=1e-6, atol=1e-6)
H = 4  # differentiable-episode length everywhere (one compiled program); > episode_length


PRICES, FEATS = random_walk_market(T, N, F, seed=0)


@pytest.fixture(scope="module")
def env():
    return tc.TorchPortfolioEnv(PRICES, FEATS, **OPTS)


@pytest.fixture(scope="module")
def venv():
    return tc.TorchPortfolioVectorEnv(PRICES, FEATS, num_envs=3, **OPTS)


def _actions(steps: int, batch: int | None = None, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (steps, N) if batch is None else (steps, batch, N)
    return rng.uniform(-1.0, 1.0, shape).astype(np.float32)


# ---------------------------------------------------------------------------------- single env
def test_spaces_types_and_info(env):
    jenv, params = env.jax_env, env.params
    assert isinstance(env, gym.Env)
    box = jenv.action_space(params)
    np.testing.assert_allclose(env.action_space.low, np.broadcast_to(np.asarray(box.low), (N,)))
    np.testing.assert_allclose(env.action_space.high, np.broadcast_to(np.asarray(box.high), (N,)))
    assert env.action_space.shape == (N,) and env.action_space.dtype == np.float32
    assert env.observation_space.shape == (jenv.obs_dim,) == (N * F + N + 3,)
    obs, info = env.reset(seed=0)
    assert (
        isinstance(obs, torch.Tensor)
        and obs.dtype == torch.float32
        and obs.shape == (jenv.obs_dim,)
    )
    assert obs.device == torch.device("cpu")
    obs, reward, terminated, truncated, info = env.step(torch.tensor([0.5, -0.4, 0.3]))
    assert isinstance(obs, torch.Tensor) and obs.dtype == torch.float32
    assert (
        isinstance(reward, float) and isinstance(terminated, bool) and isinstance(truncated, bool)
    )
    for key in (
        "equity",
        "leverage",
        "fees",
        "financing",
        "closed_trade_pnl",
        "gross_pnl",
        "turnover",
    ):
        assert isinstance(info[key], torch.Tensor), key
    assert info["closed_trade_pnl"].shape == (N,)
    np.testing.assert_allclose(float(info["leverage"]), 1.2, rtol=1e-6)
    np.testing.assert_allclose(float(info["fees"]), 0.001 * 1.2, rtol=1e-5)
    np.testing.assert_allclose(np.exp(reward), float(info["equity"]), rtol=1e-6)
    # the observation's tail is (w, 1 - sum w, sum|w|, E/E0 - 1)
    np.testing.assert_allclose(float(obs[-1]), float(info["equity"]) - 1.0, atol=1e-6)


def test_check_env_passes(env):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped, skip_render_check=True)  # JAX arrays
        check_env(
            env, skip_render_check=True
        )  # torch tensors (Box.contains/np.asarray work on CPU tensors)
        check_env(ArrayConversion(env, env_xp=torch, target_xp=np), skip_render_check=True)


def test_reset_needed_and_bad_input(env):
    fresh = tc.TorchPortfolioEnv(PRICES, FEATS, **OPTS)
    with pytest.raises(ResetNeeded):
        fresh.step(torch.zeros(N))
    fresh.reset(seed=3)
    for _ in range(OPTS["episode_length"]):
        *_, truncated, _ = fresh.step(torch.zeros(N))
    assert truncated
    with pytest.raises(ResetNeeded):
        fresh.step(torch.zeros(N))
    fresh.reset()
    with pytest.raises(DataError, match="action"):
        fresh.step(torch.zeros(N + 1))
    with pytest.raises(DataError, match="start"):
        fresh.reset(options={"start": T - 1})
    with pytest.raises(DataError, match="unknown env option"):
        tc.TorchPortfolioEnv(PRICES, FEATS, fee=0.1)
    with pytest.raises(DataError):
        tc.TorchPortfolioEnv(-PRICES, FEATS)


def test_start_option_and_grad_action(env):
    obs, info = env.reset(seed=0, options={"start": 10})
    assert int(info["t"]) == 10
    np.testing.assert_allclose(obs[: N * F].numpy(), FEATS[10].ravel(), **TOL)
    action = torch.full((N,), 0.2, requires_grad=True)  # policy outputs may carry grad: detached
    env.step(action * 1.0)
    env.step(torch.full((N,), 0.2, dtype=torch.float64))  # other dtypes are cast to float32


# ---------------------------------------------------------------------------------- parity
def _jax_episodes(seed: int, actions: np.ndarray, episode_length: int):
    """Reference run with the plain JAX env: reset(PRNGKey(seed)), step_env, chain-key resets."""
    jenv, params = tc.build_jax_env(PRICES, FEATS, **OPTS)
    reset, step = jenv.reset, jax.jit(jenv.step_env)
    key = jax.random.PRNGKey(seed)
    chain = jax.random.fold_in(key, 1)
    obs, state = reset(key, params)
    out = [("reset", np.asarray(obs), 0.0)]
    for k, a in enumerate(actions):
        obs, state, reward, term, _ = step(key, state, jnp.asarray(a), params)
        out.append(("step", np.asarray(obs), float(reward)))
        if (k + 1) % episode_length == 0:
            chain, reset_key = jax.random.split(chain)
            obs, state = reset(reset_key, params)
            out.append(("reset", np.asarray(obs), 0.0))
    return out


def test_parity_jax_torch_vector(venv):
    L = OPTS["episode_length"]
    steps = 2 * L
    seed = 7
    acts = _actions(steps, batch=3)
    # plain JAX, env i seeded with seed + i (Gymnasium's SyncVectorEnv convention)
    ref = [_jax_episodes(seed + i, acts[:, i], L) for i in range(3)]
    # Torch single env (user resets after truncation)
    single = tc.TorchPortfolioEnv(PRICES, FEATS, **OPTS)
    obs, _ = single.reset(seed=seed + 1)
    got = [("reset", obs.numpy(), 0.0)]
    for a in acts[:, 1]:
        obs, reward, term, trunc, _ = single.step(torch.from_numpy(a))
        got.append(("step", obs.numpy(), reward))
        if term or trunc:
            obs, _ = single.reset()
            got.append(("reset", obs.numpy(), 0.0))
    assert [g[0] for g in got] == [r[0] for r in ref[1]]
    for (_, o, r), (_, o_ref, r_ref) in zip(got, ref[1]):
        np.testing.assert_allclose(o, o_ref, **TOL)
        np.testing.assert_allclose(r, r_ref, **TOL)
    # vector env, NEXT_STEP: the call after the truncating step resets (action ignored, reward 0)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, _ = venv.reset(seed=seed)
    rows = [[obs[i].numpy()] for i in range(3)], [[0.0] for _ in range(3)]
    k = 0
    for call in range(1, 2 * L + 3):
        is_reset = call % (L + 1) == 0
        a = torch.zeros(3, N) if is_reset else torch.from_numpy(acts[k])
        k += not is_reset
        obs, reward, term, trunc, info = venv.step(a)
        assert (
            obs.dtype == torch.float32
            and reward.dtype == torch.float32
            and trunc.dtype == torch.bool
        )
        assert bool(trunc.all()) == (call % (L + 1) == L) and not term.any()
        if is_reset:
            assert (
                (reward == 0).all() and (info["equity"] == 1.0).all() and (info["fees"] == 0).all()
            )
        for i in range(3):
            rows[0][i].append(obs[i].numpy())
            rows[1][i].append(float(reward[i]))
    for i in range(3):
        assert len(rows[0][i]) == len(ref[i]) == 2 * L + 3
        for o, r, (_, o_ref, r_ref) in zip(rows[0][i], rows[1][i], ref[i]):
            np.testing.assert_allclose(o, o_ref, **TOL)
            np.testing.assert_allclose(r, r_ref, **TOL)


def test_zero_copy_dlpack(venv):
    venv.reset(seed=0)
    A = torch.full((3, N), 0.1)
    obs, reward, term, trunc, info = venv.step(A)
    raw = venv.unwrapped
    # JAX -> Torch: the tensor IS the jitted step's output buffer
    assert obs.data_ptr() == raw.last_obs.unsafe_buffer_pointer()
    # Torch -> JAX, "auto" on CPU: a NumPy view of the tensor's memory, copied by XLA at dispatch
    assert isinstance(raw.last_action, np.ndarray) and raw.last_action.ctypes.data == A.data_ptr()
    for key in ("equity", "leverage", "closed_trade_pnl"):
        assert info[key].data_ptr() == raw.last_info[key].unsafe_buffer_pointer()
    # "dlpack" (the default off-CPU): the JAX array aliases an aligned contiguous tensor ...
    from torch_compat.env import env_action

    as_jax = env_action(A, "dlpack", jnp, None)
    assert isinstance(as_jax, jax.Array) and as_jax.unsafe_buffer_pointer() == A.data_ptr()
    # ... but JAX copies a tensor at an unaligned offset
    view = torch.zeros(3 * N + 1)[1:].reshape(3, N)
    assert env_action(view, "dlpack", jnp, None).unsafe_buffer_pointer() != view.data_ptr()
    assert isinstance(env_action(A, "auto", jnp, None), np.ndarray)  # CPU tensor, CPU JAX
    with pytest.raises(DataError, match="action_transfer"):
        tc.TorchPortfolioVectorEnv(PRICES, FEATS, num_envs=3, action_transfer="pinned", **OPTS)
    # editing returned tensors in place cannot touch the env state
    obs.zero_()
    state_before = np.asarray(venv.jax_state.weights).copy()
    info["equity"].zero_()
    np.testing.assert_array_equal(np.asarray(venv.jax_state.weights), state_before)
    assert float(venv.jax_state.equity.min()) > 0


def test_gym_registration():
    assert tc.ENV_ID in gym.registry
    env = gym.make(tc.ENV_ID, prices=PRICES, features=FEATS, episode_length=4)
    obs, _ = env.reset(seed=0)
    assert isinstance(obs, torch.Tensor) and obs.shape == (N * F + N + 3,)
    assert isinstance(env.unwrapped, tc.JaxPortfolioGymEnv)
    venv = gym.make_vec(tc.ENV_ID, num_envs=3, prices=PRICES, features=FEATS, episode_length=4)
    assert isinstance(venv, tc.TorchPortfolioVectorEnv)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (3, N * F + N + 3)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    data = ROOT / "trainingdata"  # the data_dir= route: from_csv_dir, stat features by default
    venv = gym.make_vec(tc.ENV_ID, num_envs=2, data_dir=data, symbols=["AAPL"], episode_length=3)
    assert venv.num_envs == 2 and venv.symbols == ("AAPL",)
    assert venv.observation_space.shape == (2, len(STAT_FEATURE_NAMES) + 1 + 3)
    with pytest.raises(DataError, match="either data_dir= or prices="):
        gym.make(tc.ENV_ID, data_dir=data, prices=PRICES)


def test_from_csv_dir():
    data = ROOT / "trainingdata"
    env = tc.TorchPortfolioEnv.from_csv_dir(
        data, symbols=["AAPL", "MSFT"], features="stat", episode_length=10
    )
    nf = len(STAT_FEATURE_NAMES)
    assert env.observation_space.shape == (2 * nf + 2 + 3,)
    assert env.symbols == ("AAPL", "MSFT")
    assert int(env.params.start_min) >= warmup_days()
    obs, info = env.reset(seed=0)
    assert int(info["t"]) >= warmup_days() and torch.isfinite(obs).all()
    env.step(torch.tensor([0.5, 0.5]))
    bare = tc.TorchPortfolioEnv.from_csv_dir(data, symbols=["AAPL", "MSFT"], features="none")
    assert bare.observation_space.shape == (2 + 3,)
    venv = tc.TorchPortfolioVectorEnv.from_csv_dir(
        data,
        symbols=["AAPL"],
        num_envs=2,
        features="none",
        episode_length=3,
        return_mode="open_to_close",
    )
    assert venv.observation_space.shape == (2, 1 + 3) and venv.action_space.shape == (2, 1)
    assert venv.jax_env.return_mode == "open_to_close" and int(venv.params.episode_length) == 3
    market = load_market(data, ["AAPL"])
    np.testing.assert_allclose(
        np.asarray(venv.params.open_prices)[:, 0], market.open[:, 0], rtol=1e-6
    )
    np.testing.assert_allclose(np.asarray(venv.params.prices)[:, 0], market.close[:, 0], rtol=1e-6)
    with pytest.raises(DataError, match="features"):
        tc.TorchPortfolioEnv.from_csv_dir(data, symbols=["AAPL"], features="fancy")
    with pytest.raises(DataError):
        tc.TorchPortfolioEnv.from_csv_dir(data, symbols=["NOPE"])


# ------------------------------------------------------------------------ differentiable reward
def _ref_episode_total(
    actions: np.ndarray, start: int, weights0=None, equity0: float = 1.0
) -> float:
    """Sum of float64 reference rewards of an open-loop episode (stops at truncation)."""
    state = reference_reset_state(start, N, {})
    state["equity"] = equity0
    if weights0 is not None:
        state["weights"] = np.asarray(weights0, dtype=np.float64)
    params = {k: v for k, v in OPTS.items()}
    total = 0.0
    for a in actions:
        state, _, r, term, trunc, _ = reference_step(
            state, a, state["t"], PRICES, PRICES, params, {}
        )
        total += r
        if term or trunc:
            break
    return total


def _central_diff(fn, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        hi, lo = x.copy(), x.copy()
        hi[idx] += eps
        lo[idx] -= eps
        g[idx] = (fn(hi) - fn(lo)) / (2 * eps)
    return g


def test_episode_gradient_matches_finite_differences(env):
    env.reset(seed=0, options={"start": 6})
    a0 = _actions(H, seed=3).astype(np.float64) * 0.8
    actions = torch.tensor(a0, requires_grad=True)  # float64 in -> float64 out (float32 inside)
    out = tc.differentiable_episode_reward(env, actions)
    assert (
        out.total_reward.dtype == torch.float64
        and out.rewards.shape == (H,)
        and out.equity.shape == (H,)
    )
    np.testing.assert_allclose(
        out.total_reward.item(), _ref_episode_total(a0, 6), rtol=1e-5, atol=1e-6
    )
    assert bool(out.done) and out.rewards[-1].item() == 0.0  # truncated after episode_length steps
    out.total_reward.backward()
    fd = _central_diff(lambda a: _ref_episode_total(a, 6), a0)
    np.testing.assert_allclose(actions.grad.numpy(), fd, atol=2e-5)
    assert np.abs(fd).max() > 1e-3  # a real signal, not zeros
    assert (actions.grad[OPTS["episode_length"] :] == 0).all()


def test_step_gradient_chains_and_flows_through_state(env):
    env.reset(seed=0, options={"start": 6})
    L = OPTS["episode_length"]
    a0 = _actions(H, seed=4) * 0.8
    episode = torch.tensor(a0, requires_grad=True)
    tc.differentiable_episode_reward(env, episode).total_reward.backward()
    chained = torch.tensor(a0, requires_grad=True)
    state, total = None, torch.zeros(())
    for k in range(L):
        out = tc.differentiable_reward(env, chained[k], state)
        total, state = total + out.reward, out.state
    assert bool(out.truncated) and not bool(out.terminated)
    total.backward()
    np.testing.assert_allclose(chained.grad.numpy(), episode.grad.numpy(), rtol=1e-5, atol=1e-7)
    assert int(state.t) == 6 + L and int(state.time) == L
    # gradient w.r.t. the starting weights and equity (state given as tensors)
    w0 = np.array([0.3, -0.2, 0.4])
    start = tc.state_to_torch(env.jax_state, dtype=torch.float64)
    weights = torch.tensor(w0, requires_grad=True)
    equity = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    start = start._replace(weights=weights, equity=equity)
    a1 = a0.astype(np.float64)
    out = tc.differentiable_episode_reward(env, torch.tensor(a1), state=start)
    out.total_reward.backward()
    fd = _central_diff(lambda w: _ref_episode_total(a1, 6, weights0=w), w0)
    np.testing.assert_allclose(weights.grad.numpy(), fd, atol=2e-5)
    assert np.abs(fd).max() > 1e-4
    assert (
        abs(float(equity.grad)) < 1e-5
    )  # log-return reward: scale-free in E (fees are proportional)


def test_batched_episode_and_done_mask(venv):
    venv.reset(seed=11)
    B = 3
    acts = torch.tensor(_actions(H, batch=B).transpose(1, 0, 2), requires_grad=True)  # [B, H, N]
    out = tc.differentiable_episode_reward(venv, acts)
    assert out.rewards.shape == (B, H) and out.done.all()
    assert (out.rewards[:, OPTS["episode_length"] :] == 0).all()
    out.total_reward.sum().backward()
    assert (acts.grad[:, OPTS["episode_length"] :] == 0).all()
    starts = tc.state_to_torch(venv.jax_state)
    for i in range(B):
        single = tuple(getattr(starts, f)[i] for f in tc.TorchEnvState._fields)
        a = acts.detach()[i].clone().requires_grad_(True)
        o = tc.differentiable_episode_reward(
            (venv.jax_env, venv.params), a, state=tc.TorchEnvState(*single)
        )
        o.total_reward.backward()
        np.testing.assert_allclose(
            o.total_reward.item(), out.total_reward[i].item(), rtol=1e-6, atol=1e-7
        )
        np.testing.assert_allclose(a.grad.numpy(), acts.grad[i].numpy(), rtol=1e-5, atol=1e-7)
    first = tc.differentiable_reward(
        venv, acts.detach()[:, 0]
    )  # one batched step from the same states
    assert first.reward.shape == (B,) and first.obs.shape == (B, N * F + N + 3)
    np.testing.assert_allclose(
        first.reward.numpy(), out.rewards[:, 0].detach().numpy(), rtol=1e-6, atol=1e-7
    )
    with pytest.raises(DataError, match="action"):
        tc.differentiable_episode_reward(venv, torch.zeros(H, N))


@pytest.mark.parametrize(
    "name, own",
    [
        ("TorchPortfolioEnv", []),
        ("TorchPortfolioVectorEnv", ["num_envs"]),
        ("TorchRLPortfolioEnv", ["num_envs", "requires_grad"]),
    ],
)
def test_torch_env_constructors_share_their_common_keywords(name, own):
    """Every Torch env constructor reads device/action_transfer/jax_env/params/symbols/dates/
    feature_names through one TorchEnvArgs, and its public signature still spells each keyword out
    with its default (inspect, help)."""
    import inspect

    from torch_compat.env import SHARED_KEYWORDS

    cls = getattr(tc, name)
    params = inspect.signature(cls.__init__).parameters
    assert list(params) == ["self", "prices", "features", *own, *SHARED_KEYWORDS, "options"]
    assert {k: params[k].default for k in SHARED_KEYWORDS} == SHARED_KEYWORDS
    assert params["action_transfer"].default == "auto" and params["device"].default is None
    assert all(params[k].kind is inspect.Parameter.KEYWORD_ONLY for k in [*own, *SHARED_KEYWORDS])
    assert params["options"].kind is inspect.Parameter.VAR_KEYWORD
    jax_env, env_params = tc.build_jax_env(PRICES, FEATS, **OPTS)
    made = cls(
        jax_env=jax_env,
        params=env_params,
        symbols=["A", "B", "C"],
        dates=["d"] * T,
    )
    assert made.jax_env is jax_env and made.params is env_params
    assert tuple(made.symbols) == ("A", "B", "C") and made.dates == ["d"] * T
    with pytest.raises(JaxportError, match=f"{name}: pass either arrays"):
        cls(PRICES, jax_env=jax_env, params=env_params)
    with pytest.raises(DataError, match="unknown env option"):
        cls(PRICES, FEATS, windw=2)
