"""``jaxport data check`` and ``jaxport data synth``: validate and generate price CSV folders
(per-symbol OHLCV or close-only CSVs, or one wide close panel)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.text import Text

from jaxport.cli.common import ExitCode, console, err_console, parse_symbols

data_app = typer.Typer(
    help="Check and generate daily price CSV data (OHLCV, close-only or a wide close panel).",
    no_args_is_help=True,
)


def _check_files(table, directory: Path, wanted: list[str], min_rows: int):
    """Load each wanted symbol's file into a row of ``table``: ``(problems, common dates or None,
    files read)``."""
    from jaxport.data import DataError, find_symbol_file, load_symbol_frame

    problems = 0
    common = None
    files = set()
    for sym in wanted:
        path = None
        try:
            path = find_symbol_file(directory, sym)
            path, frame = load_symbol_frame(directory, sym, min_rows=min_rows)
            files.add(path)
        except DataError as exc:
            problems += 1
            message = str(exc)
            if path is not None and message.startswith(f"{path}: "):
                message = message[len(f"{path}: ") :]
            table.add_row(
                sym, path.name if path else "-", "-", "-", "-", "-", Text(message, style="red")
            )
            continue
        common = frame.index if common is None else common.intersection(frame.index)
        table.add_row(
            sym,
            path.name,
            "OHLCV" if len(frame.columns) > 1 else "close",
            str(len(frame)),
            str(frame.index[0].date()),
            str(frame.index[-1].date()),
            Text("ok", style="green"),
        )
    return problems, common, files


def _check_alignment(common, min_rows: int) -> int:
    """Print the dates common to the valid files; 1 problem when fewer than ``min_rows``."""
    if common is None:
        return 0
    if len(common) < min_rows:
        console.print(
            Text(
                f"alignment: only {len(common)} dates common to the valid files; need at least "
                f"{min_rows}",
                style="red",
            )
        )
        return 1
    console.print(
        f"alignment: {len(common)} common dates, {common.min().date()} .. {common.max().date()}"
    )
    return 0


@data_app.command("check")
def data_check(
    directory: Annotated[
        Path,
        typer.Argument(
            help="Folder of SYMBOL.csv(.gz) files (OHLCV, or date and close) or of one wide "
            "close panel (first column the date, one column per symbol)."
        ),
    ],
    symbols: Annotated[
        Optional[str],
        typer.Option("--symbols", help="Comma-separated symbols (default: every CSV)."),
    ] = None,
    min_rows: Annotated[
        Optional[int],
        typer.Option(
            "--min-rows",
            min=1,
            help="Rows each file (and the aligned dates) must have (default: what jaxport train "
            "needs with --profile and --config).",
        ),
    ] = None,
    profile: Annotated[
        str, typer.Option("--profile", help="Training profile whose minimum applies: quick | full.")
    ] = "quick",
    config: Annotated[
        Optional[Path],
        typer.Option("--config", help="TOML file of the training run (as for train)."),
    ] = None,
) -> None:
    """Validate every CSV (or the given symbols), row counts and alignment; exit 1 on problems.

    Minimum rows: what jaxport train needs with --profile/--config, unless --min-rows is given.
    """
    from rich.table import Table

    from jaxport.data import list_symbols

    if min_rows is None:
        from jaxport.pipeline.config import build_config, min_rows_needed

        min_rows = min_rows_needed(build_config(profile, config))
        with_config = f" --config {config}" if config else ""
        why = f"what jaxport train --profile {profile}{with_config} needs"
    else:
        why = "--min-rows"
    available = list_symbols(directory)  # DataError (exit 2): folder missing or without CSVs
    wanted = parse_symbols(symbols) or available
    table = Table(title=f"data check: {directory}")
    for column in ("symbol", "file", "columns", "rows", "first date", "last date", "problems"):
        table.add_column(column, overflow="fold")
    problems, common, files = _check_files(table, directory, wanted, min_rows)
    console.print(table)
    console.print(f"minimum rows: {min_rows} ({why})")
    problems += _check_alignment(common, min_rows)
    if problems:
        err_console.print(Text(f"{problems} problem(s) in {directory}", style="bold red"))
        raise typer.Exit(int(ExitCode.FAILURE))
    noun = "file(s)" if len(files) == len(wanted) else "symbol(s)"  # a panel: one file
    console.print(Text(f"all {len(wanted)} {noun} OK", style="green"))


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option("--out", help="Output folder (created if needed).")],
    symbols: Annotated[
        int, typer.Option("--symbols", min=1, help="Number of symbols SYN000...")
    ] = 8,
    days: Annotated[int, typer.Option("--days", min=2, help="Number of business days.")] = 1500,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same data).")] = 0,
    planted_signal: Annotated[
        float,
        typer.Option(
            "--planted-signal",
            help="Daily log return added per sign of the previous day's return (0 = none).",
        ),
    ] = 0.0,
    start_date: Annotated[
        str, typer.Option("--start-date", help="First business day, YYYY-MM-DD.")
    ] = "2015-01-02",
) -> None:
    """Write a synthetic universe (factor model, GARCH, fat tails, regimes) as SYM.csv files."""
    from jaxport.data.synth import write_synthetic_csvs

    paths = write_synthetic_csvs(
        out,
        num_symbols=symbols,
        num_days=days,
        seed=seed,
        planted_signal=planted_signal,
        start_date=start_date,
    )
    console.print(
        f"wrote {len(paths)} files ({paths[0].stem} .. {paths[-1].stem}, {days} business days from "
        f"{start_date}, seed {seed}, planted_signal {planted_signal}) to {out}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
