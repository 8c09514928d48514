"""The anchored universe policy (anchor + learned tilt) and the run objectives.

At zero tilt (the untrained network) the anchored policy must BE its anchor rule: 1/N at eta = 0,
volatility timing with exponent eta, and volatility-managed 1/N; checked as whole env episodes
against the standard allocators of :mod:`jaxport.eval.allocators` rebalanced daily.
"""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxport.env import EnvParams, PortfolioEnv
from jaxport.eval import evaluate_policy, run_allocators
from jaxport.eval.allocators import Allocator
from jaxport.features.risk import ANCHOR_FEATURE_NAMES, anchor_features
from jaxport.rl.universe import (
    UniverseConfig,
    chunk_objective,
    feature_noise_mask,
    init_params,
    make_universe_policy,
    validation_stats,
)

T, N, START = 420, 3, 300


def _market(seed: int = 0):
    rng = np.random.default_rng(seed)
    vols = np.array([0.008, 0.015, 0.03])[:N]
    r = (
        3e-4
        + rng.standard_normal((T - 1, N)) * vols * (1 + 0.8 * (np.arange(T - 1) > 200))[:, None]
    )
    prices = 100.0 * np.concatenate([np.ones((1, N)), np.cumprod(1.0 + r, axis=0)])
    feats = anchor_features(prices)  # [T, N, 2]: the anchor columns only
    chex.assert_shape(feats, (T, N, len(ANCHOR_FEATURE_NAMES)))
    params = EnvParams.from_arrays(
        prices, feats, eval_start=START, episode_length=None, fee_rate=0.0005
    )
    return prices, params


def _anchored(env, **kw):
    cfg = UniverseConfig(hidden_sizes=(8,), head_size=8, anchor="volatility_timing", **kw)
    params = init_params(cfg, env, jax.random.PRNGKey(3))
    return make_universe_policy(cfg, env, params, rebalance_rate=1.0)


@pytest.mark.parametrize(
    "policy_kw, allocator",
    [
        (dict(anchor_eta=0.0), Allocator("equal_weight", rebalance_every=1)),
        (dict(anchor_eta=1.0), Allocator("volatility_timing", eta=1.0, rebalance_every=1)),
        (dict(anchor_eta=0.5), Allocator("inverse_volatility", rebalance_every=1)),
        (
            dict(anchor_eta=0.0, anchor_vol_managed=True),
            Allocator("vol_managed_equal_weight", rebalance_every=1),
        ),
    ],
    ids=["1/N", "vol-timing-eta1", "inverse-vol", "vol-managed-1/N"],
)
def test_zero_tilt_policy_is_its_anchor_rule(policy_kw, allocator):
    prices, params = _market()
    env = PortfolioEnv(N, len(ANCHOR_FEATURE_NAMES), long_only=True)
    ours = evaluate_policy(env, params, _anchored(env, **policy_kw))
    ref = run_allocators(env, params, [allocator])[0]
    np.testing.assert_allclose(ours["equity_curve"], ref["equity_curve"], rtol=2e-5)
    np.testing.assert_allclose(np.asarray(ours["weights"]), np.asarray(ref["weights"]), atol=2e-5)
    if policy_kw.get("anchor_vol_managed"):  # it did scale down at some point
        assert min(ours["leverage"]) < 0.95


def test_anchored_gross_never_exceeds_max_gross():
    _, params = _market(1)
    env = PortfolioEnv(N, len(ANCHOR_FEATURE_NAMES), long_only=True)
    policy = _anchored(env, anchor_vol_managed=True, max_gross=0.8)
    # a large gross tilt cannot lift exposure above max_gross
    tree = jax.tree_util.tree_map(lambda x: x, policy.tree)
    tree["params"]["params"]["gross_out"]["bias"] = jnp.full((1,), 5.0)
    lev = evaluate_policy(env, params, dataclasses.replace(policy, tree=tree))["leverage"]
    assert max(lev) <= 0.8 + 1e-5


