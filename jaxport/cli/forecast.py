"""``jaxport forecast eval``: score a forecaster checkpoint on the chronological test split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from jaxport.cli.common import console, fail, parse_symbols

forecast_app = typer.Typer(help="Evaluate Toto-style forecasters.", no_args_is_help=True)
SPLITS = ("val", "test")


@forecast_app.command("eval")
def forecast_eval(
    checkpoint: Annotated[
        Optional[Path],
        typer.Argument(
            help="Forecaster checkpoint folder (e.g. runs/models/base); omit for baselines only."
        ),
    ] = None,
    trainingdata_dir: Annotated[
        str, typer.Option("--trainingdata-dir", help="Folder of SYMBOL.csv files.")
    ] = "trainingdata",
    symbols: Annotated[
        Optional[str],
        typer.Option(
            "--symbols", help="Comma-separated symbols (default: the checkpoint's, else all)."
        ),
    ] = None,
    split: Annotated[str, typer.Option("--split", help="val | test")] = "test",
    json_out: Annotated[
        Optional[Path],
        typer.Option("--json", help="Also write the full result (per symbol) as JSON."),
    ] = None,
    no_garch: Annotated[
        bool,
        typer.Option(
            "--no-garch", help="Skip the GARCH(1,1) baselines (needs the optional `arch` package)."
        ),
    ] = False,
) -> None:
    """NLL, CRPS, |return| MAE and directional accuracy of next-day close returns vs baselines."""
    if split not in SPLITS:
        fail(f"--split {split!r}: expected val or test")
    from jaxport.checkpoint import atomic_write_json
    from jaxport.data import load_market, resolve_data_dir, split_bounds
    from jaxport.forecast import Forecaster, evaluate_forecaster, format_table

    model = Forecaster.load(checkpoint) if checkpoint is not None else None
    data_dir = resolve_data_dir(
        trainingdata_dir, announce=lambda m: console.print(f"[yellow]{m}[/yellow]")
    )
    wanted = parse_symbols(symbols) or (model.extra.get("symbols") if model is not None else None)
    min_rows = (model.config.context if model is not None else 20) + 10
    market = load_market(data_dir, wanted, min_rows=min_rows)
    result = evaluate_forecaster(
        model, market, split_bounds(market), split=split, garch=not no_garch
    )
    s = result["split"]
    console.print(
        f"{split} split: {s['first_target_date']} .. {s['last_target_date']}, "
        f"{s['num_days']} days x {len(s['symbols'])} symbols ({', '.join(s['symbols'])})"
    )
    console.print(format_table(result), highlight=False)
    for note in result.get("notes", []):
        console.print(f"[yellow]{note}[/yellow]")
    if json_out is not None:
        atomic_write_json(json_out, result)
        console.print(f"written: {json_out}")


def register(app: typer.Typer) -> None:
    app.add_typer(forecast_app, name="forecast")
