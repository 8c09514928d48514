"""Resolved configuration of a ``jaxport train`` run: profiles, TOML files and CLI overrides.

Precedence, lowest first: profile defaults (``quick`` or ``full``) -> a TOML file -> command-line
overrides. Every field is plain data, so the whole configuration is written into
``pipeline_summary.json``; every field is declared once with
:func:`~jaxport.pipeline.config_schema.setting` (help text with units, flag, where it acts), and
``jaxport train`` derives its flags from these declarations.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Sequence

from jaxport.errors import ConfigError
from jaxport.forecast.config import ForecasterConfig, TrainConfig
from jaxport.forecast.config import profile as forecaster_profile
from jaxport.pipeline.config_schema import setting

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ORIGINAL_BASE_STOCKS = ("AAPL", "AMZN", "MSFT", "NVDA", "GOOGL")
ORIGINAL_SPECIALIST_STOCKS = ("AAPL", "AMZN", "MSFT")
PROFILES = ("quick", "full")
RL_ALGOS = ("ppo", "gradient", "both")
RL_SCOPES = ("universe", "pair")
#: ``jaxport.rl.universe.OBJECTIVES``, repeated here because this module stays jax-free (``jaxport
#: train --help`` imports it); tests/test_config_cli.py checks that the two agree.
RL_OBJECTIVES = ("mean-variance", "sharpe", "log-growth")
#: anchor rule -> (volatility-timing exponent eta, volatility-managed gross) of the universe policy
RL_ANCHOR_RULES = {
    "equal_weight": (0.0, False),
    "inverse_volatility": (0.5, False),
    "volatility_timing": (None, False),  # eta = rl.anchor_eta
    "vol_managed_equal_weight": (0.0, True),
}
RL_ANCHORS = ("none", *RL_ANCHOR_RULES)
#: what a learned policy must beat on the gate rows: every standard allocator, or the fallback only
GATE_RULES = ("every_baseline", "fallback")
#: standard allocators (jaxport.eval.default_allocators, any number of assets) that may ship as the
#: gate's fallback
GATE_FALLBACKS = (
    "equal_weight",
    "vol_managed_equal_weight",
    "inverse_volatility",
    "equal_minimum_variance",
    "minimum_variance",
    "risk_parity",
    "volatility_timing",
    "cash",
)
FEATURE_SETS = ("toto", "stat", "toto+stat")


# ---------------------------------------------------------------------------- where a setting acts
def pair_scope_only(config: Any) -> str | None:
    """Acts with ``rl.scope = "pair"`` only."""
    if config.rl.scope != "pair":
        return f"acts only with --rl-scope pair (the chosen scope is {config.rl.scope})"
    return None


def universe_scope_only(config: Any) -> str | None:
    """Acts with ``rl.scope = "universe"`` only."""
    if config.rl.scope != "universe":
        return f"acts only with --rl-scope universe (the chosen scope is {config.rl.scope})"
    return None


def anchored_only(config: Any) -> str | None:
    """Acts on an anchored universe policy (``rl.anchor`` not ``none``)."""
    return universe_scope_only(config) or (
        "acts only with an anchor (--anchor is none)" if config.rl.anchor == "none" else None
    )


def volatility_timing_anchor_only(config: Any) -> str | None:
    """Acts with ``rl.anchor = "volatility_timing"`` only."""
    if config.rl.anchor != "volatility_timing":
        return f"acts only with --anchor volatility_timing (the anchor is {config.rl.anchor})"
    return universe_scope_only(config)


def chooses_tilt_scale(rl: Any) -> bool:
    """Whether the universe stage chooses the learned tilt's scale (``rl.tilt_scales`` other than
    just 1)."""
    return rl.scope == "universe" and sorted({float(s) for s in rl.tilt_scales}) != [1.0]


def tilt_choice_only(config: Any) -> str | None:
    """Acts when the universe stage chooses the tilt scale (``rl.tilt_scales`` other than 1)."""
    reason = universe_scope_only(config)
    if reason is None and not chooses_tilt_scale(config.rl):
        reason = "acts only when --tilt-scales lists a scale other than 1"
    return reason


def gradient_trainer_only(config: Any) -> str | None:
    """Acts when a gradient trainer runs (``rl.algo`` gradient or both)."""
    if config.rl.algo == "ppo":
        return "acts only on the gradient trainer (--rl-algo gradient or both), not under ppo"
    return None


def universe_gradient_only(config: Any) -> str | None:
    """Acts on the universe gradient trainer only (universe PPO keeps its own optimiser)."""
    return universe_scope_only(config) or gradient_trainer_only(config)


def transformer_policy_only(config: Any) -> str | None:
    """Acts on the pair-scope gradient trainer's transformer policy only."""
    reason = pair_scope_only(config) or gradient_trainer_only(config)
    if reason is None and config.rl.policy != "transformer":
        reason = "acts only on the transformer policy (rl.policy = transformer)"
    return reason


