"""Every Python block of README.md runs, against a real run's export (issue #23).

The run is README's own first command (``jaxport train``, quick profile, shipped data), shared
with the quick-start test through the session fixture ``quick_start_run``: its folder holds
``trainingdata/`` and ``examples/`` as a user's clone would after the README's commands. The run
is exported to ``exported/`` there, then each ```python block is run in that folder in a fresh
interpreter. A block whose first line is ``# illustrative`` is only compiled (none is, today). The
Torch replay block must print, for the shipped policy and the learned candidate alike, the final
equity the summary records.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import readme_python_blocks

REPO = Path(__file__).resolve().parents[1]
ILLUSTRATIVE = "# illustrative"


def test_readme_blocks_are_found_and_each_is_run_or_marked():
    blocks = readme_python_blocks()
    assert len(blocks) >= 4
    for block in blocks:
        compile(block, "README.md", "exec")  # at least valid Python


@pytest.fixture(scope="module")
def user_folder(quick_start_run):
    """README's quick-start folder with the run exported to ``exported/``."""
    from typer.testing import CliRunner

    from jaxport.cli import app

    root, output = quick_start_run
    assert "total time:" in output
    models = root / "runs" / "models"
    result = CliRunner().invoke(app, ["export", str(models), "--to", str(root / "exported")])
    assert result.exit_code == 0, result.output
    return root


def test_every_readme_python_block_runs(user_folder):
    summary = json.loads((user_folder / "runs/models/pipeline_summary.json").read_text())
    entry = summary["stages"]["portfolio"]["AAPL_AMZN"]
    outputs = []
    for i, block in enumerate(readme_python_blocks()):
        if block.lstrip().startswith(ILLUSTRATIVE):
            continue
        proc = subprocess.run(
            [sys.executable, "-c", block],
            cwd=user_folder,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert proc.returncode == 0, f"README python block {i} failed:\n{block}\n{proc.stderr}"
        outputs.append(proc.stdout)
    printed = dict(
        re.findall(
            r"^(portfolio_AAPL_AMZN\S*) \(.*\): final equity ([0-9.]+)", "".join(outputs), re.M
        )
    )
    # the shipped policy and every learned candidate the gate refused, replayed by one loop
    assert float(printed["portfolio_AAPL_AMZN"]) == pytest.approx(
        entry["metrics"]["test"]["final_equity"], abs=6e-5
    )
    for algo, record in entry["candidates"].items():
        if algo == entry["shipped"]:
            continue
        name = f"portfolio_AAPL_AMZN_learned_{algo}"
        assert float(printed[name]) == pytest.approx(record["test"]["final_equity"], abs=6e-5)
    manifest = json.loads((user_folder / "exported" / "manifest.json").read_text())
    labels = {n: e.get("label") for n, e in manifest["models"].items() if e.get("pair")}
    if entry["shipped"].startswith("baseline:"):
        assert "learned (not shipped)" in labels.values(), labels
