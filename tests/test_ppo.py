"""PPO (jaxport.rl.ppo): learning on a planted signal, leverage awareness, vmap over seeds, one
compilation per shape, and the pieces (the losses are in test_ppo_losses.py).

All four training runs (2 seeds on a planted-signal market, 2 seeds on an expensive-financing
market) are ONE ``jax.jit(jax.vmap(train))`` call over (keys, stacked env params), so the file
compiles PPO once; the opt-in host callback records every update's metrics along the way.
"""

from __future__ import annotations

import dataclasses
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxport.data import DataError
from jaxport.env import EnvParams, PortfolioEnv, rollout
from jaxport.eval import evaluate_policy
from jaxport.eval.episode import run_policy_episode
from jaxport.rl import (
    ActorCritic,
    PPOConfig,
    RunningMeanStd,
    compute_gae,
    export_policy,
    gaussian_entropy,
    gaussian_log_prob,
    import_policy,
    make_policy_fn,
    make_train,
    metrics_per_update,
    squash,
    squash_log_det,
    squashed_log_prob,
    update_running_stats,
)
from jaxport.rl.networks import householder_qr, orthogonal_init
from jaxport.rl.ppo import METRIC_KEYS

N_ASSETS = 2
T_DAYS = 1024
EP_LEN = 64
CAP = 2.0
ENV = PortfolioEnv(N_ASSETS, 1)

RECORDED: list[dict] = []  # filled by the opt-in debug callback


def record_metrics(metrics: dict) -> None:
    RECORDED.append({k: float(v) for k, v in metrics.items()})


# 32 envs x 64 steps x 80 updates = 164k env steps per run.
LEARN_CFG = PPOConfig(
    num_envs=32,
    num_steps=64,
    total_timesteps=32 * 64 * 80,
    update_epochs=4,
    num_minibatches=4,
    gamma=0.9,
    lr=3e-3,
    init_log_std=-0.5,
    leverage_cap=CAP,
    debug_callback=record_metrics,
)


def signal_market(seed: int, k: float = 0.01, noise: float = 0.005):
    """features[t] = z_t in {-1, +1} per asset; r_{t+1} = k z_t + N(0, noise^2)."""
    rng = np.random.default_rng(seed)
    z = rng.choice([-1.0, 1.0], size=(T_DAYS, N_ASSETS))
    r = np.zeros((T_DAYS, N_ASSETS))
    r[1:] = k * z[:-1] + rng.normal(0.0, noise, size=(T_DAYS - 1, N_ASSETS))
    return 100.0 * np.cumprod(1.0 + r, axis=0), z[:, :, None]


def noise_market(seed: int, vol: float = 0.002):
    """iid returns with exactly zero sample mean per asset and an uninformative feature."""
    rng = np.random.default_rng(seed)
    r = np.zeros((T_DAYS, N_ASSETS))
    e = rng.normal(0.0, vol, size=(T_DAYS - 1, N_ASSETS))
    r[1:] = e - e.mean(axis=0)
    feat = rng.normal(size=(T_DAYS, N_ASSETS, 1))
    return 100.0 * np.cumprod(1.0 + r, axis=0), feat


def signal_params(seed: int) -> EnvParams:
    return EnvParams.from_arrays(
        *signal_market(seed),
        leverage_cap=CAP,
        fee_rate=1e-4,
        annual_financing_rate=0.0,
        episode_length=EP_LEN,
    )


def financing_params(seed: int) -> EnvParams:
    return EnvParams.from_arrays(
        *noise_market(seed),
        leverage_cap=CAP,
        fee_rate=1e-4,
        annual_financing_rate=0.5,
        episode_length=EP_LEN,
    )


def oracle_policy(key, obs):
    """Knows the planted signal: full cap on sign(z) per asset (the env splits the gross cap)."""
    del key
    return CAP * jnp.sign(obs[:N_ASSETS])


