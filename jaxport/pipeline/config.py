"""Resolved configuration of a ``jaxport train`` run: profiles, TOML files and CLI overrides.

Precedence, lowest first: profile defaults (``quick`` or ``full``) -> ``--config FILE`` (TOML) -> CLI
flags. Every field is plain data so the whole configuration is written into ``pipeline_summary.json``.
Units: ``transaction_cost_bps`` in basis points (10 = 0.10 % of traded notional); ``borrowing_cost``
annual fraction (0.0675 = 6.75 %/yr) on exposure beyond 1x equity; ``leverage_limit`` max gross
exposure in multiples of equity.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from jaxport.data import DataError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ORIGINAL_BASE_STOCKS = ("AAPL", "AMZN", "MSFT", "NVDA", "GOOGL")
ORIGINAL_SPECIALIST_STOCKS = ("AAPL", "AMZN", "MSFT")
PROFILES = ("quick", "full")
RL_ALGOS = ("ppo", "gradient", "both")
FEATURE_SETS = ("toto", "stat", "toto+stat")


@dataclasses.dataclass
class DataConfig:
    trainingdata_dir: str = "trainingdata"
    base_symbols: list[str] | None = None  # None: original defaults if present, else all discovered
    specialist_symbols: list[str] | None = None  # None: original defaults if present, else first 3
    pairs: list[list[str]] | None = None  # None: adjacent pairs of the specialists
    split: list[float] = dataclasses.field(default_factory=lambda: [0.7, 0.15, 0.15])
    features: str = "toto"  # toto = our forecaster's features; stat = statistical fallback
    sequence_length: int = 60  # days of history behind the statistical forecast features
    toto_horizon: int = 8  # forecast steps h = 1..horizon per target column
    toto_targets: list[str] = dataclasses.field(default_factory=lambda: ["close", "open", "high", "low"])
    disable_toto: bool = False  # use the statistical fallback even when a forecaster exists


@dataclasses.dataclass
class BaseConfig:
    """Generic forecaster (stage 1): Toto-style patch transformer and its training budget."""

    steps: int = 500  # max optimiser steps (--base-steps)
    batch_size: int = 128  # windows per step (--base-batch-size)
    learning_rate: float = 3e-3  # peak AdamW learning rate (--base-learning-rate)
    epochs: int = 6  # passes over the pooled training windows (capped by steps)
    warmup_steps: int = 30
    patience: int = 2  # epochs without validation improvement before early stopping
    max_val_windows: int | None = 2048  # validation windows per epoch (strided subsample)
    log_every: int = 25  # steps between TensorBoard train-loss points
    context: int = 64  # days of input history
    patch: int = 8  # days per patch token
    d_model: int = 32
    num_layers: int = 2
    num_heads: int = 2
    mlp_ratio: int = 2
    dropout: float = 0.0


@dataclasses.dataclass
class FinetuneConfig:
    """Per-symbol specialists (stage 2)."""

    epochs: int = 3  # passes over the symbol's training windows (0: no fine-tuning)
    learning_rate: float = 6e-4
    max_steps: int = 150


@dataclasses.dataclass
class RLConfig:
    """Portfolio RL per pair (stage 3)."""

    algo: str = "both"  # ppo | gradient | both (the better on validation is kept)
    epochs: int = 60  # training updates (PPO updates or gradient steps)
    learning_rate: float = 3e-4  # PPO (and the gradient method unless gradient_learning_rate is set)
    gradient_learning_rate: float | None = 1e-3  # None: use learning_rate
    batch_size: int = 256  # parallel environments per update
    num_steps: int = 64  # PPO steps per rollout; BPTT chunk for the gradient method
    episode_length: int = 128  # training episode length in days
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    policy: str = "mlp"  # gradient method's policy: mlp | transformer
    window: int = 1  # days of features in the observation
    transaction_cost_bps: float = 10.0
    risk_penalty: float = 0.1
    leverage_limit: float = 2.0
    borrowing_cost: float = 0.0675
    trading_days_per_year: int = 252


@dataclasses.dataclass
class PipelineConfig:
    profile: str = "quick"
    seed: int = 0
    output_dir: str = "runs/models"
    tensorboard_dir: str = "runs/logs"
    summary_path: str | None = None  # default: <output_dir>/pipeline_summary.json
    wandb_project: str | None = None
    wandb_entity: str | None = None
    skip_base: bool = False
    skip_specialists: bool = False
    skip_rl: bool = False
    base_checkpoint: str | None = None  # restore the generic forecaster from here instead of training
    verbose: bool = False
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    base: BaseConfig = dataclasses.field(default_factory=BaseConfig)
    finetune: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)
    rl: RLConfig = dataclasses.field(default_factory=RLConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def resolved_summary_path(self) -> Path:
        return Path(self.summary_path) if self.summary_path else Path(self.output_dir) / "pipeline_summary.json"


FULL_PROFILE: dict[str, dict[str, Any]] = {
    "base": {"steps": 4000, "batch_size": 256, "learning_rate": 5e-4, "epochs": 15, "warmup_steps": 200,
             "patience": 3, "max_val_windows": None, "context": 128, "d_model": 192, "num_layers": 4,
             "num_heads": 6, "mlp_ratio": 4, "dropout": 0.1},
    "finetune": {"epochs": 7, "learning_rate": 1e-4, "max_steps": 1300},
    "rl": {"epochs": 500, "batch_size": 2048, "episode_length": 252},
}

SECTIONS = {"data": DataConfig, "base": BaseConfig, "finetune": FinetuneConfig, "rl": RLConfig}


def _apply(target: Any, values: dict[str, Any], origin: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(target)}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in fields:
            raise DataError(f"{origin}: unknown setting {key!r}; expected one of {', '.join(sorted(fields))}")
        current = getattr(target, name)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise DataError(f"{origin}: [{name}] must be a table")
            _apply(current, value, f"{origin} [{name}]")
            continue
        setattr(target, name, value)


def build_config(
    profile: str = "quick",
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> PipelineConfig:
    """Profile defaults, then the TOML file, then ``overrides`` (nested dict, CLI flags)."""
    if profile not in PROFILES:
        raise DataError(f"--profile {profile!r}: expected one of {', '.join(PROFILES)}")
    config = PipelineConfig(profile=profile)
    if profile == "full":
        _apply(config, FULL_PROFILE, "profile full")
    if config_file is not None:
        path = Path(config_file)
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"--config {path}: file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise DataError(f"--config {path}: invalid TOML ({exc})") from None
        if "profile" in values and values["profile"] != profile:
            raise DataError(f"--config {path}: set the profile with --profile, not in the file")
        _apply(config, values, f"--config {path}")
    if overrides:
        _apply(config, overrides, "command line")
    validate_config(config)
    return config


def validate_config(config: PipelineConfig) -> None:
    """One-line ``DataError`` naming the flag for values out of range."""
    rl, data, base = config.rl, config.data, config.base
    checks = [
        (rl.algo in RL_ALGOS, f"--rl-algo {rl.algo!r}: expected one of {', '.join(RL_ALGOS)}"),
        (data.features in FEATURE_SETS, f"--features {data.features!r}: expected one of {', '.join(FEATURE_SETS)}"),
        (rl.policy in ("mlp", "transformer"), f"rl.policy {rl.policy!r}: expected mlp or transformer"),
        (rl.leverage_limit > 0, f"--leverage-limit {rl.leverage_limit}: must be > 0"),
        (rl.borrowing_cost >= 0, f"--borrowing-cost {rl.borrowing_cost}: must be >= 0 (annual fraction)"),
        (rl.transaction_cost_bps >= 0, f"--transaction-cost-bps {rl.transaction_cost_bps}: must be >= 0"),
        (rl.risk_penalty >= 0, f"--risk-penalty {rl.risk_penalty}: must be >= 0"),
        (rl.trading_days_per_year > 0, f"--trading-days-per-year {rl.trading_days_per_year}: must be > 0"),
        (rl.epochs > 0, f"--rl-epochs {rl.epochs}: must be > 0"),
        (rl.batch_size > 0, f"--rl-batch-size {rl.batch_size}: must be > 0"),
        (rl.learning_rate > 0, f"--rl-learning-rate {rl.learning_rate}: must be > 0"),
        (rl.episode_length > 1, f"rl.episode_length {rl.episode_length}: must be > 1"),
        (base.steps > 0, f"--base-steps {base.steps}: must be > 0"),
        (base.batch_size > 0, f"--base-batch-size {base.batch_size}: must be > 0"),
        (base.learning_rate > 0, f"--base-learning-rate {base.learning_rate}: must be > 0"),
        (base.context % base.patch == 0, f"base.context {base.context} must be a multiple of base.patch {base.patch}"),
        (config.finetune.epochs >= 0, f"--finetune-epochs {config.finetune.epochs}: must be >= 0"),
        (config.finetune.learning_rate > 0, f"--finetune-learning-rate {config.finetune.learning_rate}: must be > 0"),
        (data.sequence_length >= 2, f"--sequence-length {data.sequence_length}: must be >= 2"),
        (data.toto_horizon >= 1, f"--toto-horizon {data.toto_horizon}: must be >= 1"),
        (bool(data.toto_targets), "--toto-targets: give at least one of close,open,high,low"),
        (all(t in ("close", "open", "high", "low") for t in data.toto_targets),
         f"--toto-targets {','.join(data.toto_targets)}: each must be one of close,open,high,low"),
    ]
    for ok, message in checks:
        if not ok:
            raise DataError(message)
    for pair in data.pairs or []:
        if len(pair) < 2 or len(set(pair)) != len(pair):
            raise DataError(f"--pair {','.join(pair)}: need two or more distinct symbols")
