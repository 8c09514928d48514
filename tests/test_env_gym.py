"""jaxport.env.gym: Gymnasium envs over JAX arrays, without torch (the Torch layer is tested in
tests/test_torch_compat.py). Tolerance: the same float32 math in different XLA programs, so
rtol = atol = 1e-6.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import jax
import numpy as np
import pytest
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

from jaxport.data import DataError
from jaxport.env.gym import JaxPortfolioGymEnv, JaxPortfolioVectorGymEnv, build_jax_env
from jaxport.features import STAT_FEATURE_NAMES, warmup_days

ROOT = Path(__file__).resolve().parents[1]
T, N, F, L = 40, 2, 3, 2  # days, assets, features, episode length
OPTS = dict(episode_length=L, fee_rate=0.001, leverage_cap=1.5)
TOL = dict(rtol=1e-6, atol=1e-6)

_rng = np.random.default_rng(0)
PRICES = 100.0 * np.exp(np.cumsum(_rng.normal(0.0, 0.02, (T, N)), axis=0))
FEATS = _rng.normal(size=(T, N, F)).astype(np.float32)


def test_single_env_replays_the_jax_env_and_checks_input():
    env = JaxPortfolioGymEnv.from_arrays(PRICES, FEATS, **OPTS)
    jenv, params = env.jax_env, env.params
    obs, info = env.reset(seed=3)
    ref_obs, ref_state = jenv.reset(jax.random.PRNGKey(3), params)
    np.testing.assert_allclose(np.asarray(obs), np.asarray(ref_obs), **TOL)
    assert int(info["t"]) == int(ref_state.t) and float(info["equity"]) == 1.0
    assert env.action_space.shape == (N,) and float(env.action_space.high[0]) == 1.5
    obs, reward, terminated, truncated, info = env.step(np.array([0.5, -0.5], np.float32))
    assert isinstance(obs, jax.Array) and isinstance(reward, float)
    assert terminated is False and truncated is False
    np.testing.assert_allclose(np.exp(reward), float(info["equity"]), rtol=1e-6)
    *_, truncated, _ = env.step(np.zeros(N))
    assert truncated
    with pytest.raises(ResetNeeded):
        env.step(np.zeros(N))
    env.reset()
    with pytest.raises(DataError, match="action"):
        env.step(np.zeros(N + 1))
    with pytest.raises(DataError, match="start"):
        env.reset(options={"start": T - 1})
    with pytest.raises(DataError, match="unknown env option"):
        build_jax_env(PRICES, FEATS, fee=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)


@pytest.mark.parametrize("seed", [0, 11])
def test_vector_env_autoresets_next_step_like_single_envs(seed):
    """Env i of a vector env reset with seed s replays a single env reset with seed s + i, through
    the NEXT_STEP auto-reset (action ignored, reward 0, flags False, reset info)."""
    venv = JaxPortfolioVectorGymEnv.from_arrays(PRICES, FEATS, num_envs=2, **OPTS)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    actions = np.random.default_rng(seed).uniform(-1, 1, (L, 2, N)).astype(np.float32)
    obs, _ = venv.reset(seed=seed)
    got = [np.asarray(obs)]
    for a in actions:
        obs, reward, term, trunc, _ = venv.step(a)
        got.append(np.asarray(obs))
    assert bool(np.all(trunc)) and not bool(np.any(term))
    obs, reward, term, trunc, info = venv.step(np.full((2, N), 9.0, np.float32))  # ignored
    got.append(np.asarray(obs))
    assert np.all(np.asarray(reward) == 0.0) and not np.any(term) and not np.any(trunc)
    assert np.all(np.asarray(info["equity"]) == 1.0) and np.all(np.asarray(info["fees"]) == 0.0)
    for i in range(2):
        single = JaxPortfolioGymEnv.from_arrays(PRICES, FEATS, **OPTS)
        ref = [np.asarray(single.reset(seed=seed + i)[0])]
        ref += [np.asarray(single.step(a[i])[0]) for a in actions]
        ref.append(np.asarray(single.reset()[0]))
        for g, r in zip(got, ref):
            np.testing.assert_allclose(g[i], r, **TOL)


def test_envs_from_csv_dir():
    data = ROOT / "trainingdata"
    venv = JaxPortfolioVectorGymEnv.from_csv_dir(
        data, ["AAPL", "MSFT"], num_envs=2, episode_length=5
    )
    nf = len(STAT_FEATURE_NAMES)
    assert venv.symbols == ("AAPL", "MSFT")
    assert venv.single_observation_space.shape == (2 * nf + 2 + 3,)
    assert venv.observation_space.shape == (2, 2 * nf + 2 + 3)
    assert int(venv.params.start_min) == warmup_days()
    _, info = venv.reset(seed=0)
    assert np.all(np.asarray(info["t"]) >= warmup_days())
    bare = JaxPortfolioGymEnv.from_csv_dir(data, ["AAPL"], features="none", window=3)
    assert bare.observation_space.shape == (1 + 3,) and int(bare.params.start_min) == 2
    with pytest.raises(DataError, match="features"):
        JaxPortfolioGymEnv.from_csv_dir(data, ["AAPL"], features="fancy")
    with pytest.raises(DataError, match="open_prices"):
        JaxPortfolioGymEnv.from_csv_dir(data, ["AAPL"], open_prices=PRICES)
