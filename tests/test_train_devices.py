"""``jaxport train --devices``: the RL batch sharded over several devices gives the numbers of one.

The end-to-end checks run ``jaxport train`` in a subprocess with two fake CPU devices
(``--xla_force_host_platform_device_count=2``; the device count is fixed when JAX starts): a tiny
pair-scope run (``--rl-algo both``) with ``--devices 1`` and ``--devices 2`` reports the same test
metrics for both candidates and ``device.devices_used`` 1 / 2, and the two-device trainers really
are sharded (their compiled programs hold cross-device all-reduces); a batch that does not divide
over the devices, or more devices than there are, is one ``error:`` line and exit code 2. The same
1-vs-2 check for ``--rl-scope universe`` (population members split over the devices) compiles the
universe trainer twice (1.5-3 min on 2 cores) and is opt-in: ``JAXPORT_TEST_UNIVERSE_DEVICES=1``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from jaxport.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

TINY_RL_TOML = """
[rl]
num_steps = 8
episode_length = 32
hidden_size = 16
num_layers = 1
"""

# Runs `jaxport train` in-process once per argument set (argv[1]: JSON list of [name, args]) so the
# evaluation programs compile once; prints RESULT {name: {"code", "output"}, "sharded": {...}}.
CHILD = textwrap.dedent(
    r"""
    import json, sys
    from typer.testing import CliRunner
    import jaxport.cli as cli

    cli.console._width = cli.err_console._width = 250
    runner = CliRunner()
    out = {}
    for name, args in json.loads(sys.argv[1]):
        res = runner.invoke(cli.app, args)
        out[name] = {"code": res.exit_code, "output": res.output[-3000:]}
    from jaxport.pipeline import basket_stage

    sharded = {}
    for key, compiled in basket_stage._COMPILED.items():
        mesh = key[-1]
        if mesh is not None:
            text = compiled[0].as_text()
            sharded[key[0]] = {"devices": int(mesh.devices.size),
                               "all_reduce": text.count("all-reduce")}
    out["sharded"] = sharded
    print("RESULT " + json.dumps(out))
    """
)


def _run_cli(runs: list[tuple[str, list[str]]], timeout: int = 900) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    for k in ("JAXPORT_COORDINATOR_ADDRESS", "JAXPORT_NUM_PROCESSES", "JAXPORT_PROCESS_ID"):
        env.pop(k, None)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(runs)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"child failed (rc={proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}"
    )
    return json.loads(lines[-1][len("RESULT ") :])


def _train_args(tmp: Path, name: str, scope: str, *extra: str) -> list[str]:
    config = tmp / "tiny.toml"
    config.write_text(TINY_RL_TOML, encoding="utf-8")
    return [
        "train",
        "--trainingdata-dir",
        str(REPO / "trainingdata"),
        "--output-dir",
        str(tmp / name / "models"),
        "--tensorboard-dir",
        str(tmp / name / "logs"),
        "--config",
        str(config),
        "--skip-base",
        "--skip-specialists",
        "--base-stocks",
        "AAPL,MSFT",
        "--pair",
        "AAPL,MSFT",
        "--rl-scope",
        scope,
        "--rl-epochs",
        "3",
        "--rl-batch-size",
        "4",
        *extra,
    ]


def _summary(tmp: Path, name: str) -> dict:
    return json.loads((tmp / name / "models" / "pipeline_summary.json").read_text())


def _numbers(metrics: dict) -> dict[str, float]:
    return {
        k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and np.isfinite(v)
    }


def _assert_same_metrics(a: dict, b: dict, what: str) -> None:
    na, nb = _numbers(a), _numbers(b)
    assert na.keys() == nb.keys() and len(na) >= 5, (what, sorted(na), sorted(nb))
    for k in na:
        # PPO's cross-device gradient means add float reduction-order noise (measured ~1e-6)
        np.testing.assert_allclose(nb[k], na[k], rtol=1e-3, atol=1e-4, err_msg=f"{what}.{k}")


def _error_lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def pair_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("devices")
    runs = [
        ("d1", _train_args(tmp, "d1", "pair", "--rl-algo", "both", "--devices", "1")),
        ("d2", _train_args(tmp, "d2", "pair", "--rl-algo", "both", "--devices", "2")),
        (
            "odd_batch",
            _train_args(tmp, "odd", "pair", "--rl-batch-size", "3", "--devices", "2"),
        ),
        ("too_many", _train_args(tmp, "many", "pair", "--devices", "3")),
        ("odd_seeds", _train_args(tmp, "seeds", "universe", "--rl-seeds", "3", "--devices", "2")),
    ]
    return tmp, _run_cli(runs)


def test_pair_scope_two_devices_match_one(pair_runs):
    tmp, out = pair_runs
    for name in ("d1", "d2"):
        assert out[name]["code"] == 0, out[name]["output"]
    s1, s2 = _summary(tmp, "d1"), _summary(tmp, "d2")
    assert s1["device"]["devices_used"] == 1 and s2["device"]["devices_used"] == 2
    assert s1["device"]["num_devices"] == s2["device"]["num_devices"] == 2
    assert s2["device"]["device_kind"] and s2["device"]["num_processes"] == 1
    p1, p2 = s1["stages"]["portfolio"]["AAPL_MSFT"], s2["stages"]["portfolio"]["AAPL_MSFT"]
    assert set(p1["candidates"]) == set(p2["candidates"]) == {"ppo", "gradient"}
    for algo in ("ppo", "gradient"):
        for split in ("validation", "test"):
            _assert_same_metrics(
                p1["candidates"][algo][split], p2["candidates"][algo][split], f"{algo}.{split}"
            )
    assert p1["shipped"] == p2["shipped"]
    _assert_same_metrics(p1["metrics"]["test"], p2["metrics"]["test"], "shipped.test")


def test_two_device_trainers_are_sharded(pair_runs):
    _, out = pair_runs
    sharded = out["sharded"]
    assert set(sharded) == {"ppo", "gradient"}, sharded
    for algo, info in sharded.items():
        assert info["devices"] == 2
        assert info["all_reduce"] > 0, f"{algo}: no cross-device reduction in the program"


@pytest.mark.parametrize(
    "name, message",
    [
        ("odd_batch", "--rl-batch-size 3: must be a multiple of the 2 devices"),
        ("too_many", "--devices 3: must be between 1 and the 2 cpu device(s) available"),
        ("odd_seeds", "--rl-seeds 3: must be a multiple of the 2 devices"),
    ],
)
def test_batch_not_dividing_the_devices_is_one_line_exit_2(pair_runs, name, message):
    _, out = pair_runs
    res = out[name]
    assert res["code"] == 2, res["output"]
    lines = _error_lines(res["output"])
    assert len(lines) == 1 and lines[0].startswith("error: "), res["output"]
    assert message in lines[0] and "--devices" in lines[0], lines[0]
    assert "Traceback" not in res["output"]


@pytest.mark.skipif(
    not os.environ.get("JAXPORT_TEST_UNIVERSE_DEVICES"),
    reason="compiles the universe trainer twice (1.5-3 min on 2 cores); "
    "set JAXPORT_TEST_UNIVERSE_DEVICES=1",
)
def test_universe_scope_two_devices_match_one(tmp_path):
    runs = [
        (f"u{d}", _train_args(tmp_path, f"u{d}", "universe", "--rl-seeds", "2", "--devices", d))
        for d in ("1", "2")
    ]
    out = _run_cli(runs)
    for name, _ in runs:
        assert out[name]["code"] == 0, out[name]["output"]
    s1, s2 = _summary(tmp_path, "u1"), _summary(tmp_path, "u2")
    assert s1["device"]["devices_used"] == 1 and s2["device"]["devices_used"] == 2
    u1, u2 = s1["stages"]["universe"], s2["stages"]["universe"]
    assert u1["best_member"] == u2["best_member"]
    np.testing.assert_allclose(
        [m["val_score"] for m in u2["members"]],
        [m["val_score"] for m in u1["members"]],
        rtol=1e-5,
        atol=1e-7,
    )
    p1, p2 = s1["stages"]["portfolio"]["AAPL_MSFT"], s2["stages"]["portfolio"]["AAPL_MSFT"]
    for algo in p1["candidates"]:
        _assert_same_metrics(p1["candidates"][algo]["test"], p2["candidates"][algo]["test"], algo)
    _assert_same_metrics(p1["metrics"]["test"], p2["metrics"]["test"], "shipped.test")


def test_default_device_count_divides_the_batch():
    """Without --devices the RL batch uses the most devices that divide it (never an error)."""
    code = (
        "from jaxport.distributed import rl_mesh\n"
        "print([rl_mesh(None, batch=b).devices.size for b in (4, 3, 6, None)])"
    )
    env = dict(os.environ)
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[4, 3, 3, 4]"


# ----------------------------------------------------------------------------- in-process, fast
def test_rl_mesh_counts_and_limits():
    import jax

    from jaxport.distributed import rl_mesh

    n = len(jax.devices())
    assert rl_mesh(None).devices.size == n
    assert rl_mesh(1).devices.size == 1
    with pytest.raises(ConfigError, match=rf"rl.devices {n + 1}: must be between 1 and the {n}"):
        rl_mesh(n + 1)


@pytest.mark.parametrize("size, devices, ok", [(4, 2, True), (3, 2, False), (3, 1, True)])
def test_check_batch_names_the_setting(size, devices, ok):
    from jaxport.distributed import check_batch

    mesh = SimpleNamespace(devices=np.empty(devices, object))
    if ok:
        check_batch(size, mesh, "rl.batch_size")
    else:
        with pytest.raises(ConfigError, match=rf"^rl.batch_size {size}: .* {devices} devices"):
            check_batch(size, mesh, "rl.batch_size")


@pytest.mark.parametrize(
    "environ, multi",
    [
        ({}, False),
        ({"SLURM_JOB_ID": "7"}, False),  # an allocation, one task: a plain single-process run
        ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}, False),
        ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}, True),
        ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4", "SLURM_STEP_NUM_TASKS": "1"}, False),
        ({"OMPI_COMM_WORLD_SIZE": "1"}, False),
        ({"OMPI_COMM_WORLD_SIZE": "2"}, True),
        ({"JOBSET_NAME": "train"}, True),
        ({"TPU_WORKER_HOSTNAMES": "w0"}, False),
        ({"TPU_WORKER_HOSTNAMES": "w0,w1"}, True),
    ],
)
def test_cluster_auto_detection_needs_several_processes(environ, multi):
    from jaxport.distributed import multi_process_cluster

    assert multi_process_cluster(environ) is multi
