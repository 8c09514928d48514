"""PPO for the universe allocator (jaxport.rl.universe_ppo): train_universe's return contract,
the 1/N start, the latent Gaussian policy, the selected policy through the standard evaluator and
the codec, and learning a planted signal.

Every training here is ONE compiled population program (the module fixture).
"""

from __future__ import annotations

import dataclasses
from functools import partial

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxport.data import DataError
from jaxport.env import EnvParams, PortfolioEnv
from jaxport.eval import evaluate_policy
from jaxport.rl import codec
from jaxport.rl.universe import (
    UniverseConfig,
    apply_policy,
    basket,
    init_params,
    make_network,
    member_policies,
    split_obs,
    stack_env_params,
)
from jaxport.rl.universe_ppo import (
    CRITIC_PARAMS,
    METRIC_KEYS,
    UniversePPOConfig,
    actor_params,
    latent_distribution,
    latent_to_exposure,
    train_universe_ppo,
)

# ------------------------------------------------------------------ planted-signal market (as in
# tests/test_universe.py): features[t] = z_t, the return from t to t+1 is K z_t + small noise
T, SPLIT = 600, 450
K_SIGNAL, SIGNAL_NOISE = 0.01, 0.002
ENV2 = PortfolioEnv(2, 1, window=1, long_only=True)


def signal_market(seed: int, n: int = 2):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((T, n)).astype(np.float32)
    r = K_SIGNAL * z[:-1] + SIGNAL_NOISE * rng.standard_normal((T - 1, n))
    prices = 100.0 * np.concatenate([np.ones((1, n)), np.cumprod(1.0 + r, axis=0)])
    return prices, z[:, :, None]


def baskets(seeds):
    """Stacked train [:SPLIT+1] and validation (75 days) params, and per-basket test params."""
    tr, va, te = [], [], []
    for seed in seeds:
        p, f = signal_market(seed)
        tr.append(EnvParams.from_arrays(p[: SPLIT + 1], f[: SPLIT + 1], window=1))
        va.append(
            EnvParams.from_arrays(
                p[: SPLIT + 76], f[: SPLIT + 76], eval_start=SPLIT, episode_length=None, window=1
            )
        )
        te.append(EnvParams.from_arrays(p, f, eval_start=SPLIT + 75, episode_length=None, window=1))
    return stack_env_params(tr), stack_env_params(va), te


def long_only_oracle(key, obs):
    """Knows the signal: the whole cap (2x) on the asset with the largest positive predicted
    move, cash when none is positive."""
    z = obs[:2]
    return 2.0 * (jnp.max(z) > 0) * jax.nn.one_hot(jnp.argmax(z), 2)


CFG = UniversePPOConfig(
    hidden_sizes=(16,),
    head_size=16,
    num_envs=8,
    num_steps=16,
    episode_length=64,
    num_updates=200,
    eval_every=20,
    num_minibatches=2,
    lr=3e-3,
    gamma=0.0,  # the planted signal is a contextual bandit: r_t depends on the action at t only
    init_log_std=-0.5,
    num_seeds=2,
    grid=(("lr", (1e-3, 3e-3)),),
)
NUM_MEMBERS = 4
NUM_BASKETS = 3


@pytest.fixture(scope="module")
def trained():
    tr, va, tests = baskets((0, 1, 2))
    out = train_universe_ppo(CFG, ENV2, tr, va, jax.random.PRNGKey(0))
    return tr, va, tests, out