def pair_gradient_only(config: Any) -> str | None:
    """Acts on the pair-scope gradient trainer only."""
    return pair_scope_only(config) or gradient_trainer_only(config)


# ---------------------------------------------------------------------------- sections
@dataclasses.dataclass
class DataConfig:
    """Data and forecast features."""

    trainingdata_dir: str = setting(
        "trainingdata",
        flag="--trainingdata-dir",
        help="Folder of SYMBOL.csv files (when missing: tototraining/trainingdata/train).",
    )
    base_symbols: list[str] | None = setting(
        None,
        flag="--base-stocks",
        parse="symbols",
        help="Symbols for the generic forecaster, comma-separated (none: AAPL,AMZN,MSFT,NVDA,GOOGL "
        "when present, else every CSV).",
    )
    specialist_symbols: list[str] | None = setting(
        None,
        flag="--specialist-stocks",
        parse="symbols",
        help="Symbols that get a fine-tuned specialist (none: AAPL,AMZN,MSFT when present, else "
        "the first three).",
    )
    pairs: list[list[str]] | None = setting(
        None,
        flag="--pair",
        parse="pairs",
        help="Basket evaluated (pair scope: trained) by portfolio RL, e.g. AAPL,AMZN; repeatable "
        "(none: adjacent specialist pairs).",
    )
    universe_symbols: list[str] | None = setting(
        None,
        flag="--universe-symbols",
        parse="symbols",
        acts=universe_scope_only,
        help="Symbols whose every pair trains the universe policy, with the basket symbols, "
        "comma-separated (none: the base symbols and every other symbol of the data folder that "
        "covers their dates, 20 at most).",
    )
    split: list[float] = setting(
        factory=lambda: [0.7, 0.15, 0.15],
        parse="floats",
        help="Chronological train,validation,test fractions of the rows.",
    )
    features: str = setting(
        "toto",
        flag="--features",
        help="RL features: toto (our forecaster) | stat (statistical fallback) | toto+stat "
        "(forecast + indicators).",
    )
    sequence_length: int = setting(
        60, flag="--sequence-length", help="Days of history behind the statistical features."
    )
    toto_horizon: int = setting(
        8, flag="--toto-horizon", help="Forecast steps h = 1..horizon per target (days)."
    )
    toto_targets: list[str] = setting(
        factory=lambda: ["close", "open", "high", "low"],
        flag="--toto-targets",
        parse="names",
        help="Forecast columns, comma-separated (close, open, high, low).",
    )
    disable_toto: bool = setting(
        False,
        flag="--disable-toto",
        help="Use the statistical fallback features even when a forecaster exists.",
    )
    crossfit_blocks: int = setting(
        3,
        flag="--crossfit-blocks",
        help="K: train/validation rows get forecast features from models fitted without their "
        "block (embargo toto_horizon days); 0: one model for all rows.",
    )
    forecast_moments: str = setting(
        "mean+std", help="Forecast columns fed to RL: mean+std | std (no means)."
    )


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

    steps: int = setting(_QUICK["steps"], help="Max optimiser steps of the generic forecaster.")
    batch_size: int = setting(_QUICK["batch_size"], help="Windows per forecaster step.")
    learning_rate: float = setting(
        _QUICK["learning_rate"], help="Peak AdamW learning rate of the generic forecaster."
    )
    epochs: int = setting(
        _QUICK["epochs"], help="Passes over the pooled training windows (capped by steps)."
    )
    warmup_steps: int = setting(_QUICK["warmup_steps"], help="Linear warm-up steps.")
    patience: int = setting(
        _QUICK["patience"], help="Epochs without validation improvement before stopping."
    )
    max_val_windows: int | None = setting(
        _QUICK["max_val_windows"], help="Validation windows per epoch (none: all)."
    )
    log_every: int = setting(_QUICK["log_every"], help="Steps between TensorBoard loss points.")
    context: int = setting(_QUICK["context"], help="Days of input history.")
    patch: int = setting(_QUICK["patch"], help="Days per patch token (divides context).")
    d_model: int = setting(_QUICK["d_model"], help="Transformer width.")
    num_layers: int = setting(_QUICK["num_layers"], help="Transformer layers.")
    num_heads: int = setting(_QUICK["num_heads"], help="Attention heads.")
    mlp_ratio: int = setting(_QUICK["mlp_ratio"], help="MLP width / d_model.")
    dropout: float = setting(_QUICK["dropout"], help="Dropout probability (fraction).")

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

    epochs: int = setting(3, help="Specialist fine-tuning epochs (0: none).")
    learning_rate: float = setting(6e-4, help="Specialist AdamW learning rate.")
    max_steps: int = setting(150, help="Max optimiser steps per specialist.")


