"""End-to-end tests of ``jaxport train`` / ``eval`` / ``report``: the README command on the shipped
data, a synthetic universe, resume after an interruption, refusing to overwrite a finished run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jaxport.checkpoint import load_checkpoint
from jaxport.errors import CheckpointError
from jaxport.pipeline.summary import RunSummary, missing_paths

REPO = Path(__file__).resolve().parents[1]

# A tiny but complete configuration (every stage runs) for the synthetic and resume tests.
TINY_TOML = """
seed = 3
[data]
features = "toto"
[base]
steps = 30
batch_size = 32
epochs = 2
context = 32
patch = 8
d_model = 16
num_layers = 1
num_heads = 2
max_val_windows = 256
log_every = 10
[finetune]
epochs = 1
max_steps = 6
[rl]
scope = "universe"
seeds = 2
algo = "gradient"
epochs = 4
batch_size = 16
num_steps = 16
episode_length = 32
hidden_size = 16
num_layers = 1
"""


def event_scalars(logdir: Path) -> dict[str, int]:
    """tag -> number of scalar points in every TensorBoard event file under ``logdir``."""
    from tensorboardX.proto import event_pb2

    counts: dict[str, int] = {}
    for path in logdir.rglob("events.out.tfevents.*"):
        data = path.read_bytes()
        pos = 0
        while pos + 12 <= len(data):
            (length,) = np.frombuffer(data[pos : pos + 8], dtype="<u8")
            start = pos + 12
            event = event_pb2.Event()
            event.ParseFromString(data[start : start + int(length)])
            for value in event.summary.value:
                counts[value.tag] = counts.get(value.tag, 0) + 1
            pos = start + int(length) + 4
    return counts


def assert_checkpoints_restore(summary: dict, root: Path) -> None:
    from jaxport.forecast import Forecaster

    stages = summary["stages"]
    if stages["base"].get("checkpoint"):
        Forecaster.load(root / stages["base"]["checkpoint"])
    for entry in stages["specialists"].values():
        if entry.get("checkpoint"):
            Forecaster.load(root / entry["checkpoint"])
    for name, entry in stages["portfolio"].items():
        assert entry["status"] == "completed", (name, entry.get("error"))
        tree, meta = load_checkpoint(root / entry["checkpoint"])
        assert meta["algo"] == entry["algo"] and meta["symbols"] == entry["symbols"]
        kind, shipped = meta["policy"]["kind"], entry["shipped"]
        assert kind == shipped or kind.startswith(f"{shipped}_"), (name, kind, shipped)
        if shipped.startswith("baseline:"):
            assert not tree.get("params"), name  # a standard allocator: nothing trained to store
        else:
            assert tree["params"], name


def normalised(summary: dict) -> dict:
    """The summary without what legitimately differs between two runs (timings, hosts, paths)."""
    volatile = {
        "wall_s",
        "windows_per_s",
        "train_wall_s",
        "compile_s",
        "run_s",
        "compile_cache_hit",
        "env_steps_per_s",
        "timings",
        "versions",
        "device",
        "git_commit",
        "interrupted",
        "output_dir",
        "tensorboard_dir",
        "summary_path",
        "tracking",
    }

    def walk(node):
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items() if k not in volatile}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(summary)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory, cli_runner_module):
    from jaxport.cli import app

    out = tmp_path_factory.mktemp("synth")
    result = cli_runner_module.invoke(
        app, ["data", "synth", "--out", str(out), "--symbols", "3", "--days", "700", "--seed", "5"]
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def cli_runner_module():
    from typer.testing import CliRunner

    return CliRunner()


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.toml"
    path.write_text(TINY_TOML, encoding="utf-8")
    return path


def train_args(data_dir: Path, run: Path, config: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--trainingdata-dir",
        str(data_dir),
        "--output-dir",
        str(run / "models"),
        "--tensorboard-dir",
        str(run / "logs"),
        "--config",
        str(config),
        *extra,
    ]


@pytest.fixture(scope="module")
def synth_run(tmp_path_factory, synth_dir, tiny_config, cli_runner_module):
    """One uninterrupted tiny run on the synthetic universe."""
    from jaxport.cli import app

    run = tmp_path_factory.mktemp("synth_run")
    result = cli_runner_module.invoke(app, train_args(synth_dir, run, tiny_config))
    assert result.exit_code == 0, result.output
    return run


def test_readme_quick_start_runs_verbatim(quick_start_run, monkeypatch, cli_runner_module):
    """README's first command, run as written from a fresh folder with the shipped trainingdata/."""
    from jaxport.cli import app

    folder, output = quick_start_run
    monkeypatch.chdir(folder)
    summary_path = folder / "runs" / "models" / "pipeline_summary.json"
    assert str(summary_path.relative_to(folder)) in output.replace("\n", "")
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "completed"
    assert missing_paths(summary) == []
    assert summary["config"]["base_symbols"] == ["AAPL", "AMZN", "MSFT", "NVDA", "GOOGL"]
    assert summary["config"]["specialist_symbols"] == ["AAPL", "AMZN", "MSFT"]
    assert set(summary["stages"]["portfolio"]) == {"AAPL_AMZN", "AMZN_MSFT"}
    assert summary["config"]["rl"]["borrowing_cost"] == pytest.approx(0.0675)
    assert summary["config"]["rl"]["leverage_limit"] == 2.0
    assert_checkpoints_restore(summary, summary_path.parent)
    tags = event_scalars(folder / "runs" / "logs")
    assert any(t.startswith("base/") for t in tags) and any(
        t.startswith("portfolio/") for t in tags
    ), tags
    # Evaluation from checkpoints reproduces the summary; the report renders its plots.
    result = cli_runner_module.invoke(app, ["eval", "runs/models"])
    assert result.exit_code == 0, result.output
    result = cli_runner_module.invoke(app, ["report", "runs/models"])
    assert result.exit_code == 0, result.output
    report = folder / "runs" / "models" / "report"
    pngs = {p.name for p in report.glob("*.png")}
    assert {
        "equity_AAPL_AMZN.png",
        "equity_AMZN_MSFT.png",
        "forecast_volatility.png",
        "training_curves.png",
    } <= pngs
    text = (report / "report.md").read_text()
    assert all(f"]({name})" in text for name in pngs)


