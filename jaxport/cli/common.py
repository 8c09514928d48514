"""What every ``jaxport`` command shares: consoles, exit codes, one-line errors, flag names.

Imports only typer/rich/stdlib, so ``jaxport --help`` stays fast.
"""

from __future__ import annotations

import enum
import os
from typing import NoReturn, Optional

import typer
from rich.console import Console
from rich.text import Text

#: Line width when output goes to a file or pipe: wide enough that no progress line, table row or
#: path is cut ("stage 1: generic fore…"); rich would use 80 columns there.
REDIRECTED_WIDTH = 240


def make_console(*, stderr: bool = False, soft_wrap: bool = False) -> Console:
    """A rich Console: the terminal's width in a terminal; when redirected (not a TTY, no
    ``COLUMNS``), :data:`REDIRECTED_WIDTH` columns so that lines are written whole."""
    probe = Console(stderr=stderr)
    width = None
    if not probe.is_terminal and "COLUMNS" not in os.environ:
        width = REDIRECTED_WIDTH
    return Console(stderr=stderr, soft_wrap=soft_wrap, width=width)


console = make_console(soft_wrap=False)
err_console = make_console(stderr=True, soft_wrap=True)

#: The one pinned CPU torch install command (as in the README's second command).
TORCH_INSTALL_HINT = 'pip install "torch==2.13.0" -e ".[torch]"'
#: How to get TensorBoard to read a run's event files.
TENSORBOARD_INSTALL_HINT = 'pip install -e ".[tensorboard]"'


class ExitCode(enum.IntEnum):
    """Process exit codes of every ``jaxport`` command."""

    OK = 0
    FAILURE = 1  # the command ran and found problems (data check, a failed pair, an eval mismatch)
    USAGE = 2  # bad input: a flag, TOML file, data file or run directory (one ``error:`` line)
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


#: Library setting names (as in ``PipelineConfig`` and error messages) -> the flag that sets them.
FLAG_NAMES: dict[str, str] = {
    "profile": "--profile",
    "config_file": "--config",
    "output_dir": "--output-dir",
    "tensorboard_dir": "--tensorboard-dir",
    "summary_path": "--summary-path",
    "wandb_project": "--wandb-project",
    "wandb_entity": "--wandb-entity",
    "seed": "--seed",
    "skip_base": "--skip-base",
    "skip_specialists": "--skip-specialists",
    "skip_rl": "--skip-rl",
    "base_checkpoint": "--base-checkpoint",
    "resume": "--resume",
    "resume=True": "--resume",
    "overwrite": "--overwrite",
    "overwrite=True": "--overwrite",
    "walk_forward": "--walk-forward",
    "data.trainingdata_dir": "--trainingdata-dir",
    "data.base_symbols": "--base-stocks",
    "data.specialist_symbols": "--specialist-stocks",
    "data.pairs": "--pair",
    "data.features": "--features",
    "data.sequence_length": "--sequence-length",
    "data.toto_horizon": "--toto-horizon",
    "data.toto_targets": "--toto-targets",
    "data.disable_toto": "--disable-toto",
    "data.crossfit_blocks": "--crossfit-blocks",
    "base.steps": "--base-steps",
    "base.batch_size": "--base-batch-size",
    "base.learning_rate": "--base-learning-rate",
    "finetune.epochs": "--finetune-epochs",
    "finetune.learning_rate": "--finetune-learning-rate",
    "rl.algo": "--rl-algo",
    "rl.scope": "--rl-scope",
    "rl.seeds": "--rl-seeds",
    "rl.turnover_penalty": "--turnover-penalty",
    "rl.rebalance_rate": "--rebalance-rate",
    "rl.feature_noise": "--feature-noise",
    "rl.weight_decay": "--rl-weight-decay",
    "rl.devices": "--devices",
    "rl.epochs": "--rl-epochs",
    "rl.learning_rate": "--rl-learning-rate",
    "rl.batch_size": "--rl-batch-size",
    "rl.hidden_size": "--rl-hidden-size",
    "rl.num_layers": "--rl-num-layers",
    "rl.num_heads": "--rl-num-heads",
    "rl.transaction_cost_bps": "--transaction-cost-bps",
    "rl.risk_penalty": "--risk-penalty",
    "rl.leverage_limit": "--leverage-limit",
    "rl.borrowing_cost": "--borrowing-cost",
    "rl.trading_days_per_year": "--trading-days-per-year",
}


def with_flag_names(message: str) -> str:
    """``message`` with the setting names it mentions replaced by their flags.

    The first word is replaced when it is a setting (``profile 'huge': ...``); later words only when
    they cannot be plain English (they contain ``.``, ``_`` or ``=``, e.g. ``output_dir``,
    ``resume=True``). Trailing ``:,;`` stay.
    """
    words = " ".join(str(message).split()).split(" ")
    for i, word in enumerate(words):
        name = word.rstrip(":,;")
        flag = FLAG_NAMES.get(name)
        if flag is not None and (i == 0 or any(c in name for c in "._=")):
            words[i] = flag + word[len(name) :]
    return " ".join(words)


def print_error(message: str) -> None:
    """``error: message`` as one red line on stderr."""
    line = " ".join(str(message).split())
    err_console.print(Text("error: ", style="bold red") + Text(line, style="red"))


def fail(message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    """Print ``error: message`` as one red line on stderr and exit with ``code``."""
    print_error(message)
    raise typer.Exit(int(code))


def parse_symbols(value: Optional[str]) -> Optional[list[str]]:
    """``"aapl, msft"`` -> ``["AAPL", "MSFT"]``; ``None``/empty -> ``None`` (meaning: all)."""
    if value is None:
        return None
    symbols = [s.strip().upper() for s in value.split(",") if s.strip()]
    return symbols or None


__all__ = [
    "REDIRECTED_WIDTH",
    "TENSORBOARD_INSTALL_HINT",
    "TORCH_INSTALL_HINT",
    "ExitCode",
    "FLAG_NAMES",
    "console",
    "err_console",
    "fail",
    "make_console",
    "parse_symbols",
    "print_error",
    "with_flag_names",
]
