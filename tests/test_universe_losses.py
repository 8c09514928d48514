"""The universe objectives (jaxport.rl.universe.losses) and the shared PPO update pieces
(jaxport.rl.ppo.rollout) against numpy written out by hand; no training runs."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from jaxport.rl.ppo.rollout import chained_keys, explained_variance, shuffled_minibatches
from jaxport.rl.universe.losses import chunk_objective, validation_stats

STEPS = 6
small = st.floats(-0.0625, 0.0625, width=32)


def _masked(valid, x):
    return np.where(valid, x, 0.0).astype(np.float32)


@settings(max_examples=25, deadline=None)
@given(
    arrays(np.float32, (2, STEPS), elements=small),
    arrays(np.float32, (2, STEPS), elements=small),
    st.integers(1, STEPS),
    st.floats(0.0, 5.0),
)
def test_validation_stats_match_numpy(lg, ret, num_valid, risk):
    valid = (np.arange(STEPS) < num_valid)[None].repeat(2, 0).astype(np.float32)
    to = np.abs(ret)
    lg, ret, to = _masked(valid, lg), _masked(valid, ret), _masked(valid, to)
    stats = validation_stats(valid, lg, ret, to, 252.0, risk, 0.1, "mean-variance")
    r = ret[:, :num_valid].astype(np.float64)
    expected = lg[:, :num_valid].mean(1) - risk * r.var(1) - 0.1 * to[:, :num_valid].mean(1)
    np.testing.assert_allclose(stats["objective"], expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats["log_growth"], lg[:, :num_valid].mean(1), rtol=1e-5, atol=1e-7)
    if num_valid > 1:
        std, mean = r.std(1, ddof=1), np.abs(r.mean(1))
        sharpe = np.where(std > 1e-12, r.mean(1) / np.maximum(std, 1e-12), 0.0) * np.sqrt(252.0)
        got = np.asarray(stats["sharpe"])
        assert np.isfinite(got).all()
        # float32 can only resolve a std well above its rounding of the mean (~1e-7 x |mean|):
        # compare where it can, and a series constant to that precision must score 0
        ok = std > 1e-3 * mean
        np.testing.assert_allclose(got[ok], sharpe[ok], rtol=1e-3, atol=1e-4)
        np.testing.assert_array_equal(got[std <= 1e-6 * mean], 0.0)


@pytest.mark.parametrize("c", [0.0, 1e-4, -0.02, 0.0625])
def test_validation_sharpe_of_constant_returns_is_zero(c):
    """A constant return series has no Sharpe (the bug: float32 rounding left std ~ 4e-9 and a
    Sharpe of ~1.6e8 for a constant series hypothesis found)."""
    valid = np.ones((1, STEPS), np.float32)
    ret = np.full((1, STEPS), c, np.float32)
    stats = validation_stats(valid, np.log1p(ret), ret, np.abs(ret), 252.0, 0.0, 0.0, "sharpe")
    assert float(stats["sharpe"][0]) == 0.0 and float(stats["objective"][0]) == 0.0


def test_chunk_objective_mean_variance_by_hand():
    # [L=3, B=1, E=2]: env 0 has three valid steps, env 1 none (left out of the average)
    valid = np.array([[[1, 0]], [[1, 0]], [[1, 0]]], np.float32)
    lg = np.array([[[0.01, 0]], [[0.02, 0]], [[-0.01, 0]]], np.float32)
    ret = np.array([[[0.01, 0]], [[0.03, 0]], [[-0.01, 0]]], np.float32)
    to = np.array([[[0.2, 0]], [[0.0, 0]], [[0.1, 0]]], np.float32)
    got = chunk_objective("mean-variance", valid, lg, ret, to, 2.0, 0.5)
    r = np.array([0.01, 0.03, -0.01])
    expected = 0.02 / 3 - 2.0 * r.var() - 0.5 * 0.1
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
    growth = chunk_objective("log-growth", valid, lg, ret, to, 2.0, 0.5)
    np.testing.assert_allclose(float(growth), 0.02 / 3 - 0.5 * 0.1, rtol=1e-5)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([1, 2, 4]))
def test_shuffled_minibatches_are_a_partition(seed, num_minibatches):
    data = (jnp.arange(4 * 3 * 2).reshape(4, 3, 2), jnp.arange(4 * 3).reshape(4, 3) * 10)
    mbs = shuffled_minibatches(jax.random.PRNGKey(seed), data, num_minibatches, batch_ndim=2)
    chex.assert_shape(mbs[0], (num_minibatches, 12 // num_minibatches, 2))
    chex.assert_shape(mbs[1], (num_minibatches, 12 // num_minibatches))
    rows = np.asarray(mbs[0]).reshape(12, 2)
    assert sorted(rows[:, 0].tolist()) == list(range(0, 24, 2))  # every transition once
    np.testing.assert_array_equal(rows[:, 0] // 2 * 10, np.asarray(mbs[1]).reshape(12))


def test_chained_keys_match_a_splitting_loop():
    key = jax.random.PRNGKey(7)
    last, keys = chained_keys(key, 3)
    k = key
    for i in range(3):
        k, sub = jax.random.split(k)
        np.testing.assert_array_equal(np.asarray(keys[i]), np.asarray(sub))
    np.testing.assert_array_equal(np.asarray(last), np.asarray(k))


def test_explained_variance():
    t = jnp.array([1.0, 2.0, 3.0, 4.0])
    assert float(explained_variance(t, t)) == 1.0
    np.testing.assert_allclose(float(explained_variance(t, jnp.zeros(4))), 0.0, atol=1e-6)
