"""``jaxport eval RUN_DIR`` and ``jaxport report RUN_DIR``: work on a finished ``jaxport train`` run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from jaxport.cli import console, fail


def register(app: typer.Typer) -> None:
    register_export(app)

    @app.command("eval")
    def eval_run(
        run_dir: Annotated[Path, typer.Argument(help="The --output-dir of a jaxport train run.")],
    ) -> None:
        """Re-run the test evaluation of every pair from its checkpoints; compare with the summary."""
        from jaxport.pipeline.evaluate_run import evaluate_run

        result = evaluate_run(run_dir)
        table = Table(title=f"re-evaluation of {run_dir} (test split)")
        for col in ("pair", "algo", "total return", "sharpe", "max drawdown", "matches summary"):
            table.add_column(col)
        mismatches = 0
        for name, entry in result["pairs"].items():
            if entry.get("status") != "completed":
                table.add_row(name, "-", f"[red]{entry.get('status')}[/red]", "-", "-", "-")
                continue
            t = entry["test"]
            ok = entry["matches_summary"]
            mismatches += not ok
            table.add_row(name, entry["algo"], f"{t['total_return']:+.2%}", f"{t['sharpe']:.3f}",
                          f"{t['max_drawdown']:.2%}", "[green]yes[/green]" if ok else
                          f"[red]no (max diff {entry['max_abs_diff_vs_summary']:.2e})[/red]")
        console.print(table)
        console.print(f"written: {Path(run_dir) / 'evaluation.json'}")
        if mismatches:
            raise typer.Exit(1)

    @app.command("report")
    def report(
        run_dir: Annotated[Path, typer.Argument(help="The --output-dir of a jaxport train run.")],
        out: Annotated[Optional[Path], typer.Option("--out", help="Folder for report.md and PNGs (default RUN_DIR/report).")] = None,
    ) -> None:
        """PNG plots (equity vs baselines with drawdown, forecast vs realised volatility, training curves)
        and a report.md embedding them."""
        from jaxport.pipeline.report import write_report

        if not Path(run_dir).exists():
            fail(f"{run_dir}: no such run directory")
        path = write_report(run_dir, out)
        pngs = sorted(p.name for p in path.parent.glob("*.png"))
        console.print(f"report: {path} ({len(pngs)} plots: {', '.join(pngs)})")


def register_export(app: typer.Typer) -> None:
    @app.command("export")
    def export(
        run_dir: Annotated[Path, typer.Argument(help="The --output-dir of a jaxport train run.")],
        to: Annotated[Path, typer.Option("--to", help="Output folder for the .pt state_dicts and JSON configs.")],
        env_data: Annotated[bool, typer.Option("--env-data/--no-env-data", help="Also write each pair's test-episode arrays (.env.npz) for Torch-only replay.")] = True,
    ) -> None:
        """Export the forecasters and portfolio policies of a run as Torch checkpoints (plain nn.Module)."""
        from torch_compat.export import export_run  # torch is imported only for this command

        if not Path(run_dir).exists():
            fail(f"{run_dir}: no such run directory")
        paths = export_run(run_dir, to, env_data=env_data)
        for path in paths:
            console.print(str(path))
        console.print(f"exported {len(paths)} file(s) to {to}")
