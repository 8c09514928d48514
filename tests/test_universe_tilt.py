"""The learned tilt's two regularisers: its scale chosen on held-out rows
(:mod:`jaxport.rl.universe.shrink`) and the training penalty on its distance to the anchor rule.

Scale 0 must BE the untrained start (the anchor rule; 1/N at ``init_gross`` unanchored), scale 1
the trained policy, and in between the score and gross-logit tilts are scaled exactly; the chosen
scale is the best by the validation objective, which a planted market decides both ways. The tilt
penalty is charged as a hand computation says, and a large one keeps training near the anchor.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxport.data import DataError
from jaxport.env import EnvParams, PortfolioEnv
from jaxport.eval import evaluate_policy, run_allocators
from jaxport.eval.allocators import Allocator
from jaxport.features.risk import ANCHOR_FEATURE_NAMES, anchor_features
from jaxport.rl.universe import (
    UniverseConfig,
    choose_tilt_scale,
    init_params,
    make_network,
    make_universe_policy,
    stack_env_params,
    train_universe,
    with_tilt_scale,
)
from jaxport.rl.universe.losses import chunk_objective
from jaxport.rl.universe.network import policy_target, untrained_target
from jaxport.rl.universe.shrink import tilt_scale_scores

T, N, START = 420, 3, 300
F = len(ANCHOR_FEATURE_NAMES)


def _market(drift, seed: int = 0, eval_start: int = START):
    """``N`` assets with daily drifts ``drift`` [N] and rising volatility; the anchor columns as
    the only features."""
    rng = np.random.default_rng(seed)
    vols = np.array([0.008, 0.015, 0.03])
    r = np.asarray(drift) + rng.standard_normal((T - 1, N)) * vols
    prices = 100.0 * np.concatenate([np.ones((1, N)), np.cumprod(1.0 + r, axis=0)])
    feats = anchor_features(prices)
    chex.assert_shape(feats, (T, N, F))
    return EnvParams.from_arrays(
        prices, feats, eval_start=eval_start, episode_length=None, fee_rate=0.0005
    )


def _policy(env, anchor: str = "volatility_timing", noise: float = 0.5, **kw):
    """A policy with every weight perturbed (a non-zero tilt)."""
    cfg = UniverseConfig(hidden_sizes=(8,), head_size=8, anchor=anchor, **kw)
    params = init_params(cfg, env, jax.random.PRNGKey(3))
    keys = iter(jax.random.split(jax.random.PRNGKey(4), 32))
    params = jax.tree_util.tree_map(
        lambda x: x + noise * jax.random.normal(next(keys), x.shape), params
    )
    return make_universe_policy(cfg, env, params, rebalance_rate=1.0)


def _heads_out(policy, obs):
    network = make_network(policy.config, policy.env)
    scores, gross_logit, _ = jax.jit(network.apply)(policy.tree["params"], obs)
    return np.asarray(scores), np.asarray(gross_logit)


@settings(max_examples=8, deadline=None)
@given(scale=st.floats(0.0, 1.0), anchored=st.booleans())
def test_scaled_tilt_is_linear_between_start_and_trained(scale, anchored):
    env = PortfolioEnv(N, F, long_only=True)
    kw = dict(anchor_eta=0.5, anchor_vol_managed=True) if anchored else {}
    policy = _policy(env, "volatility_timing" if anchored else "none", **kw)
    obs = np.random.default_rng(0).normal(0.0, 1.0, (5, env.obs_dim)).astype(np.float32)
    obs[:, N * F : N * F + N] = 1.0 / N  # held weights
    s0, g0 = _heads_out(with_tilt_scale(policy, 0.0), obs)
    s1, g1 = _heads_out(policy, obs)
    ss, gs = _heads_out(with_tilt_scale(policy, scale), obs)
    np.testing.assert_allclose(ss - s0, scale * (s1 - s0), atol=2e-5)
    if not anchored:  # the gross logit is the head's output itself
        np.testing.assert_allclose(gs - g0, scale * (g1 - g0), atol=2e-5)
    untrained = make_universe_policy(
        policy.config, env, init_params(policy.config, env, jax.random.PRNGKey(9)), 1.0
    )
    np.testing.assert_allclose(s0, _heads_out(untrained, obs)[0], atol=1e-6)
    np.testing.assert_allclose(g0, _heads_out(untrained, obs)[1], atol=1e-6)
    assert not np.allclose(s1, s0, atol=1e-3)  # the perturbed policy does tilt


@pytest.mark.parametrize(
    "kw, allocator",
    [
        (
            dict(anchor="volatility_timing", anchor_eta=0.0, anchor_vol_managed=True),
            Allocator("vol_managed_equal_weight", rebalance_every=1),
        ),
        (dict(anchor="none"), Allocator("equal_weight", rebalance_every=1)),
    ],
    ids=["vol-managed-1/N", "unanchored-1/N"],
)
def test_scale_zero_is_the_anchor_rule(kw, allocator):
    params = _market(np.full(N, 3e-4))
    env = PortfolioEnv(N, F, long_only=True)
    policy = _policy(env, **kw)
    ours = evaluate_policy(env, params, with_tilt_scale(policy, 0.0))
    ref = run_allocators(env, params, [allocator])[0]
    np.testing.assert_allclose(ours["equity_curve"], ref["equity_curve"], rtol=2e-5)
    trained = evaluate_policy(env, params, policy)
    assert abs(trained["equity_curve"][-1] - ref["equity_curve"][-1]) > 1e-3


def test_choice_follows_the_validation_objective_both_ways():
    """A tilt into the only rising asset is kept (scale 1); the same tilt when that asset falls
    is dropped (scale 0), on the same policy weights."""
    env = PortfolioEnv(N, F, long_only=True)
    up, down = np.array([2e-3, -1e-3, -1e-3]), np.array([-3e-3, 1e-3, 1e-3])
    scales = (0.0, 0.5, 1.0)
    cfg = UniverseConfig(
        hidden_sizes=(N,),
        head_size=1,
        anchor="volatility_timing",
        anchor_eta=0.0,
        anchor_vol_managed=True,
        objective="log-growth",
    )
    params = init_params(cfg, env, jax.random.PRNGKey(0))
    tree = jax.tree_util.tree_map(np.array, params)
    p = tree["params"]
    # score tilt = 5 x tanh(tanh(-log vol_i)): a tilt toward the least volatile asset (asset 0)
    col = F - 2  # the log-volatility anchor column
    for name in ("enc_0", "head_0"):
        p[name]["kernel"][:] = 0.0
        p[name]["bias"][:] = 0.0
    p["enc_0"]["kernel"][col, 0] = -1.0
    p["head_0"]["kernel"][0, 0] = 1.0
    p["head_out"]["kernel"][:] = 5.0
    policy = make_universe_policy(cfg, env, tree, rebalance_rate=1.0)
    for drift, want in ((up, 1.0), (down, 0.0)):
        val = stack_env_params([_market(drift, seed=s) for s in range(2)])
        got = choose_tilt_scale(policy, val, scales)
        assert got["scale"] == want, got
        assert got["scales"] == list(scales)
        assert np.argmax(got["score"]) == scales.index(want)


def test_scores_match_the_episode_evaluator():
    """The vmapped validation scores equal independent env episodes of each scaled policy."""
    env = PortfolioEnv(N, F, long_only=True)
    cfg_kw = dict(anchor_eta=0.0, anchor_vol_managed=True, objective="sharpe")
    policy = _policy(env, "volatility_timing", **cfg_kw)
    markets = [_market(np.full(N, 2e-4), seed=s) for s in range(2)]
    scales = [0.0, 0.5, 1.0]
    stats = tilt_scale_scores(policy, stack_env_params(markets), scales)
    chex.assert_shape(stats["sharpe"], (3, 2))
    for i, s in enumerate(scales):
        for b, m in enumerate(markets):
            ep = evaluate_policy(env, m, with_tilt_scale(policy, s))
            np.testing.assert_allclose(stats["sharpe"][i, b], ep["metrics"]["sharpe"], rtol=1e-3)
    np.testing.assert_allclose(stats["objective"], stats["sharpe"])


def test_refuses_scales_outside_unit_interval():
    env = PortfolioEnv(N, F, long_only=True)
    policy = _policy(env, "volatility_timing")
    val = stack_env_params([_market(np.zeros(N))])
    with pytest.raises(DataError, match="tilt scales"):
        choose_tilt_scale(policy, val, [0.0, 1.5])
    assert jnp.isfinite(jnp.asarray(choose_tilt_scale(policy, val, [1.0])["score"])).all()


def test_tilt_penalty_in_the_chunk_objective_by_hand():
    # [L=3, B=1, E=2]: env 0 has three valid steps, env 1 none (left out of the average)
    valid = np.array([[[1, 0]], [[1, 0]], [[1, 0]]], np.float32)
    lg = np.array([[[0.01, 0]], [[0.02, 0]], [[-0.01, 0]]], np.float32)
    ret = np.array([[[0.01, 0]], [[0.03, 0]], [[-0.01, 0]]], np.float32)
    to = np.array([[[0.2, 0]], [[0.0, 0]], [[0.1, 0]]], np.float32)
    dev = np.array([[[0.3, 0]], [[0.6, 0]], [[0.0, 0]]], np.float32)
    r = np.array([0.01, 0.03, -0.01])
    for objective, base in (
        ("mean-variance", 0.02 / 3 - 2.0 * r.var() - 0.5 * 0.1),
        ("log-growth", 0.02 / 3 - 0.5 * 0.1),
        ("sharpe", r.mean() / np.sqrt(r.var() + 1e-10) - 0.5 * 0.1),
    ):
        plain = chunk_objective(objective, valid, lg, ret, to, 2.0, 0.5)
        got = chunk_objective(objective, valid, lg, ret, to, 2.0, 0.5, dev, 0.25)
        np.testing.assert_allclose(float(plain), base, rtol=1e-4)
        np.testing.assert_allclose(float(got), base - 0.25 * 0.3, rtol=1e-4)


@pytest.mark.parametrize("anchor", ["volatility_timing", "none"])
def test_untrained_target_is_the_untrained_policy(anchor):
    env = PortfolioEnv(N, F, long_only=True)
    cfg = UniverseConfig(hidden_sizes=(8,), head_size=8, anchor=anchor, anchor_vol_managed=True)
    network = make_network(cfg, env)
    obs = np.random.default_rng(1).normal(0.0, 1.0, (7, env.obs_dim)).astype(np.float32)
    params = init_params(cfg, env, jax.random.PRNGKey(5))
    want = policy_target(network, params, obs, cfg.leverage_cap)
    got = untrained_target(network, obs)
    chex.assert_shape(got, (7, N))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-6)
    tilted = _policy(env, anchor, anchor_vol_managed=True)
    moved = policy_target(network, tilted.tree["params"], obs, cfg.leverage_cap)
    assert np.abs(np.asarray(moved) - np.asarray(got)).sum(-1).min() > 1e-3


def test_tilt_penalty_keeps_training_near_the_anchor():
    """One population, two members that differ only in the tilt penalty: on a market where
    tilting pays, the penalised member ends far closer to the anchor (1/N) than the free one."""
    env = PortfolioEnv(N, F, long_only=True)
    cfg = UniverseConfig(
        hidden_sizes=(8,),
        head_size=8,
        num_envs=4,
        bptt_length=16,
        episode_length=32,
        num_updates=30,
        eval_every=15,
        lr=1e-2,
        num_seeds=1,
        grid=(("tilt_penalty", (0.0, 0.05)),),
    )
    markets = [_market([2e-3, -1e-3, -1e-3], seed=s) for s in range(2)]  # asset 0 pays
    tr = stack_env_params(
        [
            EnvParams.from_arrays(m.prices[:START], m.features[:START], fee_rate=0.0005)
            for m in markets
        ]
    )
    out = train_universe(cfg, env, tr, stack_env_params(markets), jax.random.PRNGKey(0))
    dev = np.asarray(out["metrics"]["tilt_deviation"])  # [M, updates]
    chex.assert_shape(dev, (2, 30))
    assert [m["hyperparams"]["tilt_penalty"] for m in out["members"]] == [0.0, 0.05]
    free, penalised = dev[:, -10:].mean(axis=1)
    assert free > 0.2, free  # the free member does tilt
    assert penalised < 0.25 * free, (free, penalised)


def test_tilt_penalty_is_the_gradient_trainers_only():
    from jaxport.rl.universe_ppo import UniversePPOConfig

    with pytest.raises(DataError, match="tilt_penalty"):
        UniversePPOConfig(tilt_penalty=0.1).validate()
    with pytest.raises(DataError, match="tilt_penalty must be >= 0"):
        UniverseConfig(tilt_penalty=-1.0).validate()
