"""Differentiable training (jaxport.rl.gradient): learning, leverage/risk/turnover awareness,
transformer, vmap, gradient correctness, one compilation per shape.

Synthetic markets are built here with numpy (2 assets, 1 feature, fixed seeds). Every MLP training
below shares ONE compiled program: same config up to the traced hyperparameters (lr, risk_penalty),
same env, same data shapes. Learned policies are evaluated on the held-out chronological tail with
``evaluate_policy`` through one shared apply function (one more compilation).
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

from jaxport.data import DataError
from jaxport.env import EnvParams, PortfolioEnv
from jaxport.eval import evaluate_policy
from jaxport.rl.gradient import (
    METRIC_KEYS,
    GradientConfig,
    init_policy_params,
    make_objective_fn,
    make_policy_apply,
    make_policy_fn,
    make_train,
)

T, SPLIT = 1000, 800  # days; training uses days [0, SPLIT], the test episode runs SPLIT -> T - 1
K_SIGNAL, SIGNAL_NOISE = 0.01, 0.002  # r_{t+1} = K * z_t + noise (per step)
DRIFT, VOL = 0.001, 0.01  # drift market: per-step mean and volatility, features uninformative
ENV = PortfolioEnv(num_assets=2, num_features=1)
CFG = GradientConfig(
    policy="mlp",
    hidden_sizes=(32, 32),
    num_envs=32,
    bptt_length=16,
    episode_length=64,
    num_updates=200,
    lr=3e-3,
)


def market(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(prices [T, 2], features [T, 2, 1])``. "signal": features[t] = z_t and the return from t to
    t+1 is K * z_t + small noise (observable, planted). "drift": features are pure noise, returns
    are DRIFT + VOL * eps (positive edge, no signal)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((T, 2)).astype(np.float32)
    if kind == "signal":
        r = K_SIGNAL * z[:-1] + SIGNAL_NOISE * rng.standard_normal((T - 1, 2))
    else:
        r = DRIFT + VOL * rng.standard_normal((T - 1, 2))
    prices = 100.0 * np.concatenate([np.ones((1, 2)), np.cumprod(1.0 + r, axis=0)])
    return prices, z[:, :, None]


def split_params(kind: str, seed: int, window: int = 1, **kw) -> tuple[EnvParams, EnvParams]:
    """(train params on days [0, SPLIT], test params: one episode from SPLIT to the end)."""
    prices, feats = market(kind, seed)
    train = EnvParams.from_arrays(prices[: SPLIT + 1], feats[: SPLIT + 1], window=window, **kw)
    test = EnvParams.from_arrays(
        prices, feats, eval_start=SPLIT, episode_length=None, window=window, **kw
    )
    return train, test


def log_growth(report) -> float:
    """Per-step log growth of an evaluation episode."""
    return float(np.log(report["equity_curve"][-1]) / report["num_steps"])


def evaluate_trained(out, test_params, config=CFG):
    return evaluate_policy(
        ENV, test_params, make_policy_apply(config, ENV), policy_params=out["params"]
    )


@pytest.fixture(scope="module")
def signal():
    train_p, test_p = split_params("signal", 0)
    out = jax.block_until_ready(make_train(CFG, ENV, train_p)(jax.random.PRNGKey(0)))
    return train_p, test_p, out


def _oracle_argmax(key, obs):
    """Knows the signal: the whole cap on the asset with the largest predicted move, in its
    direction (beats spreading the cap in proportion to z or equally by sign on this market)."""
    z = obs[:2]
    return 2.0 * jnp.sign(z) * jax.nn.one_hot(jnp.argmax(jnp.abs(z)), 2)


def test_metrics_shapes_and_finite(signal):
    _, _, out = signal
    assert set(out["metrics"]) == set(METRIC_KEYS)
    for k, v in out["metrics"].items():
        chex.assert_shape(v, (CFG.num_updates,))
        assert np.all(np.isfinite(np.asarray(v))), k


def test_learns_planted_signal(signal):
    """>= 80 % of the best signal-knowing policy's log growth on the unseen test days, same env."""
    _, test_p, out = signal
    learned = log_growth(evaluate_trained(out, test_p))
    oracle = log_growth(evaluate_policy(ENV, test_p, _oracle_argmax))
    assert oracle > 0.01  # the planted signal is strong: ~2 %/day for a perfect-information policy
    assert learned >= 0.8 * oracle, (learned, oracle)
    m = out["metrics"]
    assert float(jnp.mean(m["objective"][-20:])) > float(jnp.mean(m["objective"][:20])) + 0.01