def evaluate(params: EnvParams, policy_fn, seed: int = 123):
    """Mean per-step log growth and gross exposure of ``policy_fn`` over 64 envs x one episode."""
    res = rollout(ENV, params, policy_fn, jax.random.PRNGKey(seed), 64, EP_LEN)
    tr = res.trajectory
    return jnp.mean(tr.reward), jnp.mean(tr.info["leverage"])


@jax.jit
def evaluate_ppo(env_params, params, obs_norm):
    """(deterministic, sampled) x (log growth, gross exposure) of a trained PPO policy."""
    det = evaluate(env_params, make_policy_fn(params, obs_norm, LEARN_CFG, deterministic=True))
    sto = evaluate(env_params, make_policy_fn(params, obs_norm, LEARN_CFG, deterministic=False))
    return jnp.stack([*det, *sto])


@pytest.fixture(scope="module")
def runs():
    """Runs 0, 1: signal market, seeds 0, 1. Runs 2, 3: financing market, seeds 2, 3."""
    RECORDED.clear()
    p_sig, p_fin = signal_params(0), financing_params(1)
    stacked = jax.tree.map(lambda *x: jnp.stack(x), p_sig, p_sig, p_fin, p_fin)
    train = make_train(LEARN_CFG, ENV, p_sig)
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    out = jax.device_get(jax.jit(jax.vmap(train))(keys, stacked))
    return out, [jax.tree.map(lambda x: x[i], out) for i in range(4)]


# ---------------------------------------------------------------- end-to-end behaviour
@pytest.mark.parametrize("run", [0, 1])
def test_learns_planted_signal(runs, run):
    out = runs[1][run]
    m = out["metrics"]
    u = LEARN_CFG.num_updates
    assert set(m) == set(METRIC_KEYS)
    for name in METRIC_KEYS:
        chex.assert_shape(m[name], (u,))
    np.testing.assert_allclose(m["env_steps"], LEARN_CFG.batch_size * np.arange(1, u + 1))
    assert np.all(m["num_episodes"] == LEARN_CFG.num_envs)  # 64-step episodes, 64-step rollouts
    # obs normalisation saw every acted-on observation
    np.testing.assert_allclose(float(out["obs_norm"].count), u * LEARN_CFG.batch_size, rtol=1e-5)

    # Out of sample: a fresh market from the same process, same episodes for both policies.
    test_params = signal_params(7)
    ppo_growth, _, sampled_growth, _ = np.asarray(
        evaluate_ppo(test_params, out["params"], out["obs_norm"])
    )
    oracle_growth = float(evaluate(test_params, oracle_policy)[0])
    assert oracle_growth > 0.015  # ~ k * cap - fees per day
    assert ppo_growth >= 0.8 * oracle_growth, (ppo_growth, oracle_growth)
    assert sampled_growth >= 0.5 * oracle_growth, (sampled_growth, oracle_growth)
    # training log-growth rose from ~0 to near the oracle's
    assert m["reward"][0] < 0.3 * oracle_growth < 0.8 * oracle_growth < m["reward"][-1]
    assert m["episode_return"][-1] > 0.8 * oracle_growth * EP_LEN
    assert np.all(np.isfinite(m["policy_loss"])) and np.all(m["approx_kl"] >= 0)


@pytest.mark.parametrize("run", [2, 3])
def test_leverage_aware_under_expensive_financing(runs, run):
    out = runs[1][run]
    m = out["metrics"]
    # the initial stochastic policy is levered and pays financing; PPO learns to de-lever
    assert m["leverage"][0] > 1.3 and m["financing"][0] > 0
    assert m["leverage"][-1] <= 1.05, m["leverage"][-5:]
    assert m["financing"][-1] < 0.25 * m["financing"][0]
    assert m["fees"][0] > 0
    # out of sample, both the deterministic policy and the sampled (training-time) policy
    _, det_leverage, _, sampled_leverage = np.asarray(
        evaluate_ppo(financing_params(2), out["params"], out["obs_norm"])
    )
    assert det_leverage <= 1.05
    assert sampled_leverage <= 1.05


