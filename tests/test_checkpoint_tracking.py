"""Atomic checkpoints/summary writes, the one JSON helper, the policy codec, and experiment tracking
that never stops a run."""

from __future__ import annotations

import builtins
import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import FrozenDict

from jaxport.checkpoint import (
    CHECKPOINT_FORMAT,
    atomic_write_json,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
    to_jsonable,
)
from jaxport.env import EnvParams, PortfolioEnv
from jaxport.errors import CheckpointError
from jaxport.eval import evaluate_policy
from jaxport.pipeline.tracking import Tracker, finite_points
from jaxport.rl import GradientConfig, PPOConfig, make_network
from jaxport.rl.codec import (
    Policy,
    PolicySpec,
    load_policy_checkpoint,
    make_policy,
    policy_spec,
    register_policy,
    registered_kinds,
    save_policy_checkpoint,
)
from jaxport.rl.gradient import make_policy_network

ENV = PortfolioEnv(num_assets=2, num_features=3, window=2)


# ---------------------------------------------------------------------------------- checkpoints
def test_checkpoint_roundtrip_and_refuses_overwrite(tmp_path):
    tree = {
        "params": {"Dense_0": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}},
        "n": np.array(3),
    }
    path = save_checkpoint(
        tmp_path / "ckpt", tree, {"algo": "ppo", "hidden": (64, 64)}, kind="test"
    )
    restored, meta = load_checkpoint(path)
    np.testing.assert_array_equal(
        restored["params"]["Dense_0"]["kernel"], tree["params"]["Dense_0"]["kernel"]
    )
    assert restored["params"]["Dense_0"]["kernel"].dtype == np.float32
    assert meta == {"format": CHECKPOINT_FORMAT, "kind": "test", "algo": "ppo", "hidden": [64, 64]}
    with pytest.raises(FileExistsError):
        save_checkpoint(path, tree)
    save_checkpoint(path, {"x": np.ones(2)}, overwrite=True)
    assert set(load_checkpoint(path)[0]) == {"x"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt"
    ]  # the old one moved aside, then deleted


def test_checkpoint_kind_is_checked_not_guessed(tmp_path):
    path = save_checkpoint(tmp_path / "ckpt", {"x": np.ones(2)}, kind="forecaster")
    assert read_metadata(path, kind="forecaster")["kind"] == "forecaster"
    with pytest.raises(CheckpointError, match="'forecaster' checkpoint, expected 'policy'"):
        load_checkpoint(path, kind="policy")
    with pytest.raises(CheckpointError, match="not a jaxport checkpoint"):
        load_checkpoint(tmp_path)
    meta = path / "metadata.json"
    meta.write_text(json.dumps({"algo": "ppo"}))  # an older format: refused with one line
    with pytest.raises(CheckpointError, match="format None"):
        load_checkpoint(path)


def test_checkpoint_keeps_empty_trees_and_zero_size_arrays(tmp_path):
    """Orbax refuses both; a parameter-free policy has an empty tree."""
    tree = {"a": {}, "b": np.zeros((0, 3), np.float32), "c": {"d": np.arange(2), "e": {}}}
    restored, meta = load_checkpoint(save_checkpoint(tmp_path / "c1", tree))
    assert restored["a"] == {} and restored["c"]["e"] == {}
    assert restored["b"].shape == (0, 3) and restored["b"].dtype == np.float32
    np.testing.assert_array_equal(restored["c"]["d"], np.arange(2))
    assert load_checkpoint(save_checkpoint(tmp_path / "c2", {}))[0] == {}


def test_failed_checkpoint_write_leaves_nothing(tmp_path):
    class Boom:
        def __array__(self, *a, **k):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_checkpoint(tmp_path / "ckpt", {"x": Boom()})
    assert list(tmp_path.iterdir()) == []  # no half-written checkpoint, no temp dir left behind


