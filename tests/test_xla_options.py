"""jaxport.xla_options: per-compile XLA options (CPU only), tuned_jit, and the env's asset sums."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxport import bench, xla_options
from jaxport.env import EnvParams, PortfolioEnv
from jaxport.env.portfolio_env import UNROLL_MAX_ASSETS, _sum_assets
from jaxport.xla_options import TunedJit, compiler_options, tuned_jit

YNN_OFF = {"xla_cpu_experimental_ynn_fusion_type": ""}


@pytest.mark.parametrize("backend", ["gpu", "cuda", "rocm", "tpu", "METAL"])
def test_no_cpu_option_reaches_another_backend(backend, monkeypatch):
    monkeypatch.delenv(xla_options.DEFAULTS_ENV_VAR, raising=False)
    assert compiler_options(backend) == {}
    assert compiler_options(backend, ignore_env=True) == {}
    # the backend in use decides when none is named
    monkeypatch.setattr(xla_options.jax, "default_backend", lambda: backend)
    assert compiler_options() == {}
    assert xla_options.applied_options()["compiler_options"] == {}


def test_cpu_gets_ynn_off_and_the_env_var_turns_it_off(monkeypatch):
    monkeypatch.delenv(xla_options.DEFAULTS_ENV_VAR, raising=False)
    assert compiler_options("cpu") == YNN_OFF  # this jaxlib (0.10.2) knows the option
    for value in ("1", "true", "YES"):
        monkeypatch.setenv(xla_options.DEFAULTS_ENV_VAR, value)
        assert compiler_options("cpu") == {}
        assert compiler_options("cpu", ignore_env=True) == YNN_OFF
    monkeypatch.setenv(xla_options.DEFAULTS_ENV_VAR, "0")
    assert compiler_options("cpu") == YNN_OFF


def test_an_option_this_jaxlib_does_not_know_is_dropped(monkeypatch):
    monkeypatch.delenv(xla_options.DEFAULTS_ENV_VAR, raising=False)
    unknown = {"xla_cpu_no_such_option_for_jaxport_tests": ""}
    monkeypatch.setattr(xla_options, "CPU_OPTIONS", {**YNN_OFF, **unknown})
    assert compiler_options("cpu") == YNN_OFF
    # and a program jitted with the surviving options compiles and runs
    assert float(tuned_jit(lambda x: x * 2.0)(jnp.float32(3.0))) == 6.0


def test_applied_options_names_backend_and_options(monkeypatch):
    monkeypatch.delenv(xla_options.DEFAULTS_ENV_VAR, raising=False)
    got = xla_options.applied_options()
    assert got["backend"] == jax.default_backend()
    assert got["compiler_options"] == compiler_options(got["backend"])
    assert got["xla_defaults_requested"] is False


def _rollout_fn(env, params, num_envs=16, num_steps=40):
    def run(key):
        keys = jax.random.split(key, num_envs)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)

        def body(carry, k):
            obs, state = carry
            ka, ks = jax.random.split(k)
            action = jax.random.uniform(ka, (num_envs, env.num_assets), minval=-2.0, maxval=2.0)
            obs, state, reward, term, trunc, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(ks, num_envs), state, action, params
            )
            return (obs, state), (reward, info["equity"], info["closed_trade_pnl"])

        return jax.lax.scan(body, (obs, state), jax.random.split(key, num_steps))

    return run


@pytest.mark.parametrize("num_assets", [2, 12])  # unrolled sums and a reduce
def test_tuned_jit_equals_jax_jit_on_an_env_rollout(num_assets, monkeypatch):
    monkeypatch.delenv(xla_options.DEFAULTS_ENV_VAR, raising=False)
    prices, features = bench.synthetic_arrays(num_assets, num_days=300)
    env = PortfolioEnv(num_assets, features.shape[-1])
    params = EnvParams.from_arrays(prices, features, bankruptcy_fraction=0.9)
    run = _rollout_fn(env, params)
    key = jax.random.key(3)
    tuned = tuned_jit(run)
    assert isinstance(tuned, TunedJit)
    got = tuned(key)
    want = jax.jit(run)(key)
    chex.assert_trees_all_equal_shapes_and_dtypes(got, want)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-5)
    (_, state), (reward, equity, _) = got
    chex.assert_shape(reward, (40, 16))
    assert np.isfinite(np.asarray(equity)).all()
    assert float(jnp.mean(reward)) != 0.0  # the envs traded


def test_tuned_jit_binds_as_a_method_and_forwards_attributes():
    env, params = bench.portfolio_setup(2, num_days=100)
    assert isinstance(PortfolioEnv.__dict__["step"], TunedJit)
    obs, state = env.reset(jax.random.key(0), params)
    action = jnp.array([0.5, -0.5])
    out = env.step(jax.random.key(1), state, action, params)
    lowered = PortfolioEnv.step.lower(env, jax.random.key(1), state, action, params)
    assert "step" in lowered.as_text()[:20000]
    chex.assert_trees_all_close(out[0], jax.jit(env.step_env)(None, state, action, params)[0])
    assert PortfolioEnv.step.__name__ == "step"


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, UNROLL_MAX_ASSETS + 4),
    lead=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
)
def test_sum_assets_is_the_sum_over_the_last_axis(n, lead, seed):
    x = np.random.default_rng(seed).normal(0.0, 1e3, size=(lead, 3, n)).astype(np.float32)
    got = np.asarray(_sum_assets(jnp.asarray(x)))
    chex.assert_shape(got, (lead, 3))
    np.testing.assert_allclose(got, x.astype(np.float64).sum(-1), rtol=1e-5, atol=1e-2)
    ints = (x > 0).astype(np.int32)
    np.testing.assert_array_equal(np.asarray(_sum_assets(jnp.asarray(ints))), ints.sum(-1))
