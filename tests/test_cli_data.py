"""``jaxport data check`` applies the row minimum that ``jaxport train`` needs (one source)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]


def _write_rows(path: Path, rows: int) -> None:
    lines = ["date,open,high,low,close,volume"]
    for i in range(rows):
        day = f"2020-{1 + i // 28:02d}-{1 + i % 28:02d}"
        lines.append(f"{day},10.0,11.0,9.0,10.5,1000")
    path.write_text("\n".join(lines) + "\n")


def test_five_row_csv_fails_the_check(tmp_path, cli_runner):
    from jaxport.cli import app
    from jaxport.pipeline.config import build_config, min_rows_needed

    need = min_rows_needed(build_config("quick"))
    shutil.copy(REPO / "trainingdata" / "AAPL.csv", tmp_path / "AAPL.csv")
    _write_rows(tmp_path / "TINY.csv", 5)
    result = cli_runner.invoke(app, ["data", "check", str(tmp_path)])
    assert result.exit_code == 1, result.output
    row = next(line for line in result.stdout.splitlines() if "TINY.csv" in line)
    assert f"too few rows (5); need at least {need}" in row
    assert f"minimum rows: {need} (what jaxport train --profile quick needs)" in result.stdout
    assert "1 problem(s)" in result.stderr
    # the shipped file alone passes; --min-rows still overrides the training minimum
    assert (
        cli_runner.invoke(app, ["data", "check", str(tmp_path), "--symbols", "AAPL"]).exit_code == 0
    )
    args = ["data", "check", str(tmp_path), "--symbols", "TINY", "--min-rows", "5"]
    assert cli_runner.invoke(app, args).exit_code == 0


def test_check_minimum_follows_profile_and_config(tmp_path, cli_runner):
    from jaxport.cli import app
    from jaxport.pipeline.config import build_config, min_rows_needed

    full = min_rows_needed(build_config("full"))
    assert full > min_rows_needed(build_config("quick"))
    _write_rows(tmp_path / "MID.csv", full - 1)
    assert cli_runner.invoke(app, ["data", "check", str(tmp_path)]).exit_code == 0
    result = cli_runner.invoke(app, ["data", "check", str(tmp_path), "--profile", "full"])
    assert (
        result.exit_code == 1
        and f"too few rows ({full - 1}); need at least {full}" in result.stdout
    )
    toml = tmp_path / "small.toml"
    toml.write_text(
        "[base]\ncontext = 16\npatch = 8\n[data]\nsequence_length = 10\ntoto_horizon = 2\n"
    )
    small = min_rows_needed(build_config("quick", toml))
    _write_rows(tmp_path / "MID.csv", small)
    assert (
        cli_runner.invoke(app, ["data", "check", str(tmp_path), "--config", str(toml)]).exit_code
        == 0
    )
    result = cli_runner.invoke(app, ["data", "check", str(tmp_path), "--profile", "huge"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --profile 'huge': expected one of quick, full"


def test_pipeline_loads_with_the_same_minimum(tmp_path):
    """The pipeline's data loading refuses exactly what the check refuses (same function)."""
    from jaxport.data import DataError, load_market
    from jaxport.pipeline.config import build_config, min_rows_needed

    need = min_rows_needed(build_config("quick"))
    _write_rows(tmp_path / "A.csv", need - 1)
    with pytest.raises(
        DataError, match=rf"A\.csv: too few rows \({need - 1}\); need at least {need}"
    ):
        load_market(tmp_path, min_rows=need)


@settings(max_examples=200, deadline=None)
@given(
    warmup=st.integers(1, 300),
    horizon=st.integers(1, 30),
    train=st.integers(1, 18),
    val=st.integers(1, 6),
    extra=st.integers(0, 400),
)
def test_min_rows_for_leaves_every_part_enough_rows(warmup, horizon, train, val, extra):
    """At the minimum and above it, split_bounds' parts hold the warm-up, the forecast horizon and
    at least two env steps each; one row less than needed for a part is not enough."""
    import numpy as np

    from jaxport.data import MarketData, min_rows_for, split_bounds

    total = train + val + 1
    fractions = (train / total, val / total, 1 / total)
    rows = min_rows_for(warmup, fractions, horizon=horizon) + extra
    dates = np.arange(rows).astype("datetime64[D]")
    ones = np.ones((rows, 1))
    market = MarketData(
        symbols=("X",), dates=dates, open=ones, high=ones, low=ones, close=ones, volume=ones
    )
    b = split_bounds(market, fractions)
    assert b.train_end >= warmup + max(horizon, 3)
    assert b.val_end - b.train_end >= max(horizon, 2)
    assert rows - b.val_end >= 2