def test_synthetic_universe_end_to_end(synth_run, cli_runner_module):
    summary_path = synth_run / "models" / "pipeline_summary.json"
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "completed"
    assert missing_paths(summary) == []
    # No original symbols here: all discovered symbols are base symbols, the first 3 specialists.
    assert summary["config"]["base_symbols"] == ["SYN000", "SYN001", "SYN002"]
    assert set(summary["stages"]["portfolio"]) == {"SYN000_SYN001", "SYN001_SYN002"}
    universe = summary["stages"]["universe"]
    assert universe["baskets"] == [
        ["SYN000", "SYN001"],
        ["SYN000", "SYN002"],
        ["SYN001", "SYN002"],
    ]
    assert len(universe["members"]) == 2 and 0 <= universe["best_member"] < 2
    assert universe["training"]["env_steps_per_s"] > 0
    assert universe["trainer"] == "gradient" and set(universe["trainers"]) == {"gradient"}
    for entry in summary["stages"]["portfolio"].values():
        assert set(entry["candidates"]) == {"universe"}
        assert len(entry["candidates"]["universe"]["members"]) == 2
        assert entry["shipped"] in ("universe", "baseline:equal_weight"), entry["gate"]["reason"]
        assert entry["metrics"]["baselines"]["cash"]["total_return"] == 0.0
        assert entry["metrics"]["test"]["max_leverage"] <= 2.0 + 1e-5
    assert_checkpoints_restore(summary, summary_path.parent)
    assert event_scalars(synth_run / "logs")
    # Legacy keys of the original trainer's summary.
    assert set(summary["portfolio_pairs"]) == set(summary["stages"]["portfolio"])
    assert summary["base_checkpoint"] == summary["stages"]["base"]["checkpoint"]
    for key in (
        "base_symbols",
        "specialist_symbols",
        "pairs",
        "trainingdata_dir",
        "output_dir",
        "tensorboard_dir",
    ):
        assert key in summary["config"]
    assert set(summary["config"]["toto"]) == {"enabled", "horizon", "context_length", "targets"}


