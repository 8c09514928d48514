"""``jaxport train``: the three-stage pipeline with the original trainer's flags, its progress bars
and the final tables."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from jaxport.cli.common import (
    TENSORBOARD_INSTALL_HINT,
    ExitCode,
    console,
    err_console,
    fail,
    parse_symbols,
)

if TYPE_CHECKING:  # heavy: imported inside the functions that need them
    from rich.console import Console
    from rich.table import Table

    from jaxport.pipeline.config import PipelineConfig


# ---------------------------------------------------------------------------- flags -> config
def _overrides(**flags) -> dict:
    """CLI values that were given (not None) as a nested override dict for ``build_config``."""
    out: dict = {}
    for dotted, value in flags.items():
        if value is None:
            continue
        section, _, name = dotted.partition("__")
        if name:
            out.setdefault(section, {})[name] = value
        else:
            out[section] = value
    return out


def _parse_pairs(values: Optional[list[str]]) -> Optional[list[list[str]]]:
    if not values:
        return None
    pairs = []
    for value in values:
        symbols = parse_symbols(value) or []
        if len(symbols) < 2:
            fail(f"--pair {value!r}: expected two or more comma-separated symbols, e.g. AAPL,AMZN")
        pairs.append(symbols)
    return pairs


def _parse_targets(value: Optional[str]) -> Optional[list[str]]:
    if value is None:
        return None
    return [t.strip().lower() for t in value.split(",") if t.strip()]


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

    from jaxport.pipeline.labels import drawdown_pct, policy_label, ratio, signed_pct

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
def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        base_stocks: Annotated[
            Optional[str],
            typer.Option(
                "--base-stocks",
                help="Symbols for the generic forecaster "
                "(default AAPL,AMZN,MSFT,NVDA,GOOGL when present, else all).",
            ),
        ] = None,
        specialist_stocks: Annotated[
            Optional[str],
            typer.Option(
                "--specialist-stocks",
                help="Symbols that get a fine-tuned specialist "
                "(default AAPL,AMZN,MSFT when present, else the first three).",
            ),
        ] = None,
        trainingdata_dir: Annotated[
            Optional[str],
            typer.Option(
                "--trainingdata-dir",
                help="Folder of SYMBOL.csv files "
                "(default trainingdata/, else tototraining/trainingdata/train).",
            ),
        ] = None,
        output_dir: Annotated[
            Optional[str],
            typer.Option(
                "--output-dir", help="Checkpoints and pipeline_summary.json (default runs/models)."
            ),
        ] = None,
        tensorboard_dir: Annotated[
            Optional[str],
            typer.Option("--tensorboard-dir", help="TensorBoard event files (default runs/logs)."),
        ] = None,
        wandb_project: Annotated[
            Optional[str],
            typer.Option(
                "--wandb-project",
                help="Log to this wandb project too (optional dependency; offline if unreachable).",
            ),
        ] = None,
        wandb_entity: Annotated[
            Optional[str], typer.Option("--wandb-entity", help="wandb entity (team or user).")
        ] = None,
        pair: Annotated[
            Optional[list[str]],
            typer.Option(
                "--pair",
                help="Basket for portfolio RL, e.g. AAPL,AMZN "
                "(repeatable; default adjacent specialist pairs).",
            ),
        ] = None,
        skip_base: Annotated[
            bool,
            typer.Option(
                "--skip-base", help="Do not train the generic forecaster (statistical features)."
            ),
        ] = False,
        skip_specialists: Annotated[
            bool, typer.Option("--skip-specialists", help="Do not fine-tune specialists.")
        ] = False,
        skip_rl: Annotated[
            bool, typer.Option("--skip-rl", help="Stop after the forecasters.")
        ] = False,
        base_checkpoint: Annotated[
            Optional[str],
            typer.Option(
                "--base-checkpoint",
                help="Restore the generic forecaster from this checkpoint instead of training it.",
            ),
        ] = None,
        base_steps: Annotated[
            Optional[int],
            typer.Option("--base-steps", help="Max optimiser steps of the generic forecaster."),
        ] = None,
        base_batch_size: Annotated[
            Optional[int], typer.Option("--base-batch-size", help="Windows per forecaster step.")
        ] = None,
        base_learning_rate: Annotated[
            Optional[float],
            typer.Option(
                "--base-learning-rate", help="Peak AdamW learning rate of the generic forecaster."
            ),
        ] = None,
        finetune_epochs: Annotated[
            Optional[int],
            typer.Option("--finetune-epochs", help="Specialist fine-tuning epochs (0 = none)."),
        ] = None,
        finetune_learning_rate: Annotated[
            Optional[float],
            typer.Option("--finetune-learning-rate", help="Specialist learning rate."),
        ] = None,
        rl_epochs: Annotated[
            Optional[int], typer.Option("--rl-epochs", help="RL training updates per pair.")
        ] = None,
        rl_learning_rate: Annotated[
            Optional[float],
            typer.Option(
                "--rl-learning-rate",
                help="PPO learning rate (the gradient method uses rl.gradient_learning_rate, "
                "settable with --config).",
            ),
        ] = None,
        rl_batch_size: Annotated[
            Optional[int],
            typer.Option("--rl-batch-size", help="Parallel environments per RL update."),
        ] = None,
        rl_hidden_size: Annotated[
            Optional[int], typer.Option("--rl-hidden-size", help="Policy width.")
        ] = None,
        rl_num_layers: Annotated[
            Optional[int], typer.Option("--rl-num-layers", help="Policy depth.")
        ] = None,
        rl_num_heads: Annotated[
            Optional[int],
            typer.Option("--rl-num-heads", help="Attention heads of the transformer policy."),
        ] = None,
        rl_algo: Annotated[
            Optional[str],
            typer.Option(
                "--rl-algo",
                help="gradient (default) | ppo | both (both trained, the better on validation kept).",
            ),
        ] = None,
        rl_scope: Annotated[
            Optional[str],
            typer.Option(
                "--rl-scope",
                help="universe (default): one policy trained on every pair of the base symbols "
                "at once | pair: one policy per --pair.",
            ),
        ] = None,
        rl_seeds: Annotated[
            Optional[int],
            typer.Option(
                "--rl-seeds",
                help="Seeds of the universe policy, trained together in one compiled program; "
                "the best on validation is kept (default 4).",
            ),
        ] = None,
        turnover_penalty: Annotated[
            Optional[float],
            typer.Option(
                "--turnover-penalty",
                help="Penalty x mean daily turnover (fraction of equity) in the universe "
                "objective (default 0).",
            ),
        ] = None,
        rebalance_rate: Annotated[
            Optional[float],
            typer.Option(
                "--rebalance-rate",
                help="Fraction of the gap to the target weights traded per day, in (0, 1] "
                "(universe policy; default 1).",
            ),
        ] = None,
        feature_noise: Annotated[
            Optional[float],
            typer.Option(
                "--feature-noise",
                help="Std of Gaussian noise on standardised features during training "
                "(universe policy; default 0).",
            ),
        ] = None,
        rl_weight_decay: Annotated[
            Optional[float],
            typer.Option("--rl-weight-decay", help="AdamW weight decay of the universe policy."),
        ] = None,
        devices: Annotated[
            Optional[int],
            typer.Option(
                "--devices",
                help="Shard the RL batch over this many devices (default: as many as divide it).",
            ),
        ] = None,
        transaction_cost_bps: Annotated[
            Optional[float],
            typer.Option(
                "--transaction-cost-bps",
                help="Trading cost in basis points of traded notional (default 10).",
            ),
        ] = None,
        risk_penalty: Annotated[
            Optional[float],
            typer.Option(
                "--risk-penalty",
                help="Return-variance penalty of the gradient objective (default 0.1).",
            ),
        ] = None,
        leverage_limit: Annotated[
            Optional[float],
            typer.Option(
                "--leverage-limit", help="Max gross exposure, multiples of equity (default 2.0)."
            ),
        ] = None,
        borrowing_cost: Annotated[
            Optional[float],
            typer.Option(
                "--borrowing-cost",
                help="Annual financing rate on exposure beyond 1x equity, "
                "fraction (default 0.0675).",
            ),
        ] = None,
        trading_days_per_year: Annotated[
            Optional[int],
            typer.Option(
                "--trading-days-per-year",
                help="Periods per year for financing and annualisation (default 252).",
            ),
        ] = None,
        sequence_length: Annotated[
            Optional[int],
            typer.Option(
                "--sequence-length",
                help="Days behind the statistical forecast features (default 60).",
            ),
        ] = None,
        toto_horizon: Annotated[
            Optional[int],
            typer.Option("--toto-horizon", help="Forecast steps per target (default 8)."),
        ] = None,
        toto_targets: Annotated[
            Optional[str],
            typer.Option("--toto-targets", help="Forecast columns (default close,open,high,low)."),
        ] = None,
        disable_toto: Annotated[
            bool, typer.Option("--disable-toto", help="Use the statistical fallback features.")
        ] = False,
        crossfit_blocks: Annotated[
            Optional[int],
            typer.Option(
                "--crossfit-blocks",
                help="Train/validation rows get forecast features from models fitted without "
                "their block (K blocks; default 3; 0: one model for all rows).",
            ),
        ] = None,
        features: Annotated[
            Optional[str],
            typer.Option(
                "--features",
                help="toto (our forecaster) | stat (fallback) | toto+stat (forecast + indicators).",
            ),
        ] = None,
        summary_path: Annotated[
            Optional[str],
            typer.Option(
                "--summary-path",
                help="Where to write pipeline_summary.json (default <output-dir>/).",
            ),
        ] = None,
        profile: Annotated[
            str, typer.Option("--profile", help="quick (minutes on a laptop CPU) | full.")
        ] = "quick",
        config: Annotated[
            Optional[Path],
            typer.Option("--config", help="TOML file with any setting; flags override it."),
        ] = None,
        seed: Annotated[
            Optional[int], typer.Option("--seed", help="Random seed (default 0).")
        ] = None,
        resume: Annotated[
            bool, typer.Option("--resume", help="Continue an interrupted run in --output-dir.")
        ] = False,
        overwrite: Annotated[
            bool, typer.Option("--overwrite", help="Replace a previous run in --output-dir.")
        ] = False,
        walk_forward: Annotated[
            int,
            typer.Option(
                "--walk-forward",
                help="K >= 2: K expanding-window folds over the end of the data, each with its own "
                "forecasters, policies and test block (1 = one chronological split).",
            ),
        ] = 1,
        no_gate: Annotated[
            bool,
            typer.Option(
                "--no-gate",
                help="Ship the best learned policy even when a standard allocator beat it on "
                "validation.",
            ),
        ] = False,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More logging.")] = False,
    ) -> None:
        """Train the generic forecaster, specialists and portfolio policies; evaluate on test."""
        import logging

        from jaxport.distributed import initialize_distributed

        # multi-host: join the JAX cluster (JAXPORT_* variables, or SLURM / Open MPI / ...)
        # before anything starts the XLA backend; a no-op without those variables
        initialize_distributed(auto_detect=True)
        from jaxport.pipeline.config import build_config

        logging.basicConfig(
            level=logging.INFO if verbose else logging.WARNING, format="%(message)s"
        )
        overrides = _overrides(
            output_dir=output_dir,
            tensorboard_dir=tensorboard_dir,
            summary_path=summary_path,
            wandb_project=wandb_project,
            wandb_entity=wandb_entity,
            seed=seed,
            skip_base=skip_base or None,
            skip_specialists=skip_specialists or None,
            skip_rl=skip_rl or None,
            base_checkpoint=base_checkpoint,
            verbose=verbose or None,
            data__trainingdata_dir=trainingdata_dir,
            data__base_symbols=parse_symbols(base_stocks),
            data__specialist_symbols=parse_symbols(specialist_stocks),
            data__pairs=_parse_pairs(pair),
            data__features=features,
            data__sequence_length=sequence_length,
            data__toto_horizon=toto_horizon,
            data__toto_targets=_parse_targets(toto_targets),
            data__disable_toto=disable_toto or None,
            data__crossfit_blocks=crossfit_blocks,
            base__steps=base_steps,
            base__batch_size=base_batch_size,
            base__learning_rate=base_learning_rate,
            finetune__epochs=finetune_epochs,
            finetune__learning_rate=finetune_learning_rate,
            rl__epochs=rl_epochs,
            rl__learning_rate=rl_learning_rate,
            rl__batch_size=rl_batch_size,
            rl__hidden_size=rl_hidden_size,
            rl__num_layers=rl_num_layers,
            rl__num_heads=rl_num_heads,
            rl__algo=rl_algo,
            rl__scope=rl_scope,
            rl__seeds=rl_seeds,
            rl__turnover_penalty=turnover_penalty,
            rl__rebalance_rate=rebalance_rate,
            rl__feature_noise=feature_noise,
            rl__weight_decay=rl_weight_decay,
            rl__devices=devices,
            rl__transaction_cost_bps=transaction_cost_bps,
            rl__risk_penalty=risk_penalty,
            rl__leverage_limit=leverage_limit,
            rl__borrowing_cost=borrowing_cost,
            rl__trading_days_per_year=trading_days_per_year,
        )
        if walk_forward < 1:
            fail(f"--walk-forward {walk_forward}: the number of folds must be >= 1")
        cfg = build_config(profile, config, overrides)
        code = run_with_progress(
            cfg,
            resume=resume,
            overwrite=overwrite,
            console=console,
            err_console=err_console,
            walk_forward=walk_forward,
            gate=not no_gate,
        )
        if code != ExitCode.OK:
            raise typer.Exit(int(code))