#: Trainer defaults behind the ``None`` ("each trainer's own") values of :class:`RLConfig`.
PAIR_HIDDEN_SIZE, UNIVERSE_HIDDEN_SIZE = 64, 32
PAIR_NUM_STEPS, UNIVERSE_NUM_STEPS = 64, 32


@dataclasses.dataclass
class RLConfig:
    """Portfolio RL (stage 3): trainer, network, env costs, universe population and devices.

    Per-step units unless a name says annual. ``None`` means each trainer's own default (given in
    the help text).
    """

    # --- trainer
    scope: str = setting(
        "universe",
        help="universe: one policy trained on every pair of the universe symbols at once | pair: one "
        "policy per --pair.",
    )
    algo: str = setting(
        "gradient",
        help="gradient | ppo | both (both trained; the better on validation is kept).",
    )
    epochs: int = setting(60, help="RL training updates (PPO updates or gradient steps).")
    learning_rate: float | None = setting(
        None,
        help="AdamW learning rate of every RL trainer, per update (none: each trainer's own: pair "
        "PPO 3e-4, pair gradient 1e-3, universe gradient 3e-3, universe PPO 1e-3).",
    )
    gradient_learning_rate: float | None = setting(
        None,
        acts=gradient_trainer_only,
        help="Learning rate of the gradient trainers alone (none: --rl-learning-rate).",
    )
    batch_size: int = setting(
        256,
        help="Parallel environments per update (universe scope: in total, split over the "
        "baskets, at least 4 each).",
    )
    num_steps: int | None = setting(
        None,
        help=f"Env steps per update: PPO rollout length, gradient BPTT chunk; capped at "
        f"episode_length except pair PPO (none: {PAIR_NUM_STEPS} pair, {UNIVERSE_NUM_STEPS} "
        "universe).",
    )
    episode_length: int = setting(128, help="Training episode length (days).")
    hidden_size: int | None = setting(
        None,
        help=f"Policy width (none: {PAIR_HIDDEN_SIZE} pair, {UNIVERSE_HIDDEN_SIZE} universe, where "
        "it also sets the score-head width).",
    )
    num_layers: int = setting(2, help="Policy hidden layers (universe: per-asset encoder layers).")
    num_heads: int = setting(
        4, acts=transformer_policy_only, help="Attention heads of the transformer policy."
    )
    policy: str = setting(
        "mlp", acts=pair_gradient_only, help="Pair gradient trainer's policy: mlp | transformer."
    )
    window: int = setting(1, help="Days of features in the observation.")
    # --- env costs and objective
    transaction_cost_bps: float = setting(
        10.0,
        flag="--transaction-cost-bps",
        help="Trading cost in basis points of traded notional (10 = 0.10 %).",
    )
    risk_penalty: float = setting(
        0.1,
        flag="--risk-penalty",
        help="Penalty x per-step return variance (fraction^2) in the training objective.",
    )
    leverage_limit: float = setting(
        2.0, flag="--leverage-limit", help="Max gross exposure, multiples of equity."
    )
    borrowing_cost: float = setting(
        0.0675,
        flag="--borrowing-cost",
        help="Annual financing rate on exposure beyond 1x equity (fraction; 0.0675 = 6.75 %/yr).",
    )
    trading_days_per_year: int = setting(
        252,
        flag="--trading-days-per-year",
        help="Periods per year for financing and annualisation.",
    )
    # --- universe scope (jaxport.rl.universe); per-step units. The objective and regulariser
    # defaults were chosen on inner walk-forward folds that end before every reported test block
    # (benchmarks/default_selection.py; README "Choosing defaults without test rows").
    seeds: int = setting(
        4,
        acts=universe_scope_only,
        help="Seeds of the universe population, trained in one compiled program; the best on "
        "validation is kept.",
    )
    turnover_penalty: float = setting(
        0.002,
        flag="--turnover-penalty",
        acts=universe_scope_only,
        help="Penalty x mean daily turnover sum|dw| (fraction of equity) in the universe objective.",
    )
    rebalance_rate: float = setting(
        1.0,
        flag="--rebalance-rate",
        acts=universe_scope_only,
        help="Fraction of the gap to the target weights traded per day, in (0, 1] (universe).",
    )
    feature_noise: float = setting(
        0.3,
        flag="--feature-noise",
        acts=universe_scope_only,
        help="Std of Gaussian noise on standardised features during universe training.",
    )
    tilt_penalty: float = setting(
        # chosen on inner walk-forward folds (benchmarks/default_selection.py; a near tie with 0)
        1e-4,
        flag="--tilt-penalty",
        acts=universe_gradient_only,
        help="Penalty x mean daily sum_i |target_i - anchor_i| (fraction of equity: how far the "
        "target weights are from the anchor rule's) in the universe gradient objective.",
    )
    weight_decay: float = setting(
        1e-4,
        acts=universe_gradient_only,
        help="AdamW decoupled weight decay of the universe gradient trainer (per update).",
    )
    grid: dict = setting(
        factory=dict,
        cli=False,
        help="Universe population grid {field: [values]} (TOML only).",
    )
    # --- devices
    devices: int | None = setting(
        None,
        flag="--devices",
        help="Devices the RL batch is sharded over (none: as many local devices as divide it).",
    )
    # --- what is learned and judged (defaults chosen without test rows: README, "Choosing
    # defaults without test rows")
    objective: str = setting(
        "mean-variance",
        flag="--objective",
        acts=universe_scope_only,
        help="What the universe policy is trained, selected and gated on: sharpe (annualised "
        "Sharpe of daily returns) | mean-variance (mean daily log growth - risk_penalty x "
        "variance) | log-growth (mean daily log growth). Pair scope: mean-variance.",
    )
    anchor: str = setting(
        "vol_managed_equal_weight",
        flag="--anchor",
        acts=universe_scope_only,
        help="The rule the universe policy starts from and tilts away from: "
        "vol_managed_equal_weight (1/N x min(max_gross, 1-year / 60-day volatility of 1/N)) | "
        "equal_weight | inverse_volatility | volatility_timing (w ~ sigma^(-2 eta)) | none "
        "(unanchored network, 1/N at init, gross up to the leverage limit).",
    )
    anchor_eta: float = setting(
        1.0,
        flag="--anchor-eta",
        acts=volatility_timing_anchor_only,
        help="Exponent eta of the volatility_timing anchor (w ~ sigma^(-2 eta); 0.5 = inverse "
        "volatility, 0 = 1/N).",
    )
    max_gross: float = setting(
        1.0,
        flag="--max-gross",
        acts=anchored_only,
        help="Gross exposure cap of the anchored policy (multiples of equity; < the leverage "
        "limit; 1 = never levered).",
    )
    tilt_scales: list[float] = setting(
        factory=lambda: [1.0],
        flag="--tilt-scales",
        parse="floats",
        acts=universe_scope_only,
        help="Scales s in [0, 1] of the learned tilt, comma-separated: after training, each is "
        "scored by the validation objective on the tilt rows (--tilt-fraction) and the best ships "
        "(0 = the untrained start, i.e. the anchor rule; 1 = the trained policy; ties: the "
        "smaller).",
    )
    tilt_fraction: float = setting(
        0.5,
        flag="--tilt-fraction",
        acts=tilt_choice_only,
        help="Last fraction of the selection rows (before the gate's) kept for choosing the tilt "
        "scale: checkpoints and members never see them; 0 = choose on the selection rows.",
    )
    gate_fraction: float = setting(
        0.5,
        flag="--gate-fraction",
        help="Last fraction of the validation rows kept for the gate alone (selection never sees "
        "them); 0 = gate on the selection rows.",
    )
    gate_rule: str = setting(
        # chosen on inner walk-forward folds (benchmarks/default_selection.py; a near tie)
        "fallback",
        flag="--gate-rule",
        help="What a learned policy must beat on the gate rows (objective and Sharpe) to ship: "
        "every_baseline (every standard allocator) | fallback (only the --gate-fallback rule).",
    )
    gate_fallback: str = setting(
        "equal_weight",
        flag="--gate-fallback",
        help="The standard allocator shipped where no learned policy passes the gate: "
        + " | ".join(GATE_FALLBACKS)
        + ".",
    )