def test_financing_keeps_leverage_near_one():
    """No signal, positive drift below the financing rate: borrowing beyond 1x loses money, so the
    trained policy holds <= 1.05x; without financing the same training levers up to the cap."""
    lev, compiled = {}, []
    for rate in (0.5, 0.0):
        train_p, test_p = split_params("drift", 1, annual_financing_rate=rate)
        train = make_train(CFG, ENV, train_p)
        out = train(jax.random.PRNGKey(1))
        compiled.append(train.jitted._cache_size())
        lev[rate] = evaluate_trained(out, test_p)["metrics"]["mean_leverage"]
    assert compiled[0] == compiled[1]  # env params are traced: the second market reuses the program
    assert lev[0.5] <= 1.05, lev
    assert lev[0.5] >= 0.8, lev  # the drift is worth holding up to 1x
    assert lev[0.0] >= 1.8, lev


def test_risk_penalty_lowers_return_variance():
    train_p, test_p = split_params("drift", 1, annual_financing_rate=0.0)
    vol = {}
    for penalty in (0.0, 50.0):
        config = dataclasses.replace(CFG, risk_penalty=penalty)
        out = make_train(config, ENV, train_p)(jax.random.PRNGKey(2))
        vol[penalty] = evaluate_trained(out, test_p, config)["metrics"]["ann_volatility"]
        assert float(jnp.mean(out["metrics"]["return_std"][-20:])) > 0
    # mean-variance optimum: gross ~ 2 * DRIFT / ((1 + 2 * penalty) * VOL**2) = 0.2 at penalty 50
    assert vol[50.0] < 0.5 * vol[0.0], vol


def test_turnover_penalty_lowers_turnover(signal):
    """The same training with a turnover penalty trades less on the unseen test days (and, like
    every MLP run here, reuses the compiled program: penalties are traced)."""
    train_p, test_p, out = signal
    config = dataclasses.replace(CFG, turnover_penalty=0.05)
    train = make_train(config, ENV)
    before = train.jitted._cache_size()
    penalised = train(jax.random.PRNGKey(0), train_p)
    assert train.jitted._cache_size() == before
    turnover = {
        name: evaluate_trained(o, test_p, c)["metrics"]["turnover_mean"]
        for name, o, c in (("free", out, CFG), ("penalised", penalised, config))
    }
    assert turnover["penalised"] < 0.5 * turnover["free"], turnover


def test_vmap_over_seeds_gives_different_results(signal):
    train_p, _, single = signal
    train = make_train(CFG, ENV, train_p)
    keys = jnp.stack([jax.random.PRNGKey(s) for s in (0, 10, 11, 12)])
    out = jax.vmap(train)(keys)
    chex.assert_shape(out["metrics"]["objective"], (4, CFG.num_updates))
    kernels = np.asarray(out["params"]["params"]["out"]["kernel"])
    assert kernels.shape[0] == 4
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.allclose(kernels[i], kernels[j])
    obj = np.asarray(out["metrics"]["objective"])
    assert len(np.unique(obj[:, -1])) == 4
    assert np.all(obj[:, -20:].mean(axis=1) > obj[:, :20].mean(axis=1) + 0.01)  # every seed learns
    # seed 0 of the vmapped run == the unbatched run with the same key (early updates, before the
    # trajectories' float differences compound)
    np.testing.assert_allclose(
        obj[0, :5], np.asarray(single["metrics"]["objective"][:5]), rtol=1e-3, atol=1e-6
    )


def test_transformer_policy_trains():
    window = 4
    env = PortfolioEnv(num_assets=2, num_features=1, window=window)
    train_p, test_p = split_params("signal", 4, window=window)
    config = GradientConfig(
        policy="transformer",
        hidden_size=16,
        num_layers=1,
        num_heads=2,
        num_envs=16,
        bptt_length=8,
        episode_length=32,
        num_updates=80,
        lr=3e-3,
    )
    key = jax.random.PRNGKey(5)
    out = make_train(config, env, train_p)(key)
    obj = np.asarray(out["metrics"]["objective"])
    assert np.all(np.isfinite(obj))
    assert obj[-10:].mean() > obj[:10].mean() + 0.005, (obj[:10].mean(), obj[-10:].mean())
    policy = make_policy_fn(out["params"], config, env)
    action = jax.jit(policy)(key, jnp.zeros(env.obs_dim))
    chex.assert_shape(action, (2,))
    assert np.all(np.abs(np.asarray(action)) < config.leverage_cap)
    # the untrained policy starts ~flat (output_init_scale=0.01): ~0 log growth; trained one profits
    # from the signal on the unseen test days
    assert np.abs(obj[0]) < 1e-3
    trained = log_growth(evaluate_policy(env, test_p, policy))
    assert trained > 0.005, trained