def test_vmap_over_seeds_gives_distinct_runs(runs):
    out, per_run = runs
    u = LEARN_CFG.num_updates
    chex.assert_shape(out["metrics"]["policy_loss"], (4, u))
    chex.assert_shape(out["params"]["params"]["Dense_0"]["kernel"], (4, ENV.obs_dim, 64))
    kernels = out["params"]["params"]["Dense_2"]["kernel"].reshape(4, -1)
    rewards = out["metrics"]["reward"]
    assert np.all(np.isfinite(kernels)) and np.all(np.isfinite(rewards))
    for i in range(4):
        for j in range(i + 1, 4):  # includes the two seeds on the same market
            assert not np.allclose(kernels[i], kernels[j])
            assert not np.allclose(rewards[i], rewards[j])


def test_debug_callback_reports_every_update(runs):
    out, _ = runs
    u = LEARN_CFG.num_updates
    assert len(RECORDED) == 4 * u  # one host call per update and vmapped run
    assert set(RECORDED[0]) == set(METRIC_KEYS)
    logged = np.sort([r["policy_loss"] for r in RECORDED])
    np.testing.assert_allclose(logged, np.sort(out["metrics"]["policy_loss"].ravel()), rtol=1e-6)
    rows = metrics_per_update(out["metrics"], seed=1)
    assert len(rows) == u and rows[-1]["env_steps"] == u * LEARN_CFG.batch_size
    assert rows[3]["reward"] == pytest.approx(float(out["metrics"]["reward"][1, 3]))
    with pytest.raises(DataError):
        metrics_per_update(out["metrics"])  # [seeds, updates] needs seed=


# ---------------------------------------------------------------- pieces
def gae_reference(reward, value, done, bootstrap, last_value, gamma, lam):
    S = reward.shape[0]
    adv = np.zeros_like(reward)
    next_adv = np.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(S)):
        nd = 1.0 - done[t]
        delta = reward[t] + gamma * (next_value * nd + bootstrap[t]) - value[t]
        next_adv = delta + gamma * lam * nd * next_adv
        adv[t] = next_adv
        next_value = value[t]
    return adv, adv + value


def test_compute_gae_matches_reference_with_truncation_bootstrap():
    rng = np.random.default_rng(0)
    S, B = 37, 5
    reward, value = rng.normal(size=(S, B)), rng.normal(size=(S, B))
    done = rng.random((S, B)) < 0.2
    bootstrap = np.where(done & (rng.random((S, B)) < 0.5), rng.normal(size=(S, B)), 0.0)
    last = rng.normal(size=B)
    adv, tgt = compute_gae(
        *(jnp.asarray(x, jnp.float32) for x in (reward, value)),
        jnp.asarray(done),
        jnp.asarray(bootstrap, jnp.float32),
        jnp.asarray(last, jnp.float32),
        0.97,
        0.9,
    )
    ref_adv, ref_tgt = gae_reference(reward, value, done.astype(float), bootstrap, last, 0.97, 0.9)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(tgt, ref_tgt, rtol=1e-4, atol=1e-5)
    # lambda = 1, no dones: advantage = discounted return - value
    adv1, _ = compute_gae(
        jnp.ones((4, 1)),
        jnp.zeros((4, 1)),
        jnp.zeros((4, 1), bool),
        jnp.zeros((4, 1)),
        jnp.zeros(1),
        0.5,
        1.0,
    )
    np.testing.assert_allclose(adv1[:, 0], [1.875, 1.75, 1.5, 1.0], rtol=1e-6)


