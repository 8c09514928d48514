"""The universe allocator (jaxport.rl.universe): permutation equivariance, any N, 1/N at init,
nested-vmap basket stepping, one compilation per basket-set shape, populations, checkpoint
selection on validation, the codec kind, and learning a planted signal.

Every training here shares ONE compiled population program (same static config, env and shapes);
configs differ only in traced hyperparameters, seeds and data.
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
from jaxport.rl.population import train_population
from jaxport.rl.universe import (
    UniverseConfig,
    apply_policy,
    basket,
    init_params,
    make_network,
    make_universe_policy,
    nested_step,
    stack_env_params,
    train_universe,
)

T, SPLIT = 600, 450
K_SIGNAL, SIGNAL_NOISE = 0.01, 0.002
WINDOW, F = 1, 1
ENV2 = PortfolioEnv(2, F, window=WINDOW, long_only=True)
CFG = UniverseConfig(
    hidden_sizes=(16,),
    head_size=16,
    num_envs=8,
    bptt_length=16,
    episode_length=64,
    num_updates=120,
    eval_every=40,
    lr=1e-2,
    num_seeds=2,
    grid=(("lr", (1e-3, 1e-2)),),
)


def signal_market(seed: int, n: int = 2):
    """features[t] = z_t; the return from t to t+1 is K * z_t + small noise (planted)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((T, n)).astype(np.float32)
    r = K_SIGNAL * z[:-1] + SIGNAL_NOISE * rng.standard_normal((T - 1, n))
    prices = 100.0 * np.concatenate([np.ones((1, n)), np.cumprod(1.0 + r, axis=0)])
    return prices, z[:, :, None]


def split(seed: int, n: int = 2):
    prices, feats = signal_market(seed, n)
    tr = EnvParams.from_arrays(prices[: SPLIT + 1], feats[: SPLIT + 1], window=WINDOW)
    va = EnvParams.from_arrays(
        prices[: SPLIT + 76],
        feats[: SPLIT + 76],
        eval_start=SPLIT,
        episode_length=None,
        window=WINDOW,
    )
    te = EnvParams.from_arrays(
        prices, feats, eval_start=SPLIT + 75, episode_length=None, window=WINDOW
    )
    return tr, va, te


def baskets(seeds):
    parts = [split(s) for s in seeds]
    return (
        stack_env_params([p[0] for p in parts]),
        stack_env_params([p[1] for p in parts]),
        [p[2] for p in parts],
    )


#: (updates done, total) reported by the progress hook while the ``trained`` fixture trains
PROGRESS_CALLS: list[tuple[int, int]] = []


@pytest.fixture(scope="module")
def trained():
    from jaxport.rl.universe import progress_hook

    tr, va, tests = baskets((0, 1, 2))
    with progress_hook(lambda done, total: PROGRESS_CALLS.append((done, total))):
        out = train_universe(CFG, ENV2, tr, va, jax.random.PRNGKey(0))
    return tr, va, tests, out


def test_progress_hook_reports_every_evaluation_period(trained):
    """The host hook sees each evaluation period end (updates done, total) as training runs; the
    last report is the whole run; outside the block nothing is reported."""
    assert PROGRESS_CALLS, "no progress reported"
    assert {total for _, total in PROGRESS_CALLS} == {CFG.num_updates}
    assert sorted({done for done, _ in PROGRESS_CALLS}) == list(
        range(CFG.eval_every, CFG.num_updates + 1, CFG.eval_every)
    )
    before = len(PROGRESS_CALLS)
    tr, va, _ = baskets((6, 7, 8))
    train_universe(CFG, ENV2, tr, va, jax.random.PRNGKey(2))
    assert len(PROGRESS_CALLS) == before


def act_fn(net):
    """``apply_policy`` of ``net`` as ONE jitted program (not op-by-op dispatch: faster tests)."""
    return jax.jit(lambda params, obs, rate, cap: apply_policy(net, params, obs, rate, cap))


def random_params(env, key, scale=0.5):
    params = init_params(CFG, env, jax.random.PRNGKey(1))
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    )


def obs_for(n, window, f, key):
    """An observation of an N-asset env: features [K, N, F], weights, cash, gross, E/E0 - 1."""
    k1, k2 = jax.random.split(key)
    feats = jax.random.normal(k1, (window, n, f))
    w = jax.random.uniform(k2, (n,)) / n
    tail = jnp.array([1.0 - w.sum(), jnp.abs(w).sum(), 0.1])
    return feats, w, tail


def flat_obs(feats, w, tail):
    return jnp.concatenate([feats.reshape(-1), w, tail])