def test_atomic_json_replaces_whole_file(tmp_path):
    path = tmp_path / "s.json"
    atomic_write_json(path, {"a": np.float32(1.5), "b": np.arange(3), "c": (1, 2)})
    assert json.loads(path.read_text()) == {"a": 1.5, "b": [0, 1, 2], "c": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_to_jsonable_is_the_one_json_helper():
    @dataclasses.dataclass
    class Cfg:
        hidden: tuple = (4, 4)
        path: Path = Path("/x")

    value = {
        "frozen": FrozenDict({"k": jnp.arange(2)}),
        "cfg": Cfg(),
        1: np.int64(3),
        "b": np.bool_(True),
        "set": {2},
        "nan": float("nan"),
    }
    out = to_jsonable(value)
    assert out["frozen"] == {"k": [0, 1]} and out["cfg"] == {"hidden": [4, 4], "path": "/x"}
    assert out["1"] == 3 and type(out["1"]) is int and out["b"] is True and out["set"] == [2]
    assert np.isnan(out["nan"])
    json.dumps(out)


# ---------------------------------------------------------------------------------- policy codec
def _ppo_policy(seed: int = 0) -> Policy:
    cfg = PPOConfig(hidden_sizes=(8,), leverage_cap=1.5)
    params = make_network(cfg, ENV.num_assets).init(
        jax.random.PRNGKey(seed), jnp.zeros(ENV.obs_dim)
    )
    params = jax.tree.map(
        lambda x: x + 0.3 * jax.random.normal(jax.random.PRNGKey(seed + 1), x.shape), params
    )
    rng = np.random.default_rng(seed)
    norm = {
        "mean": rng.normal(size=ENV.obs_dim),
        "var": rng.uniform(0.5, 2, ENV.obs_dim),
        "count": 10.0,
    }
    return make_policy("ppo", cfg, ENV, params=params, obs_norm=norm)


def _gradient_policy(kind: str, seed: int = 0) -> Policy:
    cfg = GradientConfig(
        policy=kind,
        hidden_sizes=(6,),
        hidden_size=8,
        num_layers=1,
        num_heads=2,
        output_init_scale=1.0,
    )
    params = make_policy_network(cfg, ENV).init(jax.random.PRNGKey(seed), jnp.zeros(ENV.obs_dim))
    return make_policy(f"gradient_{kind}", cfg, ENV, params=params)


def test_builtin_kinds_are_registered():
    assert {"ppo", "gradient_mlp", "gradient_transformer"} <= set(registered_kinds())
    assert policy_spec("ppo").torch_twin == "ActorCritic"
    assert policy_spec("gradient_mlp").torch_twin == "MLPAllocator"
    assert policy_spec("gradient_transformer").torch_twin is None
    with pytest.raises(CheckpointError, match="unknown policy kind 'nope'"):
        policy_spec("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_policy(policy_spec("ppo"))


@pytest.mark.parametrize(
    "make",
    [_ppo_policy, lambda: _gradient_policy("mlp"), lambda: _gradient_policy("transformer")],
    ids=["ppo", "gradient_mlp", "gradient_transformer"],
)
def test_policy_checkpoint_roundtrip_acts_identically(tmp_path, make):
    policy = make()
    obs = np.random.default_rng(0).normal(size=(16, ENV.obs_dim)).astype(np.float32)
    path = save_policy_checkpoint(
        tmp_path / "p", policy, {"algo": "x", "symbols": ["A", "B"], "env": {"fee_rate": 0.001}}
    )
    restored, meta = load_policy_checkpoint(path)
    assert restored.kind == policy.kind and restored.config == policy.config and restored.env == ENV
    assert meta["kind"] == "policy" and meta["policy"]["kind"] == policy.kind
    assert (
        meta["env"]["fee_rate"] == 0.001
        and meta["env"]["window"] == 2
        and meta["symbols"] == ["A", "B"]
    )
    want = np.asarray(policy.act(obs))
    assert want.shape == (16, 2) and np.abs(want).max() > 1e-3
    np.testing.assert_array_equal(np.asarray(restored.act(obs)), want)
    eager = np.asarray(restored.policy_fn(None, obs[0]))  # un-jitted: float noise only
    np.testing.assert_allclose(eager, want[0], rtol=1e-5, atol=1e-6)
    assert restored.act_fn is policy.act_fn  # one function object per (kind, config, env)


def test_policy_kind_comes_from_metadata(tmp_path):
    """A PPO-shaped tree saved without ``policy.kind`` is refused, not guessed from its keys."""
    policy = _ppo_policy()
    path = save_checkpoint(tmp_path / "p", policy.tree, {"algo": "ppo", "env": {}}, kind="policy")
    with pytest.raises(CheckpointError, match="no policy.kind"):
        load_policy_checkpoint(path)


def test_registered_prefix_kind_with_empty_tree(tmp_path):
    """How a later ``baseline:<name>`` kind plugs in: a prefix spec, a parameter-free tree."""

    @dataclasses.dataclass(frozen=True)
    class ConstCfg:
        weight: float = 0.5

    if "test_const:" not in registered_kinds():
        register_policy(
            PolicySpec(
                kind="test_const:",
                config_from_dict=lambda d: ConstCfg(**d),
                config_to_dict=dataclasses.asdict,
                make_act=lambda cfg, env: (
                    lambda tree, obs: jnp.full(obs.shape[:-1] + (env.num_assets,), cfg.weight)
                ),
                to_tree=lambda cfg: {},
            )
        )
    policy = make_policy("test_const:half", {"weight": 0.5}, ENV)
    restored, _ = load_policy_checkpoint(save_policy_checkpoint(tmp_path / "c", policy))
    assert (
        restored.kind == "test_const:half" and restored.tree == {} and restored.torch_twin is None
    )
    np.testing.assert_array_equal(np.asarray(restored.act(np.zeros(ENV.obs_dim))), [0.5, 0.5])


def test_evaluating_policies_of_one_architecture_compiles_once():
    from jaxport.eval.episode import run_policy_episode

    rng = np.random.default_rng(1)
    prices = 50 * np.cumprod(1 + 0.01 * rng.standard_normal((60, 2)), axis=0)
    params = EnvParams.from_arrays(
        prices, rng.standard_normal((60, 2, 3)), eval_start=30, episode_length=None, window=2
    )
    first, second = _ppo_policy(0), _ppo_policy(5)
    a = evaluate_policy(ENV, params, first)
    size = run_policy_episode._cache_size()
    b = evaluate_policy(ENV, params, second)
    assert run_policy_episode._cache_size() == size
    assert a["equity_curve"] != b["equity_curve"]
    closure = evaluate_policy(ENV, params, first.policy_fn)
    np.testing.assert_allclose(closure["equity_curve"], a["equity_curve"], rtol=1e-6)


# ---------------------------------------------------------------------------------- tracking
def _event_points(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboardX.proto import event_pb2

    points: dict[str, list[tuple[int, float]]] = {}
    for path in logdir.rglob("events.out.tfevents.*"):
        data, pos = path.read_bytes(), 0
        while pos + 12 <= len(data):
            (length,) = np.frombuffer(data[pos : pos + 8], dtype="<u8")
            event = event_pb2.Event()
            event.ParseFromString(data[pos + 12 : pos + 12 + int(length)])
            for value in event.summary.value:
                points.setdefault(value.tag, []).append((event.step, value.simple_value))
            pos += 12 + int(length) + 4
    return points


def test_finite_points_and_tensorboard_get_the_same_curve(tmp_path):
    nan = float("nan")
    episode_return = [
        nan,
        0.5,
        nan,
        nan,
        0.25,
        nan,
    ]  # PPO: undefined on updates with no finished episode
    assert finite_points(episode_return) == ([1, 4], [0.5, 0.25])
    assert finite_points(np.array([[1.0, 3.0], [nan, nan]])) == ([0], [2.0])  # per-update mean
    tracker = Tracker(tmp_path)
    tracker.log_series("ppo", {"episode_return": episode_return, "reward": np.arange(6.0)})
    tracker.close()
    points = _event_points(tmp_path)
    assert points["ppo/episode_return"] == [(1, 0.5), (4, 0.25)]
    assert [s for s, _ in points["ppo/reward"]] == list(range(6))


def test_tracker_without_wandb_says_so_once_and_logs_tensorboard(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError("no wandb")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    said = []
    tracker = Tracker(tmp_path, wandb_project="proj", announce=said.append)
    tracker.log("base", 1, {"loss": 0.5, "nan": float("nan"), "text": "x"})
    tracker.log_series("portfolio/A_B/ppo", {"ret": [0.1, 0.2, 0.3]})
    tracker.close()
    assert tracker.wandb_status == "missing" and len(said) == 1 and "wandb" in said[0]
    assert list((tmp_path / "base").glob("events.out.tfevents.*"))
    assert list((tmp_path / "portfolio" / "A_B" / "ppo").glob("events.out.tfevents.*"))
