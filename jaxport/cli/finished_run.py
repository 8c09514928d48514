"""``jaxport eval RUN_DIR`` and ``jaxport report RUN_DIR``: work on a finished training run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from jaxport.cli.common import ExitCode, console, fail


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_run(
        run_dir: Annotated[Path, typer.Argument(help="The --output-dir of a jaxport train run.")],
    ) -> None:
        """Re-run every pair's test evaluation from its checkpoints; compare with the summary."""
        from rich.table import Table

        from jaxport.pipeline.reevaluate import all_match, evaluate_run

        result = evaluate_run(run_dir)
        table = Table(title=f"re-evaluation of {run_dir} (test split)")
        for col in ("pair", "shipped", "return", "sharpe", "max dd", "matches"):
            table.add_column(col, overflow="fold")
        mismatches = 0 if all_match(result) else 1
        rows = [(name, e) for name, e in result["pairs"].items()]
        for fold in result.get("folds", []):
            rows += [(f"{name} f{fold['fold']}", e) for name, e in fold["pairs"].items()]
        for name, entry in rows:
            if entry.get("status") != "completed":
                table.add_row(name, "-", f"[red]{entry.get('status')}[/red]", "-", "-", "-")
                continue
            t = entry["test"]
            ok = entry["matches_summary"]
            match = (
                "[green]yes[/green]"
                if ok
                else (f"[red]no (max diff {entry['max_abs_diff_vs_summary']:.2e})[/red]")
            )
            table.add_row(
                name,
                str(entry.get("shipped") or entry["algo"]).replace("baseline:", "base:"),
                f"{t['total_return']:+.2%}",
                f"{t['sharpe']:.3f}",
                f"{t['max_drawdown']:.2%}",
                match,
            )
        console.print(table)
        console.print(f"written: {Path(run_dir) / 'evaluation.json'}")
        if mismatches:
            raise typer.Exit(int(ExitCode.FAILURE))

    @app.command("report")
    def report(
        run_dir: Annotated[Path, typer.Argument(help="The --output-dir of a jaxport train run.")],
        out: Annotated[
            Optional[Path],
            typer.Option("--out", help="Folder for report.md and PNGs (default RUN_DIR/report)."),
        ] = None,
    ) -> None:
        """PNG plots and a report.md of a run.

        Equity vs baselines with drawdown, forecast vs realised volatility, training curves.
        """
        from jaxport.pipeline.report import write_report

        if not Path(run_dir).exists():
            fail(f"{run_dir}: no such run directory")
        path = write_report(run_dir, out)
        pngs = sorted(p.name for p in path.parent.glob("*.png"))
        console.print(f"report: {path} ({len(pngs)} plots: {', '.join(pngs)})")
