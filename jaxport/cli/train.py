"""``jaxport train``: the three-stage pipeline with the original trainer's flags, its progress bars
and the final tables."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from jaxport.cli.common import (
    TENSORBOARD_INSTALL_HINT,
    ExitCode,
    RunOptions,
    console,
    err_console,
    fail,
)
from jaxport.pipeline.config_schema import (
    SettingSpec,
    format_default,
    get_dotted,
    inactive_reason,
    parse_flag_value,
    setting_specs,
    to_toml,
)

if TYPE_CHECKING:  # heavy: imported inside the functions that need them
    from rich.console import Console
    from rich.table import Table

    from jaxport.pipeline.config import PipelineConfig


# ---------------------------------------------------------------------------- final tables
def _fmt(value, pct: bool = False) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return f"{v:+.2%}" if pct else f"{v:.3f}"


def results_table(summary: dict) -> Table:
    """Test-split metrics of the shipped policy of every pair, the learned candidate (when the gate
    did not ship it) and the best baseline by test Sharpe (labels and formats of
    :mod:`jaxport.pipeline.labels`). Fits 80 columns; ``jaxport report`` has every policy."""
    from rich.table import Table

    from jaxport.pipeline.labels import (
        drawdown_pct,
        policy_label,
        ratio,
        scales_text,
        signed_pct,
    )

    table = Table(title="test split: shipped policy, learned candidate, best baseline")
    for col in (
        "pair",
        "shipped",
        "return",
        "Sharpe",
        "max drawdown",
        "learned Sharpe",
        "best base",
    ):
        table.add_column(col, overflow="fold")
    reasons = []
    for name, entry in summary.get("stages", {}).get("portfolio", {}).items():
        if entry.get("status") != "completed":
            table.add_row(name, "-", f"[red]{entry.get('status')}[/red]", *["-"] * 4)
            reasons.append(f"{name}: {entry.get('error', '')}")
            continue
        m = entry["metrics"]
        test, base = m["test"], m["baselines"]
        symbols = entry.get("symbols") or name.split("_")
        flat = {k: v for k, v in base.items() if k != "buy_and_hold"}
        flat.update({f"buy_and_hold.{s}": v for s, v in base.get("buy_and_hold", {}).items()})
        best = max(flat, key=lambda k: flat[k].get("sharpe", float("-inf"))) if flat else None
        shipped = entry.get("shipped") or entry["algo"]
        learned = [
            f"{ratio(c.get('test', {}).get('sharpe'))} ({a})"
            for a, c in (entry.get("candidates") or {}).items()
        ]
        table.add_row(
            name,
            policy_label(shipped, symbols),
            signed_pct(test.get("total_return")),
            ratio(test.get("sharpe")),
            drawdown_pct(test.get("max_drawdown")),
            ", ".join(learned) or "-",
            f"{policy_label(best, symbols)} {ratio(flat[best].get('sharpe'))}" if best else "-",
        )
        if m.get("selection"):
            reasons.append(f"{name}: {m['selection']}")
    notes = [
        "return: total over the test split; max drawdown: % below the running peak; "
        "Sharpe: annualised; learned Sharpe: the trained policy's, shipped or not"
    ]
    tilt = (summary.get("stages", {}).get("universe") or {}).get("tilt")
    if tilt:
        anchor = policy_label((summary.get("config", {}).get("rl") or {}).get("anchor"))
        notes.append(
            f"learned (universe): its tilt x {tilt['scale']:g} (of {scales_text(tilt['scales'])}, "
            f"chosen on the tilt rows); x 0 is the anchor rule, {anchor}"
        )
    table.caption = "\n".join(notes + (["why shipped: " + "; ".join(reasons)] if reasons else []))
    return table


def walk_forward_table(summary: dict) -> Table | None:
    """Per pair over the walk-forward folds: test Sharpe gap to 1/N with its 95 % CI, folds
    beating 1/N, PSR, DSR and what each fold shipped (None for a plain run)."""
    from rich.table import Table

    from jaxport.pipeline.labels import policy_label

    wf = summary.get("walk_forward")
    if not wf:
        return None
    k = wf.get("num_folds")
    table = Table(title=f"walk-forward, {k} folds: test Sharpe vs 1/N")
    for col in ("pair", "gap", "95% CI", "beat", "PSR", "DSR", "shipped per fold"):
        table.add_column(col, overflow="fold")
    for name, st in wf.get("pairs", {}).items():
        gap = st["sharpe_gap_vs_equal_weight"]
        lo, hi = gap["ci95"]
        table.add_row(
            name,
            f"{gap['mean']:+.2f}",
            f"[{lo:+.2f},{hi:+.2f}]",
            f"{st['folds_beating_equal_weight']}/{st['num_folds']}",
            _fmt(st.get("probabilistic_sharpe")),
            _fmt(st.get("deflated_sharpe")),
            ",".join(policy_label(s) for s in st.get("shipped", [])),
        )
    return table


def forecast_table(summary: dict) -> Table | None:
    """The generic forecaster's test NLL/CRPS/direction accuracy and its baselines, if trained."""
    from rich.table import Table

    base = summary.get("stages", {}).get("base", {})
    if not base.get("metrics"):
        return None
    table = Table(title="forecaster, test split (next-day close log-return)")
    for col in ("model", "NLL", "CRPS", "direction acc."):
        table.add_column(col)
    test = base["metrics"]["test"]
    table.add_row(
        "generic",
        _fmt(test.get("nll")),
        f"{test.get('crps', float('nan')):.5f}",
        _fmt(test.get("directional_accuracy")),
    )
    for name, m in base["metrics"]["baselines"].items():
        table.add_row(
            name,
            _fmt(m.get("nll")),
            f"{m.get('crps', float('nan')):.5f}",
            _fmt(m.get("directional_accuracy")),
        )
    return table


