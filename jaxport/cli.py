"""The ``jaxport`` command line (typer + rich).

Layout, so that ``jaxport --help`` stays fast and commands can be added without editing this file:

* This module defines ``app`` (the root), the ``data`` group and ``--version``. It imports only
  typer/rich at module level; each command imports heavy modules (jax, pandas, jaxport.*) inside
  its function body.
* Every module ``jaxport/commands_<name>.py`` is discovered (sorted by name) the first time the
  command tree is used (help or dispatch), and its ``register(app: typer.Typer) -> None`` adds its
  commands or sub-groups (``app.command``, ``app.add_typer``; no callbacks) to a fresh Typer whose
  commands are merged into the root, e.g.::

      # jaxport/commands_train.py
      import typer
      from jaxport.cli import console, fail       # fine: jaxport.cli is fully imported by then
      def register(app: typer.Typer) -> None:
          @app.command("train")
          def train(config: str = "default") -> None:
              from jaxport.pipeline import run_training   # heavy imports stay inside
              ...

  Such modules must keep module-level imports light (typer, rich, stdlib, jaxport.cli).
* Errors: a ``jaxport.data.DataError`` raised by any command becomes ONE red line on stderr and
  exit code 2 (no traceback). ``fail(message)`` does the same for other user errors. Exit code 1
  means "ran, but found problems" (e.g. ``data check``).
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Annotated, Optional

import typer
import typer.core
import typer.main
from rich.console import Console
from rich.table import Table
from rich.text import Text

import jaxport

console = Console(soft_wrap=False)
err_console = Console(stderr=True, soft_wrap=True)

EXIT_PROBLEMS = 1  # the command ran and found problems
EXIT_USAGE = 2  # bad input (DataError, bad flag)


def print_error(message: str) -> None:
    """``error: message`` as one red line on stderr."""
    err_console.print(Text("error: ", style="bold red") + Text(" ".join(str(message).split()), style="red"))


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print ``error: message`` as one red line on stderr and exit with ``code``."""
    print_error(message)
    raise typer.Exit(code)


def command_modules() -> list[str]:
    """Names of the ``jaxport.commands_*`` modules, sorted."""
    return sorted(
        f"jaxport.{m.name}" for m in pkgutil.iter_modules(jaxport.__path__) if m.name.startswith("commands_")
    )