def test_return_contract(trained):
    _, _, _, out = trained
    assert {
        "policy",
        "members",
        "best_member",
        "metrics",
        "val_curve",
        "eval_updates",
        "params",
    } <= set(out)
    num_evals = CFG.num_updates // CFG.eval_every + 1
    assert out["eval_updates"] == [i * CFG.eval_every for i in range(num_evals)]
    assert set(out["metrics"]) == set(METRIC_KEYS)
    for k, v in out["metrics"].items():
        chex.assert_shape(v, (NUM_MEMBERS, CFG.num_updates))
        assert np.all(np.isfinite(v)), k
    for k in ("objective", "sharpe", "log_growth", "turnover"):
        chex.assert_shape(out["val_curve"][k], (NUM_MEMBERS, num_evals, NUM_BASKETS))
    assert len(out["members"]) == NUM_MEMBERS
    assert sorted({m["hyperparams"]["lr"] for m in out["members"]}) == [1e-3, 3e-3]
    for m in out["members"]:
        assert m["best_update"] in out["eval_updates"]
        chex.assert_shape(np.asarray(m["val_sharpe"]), (NUM_BASKETS,))
    assert out["best_member"] == int(np.argmax([m["val_score"] for m in out["members"]]))
    # params: stacked actor trees (no critic), the gradient trainer's structure
    assert not set(CRITIC_PARAMS) & set(out["params"]["params"])
    ref = init_params(UniverseConfig(hidden_sizes=(16,), head_size=16), ENV2, jax.random.PRNGKey(0))
    chex.assert_trees_all_equal_shapes(jax.tree_util.tree_map(lambda x: x[0], out["params"]), ref)
    # PPO really updates: KL and clip fraction are not ~0, the latent std moved
    m = out["metrics"]
    assert float(np.mean(m["approx_kl"])) > 1e-4
    assert float(np.mean(m["clip_fraction"])) > 0.01
    assert np.all(m["action_std"][:, 0] != m["action_std"][:, -1])
    np.testing.assert_allclose(
        m["action_std"], 0.5 * (m["action_std_scores"] + m["action_std_gross"]), rtol=1e-6
    )


def test_starts_at_equal_weight_gross_one(trained):
    """The network init is 1/N at gross 1 (any N); the validation curve's row 0 is the 1/N
    portfolio's validation episode for every member."""
    for n in (2, 5):
        env = PortfolioEnv(n, 1, window=1, long_only=True)
        net = make_network(CFG, env, critic=True)
        params = init_params(CFG, env, jax.random.PRNGKey(n), critic=True)
        obs = jax.random.normal(jax.random.PRNGKey(10 + n), (4, env.obs_dim))
        obs = obs.at[:, n : 2 * n].set(0.0)  # flat book: the target is executed
        act = jax.jit(partial(apply_policy, net, rebalance_rate=1.0, leverage_cap=2.0))
        a = act(params, obs)
        chex.assert_trees_all_close(a, jnp.full((4, n), 1.0 / n), atol=1e-6)
    _, va, _, out = trained
    ew = lambda key, obs: jnp.full((2,), 0.5)  # noqa: E731
    for b in range(NUM_BASKETS):
        want = evaluate_policy(ENV2, basket(va, b), ew)["metrics"]["sharpe"]
        np.testing.assert_allclose(out["val_curve"]["sharpe"][:, 0, b], want, rtol=1e-4)


def test_latent_policy_maps_to_long_only_capped_weights():
    """Any latent sample gives long-only exposures with gross <= cap; the latent mean gives
    apply_policy's action; log std is shared per group."""
    net = make_network(CFG, ENV2, critic=True)
    params = init_params(CFG, ENV2, jax.random.PRNGKey(0), critic=True)
    obs = jax.random.normal(jax.random.PRNGKey(1), (16, ENV2.obs_dim))
    obs = obs.at[:, 2:4].set(jnp.abs(obs[:, 2:4]) / 2)

    @jax.jit
    def run(params, obs, noise):
        mean, log_std, value = latent_distribution(net, params, obs)
        _, w_old, _ = split_obs(obs, ENV2.window, ENV2.num_features)
        sampled = latent_to_exposure(mean + 3.0 * noise, w_old, 1.0, CFG.leverage_cap)
        at_mean = latent_to_exposure(mean, w_old, 0.5, CFG.leverage_cap)
        return mean, log_std, value, sampled, at_mean, apply_policy(net, params, obs, 0.5, 2.0)

    noise = jax.random.normal(jax.random.PRNGKey(2), (16, 3))
    mean, log_std, value, a, at_mean, ref = run(params, obs, noise)
    chex.assert_shape(mean, (16, 3))
    chex.assert_shape(log_std, (3,))
    chex.assert_shape(value, (16,))
    assert float(log_std[0]) == float(log_std[1])
    assert np.all(np.asarray(a) >= 0) and float(a.sum(-1).max()) <= CFG.leverage_cap + 1e-6
    chex.assert_trees_all_close(at_mean, ref, atol=1e-6)