def test_permutation_equivariance():
    env = PortfolioEnv(4, 3, window=2, long_only=True)
    net = make_network(CFG, env)
    params = random_params(env, jax.random.PRNGKey(3))
    feats, w, tail = obs_for(4, 2, 3, jax.random.PRNGKey(4))
    perm = jnp.array([2, 0, 3, 1])
    act = act_fn(net)
    a = act(params, flat_obs(feats, w, tail), 0.5, 2.0)
    b = act(params, flat_obs(feats[:, perm], w[perm], tail), 0.5, 2.0)
    chex.assert_trees_all_close(a[perm], b, atol=1e-6)
    assert float(jnp.std(a)) > 1e-3  # a non-trivial output (not 1/N)


def test_any_n_same_params():
    """One parameter set acts in 2-, 3- and 5-asset envs; actions are long-only, gross <= cap."""
    params = random_params(ENV2, jax.random.PRNGKey(5))
    for n in (2, 3, 5):
        env = PortfolioEnv(n, F, window=WINDOW, long_only=True)
        net = make_network(CFG, env)
        feats, w, tail = obs_for(n, WINDOW, F, jax.random.PRNGKey(n))
        a = act_fn(net)(params, flat_obs(feats, w, tail)[None].repeat(3, 0), 1.0, 2.0)
        chex.assert_shape(a, (3, n))
        assert np.all(np.asarray(a) >= 0) and float(a.sum(-1).max()) <= 2.0 + 1e-6


def test_init_is_equal_weight_at_gross_one():
    for n in (2, 3, 7):
        env = PortfolioEnv(n, 2, window=3, long_only=True)
        net = make_network(CFG, env)
        params = init_params(CFG, env, jax.random.PRNGKey(n))
        feats, w, tail = obs_for(n, 3, 2, jax.random.PRNGKey(10 + n))
        a = act_fn(net)(params, flat_obs(feats, w, tail), 1.0, CFG.leverage_cap)
        chex.assert_trees_all_close(a, jnp.full((n,), 1.0 / n), atol=1e-6)


def test_partial_rebalance_moves_a_fraction():
    net = make_network(CFG, ENV2)
    params = init_params(CFG, ENV2, jax.random.PRNGKey(0))
    w = jnp.array([0.9, 0.1])
    obs = jnp.concatenate([jnp.zeros(2), w, jnp.array([0.0, 1.0, 0.0])])
    act = act_fn(net)
    a = act(params, obs, 0.25, CFG.leverage_cap)
    chex.assert_trees_all_close(a, w + 0.25 * (0.5 - w), atol=1e-6)
    flat = jnp.concatenate([jnp.zeros(4), jnp.array([1.0, 0.0, 0.0])])  # flat book: full target
    chex.assert_trees_all_close(act(params, flat, 0.25, 2.0), jnp.full(2, 0.5))


def test_nested_vmap_step_equals_per_basket_loop():
    tr, _, _ = baskets((0, 1, 2))
    tr = tr.replace(eval_start=jnp.full((3,), -1, jnp.int32))
    keys = jax.random.split(jax.random.PRNGKey(0), 12).reshape(3, 4, -1)
    inner_reset = jax.vmap(ENV2.reset_env, in_axes=(0, None))
    obs, state = jax.jit(jax.vmap(inner_reset))(keys, tr)
    action = jax.random.uniform(jax.random.PRNGKey(1), (3, 4, 2))
    nested = jax.jit(partial(nested_step(ENV2), None))(state, action, tr)
    per_basket = jax.jit(partial(jax.vmap(ENV2.step_env, in_axes=(None, 0, 0, None)), None))
    for b in range(3):
        sb = jax.tree_util.tree_map(lambda x: x[b], state)
        loop = per_basket(sb, action[b], basket(tr, b))
        chex.assert_trees_all_close(jax.tree_util.tree_map(lambda x: x[b], nested), loop, atol=1e-6)


def test_population_per_member_and_one_compile(trained):
    tr, va, _, out = trained
    num_members = 2 * CFG.num_seeds
    assert len(out["members"]) == num_members
    for k, v in out["metrics"].items():
        chex.assert_shape(v, (num_members, CFG.num_updates))
        assert np.all(np.isfinite(v)), k
    num_evals = CFG.num_updates // CFG.eval_every + 1
    chex.assert_shape(out["val_curve"]["objective"], (num_members, num_evals, 3))
    lrs = [m["hyperparams"]["lr"] for m in out["members"]]
    assert sorted(set(lrs)) == [1e-3, 1e-2]
    # different members (seed or lr) reach different training objectives
    assert len({round(float(v), 7) for v in out["metrics"]["objective"][:, -1]}) == num_members
    before = train_population._cache_size()
    tr2, va2, _ = baskets((3, 4, 5))
    cfg2 = dataclasses.replace(CFG, grid=(("lr", (3e-3, 5e-3)),), risk_penalty=1.0)
    out2 = train_universe(cfg2, ENV2, tr2, va2, jax.random.PRNGKey(1))
    assert train_population._cache_size() == before  # new baskets + hyperparameters: no compile
    assert len(out2["members"]) == num_members