class _JaxportGroup(typer.core.TyperGroup):
    """Root group: loads ``commands_*`` modules lazily; ``DataError`` -> ``fail`` (exit 2, no traceback)."""

    _extensions_loaded = False

    def _load_extensions(self) -> None:
        if self._extensions_loaded:
            return
        self._extensions_loaded = True
        for module in command_modules():
            extra = typer.Typer()
            importlib.import_module(module).register(extra)
            for cmd_name, command in typer.main.get_group(extra).commands.items():
                if cmd_name in self.commands:
                    raise RuntimeError(f"jaxport CLI: command {cmd_name!r} of {module} is already registered")
                self.add_command(command, cmd_name)

    def list_commands(self, ctx):
        self._load_extensions()
        return super().list_commands(ctx)

    def get_command(self, ctx, cmd_name):
        self._load_extensions()
        return super().get_command(ctx, cmd_name)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Usage errors (unknown flag, malformed value) become ONE line on stderr and exit 2."""
        from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer vendors click

        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:
            if not standalone_mode:
                raise
            exc.show()
            raise SystemExit(exc.exit_code) from None
        except UsageError as exc:
            where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
            if not standalone_mode:
                raise
            print_error(f"{where}{exc.format_message()}")
            raise SystemExit(EXIT_USAGE) from None
        except (typer.Abort, KeyboardInterrupt):
            if not standalone_mode:
                raise
            err_console.print(Text("interrupted", style="yellow"))
            raise SystemExit(130) from None
        except typer.Exit as exc:  # fail() raised outside a command context
            if not standalone_mode:
                raise
            raise SystemExit(exc.exit_code) from None
        if not standalone_mode:
            return rv
        raise SystemExit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            from jaxport.data.errors import DataError  # lazy: keeps `jaxport --help` light

            if isinstance(exc, DataError):
                fail(str(exc))
            raise


app = typer.Typer(
    cls=_JaxportGroup,
    name="jaxport",
    help="JAX toolkit for portfolio-allocation agents: data, features, training, evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
data_app = typer.Typer(help="Check and generate daily OHLCV CSV data.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"jaxport {jaxport.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """JAX toolkit for portfolio-allocation agents."""


def parse_symbols(value: Optional[str]) -> Optional[list[str]]:
    """``"aapl, msft"`` -> ``["AAPL", "MSFT"]``; ``None``/empty -> ``None`` (meaning: all)."""
    if value is None:
        return None
    symbols = [s.strip().upper() for s in value.split(",") if s.strip()]
    return symbols or None


@data_app.command("check")
def data_check(
    directory: Annotated[Path, typer.Argument(help="Folder of SYMBOL.csv files.")],
    symbols: Annotated[
        Optional[str], typer.Option("--symbols", help="Comma-separated symbols (default: every CSV).")
    ] = None,
    min_rows: Annotated[int, typer.Option("--min-rows", min=1, help="Rows each file must have.")] = 2,
) -> None:
    """Validate every CSV (or the given symbols) and their date alignment; exit 1 on any problem."""
    from jaxport.data.errors import DataError
    from jaxport.data.loader import find_symbol_file, list_symbols, load_ohlcv_csv

    available = list_symbols(directory)  # DataError (exit 2) if the folder is missing or has no CSVs
    wanted = parse_symbols(symbols) or available
    table = Table(title=f"data check: {directory}")
    for column in ("symbol", "file", "rows", "first date", "last date", "problems"):
        table.add_column(column, overflow="fold")
    problems = 0
    common = None
    for sym in wanted:
        path = None
        try:
            path = find_symbol_file(directory, sym)
            frame = load_ohlcv_csv(path, min_rows=min_rows)
        except DataError as exc:
            problems += 1
            message = str(exc)
            if path is not None and message.startswith(f"{path}: "):
                message = message[len(f"{path}: ") :]
            table.add_row(sym, path.name if path else "-", "-", "-", "-", Text(message, style="red"))
            continue
        common = frame.index if common is None else common.intersection(frame.index)
        table.add_row(
            sym, path.name, str(len(frame)), str(frame.index[0].date()), str(frame.index[-1].date()),
            Text("ok", style="green"),
        )
    console.print(table)
    if common is not None:
        if len(common) < min_rows:
            problems += 1
            console.print(Text(f"alignment: only {len(common)} dates common to the valid files", style="red"))
        else:
            console.print(
                f"alignment: {len(common)} common dates, {common.min().date()} .. {common.max().date()}"
            )
    if problems:
        err_console.print(Text(f"{problems} problem(s) in {directory}", style="bold red"))
        raise typer.Exit(EXIT_PROBLEMS)
    console.print(Text(f"all {len(wanted)} file(s) OK", style="green"))


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option("--out", help="Output folder (created if needed).")],
    symbols: Annotated[int, typer.Option("--symbols", min=1, help="Number of symbols SYN000...")] = 8,
    days: Annotated[int, typer.Option("--days", min=2, help="Number of business days.")] = 1500,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same data).")] = 0,
    planted_signal: Annotated[
        float,
        typer.Option(
            "--planted-signal",
            help="Daily log return added per sign of the previous day's return (0 = none).",
        ),
    ] = 0.0,
    start_date: Annotated[str, typer.Option("--start-date", help="First business day, YYYY-MM-DD.")] = "2015-01-02",
) -> None:
    """Write a synthetic universe (factor model, GARCH, fat tails, regimes) as SYM.csv files."""
    from jaxport.data.synth import write_synthetic_csvs

    paths = write_synthetic_csvs(
        out, num_symbols=symbols, num_days=days, seed=seed, planted_signal=planted_signal,
        start_date=start_date,
    )
    console.print(
        f"wrote {len(paths)} files ({paths[0].stem} .. {paths[-1].stem}, {days} business days from "
        f"{start_date}, seed {seed}, planted_signal {planted_signal}) to {out}"
    )


def main() -> None:
    """Console-script entry point (``jaxport`` and ``python -m jaxport``)."""
    app(prog_name="jaxport")
