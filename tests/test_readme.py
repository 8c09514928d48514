"""Every Python block of README.md runs, against a real run's export (issue #23).

A small real-data run (AAPL and AMZN of ``trainingdata/``, tiny settings) is trained, reported
and exported to ``exported/`` in a scratch folder that also holds ``trainingdata/`` and
``examples/``, as a user's clone would after the README's commands; then each ```python block is
run there in a fresh interpreter. A block whose first line is ``# illustrative`` is only compiled
(none is, today). The Torch replay block must print, for the shipped policy and the learned
candidate alike, the final equity the summary records.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ILLUSTRATIVE = "# illustrative"

TINY_TOML = """
seed = 3
[data]
features = "toto"
crossfit_blocks = 0
[base]
steps = 20
batch_size = 32
epochs = 2
context = 32
patch = 8
d_model = 16
num_layers = 1
num_heads = 2
max_val_windows = 128
log_every = 10
[finetune]
epochs = 0
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


def readme_python_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_blocks_are_found_and_each_is_run_or_marked():
    blocks = readme_python_blocks()
    assert len(blocks) >= 4
    for block in blocks:
        compile(block, "README.md", "exec")  # at least valid Python


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory):
    """A scratch folder as a user's clone: trainingdata/, examples/, runs/ and exported/."""
    from typer.testing import CliRunner

    from jaxport.cli import app

    root = tmp_path_factory.mktemp("readme_user")
    for name in ("trainingdata", "examples"):
        (root / name).symlink_to(REPO / name, target_is_directory=True)
    config = root / "tiny.toml"
    config.write_text(TINY_TOML, encoding="utf-8")
    runner = CliRunner()
    models = root / "runs" / "models"
    args = ["train", "--trainingdata-dir", str(root / "trainingdata")]
    args += ["--base-stocks", "AAPL,AMZN", "--specialist-stocks", "AAPL,AMZN"]
    args += ["--pair", "AAPL,AMZN", "--output-dir", str(models)]
    args += ["--tensorboard-dir", str(root / "runs" / "logs"), "--config", str(config)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "total time:" in result.output
    result = runner.invoke(app, ["export", str(models), "--to", str(root / "exported")])
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
            env={**__import__("os").environ, "PYTHONPATH": str(REPO)},
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
