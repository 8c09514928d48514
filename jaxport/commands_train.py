"""``jaxport train``: the three-stage pipeline, with the original trainer's flags."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from jaxport.cli import EXIT_USAGE, console, err_console, fail, parse_symbols

EXIT_INTERRUPTED = 130


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


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        base_stocks: Annotated[Optional[str], typer.Option("--base-stocks", help="Symbols for the generic forecaster (default AAPL,AMZN,MSFT,NVDA,GOOGL when present, else all).")] = None,
        specialist_stocks: Annotated[Optional[str], typer.Option("--specialist-stocks", help="Symbols that get a fine-tuned specialist (default AAPL,AMZN,MSFT when present, else the first three).")] = None,
        trainingdata_dir: Annotated[Optional[str], typer.Option("--trainingdata-dir", help="Folder of SYMBOL.csv files (default trainingdata/, else tototraining/trainingdata/train).")] = None,
        output_dir: Annotated[Optional[str], typer.Option("--output-dir", help="Checkpoints and pipeline_summary.json (default runs/models).")] = None,
        tensorboard_dir: Annotated[Optional[str], typer.Option("--tensorboard-dir", help="TensorBoard event files (default runs/logs).")] = None,
        wandb_project: Annotated[Optional[str], typer.Option("--wandb-project", help="Log to this wandb project too (optional dependency; offline if unreachable).")] = None,
        wandb_entity: Annotated[Optional[str], typer.Option("--wandb-entity", help="wandb entity (team or user).")] = None,
        pair: Annotated[Optional[list[str]], typer.Option("--pair", help="Basket for portfolio RL, e.g. AAPL,AMZN (repeatable; default adjacent specialist pairs).")] = None,
        skip_base: Annotated[bool, typer.Option("--skip-base", help="Do not train the generic forecaster (statistical features).")] = False,
        skip_specialists: Annotated[bool, typer.Option("--skip-specialists", help="Do not fine-tune specialists.")] = False,
        skip_rl: Annotated[bool, typer.Option("--skip-rl", help="Stop after the forecasters.")] = False,
        base_checkpoint: Annotated[Optional[str], typer.Option("--base-checkpoint", help="Restore the generic forecaster from this checkpoint instead of training it.")] = None,
        base_steps: Annotated[Optional[int], typer.Option("--base-steps", help="Max optimiser steps of the generic forecaster.")] = None,
        base_batch_size: Annotated[Optional[int], typer.Option("--base-batch-size", help="Windows per forecaster step.")] = None,
        base_learning_rate: Annotated[Optional[float], typer.Option("--base-learning-rate", help="Peak AdamW learning rate of the generic forecaster.")] = None,
        finetune_epochs: Annotated[Optional[int], typer.Option("--finetune-epochs", help="Specialist fine-tuning epochs (0 = none).")] = None,
        finetune_learning_rate: Annotated[Optional[float], typer.Option("--finetune-learning-rate", help="Specialist learning rate.")] = None,
        rl_epochs: Annotated[Optional[int], typer.Option("--rl-epochs", help="RL training updates per pair.")] = None,
        rl_learning_rate: Annotated[Optional[float], typer.Option("--rl-learning-rate", help="PPO learning rate (the gradient method uses rl.gradient_learning_rate, settable with --config).")] = None,
        rl_batch_size: Annotated[Optional[int], typer.Option("--rl-batch-size", help="Parallel environments per RL update.")] = None,
        rl_hidden_size: Annotated[Optional[int], typer.Option("--rl-hidden-size", help="Policy width.")] = None,
        rl_num_layers: Annotated[Optional[int], typer.Option("--rl-num-layers", help="Policy depth.")] = None,
        rl_num_heads: Annotated[Optional[int], typer.Option("--rl-num-heads", help="Attention heads of the transformer policy.")] = None,
        rl_algo: Annotated[Optional[str], typer.Option("--rl-algo", help="ppo | gradient | both (best on validation kept).")] = None,
        transaction_cost_bps: Annotated[Optional[float], typer.Option("--transaction-cost-bps", help="Trading cost in basis points of traded notional (default 10).")] = None,
        risk_penalty: Annotated[Optional[float], typer.Option("--risk-penalty", help="Return-variance penalty of the gradient objective (default 0.1).")] = None,
        leverage_limit: Annotated[Optional[float], typer.Option("--leverage-limit", help="Max gross exposure, multiples of equity (default 2.0).")] = None,
        borrowing_cost: Annotated[Optional[float], typer.Option("--borrowing-cost", help="Annual financing rate on exposure beyond 1x equity, fraction (default 0.0675).")] = None,
        trading_days_per_year: Annotated[Optional[int], typer.Option("--trading-days-per-year", help="Periods per year for financing and annualisation (default 252).")] = None,
        sequence_length: Annotated[Optional[int], typer.Option("--sequence-length", help="Days behind the statistical forecast features (default 60).")] = None,
        toto_horizon: Annotated[Optional[int], typer.Option("--toto-horizon", help="Forecast steps per target (default 8).")] = None,
        toto_targets: Annotated[Optional[str], typer.Option("--toto-targets", help="Forecast columns (default close,open,high,low).")] = None,
        disable_toto: Annotated[bool, typer.Option("--disable-toto", help="Use the statistical fallback features.")] = False,
        features: Annotated[Optional[str], typer.Option("--features", help="toto (our forecaster) | stat (fallback) | toto+stat (forecast + indicators).")] = None,
        summary_path: Annotated[Optional[str], typer.Option("--summary-path", help="Where to write pipeline_summary.json (default <output-dir>/).")] = None,
        profile: Annotated[str, typer.Option("--profile", help="quick (minutes on a laptop CPU) | full.")] = "quick",
        config: Annotated[Optional[Path], typer.Option("--config", help="TOML file with any setting; flags override it.")] = None,
        seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed (default 0).")] = None,
        resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in --output-dir.")] = False,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a previous run in --output-dir.")] = False,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More logging.")] = False,
    ) -> None:
        """Train the generic forecaster, the specialists and the portfolio policies; evaluate on test."""
        import logging

        from jaxport.pipeline.config import build_config

        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
        overrides = _overrides(
            output_dir=output_dir, tensorboard_dir=tensorboard_dir, summary_path=summary_path,
            wandb_project=wandb_project, wandb_entity=wandb_entity, seed=seed,
            skip_base=skip_base or None, skip_specialists=skip_specialists or None, skip_rl=skip_rl or None,
            base_checkpoint=base_checkpoint, verbose=verbose or None,
            data__trainingdata_dir=trainingdata_dir, data__base_symbols=parse_symbols(base_stocks),
            data__specialist_symbols=parse_symbols(specialist_stocks), data__pairs=_parse_pairs(pair),
            data__features=features, data__sequence_length=sequence_length, data__toto_horizon=toto_horizon,
            data__toto_targets=_parse_targets(toto_targets), data__disable_toto=disable_toto or None,
            base__steps=base_steps, base__batch_size=base_batch_size, base__learning_rate=base_learning_rate,
            finetune__epochs=finetune_epochs, finetune__learning_rate=finetune_learning_rate,
            rl__epochs=rl_epochs, rl__learning_rate=rl_learning_rate, rl__batch_size=rl_batch_size,
            rl__hidden_size=rl_hidden_size, rl__num_layers=rl_num_layers, rl__num_heads=rl_num_heads,
            rl__algo=rl_algo, rl__transaction_cost_bps=transaction_cost_bps, rl__risk_penalty=risk_penalty,
            rl__leverage_limit=leverage_limit, rl__borrowing_cost=borrowing_cost,
            rl__trading_days_per_year=trading_days_per_year,
        )
        cfg = build_config(profile, config, overrides)
        from jaxport.pipeline.progress import run_with_progress

        code = run_with_progress(cfg, resume=resume, overwrite=overwrite, console=console, err_console=err_console)
        if code:
            raise typer.Exit(code)


__all__ = ["register", "EXIT_USAGE", "EXIT_INTERRUPTED"]
