"""benchmarks/gpu_suite.py: the smoke mode runs every section end to end on CPU, a failing section
is recorded and the rest still runs, and sizes that would not fit are skipped and listed."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import load_benchmark

ROOT = Path(__file__).resolve().parents[1]
gpu_suite = load_benchmark("gpu_suite")


def _args(tmp_path, **kw) -> argparse.Namespace:
    base = dict(
        smoke=True,
        out=str(tmp_path / "suite.json"),
        budget_s=None,
        sections=None,
        allow_cpu=False,
        cpu_memory_gb=8.0,
        markdown=None,
    )
    base.update(kw)
    return argparse.Namespace(**base)


@pytest.mark.slow
def test_smoke_runs_every_section(tmp_path):
    out = tmp_path / "suite.json"
    proc = subprocess.run(
        # a budget far above the smoke run's length: a loaded machine must not turn sections into
        # "time budget" skips (the budget logic has its own test below); the timeout bounds it
        [
            sys.executable,
            str(ROOT / "benchmarks/gpu_suite.py"),
            "--smoke",
            "--budget-s",
            "3600",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["smoke"] and res["finished"]
    assert set(res["sections"]) == set(gpu_suite.SECTIONS)
    for name, sec in res["sections"].items():
        if name == "torch_compile_cudagraphs":  # needs CUDA
            assert sec["status"] == "skipped", sec
        else:
            assert sec["status"] == "ok", (name, sec.get("error"), sec.get("traceback"))
    s = res["sections"]
    assert s["memory_model"]["fits"]["2"]["bytes_per_env"] > 0
    env_rows = s["env"]["rows"]
    assert env_rows and all("error" not in r for r in env_rows)
    assert all(r["jax_steps_per_s"] > 0 and r["vs_cartpole"] > 0 for r in env_rows)
    assert all(r["memory"]["peak_bytes"] > 0 for r in env_rows)
    (tc,) = s["torch_compile"]["rows"]
    assert tc["vs_torch_compile"] > 0 and tc["vs_torch_eager"] > 0
    (dl,) = s["torch_dlpack"]["rows"]
    assert dl["obs_zero_copy"] is True and dl["steps_per_s"] > 0
    (pp,) = s["ppo"]["rows"]
    assert pp["env_steps_per_s"] > 0 and pp["reference_env_steps_per_s"] > 0 and pp["ratio"] > 0
    assert "device_memory" in s
    assert {t["goal"] for t in res["targets"]} and len(res["targets"]) == 3
    assert "| envs | assets | jaxport M steps/s |" in proc.stdout  # the markdown table
    assert "| PPO envs |" in gpu_suite.markdown(res)


def test_failing_section_is_recorded_and_the_rest_runs(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("planted failure")

    monkeypatch.setattr(gpu_suite, "section_memory_model", boom)
    res = gpu_suite.run_suite(_args(tmp_path, sections="memory_model,device_memory"))
    s = res["sections"]
    assert s["memory_model"]["status"] == "error"
    assert "planted failure" in s["memory_model"]["error"] and s["memory_model"]["traceback"]
    assert s["device_memory"]["status"] == "ok"
    assert s["env"]["status"] == "skipped"
    on_disk = json.loads(Path(res["out"]).read_text())
    assert on_disk["sections"]["memory_model"]["status"] == "error"
    assert "error" in gpu_suite.markdown(on_disk) or "skipped" in gpu_suite.markdown(on_disk)


def test_sizes_that_do_not_fit_are_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_suite, "free_device_bytes", lambda fallback_gb: 1.0)  # 1 byte free
    budget = gpu_suite.Budget(100.0)
    sec: dict = {}
    model = {
        "fits": {
            "2": {"bytes_per_env": 300.0, "fixed_bytes": 0.0},
            "3": {"bytes_per_env": 400.0, "fixed_bytes": 0.0},
        }
    }
    cfg = dict(gpu_suite.SMOKE, num_assets=(2, 3), cpu_memory_gb=8.0)
    gpu_suite.section_env(cfg, budget, sec, lambda: None, model)
    assert sec["rows"] == []
    assert {(r["num_envs"], r["num_assets"]) for r in sec["skipped"]} == {(64, 2), (64, 3)}
    assert all("GiB free" in r["reason"] for r in sec["skipped"])


def test_time_budget_skips_items(tmp_path):
    budget = gpu_suite.Budget(0.0)  # already over
    sec: dict = {}
    gpu_suite.section_env(dict(gpu_suite.SMOKE, cpu_memory_gb=8.0), budget, sec, lambda: None, {})
    assert sec["rows"] == [] and all(r["reason"] == "time budget" for r in sec["skipped"])


def test_full_sizes_refused_on_cpu(tmp_path):
    with pytest.raises(SystemExit) as exc:
        gpu_suite.run_suite(_args(tmp_path, smoke=False))
    assert exc.value.code == 2
