"""Resolved configuration of a ``jaxport train`` run: profiles, TOML files and CLI overrides.

Precedence, lowest first: profile defaults (``quick`` or ``full``) -> a TOML file -> command-line
overrides. Every field is plain data, so the whole configuration is written into
``pipeline_summary.json``.
Units: ``transaction_cost_bps`` in basis points (10 = 0.10 % of traded notional); ``borrowing_cost``
annual fraction (0.0675 = 6.75 %/yr) on exposure beyond 1x equity; ``leverage_limit`` max gross
exposure in multiples of equity.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Sequence

from jaxport.data import min_rows_for
from jaxport.errors import ConfigError
from jaxport.forecast.config import ForecasterConfig, TrainConfig
from jaxport.forecast.config import profile as forecaster_profile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ORIGINAL_BASE_STOCKS = ("AAPL", "AMZN", "MSFT", "NVDA", "GOOGL")
ORIGINAL_SPECIALIST_STOCKS = ("AAPL", "AMZN", "MSFT")
PROFILES = ("quick", "full")
RL_ALGOS = ("ppo", "gradient", "both")
RL_SCOPES = ("universe", "pair")
RL_OBJECTIVES = ("mean-variance", "sharpe", "log-growth")  # jaxport.rl.universe.OBJECTIVES
#: anchor rule -> (volatility-timing exponent eta, volatility-managed gross) of the universe policy
RL_ANCHOR_RULES = {
    "equal_weight": (0.0, False),
    "inverse_volatility": (0.5, False),
    "volatility_timing": (None, False),  # eta = rl.anchor_eta
    "vol_managed_equal_weight": (0.0, True),
}
RL_ANCHORS = ("none", *RL_ANCHOR_RULES)
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
    toto_targets: list[str] = dataclasses.field(
        default_factory=lambda: ["close", "open", "high", "low"]
    )
    disable_toto: bool = False  # use the statistical fallback even when a forecaster exists
    # Cross-fitted (out-of-sample) forecast features for the train/validation rows: K blocks, each
    # featurised by forecasters fitted without it (embargo toto_horizon days); 0: one model for all
    crossfit_blocks: int = 3
    forecast_moments: str = "mean+std"  # forecast columns fed to RL: mean+std | std (no means)


#: BaseConfig fields read from a forecaster profile's TrainConfig / ForecasterConfig (same names;
#: ``steps`` is ``TrainConfig.max_steps``).
_TRAIN_FIELDS = (
    "batch_size",
    "learning_rate",
    "epochs",
    "warmup_steps",
    "patience",
    "max_val_windows",
    "log_every",
)
_NET_FIELDS = ("context", "patch", "d_model", "num_layers", "num_heads", "mlp_ratio", "dropout")


def _profile_fields(name: str) -> dict[str, Any]:
    """BaseConfig values of forecaster profile ``name`` (``jaxport.forecast.PROFILES``, their one
    definition)."""
    net, train = forecaster_profile(name)
    fields = {"steps": train.max_steps}
    fields.update({f: getattr(train, f) for f in _TRAIN_FIELDS})
    fields.update({f: getattr(net, f) for f in _NET_FIELDS})
    return fields


_QUICK = _profile_fields("quick")


@dataclasses.dataclass
class BaseConfig:
    """Generic forecaster (stage 1): Toto-style patch transformer and its training budget.

    Defaults are the ``quick`` forecaster profile; :meth:`from_profile` reads any other one.
    """

    steps: int = _QUICK["steps"]  # max optimiser steps
    batch_size: int = _QUICK["batch_size"]  # windows per step
    learning_rate: float = _QUICK["learning_rate"]  # peak AdamW learning rate
    epochs: int = _QUICK["epochs"]  # passes over the pooled training windows (capped by steps)
    warmup_steps: int = _QUICK["warmup_steps"]
    patience: int = _QUICK["patience"]  # epochs without validation improvement before stopping
    max_val_windows: int | None = _QUICK["max_val_windows"]  # validation windows per epoch
    log_every: int = _QUICK["log_every"]  # steps between TensorBoard train-loss points
    context: int = _QUICK["context"]  # days of input history
    patch: int = _QUICK["patch"]  # days per patch token
    d_model: int = _QUICK["d_model"]
    num_layers: int = _QUICK["num_layers"]
    num_heads: int = _QUICK["num_heads"]
    mlp_ratio: int = _QUICK["mlp_ratio"]
    dropout: float = _QUICK["dropout"]

    @classmethod
    def from_profile(cls, name: str) -> BaseConfig:
        """The forecaster profile ``name`` (``quick``, ``full``, ``large``) as a BaseConfig."""
        return cls(**_profile_fields(name))

    def forecaster_configs(
        self, *, horizon: int, targets: Sequence[str], seed: int
    ) -> tuple[ForecasterConfig, TrainConfig]:
        """``(ForecasterConfig, TrainConfig)`` that stage 1 trains; ``horizon`` (days) and
        ``targets`` come from the data section, ``seed`` from the run."""
        net = ForecasterConfig(
            horizon=horizon,
            targets=tuple(targets),
            **{f: getattr(self, f) for f in _NET_FIELDS},
        )
        train = TrainConfig(
            max_steps=self.steps, seed=seed, **{f: getattr(self, f) for f in _TRAIN_FIELDS}
        )
        return net, train


@dataclasses.dataclass
class FinetuneConfig:
    """Per-symbol specialists (stage 2)."""

    epochs: int = 3  # passes over the symbol's training windows (0: no fine-tuning)
    learning_rate: float = 6e-4
    max_steps: int = 150


@dataclasses.dataclass
class RLConfig:
    """Portfolio RL per pair (stage 3)."""

    scope: str = "universe"  # universe: one policy over every base-symbol pair | pair: one per pair
    algo: str = "gradient"  # gradient | ppo | both (both trained; the better on validation kept)
    epochs: int = 60  # training updates (PPO updates or gradient steps)
    learning_rate: float = 3e-4  # PPO; the gradient method too if gradient_learning_rate is None
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
    # --- universe scope (jaxport.rl.universe); per-step units, not annualised
    seeds: int = 4  # population seeds, vmapped in one compiled program (universe scope)
    # defaults from benchmarks/universe_oos.py (21 pairs x 3 walk-forward folds): each of these
    # raised the test Sharpe gap to 1/N in every fold; weight decay made no difference
    turnover_penalty: float = 0.002  # x mean daily turnover sum|dw| (fraction of equity)
    rebalance_rate: float = 0.25  # executed = w + rate * (target - w), in (0, 1]
    feature_noise: float = 0.3  # std of Gaussian noise on standardised features (training only)
    weight_decay: float = 1e-4  # AdamW decoupled weight decay (universe policy)
    grid: dict = dataclasses.field(default_factory=dict)  # universe population: {field: [values]}
    devices: int | None = None  # devices the RL batch is sharded over (None: all local devices)
    # --- what is learned and judged (universe scope; the gate in every scope)
    objective: str = (
        "mean-variance"  # mean-variance | sharpe | log-growth: trained, selected, gated
    )
    # the rule the universe policy starts from and tilts away from (RL_ANCHORS): none (the
    # unanchored network, 1/N at init) | equal_weight | inverse_volatility | volatility_timing
    # (w ~ sigma^(-2 anchor_eta)) | vol_managed_equal_weight (1/N x min(max_gross, sigma_1y /
    # sigma_60d of the 1/N book))
    anchor: str = "none"
    anchor_eta: float = 1.0  # volatility_timing's exponent (0.5 = inverse volatility, 0 = 1/N)
    max_gross: float = 1.0  # anchored policy's gross exposure cap (multiples of equity)
    gate_fraction: float = 0.5  # last part of the validation block kept for the gate only


def sharded_batch(rl: RLConfig) -> tuple[int, str]:
    """``(size, setting)`` of the RL batch axis sharded over devices: the universe population
    (``rl.seeds`` x the ``rl.grid`` combinations) or, in pair scope, the env batch."""
    if rl.scope == "universe":
        combos = 1
        for values in dict(rl.grid).values():
            combos *= max(len(values), 1)
        return rl.seeds * combos, "rl.seeds"
    return rl.batch_size, "rl.batch_size"


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
    base_checkpoint: str | None = None  # restore the generic forecaster from here (no training)
    verbose: bool = False
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    base: BaseConfig = dataclasses.field(default_factory=BaseConfig)
    finetune: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)
    rl: RLConfig = dataclasses.field(default_factory=RLConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def resolved_summary_path(self) -> Path:
        return (
            Path(self.summary_path)
            if self.summary_path
            else Path(self.output_dir) / "pipeline_summary.json"
        )


#: What ``--profile full`` changes besides the forecaster (whose numbers are the ``full``
#: forecaster profile, ``jaxport.forecast.PROFILES``).
FULL_PROFILE: dict[str, dict[str, Any]] = {
    "finetune": {"epochs": 7, "learning_rate": 1e-4, "max_steps": 1300},
    "rl": {"epochs": 500, "batch_size": 2048, "episode_length": 252},
}

SECTIONS = {"data": DataConfig, "base": BaseConfig, "finetune": FinetuneConfig, "rl": RLConfig}


def _apply(target: Any, values: dict[str, Any], origin: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(target)}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in fields:
            raise ConfigError(
                f"{origin}: unknown setting {key!r}; expected one of {', '.join(sorted(fields))}"
            )
        current = getattr(target, name)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: [{name}] must be a table")
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
        raise ConfigError(f"profile {profile!r}: expected one of {', '.join(PROFILES)}")
    config = PipelineConfig(profile=profile, base=BaseConfig.from_profile(profile))
    if profile == "full":
        _apply(config, FULL_PROFILE, "profile full")
    if config_file is not None:
        path = Path(config_file)
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config_file {path}: file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config_file {path}: invalid TOML ({exc})") from None
        if "profile" in values and values["profile"] != profile:
            raise ConfigError(
                f"config_file {path}: profile {values['profile']!r} differs from the chosen "
                f"profile {profile!r}"
            )
        _apply(config, values, f"config_file {path}")
    if overrides:
        _apply(config, overrides, "command line")
    validate_config(config)
    return config


def validate_config(config: PipelineConfig) -> None:
    """One-line ``ConfigError`` naming the setting (e.g. ``rl.leverage_limit``) out of range."""
    rl, data, base = config.rl, config.data, config.base
    from jaxport.rl.universe import DYNAMIC_FIELDS as UNIVERSE_GRID_FIELDS  # rl.grid keys

    checks = [
        (rl.algo in RL_ALGOS, f"rl.algo {rl.algo!r}: expected one of {', '.join(RL_ALGOS)}"),
        (rl.scope in RL_SCOPES, f"rl.scope {rl.scope!r}: expected one of {', '.join(RL_SCOPES)}"),
        (rl.seeds >= 1, f"rl.seeds {rl.seeds}: must be >= 1"),
        (rl.turnover_penalty >= 0, f"rl.turnover_penalty {rl.turnover_penalty}: must be >= 0"),
        (
            0.0 < rl.rebalance_rate <= 1.0,
            f"rl.rebalance_rate {rl.rebalance_rate}: must be in (0, 1]",
        ),
        (rl.feature_noise >= 0, f"rl.feature_noise {rl.feature_noise}: must be >= 0"),
        (rl.weight_decay >= 0, f"rl.weight_decay {rl.weight_decay}: must be >= 0"),
        (
            rl.objective in RL_OBJECTIVES,
            f"rl.objective {rl.objective!r}: expected one of {', '.join(RL_OBJECTIVES)}",
        ),
        (
            rl.anchor in RL_ANCHORS,
            f"rl.anchor {rl.anchor!r}: expected one of {', '.join(RL_ANCHORS)}",
        ),
        (rl.anchor_eta >= 0, f"rl.anchor_eta {rl.anchor_eta}: must be >= 0"),
        (
            rl.scope == "universe" or (rl.objective == "mean-variance" and rl.anchor == "none"),
            f"rl.objective {rl.objective!r} / rl.anchor {rl.anchor!r}: act in universe scope "
            "only (the pair-scope trainers optimise mean-variance from 1/N); use rl.scope "
            "universe",
        ),
        (
            0.0 < rl.max_gross < rl.leverage_limit or rl.anchor == "none",
            f"rl.max_gross {rl.max_gross}: must be in (0, rl.leverage_limit={rl.leverage_limit})",
        ),
        (
            0.0 <= rl.gate_fraction <= 0.9,
            f"rl.gate_fraction {rl.gate_fraction}: must be in [0, 0.9] (0: gate on the "
            "selection rows)",
        ),
        (
            isinstance(rl.grid, dict) and set(rl.grid) <= set(UNIVERSE_GRID_FIELDS),
            f"rl.grid {sorted(rl.grid) if isinstance(rl.grid, dict) else rl.grid!r}: keys must "
            f"be among {', '.join(UNIVERSE_GRID_FIELDS)}",
        ),
        (
            all(
                isinstance(v, (list, tuple))
                and len(v) > 0
                and all(isinstance(x, (int, float)) for x in v)
                for v in (rl.grid.values() if isinstance(rl.grid, dict) else [])
            ),
            "rl.grid: every entry must be a non-empty list of numbers",
        ),
        (
            rl.devices is None or rl.devices >= 1,
            f"rl.devices {rl.devices}: must be >= 1 (or unset for every local device)",
        ),
        (
            data.features in FEATURE_SETS,
            f"data.features {data.features!r}: expected one of {', '.join(FEATURE_SETS)}",
        ),
        (
            rl.policy in ("mlp", "transformer"),
            f"rl.policy {rl.policy!r}: expected mlp or transformer",
        ),
        (rl.leverage_limit > 0, f"rl.leverage_limit {rl.leverage_limit}: must be > 0"),
        (
            rl.borrowing_cost >= 0,
            f"rl.borrowing_cost {rl.borrowing_cost}: must be >= 0 (annual fraction)",
        ),
        (
            rl.transaction_cost_bps >= 0,
            f"rl.transaction_cost_bps {rl.transaction_cost_bps}: must be >= 0",
        ),
        (rl.risk_penalty >= 0, f"rl.risk_penalty {rl.risk_penalty}: must be >= 0"),
        (
            rl.trading_days_per_year > 0,
            f"rl.trading_days_per_year {rl.trading_days_per_year}: must be > 0",
        ),
        (rl.epochs > 0, f"rl.epochs {rl.epochs}: must be > 0"),
        (rl.batch_size > 0, f"rl.batch_size {rl.batch_size}: must be > 0"),
        (rl.learning_rate > 0, f"rl.learning_rate {rl.learning_rate}: must be > 0"),
        (rl.episode_length > 1, f"rl.episode_length {rl.episode_length}: must be > 1"),
        (base.steps > 0, f"base.steps {base.steps}: must be > 0"),
        (base.batch_size > 0, f"base.batch_size {base.batch_size}: must be > 0"),
        (base.learning_rate > 0, f"base.learning_rate {base.learning_rate}: must be > 0"),
        (
            base.context % base.patch == 0,
            f"base.context {base.context} must be a multiple of base.patch {base.patch}",
        ),
        (config.finetune.epochs >= 0, f"finetune.epochs {config.finetune.epochs}: must be >= 0"),
        (
            config.finetune.learning_rate > 0,
            f"finetune.learning_rate {config.finetune.learning_rate}: must be > 0",
        ),
        (data.sequence_length >= 2, f"data.sequence_length {data.sequence_length}: must be >= 2"),
        (data.toto_horizon >= 1, f"data.toto_horizon {data.toto_horizon}: must be >= 1"),
        (
            data.crossfit_blocks == 0 or data.crossfit_blocks >= 2,
            f"data.crossfit_blocks {data.crossfit_blocks}: must be 0 (off) or >= 2",
        ),
        (
            data.forecast_moments in ("mean+std", "std"),
            f"data.forecast_moments {data.forecast_moments!r}: expected mean+std or std",
        ),
        (bool(data.toto_targets), "data.toto_targets: give at least one of close,open,high,low"),
        (
            all(t in ("close", "open", "high", "low") for t in data.toto_targets),
            f"data.toto_targets {','.join(data.toto_targets)}: "
            "each must be one of close,open,high,low",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    for pair in data.pairs or []:
        if len(pair) < 2 or len(set(pair)) != len(pair):
            raise ConfigError(f"data.pairs {','.join(pair)}: need two or more distinct symbols")


def min_rows_needed(config: PipelineConfig) -> int:
    """Fewest aligned rows (days) a run with ``config`` can train on (``jaxport data check`` too).

    Warm-up: the forecaster context or the feature window (whichever is longer) plus one day, or the
    observation window; then the chronological ``data.split`` with ``data.toto_horizon``-day
    targets.
    """
    warmup = max(config.base.context, config.data.sequence_length, config.rl.window - 1) + 1
    return min_rows_for(warmup, config.data.split, horizon=config.data.toto_horizon)
