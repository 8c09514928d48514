"""Rich progress bars, the final results table and exit codes for ``jaxport train``."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from jaxport.pipeline.config import PipelineConfig
from jaxport.pipeline.run import Pipeline, Reporter, RunInterrupted

EXIT_OK, EXIT_PAIR_FAILED, EXIT_INTERRUPTED = 0, 1, 130
STAGE_TITLES = {"base": "stage 1: generic forecaster", "specialists": "stage 2: specialists",
                "portfolio": "stage 3: portfolio RL"}


def _fmt(value, pct: bool = False) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return f"{v:+.2%}" if pct else f"{v:.3f}"


def results_table(summary: dict) -> Table:
    table = Table(title="test split results")
    for col in ("pair", "algo", "total return", "sharpe", "max drawdown", "trades", "buy&hold (mean)",
                "equal weight", "cash"):
        table.add_column(col)
    for name, entry in summary.get("stages", {}).get("portfolio", {}).items():
        if entry.get("status") != "completed":
            table.add_row(name, "-", f"[red]{entry.get('status')}: {entry.get('error', '')}[/red]", *["-"] * 6)
            continue
        m = entry["metrics"]
        test, base = m["test"], m["baselines"]
        bh = [v.get("total_return", float("nan")) for v in base.get("buy_and_hold", {}).values()]
        table.add_row(
            name, entry["algo"], _fmt(test.get("total_return"), True), _fmt(test.get("sharpe")),
            _fmt(test.get("max_drawdown"), True), str(test.get("num_trades", "-")),
            _fmt(sum(bh) / len(bh) if bh else None, True),
            _fmt(base.get("equal_weight", {}).get("total_return"), True),
            _fmt(base.get("cash", {}).get("total_return"), True),
        )
    return table


def forecast_table(summary: dict) -> Table | None:
    base = summary.get("stages", {}).get("base", {})
    if not base.get("metrics"):
        return None
    table = Table(title="forecaster, test split (next-day close log-return)")
    for col in ("model", "NLL", "CRPS", "direction acc."):
        table.add_column(col)
    test = base["metrics"]["test"]
    table.add_row("generic", _fmt(test.get("nll")), f"{test.get('crps', float('nan')):.5f}",
                  _fmt(test.get("directional_accuracy")))
    for name, m in base["metrics"]["baselines"].items():
        table.add_row(name, _fmt(m.get("nll")), f"{m.get('crps', float('nan')):.5f}",
                      _fmt(m.get("directional_accuracy")))
    return table


def resume_command() -> str:
    args = [a for a in sys.argv[1:] if a not in ("--overwrite",)]
    if "--resume" not in args:
        args.append("--resume")
    return "jaxport " + " ".join(shlex.quote(a) for a in args)


def run_with_progress(config: PipelineConfig, *, resume: bool, overwrite: bool, console: Console,
                      err_console: Console) -> int:
    """Run the pipeline with progress bars; return the process exit code."""
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
        console=console, transient=False,
    )
    tasks: dict[str, int] = {}

    def stage_start(name: str, total: int) -> None:
        tasks[name] = progress.add_task(STAGE_TITLES.get(name, name), total=total or None, info="")

    def advance(name: str, n: int, metrics: dict) -> None:
        if name not in tasks:
            return
        info = ", ".join(
            f"{k.split('/')[-1]}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in list(metrics.items())[:3]
        )
        if name == "base" and "lr" in str(list(metrics)):
            # forecaster log_fn reports every log_every steps: move the bar to that step
            progress.update(tasks[name], advance=config.base.log_every, info=info)
            return
        progress.update(tasks[name], advance=n, info=info)

    def stage_end(name: str) -> None:
        if name in tasks:
            task = progress.tasks[tasks[name]]
            progress.update(tasks[name], completed=task.total or task.completed)

    reporter = Reporter(stage_start=stage_start, advance=advance, stage_end=stage_end,
                        say=lambda m: progress.console.print(f"[yellow]{m}[/yellow]"))
    pipeline = Pipeline(config, resume=resume, overwrite=overwrite, reporter=reporter)
    try:
        with progress:
            summary = pipeline.run()
    except RunInterrupted as exc:
        err_console.print(f"[yellow]interrupted ({exc}); finished stages are saved in {config.output_dir}[/yellow]")
        err_console.print(f"resume with: {resume_command()}")
        return EXIT_INTERRUPTED
    ft = forecast_table(summary)
    if ft is not None:
        console.print(ft)
    console.print(results_table(summary))
    out = Path(config.output_dir)
    console.print(f"checkpoints: {out}/  (base/, specialists/, portfolio/)")
    console.print(f"summary:     {pipeline.summary_path}")
    console.print(f"tensorboard: tensorboard --logdir {config.tensorboard_dir}")
    console.print(f"report:      jaxport report {out}")
    failed = [n for n, e in summary["stages"].get("portfolio", {}).items() if e.get("status") == "failed"]
    if failed:
        err_console.print(f"[red]{len(failed)} pair(s) failed: {', '.join(failed)} (see the summary)[/red]")
        return EXIT_PAIR_FAILED
    return EXIT_OK
