"""``jaxport train`` input handling: every bad flag or data file gives exit code 2 and ONE line
naming it, before anything is trained or written; precedence: profile < TOML < flags."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from jaxport.errors import ConfigError
from jaxport.pipeline.config import RLConfig, build_config

REPO = Path(__file__).resolve().parents[1]


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


@pytest.fixture
def bad_csv_dir(tmp_path):
    """A copy of two shipped files plus one with a NaN close."""
    for sym in ("AAPL", "AMZN"):
        shutil.copy(REPO / "trainingdata" / f"{sym}.csv", tmp_path / f"{sym}.csv")
    lines = (REPO / "trainingdata" / "MSFT.csv").read_text().splitlines()
    parts = lines[100].split(",")
    parts[4] = "nan"
    lines[100] = ",".join(parts)
    (tmp_path / "MSFT.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


CASES = [
    (["--foo", "1"], "No such option: --foo"),
    (["--rl-epochs", "abc"], "Invalid value for '--rl-epochs'"),
    (["--rl-algo", "sac"], "--rl-algo 'sac': expected one of ppo, gradient, both"),
    (["--features", "magic"], "--features 'magic'"),
    (["--leverage-limit", "-1"], "--leverage-limit -1.0: must be > 0"),
    (["--borrowing-cost", "-0.1"], "--borrowing-cost -0.1: must be >= 0"),
    (["--transaction-cost-bps", "-5"], "--transaction-cost-bps -5.0: must be >= 0"),
    (["--trading-days-per-year", "0"], "--trading-days-per-year 0: must be > 0"),
    (["--pair", "AAPL"], "--pair 'AAPL': expected two or more comma-separated symbols"),
    (["--toto-targets", "close,volume"], "--toto-targets close,volume: each must be one of"),
    (["--toto-horizon", "0"], "--toto-horizon 0: must be >= 1"),
    (["--base-steps", "0"], "--base-steps 0: must be > 0"),
    (["--profile", "huge"], "--profile 'huge': expected one of quick, full"),
    (["--config", "/nonexistent/cfg.toml"], "--config /nonexistent/cfg.toml: file not found"),
    (
        ["--trainingdata-dir", "/nonexistent/data"],
        "--trainingdata-dir /nonexistent/data: directory does not exist",
    ),
    (["--base-stocks", "AAPL,ZZZZ"], "symbol ZZZZ not found; available: AAPL"),
    (["--resume"], "--resume: "),
    (["--resume", "--overwrite"], "--resume and --overwrite exclude each other"),
]


@pytest.mark.parametrize(
    "args, message", CASES, ids=[c[0][0] + ("=" + c[0][1] if len(c[0]) > 1 else "") for c in CASES]
)
def test_bad_flag_is_one_line_exit_2(args, message, tmp_path, cli_runner):
    from jaxport.cli import app

    out = tmp_path / "out"
    base = [
        "train",
        "--trainingdata-dir",
        str(REPO / "trainingdata"),
        "--output-dir",
        str(out),
        "--tensorboard-dir",
        str(tmp_path / "logs"),
    ]
    result = cli_runner.invoke(app, base + args)
    assert result.exit_code == 2, result.output
    lines = _error_lines(result.output)
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir()), "nothing may be written on bad input"


def test_bad_data_file_is_one_line_exit_2(bad_csv_dir, tmp_path, cli_runner):
    from jaxport.cli import app

    out = tmp_path / "out"
    result = cli_runner.invoke(
        app,
        [
            "train",
            "--trainingdata-dir",
            str(bad_csv_dir),
            "--output-dir",
            str(out),
            "--tensorboard-dir",
            str(tmp_path / "logs"),
            "--base-stocks",
            "AAPL,MSFT",
            "--specialist-stocks",
            "AAPL,AMZN",
        ],
    )
    assert result.exit_code == 2, result.output
    lines = _error_lines(result.output)
    assert len(lines) == 1 and "MSFT.csv: NaN/inf in column close" in lines[0], result.output
    assert not out.exists() or not any(out.iterdir())


def test_bad_toml_key_and_value_name_the_file(tmp_path, cli_runner):
    """The library names the setting (config_file); the CLI names the flag (--config)."""
    from jaxport.cli import app

    bad_key = tmp_path / "a.toml"
    bad_key.write_text("[rl]\nepochz = 3\n")
    with pytest.raises(
        ConfigError, match=r"^config_file .*a.toml \[rl\]: unknown setting 'epochz'"
    ):
        build_config("quick", bad_key)
    bad_toml = tmp_path / "b.toml"
    bad_toml.write_text("[rl\n")
    with pytest.raises(ConfigError, match=r"^config_file .*b.toml: invalid TOML"):
        build_config("quick", bad_toml)
    with pytest.raises(ConfigError, match=r"^rl.leverage_limit -1.0: must be > 0"):
        build_config("quick", overrides={"rl": {"leverage_limit": -1.0}})
    result = cli_runner.invoke(app, ["train", "--config", str(bad_key)])
    assert result.exit_code == 2, result.output
    assert _error_lines(result.output) == [
        f"error: --config {bad_key} [rl]: unknown setting 'epochz'; expected one of "
        + ", ".join(sorted(f.name for f in dataclasses.fields(RLConfig)))
    ]


def test_config_precedence_profile_toml_flags(tmp_path):
    quick, full = build_config("quick"), build_config("full")
    assert full.base.steps > quick.base.steps and full.rl.epochs > quick.rl.epochs
    toml = tmp_path / "c.toml"
    toml.write_text("seed = 7\n[rl]\nepochs = 11\nrisk_penalty = 0.5\n[base]\nsteps = 9\n")
    cfg = build_config("full", toml, {"rl": {"epochs": 13}})
    assert (cfg.seed, cfg.rl.epochs, cfg.rl.risk_penalty, cfg.base.steps) == (7, 13, 0.5, 9)
    assert cfg.base.d_model == full.base.d_model  # untouched profile value
    # The original trainer's documented defaults.
    assert (quick.rl.transaction_cost_bps, quick.rl.risk_penalty, quick.rl.leverage_limit) == (
        10.0,
        0.1,
        2.0,
    )
    assert (quick.rl.borrowing_cost, quick.rl.trading_days_per_year) == (0.0675, 252)
    assert (quick.data.sequence_length, quick.data.toto_horizon) == (60, 8)
    assert quick.data.toto_targets == ["close", "open", "high", "low"]


def test_default_symbols_and_fallback_discovery(tmp_path, monkeypatch):
    from jaxport.pipeline.run import resolve_symbols

    cfg = build_config("quick")
    base, spec, pairs = resolve_symbols(cfg, REPO / "trainingdata")
    assert base == ["AAPL", "AMZN", "MSFT", "NVDA", "GOOGL"] and spec == ["AAPL", "AMZN", "MSFT"]
    assert pairs == [["AAPL", "AMZN"], ["AMZN", "MSFT"]]
    # Without the original symbols: all discovered, the first three as specialists.
    other = tmp_path / "tototraining" / "trainingdata" / "train"
    other.mkdir(parents=True)
    for sym in ("META", "TSLA", "NVDA", "GOOGL"):
        shutil.copy(REPO / "trainingdata" / f"{sym}.csv", other / f"{sym}.csv")
    monkeypatch.chdir(tmp_path)  # no trainingdata/ here: the original's fallback folder is found
    from jaxport.data import resolve_data_dir

    found = resolve_data_dir(cfg.data.trainingdata_dir, announce=lambda m: None)
    assert found == Path("tototraining/trainingdata/train")
    base, spec, pairs = resolve_symbols(cfg, found)
    assert base == ["GOOGL", "META", "NVDA", "TSLA"] and spec == ["GOOGL", "META", "NVDA"]
    assert pairs == [["GOOGL", "META"], ["META", "NVDA"]]


def test_stage_failure_is_recorded_in_summary(tmp_path, cli_runner):
    import json

    from jaxport.cli import app

    out = tmp_path / "out"
    result = cli_runner.invoke(
        app,
        [
            "train",
            "--trainingdata-dir",
            str(REPO / "trainingdata"),
            "--output-dir",
            str(out),
            "--tensorboard-dir",
            str(tmp_path / "logs"),
            "--base-checkpoint",
            str(tmp_path / "missing"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert _error_lines(result.output) == [
        f"error: --base-checkpoint {tmp_path / 'missing'}: does not exist"
    ]
    summary = json.loads((out / "pipeline_summary.json").read_text())
    assert summary["status"] == "failed" and "does not exist" in summary["error"]


def test_results_table_says_how_much_of_the_tilt_shipped():
    """With a tilt scale chosen, the final table's caption names it and what scale 0 is; without
    one it says nothing about it."""
    from rich.console import Console

    from jaxport.cli.train import results_table

    metrics = {"test": {"total_return": 0.1, "sharpe": 0.5, "max_drawdown": 0.2}, "baselines": {}}
    pair = {"status": "completed", "algo": "universe", "shipped": "universe", "metrics": metrics}
    summary = {
        "config": {"rl": {"anchor": "vol_managed_equal_weight"}},
        "stages": {
            "portfolio": {"A_B": pair},
            "universe": {"tilt": {"scale": 0.0, "scales": [0.0, 0.5, 1.0]}},
        },
    }

    def caption(s):
        console = Console(width=200, record=True)
        console.print(results_table(s))
        return " ".join(console.export_text().split())

    text = caption(summary)
    assert "its tilt x 0 (of 0, 0.5, 1, chosen on the tilt rows); x 0 is the anchor rule, " in text
    assert "vol-managed 1/N" in text
    del summary["stages"]["universe"]
    assert "tilt" not in caption(summary)
