"""GPU/TPU readiness, proven on CPU: no hidden host<->device transfer in the hot loops, and nothing
silently becomes float64 on the device.

* A compiled PPO training call and a large-ish batched rollout run under
  ``jax.transfer_guard("disallow")`` after warm-up: every input is ``jax.device_put`` first, so any
  implicit transfer (a NumPy constant shipped per call, a ``float(x)`` or host callback in the loop)
  raises. Explicit ``jax.device_get`` of the results stays allowed.
* Precision: with ``jax_enable_x64`` off (the default) no env-step or PPO output is float64; with
  x64 ON, a float64 action still gives float32 state, observations, rewards and info (the env casts
  its inputs; only integer dtypes are left to JAX).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import random_walk_market
from jaxport.env import EnvParams, PortfolioEnv
from jaxport.env.rollout import rollout
from jaxport.rl.ppo import PPOConfig, make_train

T, N, F = 300, 3, 2


def _market(seed=0):
    prices, feats = random_walk_market(T, N, F, seed=seed, vol=0.02)
    return prices.astype(np.float32), feats


def _env():
    prices, feats = _market()
    env = PortfolioEnv(num_assets=N, num_features=F)
    params = EnvParams.from_arrays(prices, feats, episode_length=40, fee_rate=0.0005)
    return env, params


def _half_policy(key, obs):
    """Module-level (hashable) policy: random exposures in [-1, 1] per asset."""
    del obs
    return jax.random.uniform(key, (N,), minval=-1.0, maxval=1.0)


TINY_PPO = PPOConfig(
    num_envs=8,
    num_steps=8,
    total_timesteps=8 * 8 * 2,
    update_epochs=1,
    num_minibatches=2,
    hidden_sizes=(16, 16),
)


def _float_dtypes(tree) -> set[str]:
    return {
        str(x.dtype)
        for x in jax.tree_util.tree_leaves(tree)
        if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)
    }


@pytest.fixture(scope="module")
def ppo_run():
    """A compiled tiny PPO ``train`` with device inputs, and its warm-up output (one compile)."""
    env, params = _env()
    train = jax.jit(make_train(TINY_PPO, env, params))
    key = jax.device_put(jax.random.PRNGKey(0))
    dev_params = jax.device_put(params)
    out = jax.block_until_ready(train(key, dev_params))  # compile + warm-up (may move constants)
    return train, key, dev_params, out


def test_ppo_train_runs_under_transfer_guard(ppo_run):
    train, key, dev_params, _ = ppo_run
    with jax.transfer_guard("disallow"):
        out = train(key, dev_params)
        jax.block_until_ready(out)
    metrics = jax.device_get(out["metrics"])  # explicit: allowed
    assert np.all(np.isfinite(metrics["policy_loss"]))
    assert metrics["env_steps"][-1] == TINY_PPO.total_timesteps


def test_large_rollout_runs_under_transfer_guard():
    env, params = _env()
    num_envs, num_steps = 4096, 32
    key = jax.device_put(jax.random.PRNGKey(1))
    dev_params = jax.device_put(params)
    run = lambda k: rollout(env, dev_params, _half_policy, k, num_envs, num_steps)
    jax.block_until_ready(run(key))  # compile + warm-up
    key2 = jax.device_put(jax.random.PRNGKey(2))  # made (and placed) before the guard
    with jax.transfer_guard("disallow"):
        res = run(key2)
        jax.block_until_ready(res)
    reward = jax.device_get(res.trajectory.reward)
    assert reward.shape == (num_steps, num_envs)
    assert np.isfinite(reward).all()


def test_guard_catches_an_implicit_transfer():
    """The guard is live: a NumPy argument (implicit host->device) raises under it."""
    f = jax.jit(lambda x: x + 1)
    jax.block_until_ready(f(jnp.ones(3)))
    with jax.transfer_guard("disallow"), pytest.raises(Exception, match="[Dd]isallowed"):
        f(np.ones(3, np.float32))


def _one_step(env, params, num_envs=16, action_dtype=jnp.float32):
    """Batched reset and one jitted step: ``(obs, state, (obs', state', r, term, trunc, info))``."""
    keys = jax.random.split(jax.random.PRNGKey(0), num_envs)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    action = jnp.full((num_envs, N), 0.5, dtype=action_dtype)
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    return obs, state, step(keys, state, action, params)


def test_no_float64_with_x64_off(ppo_run):
    assert not jax.config.read("jax_enable_x64")
    env, params = _env()
    obs, state, out = _one_step(env, params)
    assert _float_dtypes((obs, state, out)) == {"float32"}
    ppo_out = ppo_run[3]  # params, optimiser state, obs statistics, metrics
    assert _float_dtypes(ppo_out) == {"float32"}


def test_env_state_stays_float32_with_x64_on():
    """With ``jax_enable_x64`` on, params built from float32 arrays and a float64 action: the
    state, observation, reward and info floats stay float32 (nothing silently widens)."""
    with jax.enable_x64(True):  # the context manager (jax.experimental.enable_x64 before 0.7)
        env, params = _env()
        assert _float_dtypes(params) == {"float32"}
        obs, state, (obs2, state2, reward, _, _, info) = _one_step(
            env, params, action_dtype=jnp.float64
        )
        assert _float_dtypes((obs, state)) == {"float32"}
        assert _float_dtypes((obs2, state2, reward)) == {"float32"}
        assert _float_dtypes(info) == {"float32"}