def uses_anchor(rl: RLConfig) -> bool:
    """Whether the policy is anchored (universe scope with ``rl.anchor`` not ``none``): then every
    basket's features end with the raw anchor columns (:mod:`jaxport.features.risk`)."""
    return rl.scope == "universe" and rl.anchor != "none"


def effective_objective(rl: RLConfig) -> str:
    """The objective the run trains, selects and gates on: ``rl.objective`` in universe scope,
    ``mean-variance`` in pair scope (its trainers optimise it)."""
    return rl.objective if rl.scope == "universe" else "mean-variance"


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
    """The run: its place on disk, tracking, which stages run, and the sections."""

    profile: str = setting("quick", cli=False, help="quick (minutes on a laptop CPU) | full.")
    seed: int = setting(0, help="Random seed of every stage.")
    output_dir: str = setting("runs/models", help="Checkpoints and pipeline_summary.json.")
    tensorboard_dir: str = setting("runs/logs", help="TensorBoard event files.")
    summary_path: str | None = setting(
        None, help="Where to write pipeline_summary.json (none: <output-dir>/)."
    )
    wandb_project: str | None = setting(
        None, help="Log to this wandb project too (optional dependency; offline if unreachable)."
    )
    wandb_entity: str | None = setting(None, help="wandb entity (team or user).")
    skip_base: bool = setting(
        False, help="Do not train the generic forecaster (statistical features)."
    )
    skip_specialists: bool = setting(False, help="Do not fine-tune specialists.")
    skip_rl: bool = setting(False, help="Stop after the forecasters.")
    base_checkpoint: str | None = setting(
        None, help="Restore the generic forecaster from this checkpoint instead of training it."
    )
    verbose: bool = setting(False, flag=("--verbose", "-v"), help="More logging.")
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
    checks = _rl_checks(config.rl) + _selection_checks(config.rl) + _data_checks(config)
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    for pair in config.data.pairs or []:
        if len(pair) < 2 or len(set(pair)) != len(pair):
            raise ConfigError(f"data.pairs {','.join(pair)}: need two or more distinct symbols")


