"""The smaller commands: ``jaxport bench``, ``jaxport forecast eval``, and their bad input."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_runs_and_writes_json(tmp_path, cli_runner):
    from jaxport.cli import app

    out = tmp_path / "bench.json"
    result = cli_runner.invoke(
        app, ["bench", "--num-envs", "8", "--num-assets", "2", "--repeats", "1", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    impls = {r["impl"] for r in rows}
    assert any("CartPole" in i for i in impls) and len(rows) == 2
    assert all(r["steps_per_s"] > 0 for r in rows)
    portfolio = next(r for r in rows if "vs_cartpole" in r)
    assert portfolio["num_assets"] == 2 and portfolio["num_envs"] == 8
    # every measured row is printed exactly once, whole (the ratio and its impl on one line)
    from jaxport.bench import table_row

    lines = result.output.splitlines()
    for r in rows:
        assert lines.count(table_row(r)) == 1, result.output
    assert sum("CartPole-v1" in line for line in lines) == 1, result.output
    assert any(line.rstrip().endswith("x") and "jax" in line for line in lines), result.output


def test_bench_bad_list_is_one_line(cli_runner):
    from jaxport.cli import app

    result = cli_runner.invoke(app, ["bench", "--num-envs", "8,x"])
    assert result.exit_code == 2
    assert [l for l in result.output.splitlines() if l.strip()] == [
        "error: --num-envs '8,x': expected comma-separated integers"
    ]


def test_forecast_eval_baselines_only(tmp_path, cli_runner):
    from jaxport.cli import app

    out = tmp_path / "f.json"
    result = cli_runner.invoke(
        app,
        [
            "forecast",
            "eval",
            "--trainingdata-dir",
            str(REPO / "trainingdata"),
            "--symbols",
            "AAPL,MSFT",
            "--no-garch",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert "model" not in report and report["split"]["symbols"] == ["AAPL", "MSFT"]
    assert report["baselines"]["rolling_gaussian"]["pooled"]["n"] > 0
    assert "rolling_gaussian" in result.output


def test_help_tables_fold_paths_instead_of_cutting_them():
    """A narrow terminal folds a long path in an option's help onto the next line; nothing is
    cut with an ellipsis (issue #23: "tototraining/trainingdata/tr…")."""
    import os
    import re
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "72", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "jaxport", "train", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    # the help column: what follows the type column ("<str>") on a row, or a whole continuation
    rows = [re.split(r"│", line)[-2] for line in proc.stdout.splitlines() if "│" in line]
    cells = [row.split(">")[-1].strip() for row in rows]
    assert not [c for c in cells if "…" in c], cells
    joined = "".join(cells)
    assert "tototraining/trainingdata/train" in joined


def test_stage_bars_count_and_end_where_the_work_ended():
    """A bar whose work stops early (early stopping at step 216 of 500) ends at 216/216; absolute
    steps and a total that arrives late (universe updates) are honoured; plain advances count."""
    import io

    from rich.console import Console

    from jaxport.cli.progress import StageBars, format_duration

    console = Console(file=io.StringIO(), width=200, force_terminal=False)
    bars = StageBars(console)
    with bars.progress:
        bars.stage_start("base", 500)
        bars.advance("base", 0, {"step": 100, "train_loss": 2.0})
        bars.advance("base", 0, {"step": 216})
        bars.stage_end("base")
        bars.stage_start("universe", 0)
        bars.advance("universe", 0, {"step": 6, "total": 60})
        bars.stage_start("portfolio", 3)
        bars.advance("portfolio", 1, {"pair": "A_B"})
        bars.advance("portfolio", 1, {"pair": "B_C"})
    base, universe, portfolio = bars.progress.tasks
    assert (base.completed, base.total) == (216, 216)
    assert (universe.completed, universe.total) == (6, 60)
    assert (portfolio.completed, portfolio.total) == (2, 3)
    text = console.file.getvalue()
    assert "216/216" in text and "stage 1: generic forecaster" in text
    assert format_duration(65) == "1 min 05 s" and format_duration(3725) == "1 h 02 min 05 s"