def test_squashed_gaussian_density_is_exact():
    mean, log_std, cap = jnp.array([0.3]), jnp.array([-0.2]), 1.7
    # the density of a = cap * tanh(u) integrates to 1 over (-cap, cap)
    a = jnp.linspace(-cap + 1e-4, cap - 1e-4, 200001)
    u = jnp.arctanh(a / cap)
    dens = jnp.exp(squashed_log_prob(u[:, None], mean, log_std, cap))
    assert abs(float(jnp.trapezoid(dens, a)) - 1.0) < 2e-3
    # log-det equals log |d a / d u| from autodiff, stable for large |u|
    us = jnp.array([-3.0, -0.5, 0.0, 0.7, 4.0])
    ld = jax.vmap(lambda x: squash_log_det(x[None], cap))(us)
    ad = jax.vmap(jax.grad(lambda x: squash(x, cap)))(us)
    np.testing.assert_allclose(ld, np.log(np.asarray(ad)), rtol=1e-4, atol=1e-4)
    assert np.all(np.isfinite(squash_log_det(jnp.array([[-40.0], [40.0]]), cap)))
    # Gaussian pieces
    x = jnp.array([[0.1, -2.0]])
    m, s = jnp.array([[0.5, 0.0]]), jnp.array([[-0.3, 0.4]])
    ref = sum(
        -0.5 * ((x[0, i] - m[0, i]) / math.exp(s[0, i])) ** 2
        - s[0, i]
        - 0.5 * math.log(2 * math.pi)
        for i in range(2)
    )
    np.testing.assert_allclose(gaussian_log_prob(x, m, s)[0], ref, rtol=1e-5)
    np.testing.assert_allclose(
        gaussian_entropy(s)[0], float(jnp.sum(s)) + math.log(2 * math.pi * math.e), rtol=1e-5
    )


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=5), st.integers(0, 10_000))
def test_running_stats_match_numpy(sizes, seed):
    rng = np.random.default_rng(seed)
    batches = [rng.normal(3.0, 2.0, size=(n, 3)).astype(np.float32) for n in sizes]
    stats = RunningMeanStd.create(3, epsilon=1e-8)
    for b in batches:
        stats = update_running_stats(stats, jnp.asarray(b))
    allx = np.concatenate(batches).astype(np.float64)
    np.testing.assert_allclose(stats.mean, allx.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(stats.var, allx.var(0), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(float(stats.count), len(allx), rtol=1e-6)


def test_actor_critic_param_tree_and_value_only():
    net = ActorCritic(3, hidden_sizes=(8, 5), activation="relu")
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 6))
    variables = net.init(jax.random.PRNGKey(1), x)
    shapes = jax.tree.map(lambda a: a.shape, variables["params"])
    assert shapes == {
        "Dense_0": {"kernel": (6, 8), "bias": (8,)},
        "Dense_1": {"kernel": (8, 5), "bias": (5,)},
        "Dense_2": {"kernel": (5, 3), "bias": (3,)},
        "Dense_3": {"kernel": (6, 8), "bias": (8,)},
        "Dense_4": {"kernel": (8, 5), "bias": (5,)},
        "Dense_5": {"kernel": (5, 1), "bias": (1,)},
        "log_std": (3,),
    }
    mean, log_std, value = net.apply(variables, x)
    chex.assert_shape([mean, log_std, value], [(4, 3), (4, 3), (4,)])
    np.testing.assert_allclose(net.apply(variables, x, value_only=True), value, rtol=1e-6)
    # documented layout: actor = Dense_0..2, critic = Dense_3..5, y = x @ kernel + bias
    p = variables["params"]
    h = jax.nn.relu(
        jax.nn.relu(x @ p["Dense_3"]["kernel"] + p["Dense_3"]["bias"]) @ p["Dense_4"]["kernel"]
        + p["Dense_4"]["bias"]
    )
    np.testing.assert_allclose(
        value, (h @ p["Dense_5"]["kernel"] + p["Dense_5"]["bias"])[:, 0], rtol=1e-5, atol=1e-6
    )
    h = jax.nn.relu(
        jax.nn.relu(x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]) @ p["Dense_1"]["kernel"]
        + p["Dense_1"]["bias"]
    )
    np.testing.assert_allclose(
        mean, h @ p["Dense_2"]["kernel"] + p["Dense_2"]["bias"], rtol=1e-5, atol=1e-6
    )


