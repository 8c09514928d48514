"""What every ``jaxport`` command shares: consoles, exit codes, one-line errors, flag names.

Imports only typer/rich/stdlib and the (stdlib-only) configuration declarations, so
``jaxport --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from typing import NoReturn, Optional

import typer
from rich.console import Console
from rich.text import Text

from jaxport.pipeline.config_schema import setting, setting_specs

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


@dataclasses.dataclass
class RunOptions:
    """How ``jaxport train`` runs, besides the configuration (its flags are generated like the
    configuration's; these are not written into the summary)."""

    profile: str = setting(
        "quick",
        help="quick (minutes on a laptop CPU) | full: the defaults every setting starts from.",
    )
    config_file: str | None = setting(
        None,
        flag="--config",
        help="TOML file with any setting (as --print-config writes); flags override it.",
    )
    print_config: bool = setting(
        False, help="Print the resolved configuration as TOML (readable by --config) and exit."
    )
    resume: bool = setting(False, help="Continue an interrupted run in --output-dir.")
    overwrite: bool = setting(False, help="Replace a previous run in --output-dir.")
    walk_forward: int = setting(
        1,
        help="K >= 2: K expanding-window folds over the end of the data, each with its own "
        "forecasters, policies and test block (1 = one chronological split).",
    )
    no_gate: bool = setting(
        False,
        help="Ship the best learned policy even when a standard allocator beat it on validation.",
    )


def _flag_names() -> dict[str, str]:
    from jaxport.pipeline.config import PipelineConfig

    names = {s.dotted: s.flag for s in setting_specs(PipelineConfig)}
    names.update({s.dotted: s.flag for s in setting_specs(RunOptions)})
    names.update(
        {"profile": "--profile", "resume=True": "--resume", "overwrite=True": "--overwrite"}
    )
    return names


#: ``jaxport stress``'s setting names in library errors (``jaxport.pipeline.stress_run``) -> flags.
STRESS_FLAG_NAMES: dict[str, str] = {
    **{
        f"stress.{name}": f"--{name.replace('_', '-')}"
        for name in ("paths", "horizon", "block_length", "source", "seed", "devices", "chunk")
    },
    "stress.out": "--out",
}

#: Library setting names (as in ``PipelineConfig`` and error messages) -> the flag that sets them,
#: read from the field declarations (:mod:`jaxport.pipeline.config_schema`), and the stress ones.
FLAG_NAMES: dict[str, str] = {**_flag_names(), **STRESS_FLAG_NAMES}


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
    "STRESS_FLAG_NAMES",
    "RunOptions",
    "console",
    "err_console",
    "fail",
    "make_console",
    "parse_symbols",
    "print_error",
    "with_flag_names",
]