def test_selected_policy_evaluates_and_roundtrips(trained, tmp_path):
    _, va, _, out = trained
    policy = out["policy"]
    assert policy.kind == "universe"
    best = out["members"][out["best_member"]]
    for b in range(NUM_BASKETS):
        rep = evaluate_policy(ENV2, basket(va, b), policy)
        np.testing.assert_allclose(rep["metrics"]["sharpe"], best["val_sharpe"][b], rtol=1e-3)
    path = codec.save_policy_checkpoint(tmp_path / "p", policy)
    loaded, _ = codec.load_policy_checkpoint(path)
    assert loaded.kind == "universe"
    obs = jax.random.normal(jax.random.PRNGKey(0), (5, ENV2.obs_dim))
    chex.assert_trees_all_close(loaded.act(obs), policy.act(obs), atol=1e-6)
    # every member's checkpoint through the gradient trainer's helper
    pols = member_policies(out, out["universe_config"], ENV2)
    assert len(pols) == NUM_MEMBERS
    chex.assert_trees_all_close(pols[out["best_member"]].act(obs), policy.act(obs), atol=1e-6)
    assert not set(CRITIC_PARAMS) & set(actor_params(out["critic_params"])["params"])


def test_learns_planted_signal(trained):
    """PPO's selected policy beats 1/N on validation and reaches >= 90 % of the long-only
    oracle's log growth on unseen test days, in every basket (measured: ~96-98 %)."""
    _, _, tests, out = trained
    best = out["members"][out["best_member"]]
    assert best["best_update"] > 0
    start = out["val_curve"]["objective"][out["best_member"], 0].mean()
    assert best["val_score"] > start + 0.005  # per-step log growth, well above 1/N's
    lg = lambda r: np.log(r["equity_curve"][-1]) / r["num_steps"]  # noqa: E731
    for te in tests:
        learned = evaluate_policy(ENV2, te, out["policy"])
        oracle = evaluate_policy(ENV2, te, long_only_oracle)
        assert lg(oracle) > 0.005
        assert lg(learned) >= 0.9 * lg(oracle), (lg(learned), lg(oracle))


def test_config_validation_and_dict_roundtrip():
    assert UniversePPOConfig.from_dict(CFG.to_dict()) == CFG
    base = CFG.universe_config()
    assert type(base) is UniverseConfig and base.hidden_sizes == CFG.hidden_sizes
    assert base.grid == (("lr", (1e-3, 3e-3)),)
    cases = [
        (dict(grid=(("num_steps", (1.0,)),)), "grid"),
        (dict(num_minibatches=3), "num_minibatches"),
        (dict(gamma=1.5), "gamma"),
        (dict(clip_eps=0.0), "clip_eps"),
        (dict(grid=(("ent_coef", (-1.0,)),)), "ent_coef"),
        (dict(eval_every=7), "UniversePPOConfig.eval_every"),
        (dict(rebalance_rate=0.0), "rebalance_rate"),
    ]
    for change, match in cases:
        with pytest.raises(DataError, match=match):
            dataclasses.replace(CFG, **change).validate()
    tr, va, _ = baskets((0,))
    with pytest.raises(DataError, match="stacked"):
        train_universe_ppo(CFG, ENV2, basket(tr, 0), va, jax.random.PRNGKey(0))