def resume_command() -> str:
    """The command line that resumes this run (``--resume`` added, ``--overwrite`` dropped)."""
    args = [a for a in sys.argv[1:] if a not in ("--overwrite",)]
    if "--resume" not in args:
        args.append("--resume")
    return "jaxport " + " ".join(shlex.quote(a) for a in args)


# ---------------------------------------------------------------------------- the run
def run_with_progress(
    config: PipelineConfig,
    *,
    resume: bool,
    overwrite: bool,
    console: Console,
    err_console: Console,
    walk_forward: int = 1,
    gate: bool = True,
) -> ExitCode:
    """Run the pipeline with progress bars, then print the tables; return the exit code."""
    from jaxport.cli.progress import StageBars, format_duration
    from jaxport.pipeline.run import Pipeline, Reporter, RunInterrupted

    bars = StageBars(console)
    progress = bars.progress
    reporter = Reporter(
        stage_start=bars.stage_start,
        advance=bars.advance,
        stage_end=bars.stage_end,
        say=lambda m: progress.console.print(f"[yellow]{m}[/yellow]"),
    )
    pipeline = Pipeline(
        config,
        resume=resume,
        overwrite=overwrite,
        reporter=reporter,
        walk_forward=walk_forward,
        gate=gate,
    )
    try:
        with progress:
            summary = pipeline.run()
    except RunInterrupted as exc:
        err_console.print(
            f"[yellow]interrupted ({exc}); finished stages are saved in "
            f"{config.output_dir}[/yellow]"
        )
        err_console.print(f"resume with: {resume_command()}")
        return ExitCode.INTERRUPTED
    ft = forecast_table(summary)
    if ft is not None:
        console.print(ft)
    console.print(results_table(summary))
    wf = walk_forward_table(summary)
    if wf is not None:
        console.print(wf)
    out = Path(config.output_dir)
    console.print(f"checkpoints: {out}/  (base/, specialists/, portfolio/)", soft_wrap=True)
    console.print(f"summary:     {pipeline.summary_path}", soft_wrap=True)
    console.print(
        f"tensorboard: tensorboard --logdir {config.tensorboard_dir}"
        f"   (viewer not installed by jaxport: {TENSORBOARD_INSTALL_HINT})",
        soft_wrap=True,
        markup=False,
    )
    console.print(f"report:      jaxport report {out}", soft_wrap=True)
    console.print(f"total time:  {format_duration(bars.elapsed())}")
    portfolio = summary["stages"].get("portfolio", {})
    failed = [n for n, e in portfolio.items() if e.get("status") == "failed"]
    if failed:
        err_console.print(
            f"[red]{len(failed)} pair(s) failed: {', '.join(failed)} (see the summary)[/red]"
        )
        return ExitCode.FAILURE
    return ExitCode.OK


# ---------------------------------------------------------------------------- the command
def _option_specs() -> list[SettingSpec]:
    """Every flag of ``jaxport train``: the run options, then the configuration's settings."""
    from jaxport.pipeline.config import PipelineConfig

    return setting_specs(RunOptions) + setting_specs(PipelineConfig)


