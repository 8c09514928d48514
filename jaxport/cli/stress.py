"""``jaxport stress RUN_DIR``: every policy of a run over bootstrapped market paths."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from jaxport.cli.common import console, fail

TABLE_POLICIES = (
    "shipped",
    "equal_weight",
    "inverse_volatility",
    "minimum_variance",
    "risk_parity",
)


def _block_length(value: str) -> float | None:
    if value == "auto":
        return None
    try:
        length = float(value)
    except ValueError:
        fail(f"--block-length {value!r}: expected auto or a number of days >= 1")
    if not length >= 1:
        fail(f"--block-length {value!r}: expected auto or a number of days >= 1")
    return length


def stress_table(result: dict, basket: str, title: str):
    """A rich table of one basket's stress statistics: quantiles of the total return (% of E0),
    then % of paths with a loss, a max drawdown over 20 %, ruin, CVaR5 (mean return of the worst
    5 % of paths) and % of paths where the policy's return beats 1/N's."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    table.add_column("policy", no_wrap=True)
    for col in ("q05", "q50", "q95", "loss", "DD>20%", "ruin", "CVaR5", ">1/N"):
        table.add_column(col, justify="right", no_wrap=True)
    for label, s in result["baskets"][basket].items():
        tr = s["total_return"]
        table.add_row(
            label,
            f"{tr['q05']:+.0%}",
            f"{tr['q50']:+.0%}",
            f"{tr['q95']:+.0%}",
            f"{s['prob_loss']:.0%}",
            f"{s['prob_drawdown_gt_20']:.0%}",
            f"{s['prob_ruin']:.1%}",
            f"{s['cvar05_total_return']:+.0%}",
            f"{s.get('prob_beats_equal_weight', float('nan')):.0%}",
        )
    return table


def register(app: typer.Typer) -> None:
    @app.command("stress")
    def stress(
        run_dir: Annotated[Path, typer.Argument(help="The --output-dir of a jaxport train run.")],
        paths: Annotated[int, typer.Option("--paths", help="Bootstrapped market paths.")] = 10_000,
        horizon: Annotated[int, typer.Option("--horizon", help="Trading days per path.")] = 252,
        block_length: Annotated[
            str,
            typer.Option(
                "--block-length",
                help="Mean block length in days, or auto (Politis-White on the source returns).",
            ),
        ] = "auto",
        source: Annotated[
            str,
            typer.Option("--source", help="Rows resampled: test | validation | train | all."),
        ] = "test",
        seed: Annotated[int, typer.Option("--seed", help="Seed of the paths.")] = 0,
        devices: Annotated[
            Optional[int], typer.Option("--devices", help="Shard the paths over N devices.")
        ] = None,
        chunk: Annotated[
            Optional[int],
            typer.Option("--chunk", help="Paths per compiled chunk (bounds memory; default auto)."),
        ] = None,
        out: Annotated[
            Optional[Path], typer.Option("--out", help="Output folder (default RUN_DIR/stress).")
        ] = None,
        overwrite: Annotated[
            bool, typer.Option("--overwrite", help="Replace an existing stress.json in --out.")
        ] = False,
    ) -> None:
        """Roll the shipped policy, the learned candidate and every standard allocator over the
        same stationary-bootstrap paths of the run's data; write stress.json, a fan chart and
        histograms.

        Walk-forward runs: each fold is stressed on its own rows with its own policies (folds in
        stress.json); the table and the top-level baskets pool every fold's paths.
        """
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        from jaxport.pipeline.stress_run import (
            StressSettings,
            check_output,
            stress_run,
            write_stress,
        )

        settings = StressSettings(
            paths=paths,
            horizon=horizon,
            block_length=_block_length(block_length),
            source=source,
            seed=seed,
            devices=devices,
            chunk=chunk,
        ).validate()
        if not run_dir.exists():
            fail(f"{run_dir}: no such run directory")
        out_dir = out or run_dir / "stress"
        check_output(out_dir, overwrite)
        progress = Progress(
            "[bold]stress chunks",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )

        def start(total: int, groups: int):
            task = progress.add_task("stress", total=total)
            progress.start()
            return lambda: progress.update(task, advance=1)

        try:
            result = stress_run(run_dir, settings, progress=start)
        finally:
            progress.stop()
        files = write_stress(result, out_dir)
        for name in result["baskets"]:
            title = (
                f"{name}: total return over {result['paths']} paths x {result['horizon']} days "
                f"({result['source']} rows, block {result['block_length']:.0f} d; shipped = "
                f"{result['shipped_as'][name]}); loss, DD>20%, ruin, >1/N: % of paths"
            )
            console.print(stress_table(result, name, title))
        t = result["throughput"]
        console.print(
            f"{t['policy_runs']} policy runs, {t['path_steps']:.3g} path-steps in "
            f"{t['wall_s']:.1f} s ({t['path_steps_per_s']:.3g} path-steps/s, compile included)"
        )
        console.print(f"written: {', '.join(str(f) for f in files)}")
