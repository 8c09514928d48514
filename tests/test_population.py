"""The population trainer (jaxport.rl.population) on toy member algorithms: keep-best selects the
best validation checkpoint, seeds give different members, one-device sharding equals the plain
vmap, both universe trainers (gradient and PPO) run through it, and so do both per-pair trainers
(one member without validation: their ``make_train`` output equals the documented key split and
update order replayed by hand, and ``jax.vmap(train)`` over seeds equals single runs).

The toy algorithm's "params" is a scalar counter; validation reads a score table at it, so the
expected selection is a numpy argmax.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxport.rl import population
from jaxport.rl.population import MemberAlgorithm, member_inputs, train_member, vmap_members

NUM_UPDATES, EVAL_EVERY = 6, 2


def counter_member(table, hp):
    """params = number of updates done (+ a seed-dependent offset); validation scores
    ``table[params]`` (two 'baskets': the score and its double)."""

    def init(k_params, k_env):
        del k_env
        return (jax.random.uniform(k_params) * hp["noise"], jnp.zeros(()))

    def update(state, key):
        p, n = state
        p = p + 1.0 + hp["noise"] * jax.random.normal(key)
        return (p, n + 1.0), {"p": p}

    def validate(p):
        s = table[jnp.clip(jnp.round(p).astype(jnp.int32), 0, table.shape[0] - 1)]
        return {"objective": jnp.stack([s, 2.0 * s]), "sharpe": jnp.stack([s, s])}

    return MemberAlgorithm(init=init, update=update, validate=validate)


@jax.jit
def run_counter(table, hp, keys):
    member = lambda table, hp, key: train_member(  # noqa: E731
        counter_member(table, hp), NUM_UPDATES, EVAL_EVERY, hp["noise"], key
    )
    return jax.vmap(member, in_axes=(None, 0, 0))(table, hp, keys)


def _inputs(noises, num_seeds=1):
    hparams = [{"noise": n} for n in noises]
    return member_inputs(hparams, num_seeds, jax.random.PRNGKey(0), ("noise",))


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(-5.0, 5.0, width=32), min_size=NUM_UPDATES + 1, max_size=NUM_UPDATES + 1))
def test_keep_best_selects_the_best_validation_checkpoint(scores):
    table = jnp.asarray(scores, jnp.float32)
    _, hp, keys = _inputs([0.0])
    out = run_counter(table, hp, keys)
    at = table[::EVAL_EVERY]  # evaluated at params 0, 2, 4, 6
    evaluated = np.asarray(jnp.mean(jnp.stack([at, 2.0 * at]), axis=0))  # mean over "baskets"
    best = int(np.argmax(evaluated))  # the first best on ties
    assert int(out["best_eval"][0]) == best
    assert float(out["params"][0]) == best * EVAL_EVERY
    assert float(out["final_params"][0]) == NUM_UPDATES
    assert float(out["best_objective"][0]) == evaluated[best]
    chex.assert_shape(out["val_curve"]["objective"], (1, NUM_UPDATES // EVAL_EVERY + 1, 2))
    chex.assert_shape(out["metrics"]["p"], (1, NUM_UPDATES))


def test_members_and_seeds():
    members, hp, keys = _inputs([0.1, 0.2], num_seeds=2)
    assert [(h["noise"], s) for h, s in members] == [(0.1, 0), (0.1, 1), (0.2, 0), (0.2, 1)]
    # seed s draws the same key in every hyperparameter set
    np.testing.assert_array_equal(np.asarray(keys[0]), np.asarray(keys[2]))
    assert not np.array_equal(np.asarray(keys[0]), np.asarray(keys[1]))
    out = run_counter(jnp.arange(NUM_UPDATES + 1, dtype=jnp.float32), hp, keys)
    final = np.asarray(out["final_params"])
    assert len(set(final.round(6).tolist())) == 4  # every member trains differently


def test_population_result_picks_the_best_member():
    members, hp, keys = _inputs([0.0, 0.0, 0.0])
    out = {
        "best_eval": np.array([1, 0, 2]),
        "best_objective": np.array([0.1, 0.5, -1.0], np.float32),
        "val_curve": {
            "objective": np.arange(3 * 3 * 2, dtype=np.float32).reshape(3, 3, 2),
            "sharpe": np.zeros((3, 3, 2), np.float32),
        },
        "metrics": {"p": np.zeros((3, NUM_UPDATES))},
    }
    res = population.population_result(EVAL_EVERY, members, out)
    assert res["best_member"] == 1
    assert [m["best_update"] for m in res["members"]] == [2, 0, 4]
    assert res["members"][0]["val_objective"] == [2.0, 3.0]
    assert res["eval_updates"] == [0, 2, 4]


def test_sharding_over_one_device_equals_unsharded():
    from jax.sharding import Mesh

    _, hp, keys = _inputs([0.1, 0.3], num_seeds=2)
    table = jnp.linspace(-1.0, 1.0, NUM_UPDATES + 1)
    mesh = Mesh(np.array(jax.devices()[:1]), ("members",))

    def member(table, hp, key):
        return train_member(counter_member(table, hp), NUM_UPDATES, EVAL_EVERY, hp["noise"], key)

    plain = jax.jit(partial(vmap_members, member))((table,), hp, keys)
    sharded = jax.jit(partial(vmap_members, member, mesh=mesh))((table,), hp, keys)
    chex.assert_trees_all_equal(plain, sharded)
    assert population.member_mesh(mesh, 4, 2, "test") is None  # one device: not sharded


def counter_algorithm(noise, split_key=population.split_member_key):
    """:func:`counter_member` without validation (the per-pair form)."""
    algo = counter_member(jnp.zeros((1,)), {"noise": noise})
    return MemberAlgorithm(init=algo.init, update=algo.update, split_key=split_key)


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 7), st.floats(0.0, 2.0, width=32), st.integers(0, 2**31 - 1))
def test_member_without_validation_runs_every_update_in_order(num_updates, noise, seed):
    """``validate=None``: ``{final_state, metrics}`` of ``num_updates`` updates, update ``i`` fed
    ``split(k_loop, num_updates)[i]`` with ``k_init, k_env, k_loop = split(key, 3)``."""
    key = jax.random.PRNGKey(seed)
    out = jax.jit(lambda k: train_member(counter_algorithm(noise), num_updates, None, None, k))(key)
    assert set(out) == {"final_state", "metrics"}
    chex.assert_shape(out["metrics"]["p"], (num_updates,))
    k_init, _, k_loop = jax.random.split(key, 3)
    p = float(jax.random.uniform(k_init) * jnp.float32(noise))
    want = []
    for k in jax.random.split(k_loop, num_updates):
        p = p + 1.0 + np.float32(noise) * float(jax.random.normal(k))
        want.append(p)
    np.testing.assert_allclose(np.asarray(out["metrics"]["p"]), want, rtol=1e-5, atol=1e-5)
    p_final, n_final = out["final_state"]
    assert float(n_final) == num_updates
    np.testing.assert_allclose(float(p_final), want[-1], rtol=1e-5, atol=1e-5)


def test_member_split_key_feeds_the_updates():
    """An algorithm's own ``split_key`` decides ``init``'s keys and each update's input."""

    def by_index(key, num_updates):
        return (key, key), jnp.arange(num_updates, dtype=jnp.float32) * 10.0

    algo = counter_algorithm(0.0, split_key=by_index)
    algo = MemberAlgorithm(
        init=algo.init,
        update=lambda st, x: ((st[0] + x, st[1] + 1.0), {"x": x}),
        split_key=by_index,
    )
    out = train_member(algo, 4, None, None, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(np.asarray(out["metrics"]["x"]), [0.0, 10.0, 20.0, 30.0])
    assert float(out["final_state"][0]) == 60.0


def _pair_market():
    from jaxport.env import EnvParams, PortfolioEnv

    rng = np.random.default_rng(1)
    prices = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, (80, 2)), axis=0))
    feats = rng.normal(size=(80, 2, 1)).astype(np.float32)
    return PortfolioEnv(2, 1), EnvParams.from_arrays(prices, feats, episode_length=12)


