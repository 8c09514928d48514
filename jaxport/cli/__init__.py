"""The ``jaxport`` command line (typer + rich).

* One module per command group, registered from the explicit list :data:`COMMAND_GROUPS`:
  ``data`` (check, synth), ``train``, ``finished_run`` (eval, report), ``export``, ``forecast``
  (eval), ``bench`` and ``stress``. Each defines ``register(app: typer.Typer) -> None``. To add a
  command, write such a
  module and add it to :data:`COMMAND_GROUPS`.
* Command modules import only typer, rich, the stdlib and :mod:`jaxport.cli.common` at module level;
  jax, pandas, ``jaxport.*`` and (for ``export``) torch are imported inside the command bodies, so
  ``jaxport --help`` stays fast.
* Errors: a :class:`jaxport.errors.JaxportError` from any command becomes ONE red ``error:`` line on
  stderr with the library's setting names replaced by flags (:func:`with_flag_names`), and exit
  code 2; so do usage errors (unknown flag, malformed value). Exit codes are :class:`ExitCode`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
import typer.core

import jaxport
from jaxport.cli import bench, data, export, finished_run, forecast, stress, train
from jaxport.cli.common import (
    ExitCode,
    console,
    err_console,
    fail,
    parse_symbols,
    print_error,
    with_flag_names,
)
from jaxport.errors import JaxportError


def _fold_long_words_in_help() -> None:
    """In a narrow terminal typer's option tables cut a word longer than the help column with
    "…" ("tototraining/trainingdata/tr…"); fold it onto the next line instead, so paths in help
    texts stay whole. (Patches typer's help-text builder, when it has the expected shape.)"""
    import typer.rich_utils as rich_utils

    make = getattr(rich_utils, "_make_rich_text", None)
    if make is None or getattr(make, "folds_long_words", False):
        return

    def make_folding(*args, **kwargs):
        text = make(*args, **kwargs)
        if hasattr(text, "overflow"):
            text.overflow = "fold"
        return text

    make_folding.folds_long_words = True
    rich_utils._make_rich_text = make_folding


_fold_long_words_in_help()


class JaxportGroup(typer.core.TyperGroup):
    """Root group: usage errors and :class:`JaxportError` become one ``error:`` line and exit 2."""

    def main(
        self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra: Any
    ):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except JaxportError as exc:
            if not standalone_mode:
                raise
            print_error(with_flag_names(str(exc)))
            raise SystemExit(int(ExitCode.USAGE)) from None
        except typer.TyperException as exc:  # typer's usage errors (its vendored click's)
            if not standalone_mode:
                raise
            code = getattr(exc, "exit_code", int(ExitCode.USAGE))
            if type(exc).__name__ == "NoArgsIsHelpError":  # `jaxport` or `jaxport data` alone: help
                exc.show()
                raise SystemExit(code) from None
            ctx = getattr(exc, "ctx", None)
            where = f"{ctx.command_path}: " if ctx is not None else ""
            print_error(f"{where}{exc.format_message()}")
            raise SystemExit(code) from None
        except (typer.Abort, KeyboardInterrupt):
            if not standalone_mode:
                raise
            err_console.print("[yellow]interrupted[/yellow]")
            raise SystemExit(int(ExitCode.INTERRUPTED)) from None
        if not standalone_mode:
            return rv
        raise SystemExit(int(rv) if isinstance(rv, int) else int(ExitCode.OK))


app = typer.Typer(
    cls=JaxportGroup,
    name="jaxport",
    help="JAX toolkit for portfolio-allocation agents: data, features, training, evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"jaxport {jaxport.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """JAX toolkit for portfolio-allocation agents."""


#: The command modules; each ``register(app)`` adds its commands or group.
COMMAND_GROUPS = (data, train, finished_run, export, forecast, bench, stress)
for _module in COMMAND_GROUPS:
    _module.register(app)
del _module


def main() -> None:
    """Console-script entry point (``jaxport`` and ``python -m jaxport``)."""
    app(prog_name="jaxport")


__all__ = [
    "COMMAND_GROUPS",
    "ExitCode",
    "JaxportGroup",
    "app",
    "console",
    "err_console",
    "fail",
    "main",
    "parse_symbols",
]
