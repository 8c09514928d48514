"""jaxport.distributed on 4 fake CPU devices (``--xla_force_host_platform_device_count=4``, in a
subprocess because the device count is fixed when JAX starts): the sharded rollout equals the
unsharded one for the same key and is really split over the devices; sharded PPO trains end to end
with finite metrics and the same numbers as unsharded PPO up to float reduction order; and
``initialize_distributed`` goes through ``jax.distributed.initialize`` (a 1-process cluster on
localhost) or does nothing without settings.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jaxport.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(
    r"""
    import json, sys
    import numpy as np
    import jax
    from jaxport.distributed import (make_env_mesh, sharded_rollout, make_sharded_train, to_host,
                                     initialize_distributed)

    out = {"initialized": initialize_distributed(*json.loads(sys.argv[1]))}  # before any device use
    from jaxport.env import EnvParams, PortfolioEnv, rollout, random_policy
    from jaxport.rl.ppo import PPOConfig, make_train
    out["process_count"] = jax.process_count()
    out["num_devices"] = len(jax.devices())
    rng = np.random.default_rng(0)
    T, N, F = 90, 3, 2
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.05, (T, N)), 0))
    feats = rng.normal(size=(T, N, F))
    params = EnvParams.from_arrays(close, feats, episode_length=7, bankruptcy_fraction=0.5)
    env = PortfolioEnv(num_assets=N, num_features=F)
    mesh = make_env_mesh()
    policy = random_policy(env)

    key = jax.random.key(42)
    want = jax.device_get(rollout(env, params, policy, key, 16, 20))
    res = sharded_rollout(env, params, policy, key, 16, 20, mesh)
    got = to_host(res)
    diffs = [float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
             for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want))]
    out["rollout_max_diff"] = max(diffs)
    out["rollout_num_leaves"] = len(diffs)
    out["rollout_done"] = int(np.sum(np.asarray(want.trajectory.truncated)) + np.sum(np.asarray(want.trajectory.terminated)))
    r = res.trajectory.reward
    out["reward_spec"] = [str(s) for s in r.sharding.spec]
    out["reward_shards"] = sorted({tuple(s.index[1].indices(16)) for s in r.addressable_shards})
    out["state_spec"] = [str(s) for s in res.final_state.equity.sharding.spec]
    # a different key gives different numbers (the comparison above is not vacuous)
    other = to_host(sharded_rollout(env, params, policy, jax.random.key(7), 16, 20, mesh))
    out["other_key_differs"] = bool(np.any(np.asarray(other.trajectory.reward) != np.asarray(want.trajectory.reward)))

    cfg = PPOConfig(num_envs=8, num_steps=16, total_timesteps=8 * 16 * 4, num_minibatches=2, update_epochs=2,
                    hidden_sizes=(16, 16), lr=1e-3)
    strain = make_sharded_train(cfg, env, params, mesh)
    res = strain(jax.random.key(3))
    m = {k: np.asarray(v).tolist() for k, v in to_host(res["metrics"]).items()}
    out["ppo_metrics_finite"] = {k: bool(np.all(np.isfinite(np.asarray(v)) | np.isnan(np.asarray(v))))
                                 for k, v in m.items()}
    out["ppo_core_finite"] = all(bool(np.all(np.isfinite(m[k]))) for k in
                                 ("policy_loss", "value_loss", "total_loss", "grad_norm", "reward", "equity"))
    out["ppo_env_steps"] = m["env_steps"]
    out["ppo_env_state_spec"] = [str(s) for s in res["runner_state"][2].equity.sharding.spec]
    out["ppo_params_replicated"] = all(l.sharding.is_fully_replicated for l in jax.tree.leaves(res["params"]))
    ref = jax.jit(make_train(cfg, env, params))(jax.random.key(3))
    rm = {k: np.asarray(v) for k, v in jax.device_get(ref["metrics"]).items()}
    out["ppo_vs_unsharded"] = {k: float(np.nanmax(np.abs(np.asarray(m[k]) - rm[k]))) for k in
                               ("reward", "equity", "policy_loss", "value_loss", "grad_norm")}
    pa, pb = jax.tree.leaves(to_host(res["params"])), jax.tree.leaves(jax.device_get(ref["params"]))
    out["ppo_params_max_diff"] = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(pa, pb))
    out["ppo_params_moved"] = float(np.max(np.abs(np.asarray(pa[-1]))))
    print("RESULT " + json.dumps(out))
    """
)


def _run_child(init_args, devices=4, extra_env=None):
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={devices}"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    for k in ("JAXPORT_COORDINATOR_ADDRESS", "JAXPORT_NUM_PROCESSES", "JAXPORT_PROCESS_ID"):
        env.pop(k, None)
    env.update(extra_env or {})
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(init_args)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"child failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}"
    )
    return json.loads(lines[-1][len("RESULT ") :])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def four_devices():
    # a 1-process "cluster" through jax.distributed.initialize: the multi-host code path for real
    return _run_child([f"127.0.0.1:{_free_port()}", 1, 0])


def test_initialize_distributed_ran_and_devices(four_devices):
    assert four_devices["initialized"] is True
    assert four_devices["process_count"] == 1
    assert four_devices["num_devices"] == 4


def test_sharded_rollout_equals_unsharded(four_devices):
    r = four_devices
    assert r["rollout_num_leaves"] >= 10
    assert r["rollout_max_diff"] == 0.0, f"sharded rollout differs by {r['rollout_max_diff']}"
    assert r["rollout_done"] > 0, "the rollout should include auto-resets"
    assert r["other_key_differs"]


def test_sharded_rollout_is_split_over_devices(four_devices):
    r = four_devices
    assert r["reward_spec"] == ["None", "envs"]
    assert r["state_spec"] == ["envs"]
    # 16 envs on 4 devices: 4 contiguous blocks of 4 envs
    assert [tuple(x) for x in r["reward_shards"]] == [(0, 4, 1), (4, 8, 1), (8, 12, 1), (12, 16, 1)]


def test_sharded_ppo_trains(four_devices):
    r = four_devices
    assert r["ppo_core_finite"], r["ppo_metrics_finite"]
    assert all(r["ppo_metrics_finite"].values()), r["ppo_metrics_finite"]
    assert r["ppo_env_steps"] == [128.0, 256.0, 384.0, 512.0]
    assert r["ppo_env_state_spec"] == ["envs"]
    assert r["ppo_params_replicated"]
    # the same run as unsharded PPO, up to the order of float reductions across devices
    assert r["ppo_params_moved"] > 0
    assert r["ppo_params_max_diff"] < 1e-5, r["ppo_params_max_diff"]
    for k, v in r["ppo_vs_unsharded"].items():
        assert v < 1e-5, (k, v)


MULTI = textwrap.dedent(
    r"""
    import json, sys
    import numpy as np
    import jax
    from jaxport.distributed import initialize_distributed, make_env_mesh, sharded_rollout, to_host

    initialize_distributed()  # from JAXPORT_COORDINATOR_ADDRESS / _NUM_PROCESSES / _PROCESS_ID
    from jaxport.env import EnvParams, PortfolioEnv, rollout, random_policy

    rng = np.random.default_rng(0)
    T, N, F = 90, 3, 2
    params = EnvParams.from_arrays(50 * np.exp(np.cumsum(rng.normal(0, 0.05, (T, N)), 0)),
                                   rng.normal(size=(T, N, F)), episode_length=7)
    env = PortfolioEnv(num_assets=N, num_features=F)
    res = sharded_rollout(env, params, random_policy(env), jax.random.key(42), 16, 20, make_env_mesh())
    got = to_host(res)
    want = jax.device_get(rollout(env, params, random_policy(env), jax.random.key(42), 16, 20))
    diff = max(float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
               for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)))
    local = sorted({tuple(s.index[1].indices(16)) for s in res.trajectory.reward.addressable_shards})
    print("RESULT " + json.dumps({"process": jax.process_index(), "processes": jax.process_count(),
                                  "devices": len(jax.devices()), "local_devices": len(jax.local_devices()),
                                  "max_diff": diff, "local_shards": local}))
    """
)


def test_two_process_sharded_rollout_equals_unsharded():
    """Two processes x 2 CPU devices joined by jax.distributed (gloo collectives): the global
    rollout, gathered on each host, equals the single-process one."""
    port = _free_port()
    procs = []
    for pid in range(2):
        env = dict(
            os.environ,
            XLA_FLAGS="--xla_force_host_platform_device_count=2",
            JAX_PLATFORMS="cpu",
            JAXPORT_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
            JAXPORT_NUM_PROCESSES="2",
            JAXPORT_PROCESS_ID=str(pid),
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", MULTI],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=240)
        finally:
            if p.poll() is None:
                p.kill()
        lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
        assert p.returncode == 0 and lines, f"process failed (rc={p.returncode}):\n{err[-3000:]}"
        results.append(json.loads(lines[-1][len("RESULT ") :]))
    assert sorted(r["process"] for r in results) == [0, 1]
    for r in results:
        assert (r["processes"], r["devices"], r["local_devices"]) == (2, 4, 2)
        assert r["max_diff"] == 0.0
    # each host holds its own half of the env batch
    halves = sorted(tuple(map(tuple, r["local_shards"])) for r in results)
    assert halves == [((0, 4, 1), (4, 8, 1)), ((8, 12, 1), (12, 16, 1))]


def test_initialize_distributed_without_settings_is_a_noop(monkeypatch):
    from jaxport.distributed import initialize_distributed

    for k in (
        "JAXPORT_COORDINATOR_ADDRESS",
        "JAXPORT_NUM_PROCESSES",
        "JAXPORT_PROCESS_ID",
        "SLURM_JOB_ID",
        "OMPI_COMM_WORLD_SIZE",
        "JOBSET_NAME",
        "TPU_WORKER_HOSTNAMES",
    ):
        monkeypatch.delenv(k, raising=False)
    assert initialize_distributed() is False
    monkeypatch.setenv("JAXPORT_NUM_PROCESSES", "2")
    with pytest.raises(ConfigError, match="together"):
        initialize_distributed()
    monkeypatch.setenv("JAXPORT_NUM_PROCESSES", "two")
    with pytest.raises(ConfigError, match="not an integer"):
        initialize_distributed()
    with pytest.raises(ConfigError, match="process_id"):
        initialize_distributed("127.0.0.1:1", 2, 5)


def test_num_envs_must_divide_over_devices():
    import jax
    import numpy as np

    from jaxport.distributed import make_env_mesh, sharded_rollout
    from jaxport.env import EnvParams, PortfolioEnv, random_policy

    mesh = make_env_mesh(jax.devices()[:1] * 1)
    env = PortfolioEnv(num_assets=2, num_features=1)
    params = EnvParams.from_arrays(
        np.ones((20, 2)) + np.arange(20)[:, None], np.zeros((20, 2, 1)), episode_length=5
    )
    # one device: any batch works, and it equals the plain rollout
    from jaxport.env import rollout

    a = sharded_rollout(env, params, random_policy(env), jax.random.key(1), 3, 4, mesh)
    b = rollout(env, params, random_policy(env), jax.random.key(1), 3, 4)
    np.testing.assert_array_equal(np.asarray(a.trajectory.reward), np.asarray(b.trajectory.reward))
    fake = type("FakeMesh", (), {"devices": np.empty((4,)), "axis_names": ("envs",)})()
    with pytest.raises(ConfigError, match="multiple of the 4 devices"):
        sharded_rollout(env, params, random_policy(env), jax.random.key(1), 6, 4, fake)