def test_checkpoint_selection_picks_best_validation(trained):
    _, va, _, out = trained
    mean_obj = out["val_curve"]["objective"].mean(-1)  # [M, evals]
    for m, row in enumerate(out["members"]):
        e = int(np.argmax(mean_obj[m]))
        assert row["best_update"] == out["eval_updates"][e]
        np.testing.assert_allclose(row["val_score"], mean_obj[m].max(), rtol=1e-5)
    scores = [row["val_score"] for row in out["members"]]
    assert out["best_member"] == int(np.argmax(scores))
    # the returned policy reproduces its recorded validation Sharpe with the standard evaluator
    best = out["members"][out["best_member"]]
    for b in range(3):
        rep = evaluate_policy(ENV2, basket(va, b), out["policy"])
        np.testing.assert_allclose(rep["metrics"]["sharpe"], best["val_sharpe"][b], rtol=1e-3)


def _long_only_oracle(key, obs):
    """Knows the signal: the whole cap (2x) on the asset with the largest positive predicted move,
    cash when none is positive."""
    z = obs[:2]
    return 2.0 * (jnp.max(z) > 0) * jax.nn.one_hot(jnp.argmax(z), 2)


def test_learns_planted_signal(trained):
    """>= 90 % of the long-only oracle's log growth on unseen test days, in every basket."""
    _, _, tests, out = trained
    for te in tests:
        learned = evaluate_policy(ENV2, te, out["policy"])
        oracle = evaluate_policy(ENV2, te, _long_only_oracle)
        lg = lambda r: np.log(r["equity_curve"][-1]) / r["num_steps"]  # noqa: E731
        assert lg(oracle) > 0.005
        assert lg(learned) >= 0.9 * lg(oracle), (lg(learned), lg(oracle))


def test_codec_roundtrip_and_other_n(trained, tmp_path):
    _, va, _, out = trained
    policy = out["policy"]
    assert policy.kind == "universe" and policy.torch_twin == "UniverseAllocator"
    path = codec.save_policy_checkpoint(tmp_path / "p", policy)
    loaded, _ = codec.load_policy_checkpoint(path)
    obs = jax.random.normal(jax.random.PRNGKey(0), (5, ENV2.obs_dim))
    chex.assert_trees_all_close(loaded.act(obs), policy.act(obs), atol=1e-6)
    env3 = PortfolioEnv(3, F, window=WINDOW, long_only=True)
    prices, feats = signal_market(7, 3)
    te3 = EnvParams.from_arrays(prices, feats, eval_start=SPLIT, episode_length=None)
    rep = evaluate_policy(env3, te3, loaded.with_env(env3))
    assert rep["metrics"]["final_equity"] > 1.0


def test_config_validation_and_dict_roundtrip():
    assert UniverseConfig.from_dict(CFG.to_dict()) == CFG
    with pytest.raises(DataError, match="eval_every"):
        dataclasses.replace(CFG, eval_every=7).validate()
    with pytest.raises(DataError, match="grid"):
        dataclasses.replace(CFG, grid=(("num_envs", (1.0,)),)).validate()
    with pytest.raises(DataError, match="rebalance_rate"):
        dataclasses.replace(CFG, rebalance_rate=0.0).validate()
    tr, va, _ = baskets((0,))
    with pytest.raises(DataError, match="stacked"):
        train_universe(CFG, ENV2, basket(tr, 0), va, jax.random.PRNGKey(0))


def test_torch_twin_parity():
    """The Torch twin matches the Flax policy to 1e-5 (N = 3 and, same weights, N = 5)."""
    torch = pytest.importorskip("torch")
    from torch_compat.export import export_policy
    from torch_compat.models import build_model

    env = PortfolioEnv(3, 2, window=2, long_only=True)
    cfg = dataclasses.replace(CFG, rebalance_rate=0.5)
    policy = make_universe_policy(cfg, env, random_params(env, jax.random.PRNGKey(9)), 0.5)
    sd, arch = export_policy(policy)
    model = build_model(arch)
    model.load_state_dict(sd, strict=True)
    model.eval()
    for n, p in ((3, policy), (5, policy.with_env(PortfolioEnv(5, 2, window=2, long_only=True)))):
        x = np.random.default_rng(n).normal(0.0, 1.0, (16, p.env.obs_dim)).astype(np.float32)
        x[:, 2 * n * 2 : 2 * n * 2 + n] = np.abs(x[:, 2 * n * 2 : 2 * n * 2 + n]) / n
        x[0, 2 * n * 2 : 2 * n * 2 + n] = 0.0  # a flat book
        with torch.no_grad():
            got = model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, np.asarray(p.act(x)), rtol=1e-5, atol=1e-5)