def _positive_or_none(value: float | None) -> bool:
    return value is None or value > 0


def _selection_checks(rl: RLConfig) -> list[tuple[bool, str]]:
    """``(ok, message)`` of the range checks of what selects and gates: the tilt scale's choice
    and the gate."""
    return [
        (
            bool(rl.tilt_scales) and all(0.0 <= float(x) <= 1.0 for x in rl.tilt_scales),
            f"rl.tilt_scales {list(rl.tilt_scales)}: every scale must be in [0, 1]",
        ),
        (
            0.0 <= rl.tilt_fraction <= 0.9,
            f"rl.tilt_fraction {rl.tilt_fraction}: must be in [0, 0.9]",
        ),
        (
            rl.gate_rule in GATE_RULES,
            f"rl.gate_rule {rl.gate_rule!r}: expected one of {', '.join(GATE_RULES)}",
        ),
        (
            rl.gate_fallback in GATE_FALLBACKS,
            f"rl.gate_fallback {rl.gate_fallback!r}: expected one of {', '.join(GATE_FALLBACKS)}",
        ),
        (
            0.0 <= rl.gate_fraction <= 0.9,
            f"rl.gate_fraction {rl.gate_fraction}: must be in [0, 0.9] (0: gate on the "
            "selection rows)",
        ),
    ]