def _primitives(jaxpr) -> set[str]:
    """Names of all primitives in a (closed) jaxpr, including nested sub-jaxprs."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for v in eqn.params.values():
            for sub in v if isinstance(v, (list, tuple)) else [v]:
                if hasattr(sub, "eqns") or hasattr(getattr(sub, "jaxpr", None), "eqns"):
                    names |= _primitives(sub)
    return names


def test_orthogonal_init_is_orthogonal_and_lapack_free_under_vmap():
    for shape in [(7, 64), (64, 2), (3, 5)]:  # wide, tall, wide
        w = np.asarray(orthogonal_init(1.5)(jax.random.PRNGKey(0), shape))
        gram = w.T @ w if shape[0] >= shape[1] else w @ w.T
        np.testing.assert_allclose(gram, 2.25 * np.eye(len(gram)), atol=1e-5)
    q, d = householder_qr(jnp.array([[3.0, 1.0], [4.0, 2.0], [0.0, 5.0]]))
    a = np.asarray(q) @ (np.asarray(q).T @ np.array([[3.0, 1.0], [4.0, 2.0], [0.0, 5.0]]))
    np.testing.assert_allclose(a, [[3.0, 1.0], [4.0, 2.0], [0.0, 5.0]], atol=1e-5)  # A in span(Q)
    np.testing.assert_allclose(np.abs(d[0]), 5.0, rtol=1e-6)
    # vmapped init (as in jax.vmap(train)) must not batch LAPACK QR: it can deadlock XLA's CPU pool
    init = jax.vmap(lambda k: ActorCritic(2).init(k, jnp.zeros(7)))
    prims = _primitives(jax.make_jaxpr(init)(jax.random.split(jax.random.PRNGKey(0), 3)))
    assert not prims & {"qr", "geqrf", "householder_product", "orgqr", "eigh", "svd"}, prims
    ks = jax.random.split(jax.random.PRNGKey(1), 3)
    w = jax.vmap(lambda k: orthogonal_init()(k, (5, 5)))(ks)
    assert not np.allclose(w[0], w[1])


def test_export_import_roundtrip_and_policy_fn(runs):
    out = runs[1][0]
    params, obs_norm = out["params"], out["obs_norm"]
    p2, n2, c2 = import_policy(export_policy(params, obs_norm, LEARN_CFG))
    assert c2 == dataclasses.replace(LEARN_CFG, debug_callback=False)  # callbacks are not exported
    chex.assert_trees_all_close(
        jax.tree.map(np.asarray, dict(params)), jax.tree.map(np.asarray, p2)
    )
    obs = jax.random.normal(jax.random.PRNGKey(0), (10, ENV.obs_dim))
    key = jax.random.PRNGKey(1)
    a1 = make_policy_fn(params, obs_norm, LEARN_CFG)(key, obs)
    a2 = make_policy_fn(p2, n2, c2)(key, obs)
    np.testing.assert_allclose(a1, a2, rtol=1e-6)
    np.testing.assert_array_equal(
        a1, make_policy_fn(params, obs_norm, LEARN_CFG)(jax.random.PRNGKey(9), obs)
    )
    stoch = make_policy_fn(params, obs_norm, LEARN_CFG, deterministic=False)
    s1, s2 = stoch(jax.random.PRNGKey(2), obs), stoch(jax.random.PRNGKey(3), obs)
    assert not np.allclose(s1, s2)
    assert np.all(np.abs(np.asarray(s1)) <= CAP) and np.all(np.abs(np.asarray(a1)) <= CAP)
    with pytest.raises(DataError, match="missing"):
        import_policy({"params": params})


def test_evaluator_compiles_once_for_policies_and_markets_of_one_shape(runs):
    """Two trained policies x two test markets of the same shapes: one evaluator compilation."""
    policies = [make_policy_fn(o["params"], o["obs_norm"], LEARN_CFG) for o in runs[1][::2]]
    markets = [
        EnvParams.from_arrays(
            *signal_market(s),
            leverage_cap=CAP,
            fee_rate=1e-4,
            episode_length=None,
            eval_start=T_DAYS - 100,
        )
        for s in (7, 8)
    ]
    before = run_policy_episode._cache_size()
    results = [
        evaluate_policy(ENV, m, p)["metrics"]["total_return"] for p in policies for m in markets
    ]
    assert run_policy_episode._cache_size() - before <= 1
    assert results[0] != results[1] and results[0] != results[2]  # other market / other policy


def test_config_validation_and_dict_roundtrip():
    cfg = PPOConfig(hidden_sizes=[32, 16], num_envs=4, num_steps=8, total_timesteps=64)
    assert cfg.hidden_sizes == (32, 16) and cfg.num_updates == 2 and cfg.minibatch_size == 8
    assert PPOConfig.from_dict(cfg.to_dict()) == cfg
    legacy = {
        k: v
        for k, v in cfg.to_dict().items()
        if k not in ("hidden_sizes", "risk_penalty", "turnover_penalty")
    }
    assert (
        PPOConfig.from_dict({**legacy, "hidden": [32, 16]}) == cfg
    )  # checkpoints before the rename
    assert cfg.risk_penalty == 0.0 and cfg.turnover_penalty == 0.0
    with pytest.raises(DataError, match="num_minibatches"):
        PPOConfig(num_envs=3, num_steps=3, num_minibatches=4).validate()
    with pytest.raises(DataError, match="total_timesteps"):
        PPOConfig(num_envs=64, num_steps=128, total_timesteps=100).validate()
    with pytest.raises(DataError, match="activation"):
        PPOConfig(activation="sigmoid").validate()
    with pytest.raises(DataError, match="turnover_penalty"):
        PPOConfig(turnover_penalty=-1.0).validate()
    with pytest.raises(DataError, match="unknown"):
        PPOConfig.from_dict({"num_envs": 4, "bogus": 1})
    with pytest.raises(DataError):
        make_train(PPOConfig(gamma=1.5), ENV, signal_params(0))
    with pytest.raises(DataError, match="num_assets"):
        make_train(PPOConfig(), PortfolioEnv(3, 1), signal_params(0))


TINY_CFG = PPOConfig(
    num_envs=4,
    num_steps=8,
    total_timesteps=64,
    update_epochs=1,
    num_minibatches=2,
    hidden_sizes=(8,),
    risk_penalty=2.0,
    turnover_penalty=0.05,
)


def test_env_params_are_traced_one_compilation_per_shape():
    """``train(key, env_params)``: markets of the same shapes share one compiled program."""
    markets = [signal_params(3), financing_params(4)]
    key = jax.random.PRNGKey(0)
    train = make_train(TINY_CFG, ENV, markets[0])  # runs jax.jit(train_fn) cached per (config, env)
    jitted = train.jitted
    direct = [train(key), train(key, markets[1])]
    assert jitted._cache_size() == 1  # the second market reused the first one's compilation
    assert not np.allclose(direct[0]["metrics"]["reward"], direct[1]["metrics"]["reward"])
    # (a user's own jax.jit / vmap over env params works too: see the `runs` fixture)
    # the objective's penalties are in the learning reward: objective < reward - 0.05 * turnover
    m = direct[0]["metrics"]
    assert np.all(m["turnover"] > 0.1)
    assert np.all(m["objective"] < m["reward"] - TINY_CFG.turnover_penalty * m["turnover"])
    with pytest.raises(DataError, match="env_params"):
        make_train(TINY_CFG, ENV)(key)