def test_resume_after_interruption_matches_uninterrupted(
    tmp_path, synth_dir, tiny_config, synth_run
):
    from jaxport.pipeline.config import build_config
    from jaxport.pipeline.run import Pipeline, RunInterrupted

    overrides = {
        "output_dir": str(tmp_path / "models"),
        "tensorboard_dir": str(tmp_path / "logs"),
        "data": {"trainingdata_dir": str(synth_dir)},
    }
    cfg = build_config("quick", tiny_config, overrides)
    with pytest.raises(RunInterrupted):
        Pipeline(cfg, stop_after="portfolio/SYN000_SYN001").run()
    partial = json.loads((tmp_path / "models" / "pipeline_summary.json").read_text())
    assert partial["status"] == "interrupted"
    assert "SYN001_SYN002" not in partial["stages"]["portfolio"]
    resumed = Pipeline(cfg, resume=True).run()
    full = json.loads((synth_run / "models" / "pipeline_summary.json").read_text())
    assert normalised(resumed) == normalised(full)


def test_finished_run_is_never_overwritten_silently(
    synth_run, synth_dir, tiny_config, cli_runner_module
):
    from jaxport.cli import app

    summary_file = synth_run / "models" / "pipeline_summary.json"
    before = summary_file.read_bytes()
    result = cli_runner_module.invoke(app, train_args(synth_dir, synth_run, tiny_config))
    assert result.exit_code == 2
    assert "already holds a previous run" in result.output and "--overwrite" in result.output
    assert summary_file.read_bytes() == before


def test_overwrite_refuses_foreign_files(tmp_path, synth_dir, tiny_config, cli_runner_module):
    from jaxport.cli import app

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "notes.txt").write_text("mine")
    result = cli_runner_module.invoke(
        app, train_args(synth_dir, tmp_path, tiny_config, "--overwrite")
    )
    assert result.exit_code == 2
    assert "refusing to delete" in result.output
    assert (tmp_path / "models" / "notes.txt").read_text() == "mine"