def _defaults() -> dict[str, Any]:
    """dotted name -> default (the ``quick`` profile's; dataclass defaults are that profile)."""
    from jaxport.pipeline.config import PipelineConfig

    roots = (RunOptions(), PipelineConfig())
    out = {}
    for spec in _option_specs():
        root = (
            roots[0]
            if spec.dotted in {f.name for f in dataclasses.fields(RunOptions)}
            else roots[1]
        )
        out[spec.dotted] = get_dotted(root, spec.dotted)
    return out


#: How ``--help`` marks a default (escaped: rich would read ``[default: ...]`` as markup).
DEFAULT_MARK = "\\[default: "


def _parameter(spec: SettingSpec, default: Any) -> inspect.Parameter:
    """The typer option of ``spec``: ``None`` (or ``False`` for a switch) when not given; the help
    shows the real default."""
    help_text = f"{spec.help} {DEFAULT_MARK}{format_default(default)}]"
    option = typer.Option(*spec.flags, help=help_text, show_default=False)
    if spec.type is bool:
        annotation, value = bool, False
    elif spec.parse == "pairs":
        annotation, value = Optional[list[str]], None
    elif spec.parse is not None:
        annotation, value = Optional[str], None
    else:
        annotation, value = Optional[spec.type], None
    return inspect.Parameter(
        spec.param,
        inspect.Parameter.KEYWORD_ONLY,
        default=value,
        annotation=Annotated[annotation, option],
    )


def _given(spec: SettingSpec, value: Any) -> bool:
    return bool(value) if spec.type is bool or spec.parse == "pairs" else value is not None


def resolve_flags(values: dict[str, Any]) -> tuple[RunOptions, PipelineConfig, list[SettingSpec]]:
    """The run options, the resolved configuration and the configuration flags that were given,
    from the option values of one ``jaxport train`` call (``None``/``False``: not given). A bad
    value is one ``error:`` line (exit 2)."""
    from jaxport.pipeline.config import build_config

    run_fields = {f.name for f in dataclasses.fields(RunOptions)}
    run, overrides, given = RunOptions(), {}, []
    for spec in _option_specs():
        value = values.get(spec.param)
        if not _given(spec, value):
            continue
        try:
            value = parse_flag_value(spec, value)
        except ValueError as exc:
            fail(f"{spec.flag} {exc}")
        if spec.dotted in run_fields:
            setattr(run, spec.dotted, value)
            continue
        given.append(spec)
        section, _, name = spec.dotted.rpartition(".")
        (overrides.setdefault(section, {}) if section else overrides)[name] = value
    if run.walk_forward < 1:
        fail(f"--walk-forward {run.walk_forward}: the number of folds must be >= 1")
    config: PipelineConfig = build_config(run.profile, run.config_file, overrides)
    return run, config, given


def refuse_inactive(config: PipelineConfig, given: list[SettingSpec]) -> None:
    """Exit 2 with one line naming the first given flag that does not act in ``config`` (e.g. a
    universe setting under ``--rl-scope pair``) and why."""
    for spec in given:
        reason = inactive_reason(config, spec)
        if reason is not None:
            fail(f"{spec.flag}: {reason}")


def _train(**values: Any) -> None:
    """Train the generic forecaster, specialists and portfolio policies; evaluate on test.

    Defaults shown are the quick profile's; --profile full raises the forecaster budget,
    finetune (7 epochs, lr 1e-4, 1300 steps) and rl (500 epochs, batch 2048, 252-day episodes).
    """
    import logging

    from jaxport.distributed import initialize_distributed

    # multi-host: join the JAX cluster (JAXPORT_* variables, or SLURM / Open MPI / ...)
    # before anything starts the XLA backend; a no-op without those variables
    initialize_distributed(auto_detect=True)
    run, cfg, given = resolve_flags(values)
    refuse_inactive(cfg, given)
    if run.print_config:
        typer.echo(to_toml(cfg.to_dict()), nl=False)
        return
    logging.basicConfig(
        level=logging.INFO if cfg.verbose else logging.WARNING, format="%(message)s"
    )
    code = run_with_progress(
        cfg,
        resume=run.resume,
        overwrite=run.overwrite,
        console=console,
        err_console=err_console,
        walk_forward=run.walk_forward,
        gate=not run.no_gate,
    )
    if code != ExitCode.OK:
        raise typer.Exit(int(code))


def register(app: typer.Typer) -> None:
    """Add ``jaxport train`` with one option per declared setting (:func:`_option_specs`)."""
    defaults = _defaults()
    params = [_parameter(spec, defaults[spec.dotted]) for spec in _option_specs()]
    command = functools.wraps(_train)(lambda **values: _train(**values))
    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__wrapped__ = None
    del command.__wrapped__
    app.command("train")(command)