def _rl_checks(rl: RLConfig) -> list[tuple[bool, str]]:
    """``(ok, message)`` of every range check of the RL section."""
    from jaxport.rl.universe import DYNAMIC_FIELDS as UNIVERSE_GRID_FIELDS  # rl.grid keys

    return [
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
        (rl.tilt_penalty >= 0, f"rl.tilt_penalty {rl.tilt_penalty}: must be >= 0"),
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
            0.0 < rl.max_gross < rl.leverage_limit
            or rl.leverage_limit <= 0  # reported by its own check
            or rl.anchor == "none"
            or rl.scope == "pair",
            f"rl.max_gross {rl.max_gross}: must be in (0, rl.leverage_limit={rl.leverage_limit})",
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
        (
            _positive_or_none(rl.learning_rate),
            f"rl.learning_rate {rl.learning_rate}: must be > 0",
        ),
        (
            _positive_or_none(rl.gradient_learning_rate),
            f"rl.gradient_learning_rate {rl.gradient_learning_rate}: must be > 0",
        ),
        (_positive_or_none(rl.hidden_size), f"rl.hidden_size {rl.hidden_size}: must be > 0"),
        (_positive_or_none(rl.num_steps), f"rl.num_steps {rl.num_steps}: must be > 0"),
        (rl.num_layers >= 1, f"rl.num_layers {rl.num_layers}: must be >= 1"),
        (rl.episode_length > 1, f"rl.episode_length {rl.episode_length}: must be > 1"),
    ]


def _data_checks(config: PipelineConfig) -> list[tuple[bool, str]]:
    """``(ok, message)`` of every range check of the data, forecaster and fine-tuning sections."""
    data, base = config.data, config.base
    return [
        (
            data.features in FEATURE_SETS,
            f"data.features {data.features!r}: expected one of {', '.join(FEATURE_SETS)}",
        ),
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


def min_rows_needed(config: PipelineConfig) -> int:
    """Fewest aligned rows (days) a run with ``config`` can train on (``jaxport data check`` too).

    Warm-up: the forecaster context or the feature window (whichever is longer) plus one day, or the
    observation window; then the chronological ``data.split`` with ``data.toto_horizon``-day
    targets.
    """
    from jaxport.data import min_rows_for

    warmup = max(config.base.context, config.data.sequence_length, config.rl.window - 1) + 1
    return min_rows_for(warmup, config.data.split, horizon=config.data.toto_horizon)