def test_export_then_torch_only_episode_reproduces_summary(synth_run, tmp_path, cli_runner_module):
    """`jaxport export` of a finished run, then the README's Torch-only example: same equity."""
    import runpy

    from jaxport.cli import app

    result = cli_runner_module.invoke(
        app, ["export", str(synth_run / "models"), "--to", str(tmp_path / "exp")]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((synth_run / "models" / "pipeline_summary.json").read_text())
    example = runpy.run_path(str(REPO / "examples" / "torch_policy_episode.py"))
    for name, entry in summary["stages"]["portfolio"].items():
        if entry["algo"] == "gradient" and summary["config"]["rl"]["policy"] == "transformer":
            continue  # no Torch twin of the transformer allocator
        equity = example["main"]([str(tmp_path / "exp" / f"portfolio_{name}.pt")])
        assert equity == pytest.approx(entry["metrics"]["test"]["final_equity"], rel=1e-5), name


# ---------------------------------------------------------------------------------- fast unit tests
def test_window_observation_never_shows_warm_up_rows():
    """With window > 1 the first day an episode may start on is valid_from + window - 1 (#16.4)."""
    import jax

    from jaxport.data import MarketData, split_bounds
    from jaxport.pipeline.basket_stage import PairData
    from jaxport.pipeline.config import RLConfig

    T, N, F, valid_from, window = 120, 2, 3, 10, 4
    rng = np.random.default_rng(0)
    close = 50 * np.cumprod(1 + 0.01 * rng.standard_normal((T, N)), axis=0)
    market = MarketData(
        symbols=("A", "B"),
        dates=np.datetime64("2020-01-01") + np.arange(T),
        open=close,
        high=close,
        low=close,
        close=close,
        volume=np.ones((T, N)),
    )
    values = rng.standard_normal((T, N, F))
    values[:valid_from] = np.nan  # the forecaster's warm-up
    pair = PairData.build(
        market,
        values,
        ["f0", "f1", "f2"],
        valid_from,
        split_bounds(market),
        RLConfig(window=window, episode_length=20),
    )
    start = valid_from + window - 1
    assert int(pair.train.start_min) == start and pair.dates["train_first"] == str(
        market.dates[start]
    )
    assert np.isfinite(pair.feature_mean).all()
    first = pair.train.replace(eval_start=np.int32(start))
    obs, _ = pair.env.reset_env(jax.random.PRNGKey(0), first)
    feats = np.asarray(obs[: window * N * F]).reshape(window, N, F)
    assert np.all(np.abs(feats).sum(axis=(1, 2)) > 0), (
        "a zeroed warm-up row is in the first observation"
    )


def test_training_curves_plot_finite_points_and_equity_uses_dates():
    """PPO's episode_return is NaN on updates where no episode ended: the panel still draws a line
    through the finite points; every axis is labelled; equity plots put dates on the x axis
    (issue 16.7) and draw every policy the gate compared, the learned one included (issue 23)."""
    from jaxport.pipeline.report import equity_figure, training_figure, training_panels

    nan = float("nan")
    evaluations = {
        "A_B": {
            "training_curves": {
                "ppo": {"episode_return": [nan, 0.1, nan, nan, 0.3, nan, 0.2], "reward": [0.0] * 7},
                "gradient": {"objective": [0.1, 0.2, 0.3]},
            }
        }
    }
    panels = training_panels({}, evaluations)
    assert [p["title"] for p in panels] == [
        "A_B ppo: episode_return per update",
        "A_B gradient: objective per update",
    ]
    assert panels[0]["lines"]["episode_return"] == ([1, 4, 6], [0.1, 0.3, 0.2])
    fig = training_figure(panels)
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
        for line in ax.get_lines():
            y = np.asarray(line.get_ydata(), dtype=float)
            assert len(y) >= 2 and np.isfinite(y).all()
    dates = [str(np.datetime64("2024-01-01") + i) for i in range(4)]
    curves = {
        "algo": "baseline",
        "shipped": "baseline:equal_weight",
        "symbols": ["A", "B"],
        "equity_curve": [1.0] * 4,
        "curve_dates": dates,
        "learned_curves": {"universe": [1.0, 1.1, 1.05, 1.2]},
        "baseline_curves": {
            "buy_and_hold": {"A": [1.0, 1.0, 1.1, 1.1], "B": [1.0, 0.9, 1.0, 1.0]},
            "equal_weight": [1.0] * 4,
            "minimum_variance": [1.0, 1.01, 1.02, 1.0],
            "cash": [1.0] * 4,
        },
    }
    entry = {"gate": {"best_baseline": "buy_and_hold:1"}}
    fig = equity_figure(curves, "A_B", entry)
    equity_ax, dd_ax = fig.axes
    labels = [t.get_text() for t in equity_ax.get_legend().get_texts()]
    assert labels == [
        "1/N (shipped)",
        "learned (universe, not shipped)",
        "buy & hold A",
        "buy & hold B (best baseline on validation)",
        "minimum variance",
        "cash",
    ]
    assert len(dd_ax.get_lines()) == len(labels)  # one drawdown per policy, the same ones
    # under --gate-rule fallback the bar was one rule: that one is marked, not the best baseline
    fallback_gate = {"gate": {"best_baseline": "buy_and_hold:1", "bar": ["minimum_variance"]}}
    legend = equity_figure(curves, "A_B", fallback_gate).axes[0].get_legend().get_texts()
    marked = [t.get_text() for t in legend if "(" in t.get_text() and "shipped" not in t.get_text()]
    assert marked == ["minimum variance (the gate's bar)"]
    for ax in fig.axes:
        assert ax.get_ylabel()
        for line in ax.get_lines():
            x = np.asarray(line.get_xdata())
            assert np.issubdtype(x.dtype, np.datetime64) and str(x[0]) == "2024-01-01"
    # drawdowns are positive percentages below the peak, on an axis pointing down
    dd = np.asarray(dd_ax.get_lines()[1].get_ydata())
    assert dd.min() == 0.0 and dd.max() == pytest.approx(100 * (1 - 1.05 / 1.1))
    assert dd_ax.yaxis_inverted() and "%" in dd_ax.get_ylabel()
    import matplotlib.pyplot as plt

    plt.close("all")


def test_universe_training_panels_are_drawn_once_with_the_selected_checkpoint():
    """Two baskets of one universe policy: its training curve is drawn once (not per basket); the
    population panel has one line per member and a star at the selected member's best update;
    the forecaster's panel is per epoch."""
    from jaxport.pipeline.report import training_figure, training_panels

    summary = {
        "stages": {
            "base": {
                "training": {
                    "history": {
                        "epoch": [1, 2, 3],
                        "train_loss": [2, 1.9, 1.8],
                        "val_loss": [2.1, 2.0, 2.05],
                    }
                }
            },
            "universe": {
                "best_member": 1,
                "members": [{"seed": 0, "best_update": 10}, {"seed": 1, "best_update": 5}],
                "validation_curve": {
                    "updates": [0, 5, 10],
                    "objective": [0.1, 0.3, 0.2],
                    "members_objective": [[0.1, 0.15, 0.2], [0.1, 0.3, 0.2]],
                },
            },
        }
    }
    curve = {"universe": {"objective": [0.1, 0.2, 0.3, 0.25]}}
    evaluations = {"A_B": {"training_curves": curve}, "B_C": {"training_curves": curve}}
    panels = training_panels(summary, evaluations)
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles)) == 3, titles
    assert panels[0]["xlabel"] == "epoch" and "NLL" in panels[0]["ylabel"]
    population = panels[2]
    assert len(population["lines"]) == 2 and population["mark"][:2] == (5, 0.3)
    fig = training_figure(panels)
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel()
    import matplotlib.pyplot as plt

    plt.close("all")


