"""The CLI's error contract: one ``error:`` line and exit code 2 for every user error, library
setting names mapped to flags only here, one ExitCode enum, a light ``--help``, and ``jaxport
export`` without the Torch extra."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import typer

REPO = Path(__file__).resolve().parents[1]
TORCH_HINT = (
    'error: jaxport export needs the Torch extra: pip install "torch==2.13.0" -e ".[torch]" (the '
    "CPU wheel the README installs; elsewhere take torch's CPU build from PyTorch's index)"
)


def test_torch_hint_uses_the_readme_pin():
    """The export hint installs the same pinned torch as the README's second command (never the
    unpinned multi-GB CUDA download)."""
    import re

    from jaxport.cli.common import TORCH_INSTALL_HINT

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    pin = re.search(r'pip install "(torch==[0-9.]+)" -e "\.\[torch', readme).group(1)
    assert f'"{pin}"' in TORCH_INSTALL_HINT and TORCH_INSTALL_HINT in TORCH_HINT


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_error_hierarchy_and_reexports():
    import jaxport.data
    import jaxport.data.errors
    from jaxport.errors import CheckpointError, ConfigError, DataError, JaxportError

    assert jaxport.data.DataError is DataError and jaxport.data.errors.DataError is DataError
    for cls in (DataError, ConfigError, CheckpointError):
        assert issubclass(cls, JaxportError) and issubclass(cls, ValueError)
    assert not issubclass(ConfigError, DataError) and not issubclass(CheckpointError, DataError)
    assert str(ConfigError("a\n  b")) == "a b"  # always one line


def test_exit_codes():
    from jaxport.cli import ExitCode

    assert [(c.name, int(c)) for c in ExitCode] == [
        ("OK", 0),
        ("FAILURE", 1),
        ("USAGE", 2),
        ("INTERRUPTED", 130),
    ]


@pytest.mark.parametrize(
    "message, expected",
    [
        (
            "profile 'huge': expected one of quick, full",
            "--profile 'huge': expected one of quick, full",
        ),
        (
            "data.trainingdata_dir x: directory does not exist",
            "--trainingdata-dir x: directory does not exist",
        ),
        (
            "resume=True and overwrite=True exclude each other",
            "--resume and --overwrite exclude each other",
        ),
        (
            "output_dir /r: already holds files; pass resume=True to continue it, "
            "overwrite=True to replace it, or choose another output_dir",
            "--output-dir /r: already holds files; pass --resume to continue it, "
            "--overwrite to replace it, or choose another --output-dir",
        ),
        # plain words and paths stay: only the first word, or non-English words, are settings
        (
            "resume: /r holds no pipeline_summary.json to resume from",
            "--resume: /r holds no pipeline_summary.json to resume from",
        ),
        (
            "/data/seed.csv: too few rows (5); need at least 106 for the profile seed",
            "/data/seed.csv: too few rows (5); need at least 106 for the profile seed",
        ),
        (
            "rl.grid: every entry must be a non-empty list of numbers",
            "rl.grid: every entry must be a non-empty list of numbers",  # TOML only: no flag
        ),
    ],
)
def test_setting_names_become_flags(message, expected):
    from jaxport.cli.common import with_flag_names

    assert with_flag_names(message) == expected


def test_flag_names_match_config_and_train_flags():
    """Every mapped setting exists in PipelineConfig (or is a Pipeline argument) and every flag is
    an option of ``jaxport train``: the map cannot drift from either side."""
    from jaxport.cli import app
    from jaxport.cli.common import FLAG_NAMES, RunOptions
    from jaxport.pipeline.config import SECTIONS, PipelineConfig

    run_options = {f.name for f in dataclasses.fields(RunOptions)}
    top = {f.name for f in dataclasses.fields(PipelineConfig)}
    commands = typer.main.get_command(app).commands
    train_flags = {opt for p in commands["train"].params for opt in p.opts}
    stress_flags = {opt for p in commands["stress"].params for opt in p.opts}
    for setting, flag in FLAG_NAMES.items():
        section, _, name = setting.partition(".")
        if section == "stress":  # jaxport stress's own settings
            assert flag in stress_flags, flag
            continue
        if name:
            assert name in {f.name for f in dataclasses.fields(SECTIONS[section])}, setting
        else:
            assert setting.removesuffix("=True") in top | run_options, setting
        assert flag in train_flags, flag


def test_library_errors_name_settings_not_flags():
    """Below the CLI, no error message starts with a flag (``raise XError("--foo ...")``)."""
    pattern = re.compile(r"""(Error|fail)\(\s*f?["']--""")
    offenders = []
    for path in sorted((REPO / "jaxport").rglob("*.py")):
        if "cli" in path.relative_to(REPO / "jaxport").parts[:1]:
            continue
        text = path.read_text(encoding="utf-8")
        offenders += [
            f"{path.relative_to(REPO)}:{text[: m.start()].count(chr(10)) + 1}"
            for m in pattern.finditer(text)
        ]
    assert offenders == []


def test_jaxport_error_in_a_command_is_one_line_exit_2(cli_runner):
    """The root group turns a JaxportError into ``error: <message, flags>``; bugs still raise."""
    from jaxport.cli import JaxportGroup
    from jaxport.errors import CheckpointError

    app = typer.Typer(cls=JaxportGroup, add_completion=False)

    @app.command("boom")
    def boom(kind: str = "checkpoint") -> None:
        if kind == "checkpoint":
            raise CheckpointError("base_checkpoint /x: does not exist")
        raise RuntimeError("a bug")

    @app.command("other")
    def other() -> None:
        pass

    result = cli_runner.invoke(app, ["boom"])
    assert (
        result.exit_code == 2 and result.stderr == "error: --base-checkpoint /x: does not exist\n"
    )
    result = cli_runner.invoke(app, ["boom", "--kind", "bug"])
    assert isinstance(result.exception, RuntimeError)


def test_usage_errors_are_one_line(cli_runner):
    from jaxport.cli import app

    for args, message in (
        (["nope"], "No such command 'nope'"),
        (["train", "--foo"], "No such option: --foo"),
        (["forecast", "eval", "--split", "train"], "--split 'train': expected val or test"),
    ):
        result = cli_runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        lines = _lines(result.output)
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_help_and_subcommand_help_stay_light():
    """``jaxport --help`` and each command's ``--help`` import no jax, pandas or torch."""
    code = (
        "import sys; from typer.testing import CliRunner; import jaxport.cli as cli\n"
        "for args in (['--help'], ['data', '--help'], ['data', 'check', '--help'],\n"
        "             ['train', '--help'], ['export', '--help'], ['eval', '--help'],\n"
        "             ['forecast', 'eval', '--help'], ['bench', '--help'], []):\n"
        "    r = CliRunner().invoke(cli.app, args)\n"
        "    assert r.exit_code == (2 if not args else 0), (args, r.output)\n"
        "print(sorted(m for m in ('jax', 'pandas', 'torch', 'torch_compat') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_export_without_torch_extra_is_one_line_exit_2(tmp_path):
    """torch_compat unimportable (no ``jaxport[torch]``): one line, exit 2, nothing written."""
    out = tmp_path / "exported"
    code = (
        "import sys; sys.modules['torch_compat'] = None; sys.modules['torch'] = None\n"
        "from jaxport.cli import main\n"
        f"sys.argv = ['jaxport', 'export', {str(tmp_path)!r}, '--to', {str(out)!r}]\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert _lines(proc.stderr) == [TORCH_HINT] and proc.stdout == ""
    assert not out.exists()


def test_export_format_option(tmp_path, cli_runner, monkeypatch):
    """``--format`` is checked before torch is imported, then passed on to export_run."""
    from jaxport.cli import app

    calls = []

    def export_run(run_dir, to, **kwargs):
        calls.append(kwargs)
        return [Path(to) / "manifest.json"]

    package = types.ModuleType("torch_compat")
    module = types.ModuleType("torch_compat.export")
    module.export_run = export_run
    monkeypatch.setitem(sys.modules, "torch_compat", package)
    monkeypatch.setitem(sys.modules, "torch_compat.export", module)
    base = ["export", str(tmp_path), "--to", str(tmp_path / "out")]
    result = cli_runner.invoke(app, base + ["--format", "zip"])
    assert result.exit_code == 2
    assert _lines(result.output) == ["error: --format 'zip': expected one of safetensors, pt, both"]
    assert calls == []
    assert cli_runner.invoke(app, base).exit_code == 0
    assert cli_runner.invoke(app, base + ["--format", "pt", "--no-env-data"]).exit_code == 0
    assert calls == [{"env_data": True, "format": "both"}, {"env_data": False, "format": "pt"}]
    result = cli_runner.invoke(app, ["export", str(tmp_path / "missing"), "--to", str(tmp_path)])
    assert result.exit_code == 2 and _lines(result.output) == [
        f"error: {tmp_path / 'missing'}: no such run directory"
    ]


def test_bad_run_directory_is_one_line_exit_2(tmp_path, cli_runner):
    """A folder that is not a run: CheckpointError from the library, one line naming it."""
    from jaxport.cli import app

    (tmp_path / "pipeline_summary.json").write_text(json.dumps({"no": "stages"}))
    result = cli_runner.invoke(app, ["eval", str(tmp_path)])
    assert result.exit_code == 2, result.output
    lines = _lines(result.output)
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(tmp_path) in lines[0], lines


def test_export_formats_match_torch_compat():
    pytest.importorskip("torch")
    from jaxport.cli.export import FORMATS
    from torch_compat.serialization import EXPORT_FORMATS

    assert set(FORMATS) == set(EXPORT_FORMATS)