def _by_hand(algo, num_updates, key):
    """The population loop replayed with a Python loop: ``(final_state, metrics [num_updates])``."""
    init_keys, xs = algo.split_key(key, num_updates)
    state, rows = algo.init(*init_keys), []
    for i in range(num_updates):
        state, m = algo.update(state, xs[i])
        rows.append(m)
    return state, {k: jnp.stack([r[k] for r in rows]) for k in rows[0]}


@pytest.mark.parametrize("algo", ["gradient", "ppo"])
def test_pair_trainers_run_through_the_population_loop(algo):
    from jaxport.rl.gradient import GradientConfig, make_gradient_train, split_config
    from jaxport.rl.gradient.train import pair_gradient_member
    from jaxport.rl.ppo import PPOConfig, make_train
    from jaxport.rl.ppo.train import pair_ppo_member

    env, market = _pair_market()
    if algo == "gradient":
        cfg = GradientConfig(
            num_envs=4,
            bptt_length=4,
            num_updates=3,
            episode_length=12,
            hidden_sizes=(8,),
            risk_penalty=1.0,
        )
        train = make_gradient_train(cfg, env, market)
        static, hp = split_config(cfg)
        member, num_updates = pair_gradient_member(static, env, market, hp), cfg.num_updates
        params_of = lambda state: state[0]  # noqa: E731
    else:
        cfg = PPOConfig(
            num_envs=4,
            num_steps=8,
            total_timesteps=4 * 8 * 3,
            num_minibatches=2,
            update_epochs=1,
            hidden_sizes=(8,),
            risk_penalty=1.0,
        )
        train = make_train(cfg, env, market)
        member, num_updates = pair_ppo_member(cfg, env, market), cfg.num_updates
        params_of = lambda state: state[0].params  # noqa: E731
    keys = jax.random.split(jax.random.PRNGKey(7), 2)
    out = train(keys[0])
    state, metrics = jax.jit(partial(_by_hand, member, num_updates))(keys[0])
    chex.assert_trees_all_close(out["params"], params_of(state), rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(out["metrics"], metrics, rtol=1e-5, atol=1e-6)
    # seeds: jax.vmap(train) over keys == one run per key, and the seeds differ
    both = jax.jit(jax.vmap(train))(keys)
    other = train(keys[1])
    for i, single in enumerate((out, other)):
        got = jax.tree_util.tree_map(lambda x: x[i], both["params"])
        chex.assert_trees_all_close(got, single["params"], rtol=1e-5, atol=1e-6)
    first = jax.tree_util.tree_leaves(out["params"])
    assert any(
        not np.allclose(a, b) for a, b in zip(first, jax.tree_util.tree_leaves(other["params"]))
    )


class _Routed(Exception):
    pass


@pytest.mark.parametrize("algo", ["gradient", "ppo"])
def test_both_universe_trainers_run_through_the_population(algo, monkeypatch):
    from jaxport.env import EnvParams, PortfolioEnv
    from jaxport.rl.universe import UniverseConfig, stack_env_params, train_universe
    from jaxport.rl.universe import train as universe_train
    from jaxport.rl.universe.ppo import UniversePPOConfig, ppo_member, train_universe_ppo

    seen = {}

    def spy(make_algorithm, config, env, val_steps, shared, hp, keys, mesh=None):
        seen.update(make_algorithm=make_algorithm, members=int(keys.shape[0]), hp=sorted(hp))
        raise _Routed

    monkeypatch.setattr(universe_train, "train_population", spy)
    rng = np.random.default_rng(0)
    prices = 100.0 * np.cumprod(1.0 + 0.01 * rng.standard_normal((60, 2)), axis=0)
    feats = rng.standard_normal((60, 2, 1)).astype(np.float32)
    tr = stack_env_params([EnvParams.from_arrays(prices[:40], feats[:40], window=1)])
    va = stack_env_params(
        [EnvParams.from_arrays(prices, feats, eval_start=39, episode_length=None, window=1)]
    )
    env = PortfolioEnv(2, 1, window=1, long_only=True)
    if algo == "gradient":
        cfg, train, expected = UniverseConfig(num_seeds=3), train_universe, universe_train
        expected = universe_train.gradient_member
    else:
        cfg, train, expected = UniversePPOConfig(num_seeds=3), train_universe_ppo, ppo_member
    with pytest.raises(_Routed):
        train(cfg, env, tr, va, jax.random.PRNGKey(0))
    assert seen["make_algorithm"] is expected
    assert seen["members"] == 3
    assert ("clip_eps" in seen["hp"]) == (algo == "ppo")


TWO_DEVICE_CHILD = r"""
import json, os, sys
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh
sys.path.insert(0, os.path.join(sys.argv[1], "tests"))
from test_population import counter_member, _inputs, NUM_UPDATES, EVAL_EVERY
from jaxport.rl.population import train_member, vmap_members
from functools import partial

_, hp, keys = _inputs([0.1, 0.3], num_seeds=2)
table = jnp.linspace(-1.0, 1.0, NUM_UPDATES + 1)
mesh = Mesh(np.array(jax.devices()[:2]), ("members",))

def member(table, hp, key):
    return train_member(counter_member(table, hp), NUM_UPDATES, EVAL_EVERY, hp["noise"], key)

plain = jax.device_get(jax.jit(partial(vmap_members, member))((table,), hp, keys))
sharded_out = jax.jit(partial(vmap_members, member, mesh=mesh))((table,), hp, keys)
spread = sorted({d.id for d in sharded_out["final_params"].devices()})
sharded = jax.device_get(sharded_out)
diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
           for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(sharded)))
print("RESULT " + json.dumps({"devices": len(jax.devices()), "spread": spread, "diff": diff}))
"""


def test_members_split_over_two_devices_match_one():
    repo = Path(__file__).resolve().parents[1]
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu"
    )
    proc = subprocess.run(
        [sys.executable, "-c", TWO_DEVICE_CHILD, str(repo)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, proc.stderr[-3000:]
    res = json.loads(line[0][len("RESULT ") :])
    assert res["devices"] == 2
    assert len(res["spread"]) == 2  # the member axis really lives on both devices
    assert res["diff"] == 0.0


PPO_TWO_DEVICE_CHILD = r"""
import json
import jax, numpy as np
from jax.sharding import Mesh
from jaxport.env import EnvParams, PortfolioEnv
from jaxport.rl.universe import stack_env_params
from jaxport.rl.universe.ppo import UniversePPOConfig, train_universe_ppo

rng = np.random.default_rng(0)
prices = 100.0 * np.cumprod(1.0 + 0.01 * rng.standard_normal((120, 2)), axis=0)
feats = rng.standard_normal((120, 2, 1)).astype(np.float32)
tr = stack_env_params([EnvParams.from_arrays(prices[:80], feats[:80], window=1)])
va = stack_env_params([EnvParams.from_arrays(prices, feats, eval_start=79, episode_length=None, window=1)])
env = PortfolioEnv(2, 1, window=1, long_only=True)
cfg = UniversePPOConfig(hidden_sizes=(8,), head_size=8, num_envs=4, num_steps=8, episode_length=32,
                        num_updates=4, eval_every=2, num_minibatches=2, num_seeds=2)
mesh = Mesh(np.array(jax.devices()[:2]), ("members",))
one = train_universe_ppo(cfg, env, tr, va, jax.random.PRNGKey(0))
two = train_universe_ppo(cfg, env, tr, va, jax.random.PRNGKey(0), mesh=mesh)
diff = max(float(np.max(np.abs(np.asarray(one["metrics"][k]) - np.asarray(two["metrics"][k]))))
           for k in one["metrics"])
print("RESULT " + json.dumps({"diff": diff, "best": [one["best_member"], two["best_member"]],
                              "updates": [[m["best_update"] for m in r["members"]] for r in (one, two)]}))
"""


@pytest.mark.skipif(
    not os.environ.get("JAXPORT_TEST_UNIVERSE_DEVICES"),
    reason="compiles universe PPO twice (minutes on 2 cores); opt in with "
    "JAXPORT_TEST_UNIVERSE_DEVICES=1",
)
def test_universe_ppo_members_split_over_two_devices_match_one():
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu"
    )
    proc = subprocess.run(
        [sys.executable, "-c", PPO_TWO_DEVICE_CHILD],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, proc.stderr[-3000:]
    res = json.loads(line[0][len("RESULT ") :])
    assert res["best"][0] == res["best"][1]
    assert res["updates"][0] == res["updates"][1]
    assert res["diff"] < 1e-4