def test_summary_dataclasses_roundtrip_with_legacy_and_unknown_keys():
    summary = RunSummary.from_dict(
        {
            "schema_version": 1,
            "status": "completed",
            "config": {"seed": 1},
            "data": {},
            "timings": {"data": 1.0},
            "versions": {},
            "device": {},
            "git_commit": None,
            "future_key": {"x": 1},
            "stages": {
                "base": {
                    "status": "completed",
                    "checkpoint": None,
                    "skipped": True,
                    "reason": "--skip-base",
                },
                "specialists": {
                    "A": {
                        "status": "completed",
                        "kept": False,
                        "checkpoint": None,
                        "note": "kept as is",
                    }
                },
                "portfolio": {
                    "A_B": {
                        "status": "completed",
                        "symbols": ["A", "B"],
                        "algo": "ppo",
                        "checkpoint": "portfolio/A_B",
                        "metrics": {
                            "validation": {"total_return": 0.1},
                            "test": {"total_return": 0.2, "sharpe": 1.0},
                        },
                        "candidates": {"ppo": {"updates": 4}},
                    },
                    "B_C": {"status": "failed", "error": "boom"},
                },
            },
        }
    )
    d = summary.to_dict()
    assert d["future_key"] == {"x": 1} and d["stages"]["specialists"]["A"]["note"] == "kept as is"
    assert d["base_checkpoint"] is None and d["specialists"] == {"A": None}
    assert d["portfolio_pairs"]["A_B"] == {
        "best_val_profit": 0.1,
        "best_epoch": 4,
        "best_checkpoint": "portfolio/A_B",
        "algo": "ppo",
        "test_total_return": 0.2,
        "test_sharpe": 1.0,
    }
    assert d["portfolio_pairs"]["B_C"] == {"status": "failed", "error": "boom"}
    assert RunSummary.from_dict(json.loads(json.dumps(d))).to_dict() == d