def test_noise_mask_skips_anchor_columns():
    env = PortfolioEnv(2, 4, window=2)
    anchored = UniverseConfig(anchor="volatility_timing")
    mask = np.asarray(feature_noise_mask(anchored, env))
    plain = np.asarray(feature_noise_mask(UniverseConfig(), env))
    kf = 2 * 2 * 4
    assert plain[:kf].all() and not plain[kf:].any()
    feature = np.arange(kf) % 4
    np.testing.assert_array_equal(mask[:kf], feature < 2)
    assert not mask[kf:].any()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 1000), tp=st.floats(0.0, 0.01))
def test_objectives_match_hand_computation(seed, tp):
    rng = np.random.default_rng(seed)
    L, B, E = 12, 2, 3
    valid = (rng.random((L, B, E)) > 0.1).astype(np.float32)
    ret = (rng.standard_normal((L, B, E)) * 0.01 * valid).astype(np.float32)
    lg = np.log1p(ret) * valid
    to = rng.random((L, B, E)).astype(np.float32) * valid
    args = (jnp.asarray(valid), jnp.asarray(lg), jnp.asarray(ret), jnp.asarray(to), 0.1, tp)
    # sharpe: per basket, every valid step of its envs pooled
    want = []
    for b in range(B):
        m = valid[:, b].astype(bool)
        r = ret[:, b][m]
        want.append(r.mean() / np.sqrt(r.var() + 1e-10) - tp * to[:, b][m].mean())
    got = float(chunk_objective("sharpe", *args))
    assert got == pytest.approx(np.mean(want), rel=1e-4, abs=1e-6)
    # log-growth and mean-variance: per env
    for name, rp in (("log-growth", 0.0), ("mean-variance", 0.1)):
        per = []
        for b in range(B):
            for e in range(E):
                m = valid[:, b, e].astype(bool)
                r = ret[:, b, e][m]
                per.append(lg[:, b, e][m].mean() - rp * r.var() - tp * to[:, b, e][m].mean())
        got = float(chunk_objective(name, *args))
        assert got == pytest.approx(np.mean(per), rel=1e-4, abs=1e-7)
    # validation: "sharpe" scores by the annualised Sharpe
    v = tuple(jnp.moveaxis(jnp.asarray(x), 0, -1) for x in (valid, lg, ret, to))
    stats = validation_stats(*v, 252.0, 0.1, tp, "sharpe")
    np.testing.assert_allclose(stats["objective"], stats["sharpe"])


def test_config_refuses_unknown_objective_and_bad_max_gross():
    from jaxport.data import DataError

    with pytest.raises(DataError, match="objective"):
        UniverseConfig(objective="sortino").validate()
    with pytest.raises(DataError, match="max_gross"):
        UniverseConfig(anchor="volatility_timing", max_gross=2.0).validate()


@pytest.mark.parametrize("vol_managed", [False, True])
def test_torch_twin_of_anchored_policy(vol_managed):
    """The Torch twin of an anchored policy (random tilt weights) matches Flax to 1e-5."""
    torch = pytest.importorskip("torch")
    from torch_compat.export import export_policy
    from torch_compat.models import build_model

    env = PortfolioEnv(3, 4, window=2, long_only=True)
    cfg = UniverseConfig(
        hidden_sizes=(8,),
        head_size=8,
        anchor="volatility_timing",
        anchor_eta=0.7,
        anchor_vol_managed=vol_managed,
        max_gross=0.9,
    )
    params = init_params(cfg, env, jax.random.PRNGKey(1))
    params = jax.tree_util.tree_map(  # non-zero tilt everywhere
        lambda x: x + 0.3 * jax.random.normal(jax.random.PRNGKey(2), x.shape), params
    )
    policy = make_universe_policy(cfg, env, params, rebalance_rate=0.5)
    sd, arch = export_policy(policy)
    model = build_model(arch)
    model.load_state_dict(sd, strict=True)
    x = np.random.default_rng(0).normal(0.0, 1.0, (16, env.obs_dim)).astype(np.float32)
    kf = 2 * 3 * 4
    x[:, kf : kf + 3] = np.abs(x[:, kf : kf + 3]) / 3
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    want = np.asarray(policy.act(x))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