def test_objective_gradient_matches_finite_differences():
    """Backprop through a bptt chunk of env steps == central finite differences (float32, loose)."""
    train_p, _ = split_params(
        "signal", 6, fee_rate=0.001, annual_financing_rate=0.5, short_borrow_rate=0.2
    )
    config = GradientConfig(
        hidden_sizes=(8,),
        num_envs=4,
        bptt_length=8,
        episode_length=8,
        risk_penalty=2.0,
        output_init_scale=0.1,
    )
    objective = make_objective_fn(config, ENV, train_p)
    key = jax.random.PRNGKey(7)
    params = init_policy_params(config, ENV, jax.random.PRNGKey(8))
    # one long ~0.65x and one short ~0.5x: gross ~1.15 exercises fees, financing beyond 1x and short
    # borrow on the smooth side of every kink (|w| at 0, gross at 1 and at the cap)
    params["params"]["out"]["bias"] = jnp.array([0.3, -0.3])
    actions = jax.jit(jax.vmap(make_policy_fn(params, config, ENV), in_axes=(None, 0)))(
        key, jax.random.normal(key, (16, ENV.obs_dim)) * 0.5
    )
    gross = np.abs(np.asarray(actions)).sum(axis=1)
    assert np.all((gross > 1.02) & (gross < 1.9)), gross
    value_and_grad = jax.jit(jax.value_and_grad(objective))  # one compilation for both sides
    value, grad = value_and_grad(params, key)
    f = lambda p, k: value_and_grad(p, k)[0]  # noqa: E731
    assert np.isfinite(float(value))
    leaves, treedef = jax.tree_util.tree_flatten(params)
    rng = np.random.default_rng(0)
    eps = 1e-3
    for _ in range(3):
        direction = jax.tree_util.tree_unflatten(
            treedef, [jnp.asarray(rng.standard_normal(x.shape), jnp.float32) for x in leaves]
        )
        pairs = zip(jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(direction))
        analytic = sum(float(jnp.vdot(g, d)) for g, d in pairs)
        shift = lambda s: jax.tree_util.tree_map(lambda p, d: p + s * eps * d, params, direction)  # noqa: E731
        numeric = (float(f(shift(1.0), key)) - float(f(shift(-1.0), key))) / (2 * eps)
        np.testing.assert_allclose(analytic, numeric, rtol=0.03, atol=1e-5)


def test_config_validation():
    with pytest.raises(DataError, match="policy"):
        make_train(GradientConfig(policy="lstm"), ENV, split_params("signal", 0)[0])
    with pytest.raises(DataError, match="num_heads"):
        GradientConfig(policy="transformer", hidden_size=10, num_heads=4).validate()
    with pytest.raises(DataError, match="bptt_length"):
        GradientConfig(bptt_length=0).validate()
    with pytest.raises(DataError, match="turnover_penalty"):
        GradientConfig(turnover_penalty=-0.1).validate()
    with pytest.raises(DataError, match="env_params"):
        make_train(CFG, ENV)(jax.random.PRNGKey(0))
    cfg = GradientConfig(hidden_sizes=[8, 4], turnover_penalty=0.01)
    assert cfg.hidden_sizes == (8, 4) and GradientConfig.from_dict(cfg.to_dict()) == cfg


@settings(max_examples=25, deadline=None)
@given(
    policy=st.sampled_from(["mlp", "transformer"]),
    hidden=st.lists(st.integers(1, 64), min_size=1, max_size=3),
    width=st.integers(1, 16).map(lambda k: 4 * k),
    cap=st.integers(1, 4),
    observe_equity=st.booleans(),
)
def test_policy_network_takes_every_shared_field_of_the_config(
    policy, hidden, width, cap, observe_equity
):
    """make_policy_network (rl.networks.module_from_config) copies each module field the config
    names, cast to the field's type (an int leverage_cap arrives as a float), plus the env shapes."""
    from jaxport.rl.gradient import make_policy_network

    config = GradientConfig(
        policy=policy,
        hidden_sizes=tuple(hidden),
        hidden_size=width,
        leverage_cap=cap,
        observe_equity=observe_equity,
    )
    env = PortfolioEnv(num_assets=3, num_features=2, window=2)
    network = make_policy_network(config, env)
    fields = {f.name for f in dataclasses.fields(network) if f.name not in ("parent", "name")}
    shared = {name for name in fields if hasattr(config, name)}
    assert shared >= {"leverage_cap", "observe_equity", "output_init_scale"}
    for name in shared:
        assert getattr(network, name) == getattr(config, name), name
    assert type(network.leverage_cap) is float and network.num_assets == 3
    if policy == "transformer":
        assert (network.window, network.num_features) == (2, 2)