def test_run_dir_reads_a_finished_run(synth_run, tmp_path):
    from jaxport.eval import evaluate_policy
    from jaxport.pipeline.rundir import RunDir

    run = RunDir(synth_run / "models")
    summary = run.summary
    assert json.dumps(RunSummary.from_dict(summary).to_dict(), sort_keys=True) == json.dumps(
        summary, sort_keys=True
    )
    assert run.config.seed == 3 and run.config.rl.epochs == 4
    assert [n for n, _ in run.policy_checkpoints()] == sorted(summary["stages"]["portfolio"])
    name = "SYN000_SYN001"
    entry, pair = run.pair_entry(name), run.pair(name)
    policy = run.policy(name, env=pair.env)
    tree, meta = run.checkpoint(name)
    assert meta["policy"]["kind"] == policy.kind == entry.policy_kind and policy.kind.startswith(
        entry.algo
    )
    assert pair.symbols == entry.symbols and pair.env.num_features == entry.num_features
    test = evaluate_policy(pair.env, pair.test, policy)["metrics"]
    assert test["final_equity"] == pytest.approx(entry.metrics["test"]["final_equity"], rel=1e-6)
    curves = run.evaluation(name)
    assert len(curves["curve_dates"]) == len(curves["equity_curve"])
    assert curves["curve_dates"][0] == str(pair.calendar[int(pair.test.eval_start)])
    with pytest.raises(CheckpointError, match="no pipeline summary"):
        RunDir(tmp_path)


def test_report_eval_show_learned_and_every_standard_policy(synth_run, tmp_path, cli_runner_module):
    """`report` and `eval` show the learned candidate next to the shipped policy and every standard
    allocator the gate compared; every output is readable by others under umask 022 (#23)."""
    import os
    import stat

    from jaxport.cli import app

    models = synth_run / "models"
    old = os.umask(0o022)
    try:
        result = cli_runner_module.invoke(app, ["report", str(models), "--out", str(tmp_path)])
        assert result.exit_code == 0, result.output
        result = cli_runner_module.invoke(app, ["eval", str(models)])
        assert result.exit_code == 0, result.output
    finally:
        os.umask(old)
    summary = json.loads((models / "pipeline_summary.json").read_text())
    text = (tmp_path / "report.md").read_text()
    for label in ("1/N", "inverse volatility", "minimum variance", "risk parity", "cash"):
        marked = (f"| {label} (best baseline) |", f"| {label} (the gate's bar) |")
        assert f"| {label} |" in text or any(m in text for m in marked), label
    assert "| buy & hold SYN000 |" in text or "buy & hold SYN000 (best" in text
    evaluation = json.loads((models / "evaluation.json").read_text())
    for name, entry in summary["stages"]["portfolio"].items():
        if entry["shipped"].startswith("baseline:"):
            assert "learned (universe, not shipped)" in text
            learned = evaluation["pairs"][name]["learned"]["universe"]
            assert learned["matches_summary"], learned
            assert entry["candidates"]["universe"]["checkpoint"].endswith("_learned_universe")
        else:
            assert "learned (universe) (shipped)" in text or "| learned (universe) |" in text
    assert "max drawdown (below peak)" in text and "-0." not in text.split("Test split")[1][:200]
    for path in [tmp_path / "report.md", models / "evaluation.json", *tmp_path.glob("*.png")]:
        assert path.stat().st_mode & stat.S_IROTH, path
