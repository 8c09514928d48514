"""``pipeline_summary.json``: the typed summary a run writes, reading it back, and the paths other
tools may rely on.

The schema (version 2) is documented in README.md ("pipeline_summary.json"). Checkpoint paths are
relative to the folder holding the summary. The pipeline builds a :class:`RunSummary` (stage entries
are dataclasses) and serialises it in one place, :meth:`RunSummary.to_dict`, which also writes the
original trainer's top-level keys (``base_checkpoint``, ``specialists``, ``portfolio_pairs``).
Keys a reader does not know are kept (``extra``), so a summary read and written back is unchanged.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

from jaxport.checkpoint import to_jsonable
from jaxport.errors import CheckpointError

SUMMARY_SCHEMA_VERSION = 2  # 2: shipped/gate per pair, walk_forward block

#: Paths guaranteed in a completed summary (``<SYM>``/``<PAIR>`` stand for each symbol / pair).
REQUIRED_PATHS = (
    "config",
    "data",
    "timings",
    "versions",
    "stages.base.checkpoint",
    "stages.base.metrics.test.nll",
    "stages.base.metrics.test.crps",
    "stages.base.metrics.baselines.rolling_gaussian.nll",
    "stages.base.metrics.baselines.rolling_gaussian.crps",
    "stages.specialists.<SYM>.checkpoint",
    "stages.specialists.<SYM>.kept",
    "stages.specialists.<SYM>.metrics",
    "stages.portfolio.<PAIR>.checkpoint",
    "stages.portfolio.<PAIR>.algo",
    "stages.portfolio.<PAIR>.shipped",
    "stages.portfolio.<PAIR>.gate",
    "stages.portfolio.<PAIR>.metrics.test.total_return",
    "stages.portfolio.<PAIR>.metrics.test.sharpe",
    "stages.portfolio.<PAIR>.metrics.test.max_drawdown",
    "stages.portfolio.<PAIR>.metrics.baselines.buy_and_hold",
    "stages.portfolio.<PAIR>.metrics.baselines.equal_weight.total_return",
    "stages.portfolio.<PAIR>.metrics.baselines.cash.total_return",
    "stages.portfolio.<PAIR>.metrics.baselines.inverse_volatility.total_return",
    "stages.portfolio.<PAIR>.metrics.baselines.minimum_variance.total_return",
    "base_checkpoint",
    "specialists",
    "portfolio_pairs",
)


def read_summary(path: str | Path) -> dict[str, Any]:
    """The summary dict; one-line CheckpointError when missing or unreadable."""
    path = Path(path)
    if path.is_dir():
        path = path / "pipeline_summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"{path}: no pipeline summary here (is this the output_dir of a jaxport train run?)"
        ) from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(summary, dict) or "stages" not in summary:
        raise CheckpointError(f"{path}: not a jaxport pipeline summary (no 'stages')")
    return summary


def missing_paths(summary: dict[str, Any]) -> list[str]:
    """Required paths (see ``REQUIRED_PATHS``) absent from ``summary``, expanded per symbol/pair."""
    stages = summary.get("stages", {})
    expansions = {
        "<SYM>": list(stages.get("specialists", {})),
        "<PAIR>": [
            k for k, v in stages.get("portfolio", {}).items() if v.get("status") == "completed"
        ],
    }
    missing = []
    for template in REQUIRED_PATHS:
        keys = [template]
        for marker, values in expansions.items():
            if marker in template:
                keys = [k.replace(marker, v) for k in keys for v in values]
        for dotted in keys:
            node: Any = summary
            for part in dotted.split("."):
                if not isinstance(node, dict) or part not in node:
                    missing.append(dotted)
                    break
                node = node[part]
    return missing


# ---------------------------------------------------------------------------------- typed summary
@dataclasses.dataclass
class _Entry:
    """A stage entry: its fields are written unless ``None`` (those in ``ALWAYS`` always are);
    unknown keys read from a file are kept in ``extra`` and written back."""

    ALWAYS: ClassVar[tuple[str, ...]] = ("status",)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is not None or f.name in self.ALWAYS:
                out[f.name] = value
        out.update(getattr(self, "extra", {}))
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(
            **{k: v for k, v in d.items() if k in names},
            extra={k: v for k, v in d.items() if k not in names},
        )


@dataclasses.dataclass
class ForecasterStage(_Entry):
    """``stages.base``: the generic forecaster (trained, restored or skipped)."""

    ALWAYS: ClassVar[tuple[str, ...]] = ("status", "checkpoint")
    status: str = "running"
    symbols: list[str] | None = None
    checkpoint: str | None = None  # relative to the summary's folder; None when skipped
    num_params: int | None = None
    metrics: dict | None = None  # {"test", "per_symbol", "baselines", "baselines_per_symbol", ...}
    training: dict | None = None
    skipped: bool | None = None
    reason: str | None = None
    restored_from: str | None = None
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class SpecialistStage(_Entry):
    """``stages.specialists.<SYM>``: a per-symbol fine-tune, kept if it beat the generic model."""

    ALWAYS: ClassVar[tuple[str, ...]] = ("status", "checkpoint", "kept")
    status: str = "completed"
    kept: bool = False
    checkpoint: str | None = None  # the generic model's when not kept
    metrics: dict | None = None
    training: dict | None = None
    skipped: bool | None = None
    reason: str | None = None
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class PairStage(_Entry):
    """``stages.portfolio.<PAIR>``: the shipped policy of one basket, its metrics and candidates."""

    status: str = "completed"
    symbols: list[str] | None = None
    algo: str | None = None  # how the shipped policy was made: "ppo" | "gradient" | "baseline"
    shipped: str | None = None  # "ppo" | "gradient" | "baseline:<name>" (the gate's choice)
    gate: dict | None = None  # validation objective/Sharpe of candidates and baselines, the reason
    policy_kind: str | None = None  # its codec kind (jaxport.rl.codec), e.g. "gradient_mlp"
    checkpoint: str | None = None
    evaluation: str | None = None  # curves file, relative to the summary's folder
    feature_source: dict | None = None
    num_features: int | None = None
    metrics: dict | None = None  # {"test", "validation", "baselines", "selection"}
    candidates: dict | None = None  # algo -> {"validation", "test", "updates", "train_wall_s", ...}
    wall_s: float | None = None
    error: str | None = None  # when status is "failed"
    traceback: str | None = None
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def completed(self) -> bool:
        return self.status == "completed"


@dataclasses.dataclass
class UniverseStage(_Entry):
    """``stages.universe``: the one policy trained over every basket of the base symbols (rl.scope
    universe), its population and checkpoint selection on validation."""

    ALWAYS: ClassVar[tuple[str, ...]] = ("status", "checkpoint")
    status: str = "completed"
    baskets: list[list[str]] | None = None  # training baskets (all pairs of the base symbols)
    trainer: str | None = None  # "gradient" | "ppo": the trainer of the selected policy
    checkpoint: str | None = None  # the selected member's policy (any N), relative path
    config: dict | None = None  # jaxport.rl.universe.UniverseConfig.to_dict()
    best_member: int | None = None
    members: list | None = None  # per member: hyperparams, seed, best_update, val_score, ...
    validation_curve: dict | None = None  # selected member: {"updates", "objective", "sharpe"}
    training: dict | None = None  # wall_s (incl. compilation), members, env_steps, env_steps_per_s
    trainers: dict | None = None  # per trainer tried: val_score, members and the training numbers
    tilt: dict | None = None  # rl.tilt_scales tried: scale (chosen), scales, score, sharpe, rows
    extra: dict = dataclasses.field(default_factory=dict)


LEGACY_KEYS = ("base_checkpoint", "specialists", "portfolio_pairs")


@dataclasses.dataclass
class RunSummary:
    """The whole ``pipeline_summary.json``. ``to_dict()`` is the one serialisation."""

    schema_version: int = SUMMARY_SCHEMA_VERSION
    status: str = "running"  # running | interrupted | failed | completed
    config: dict = dataclasses.field(default_factory=dict)
    versions: dict = dataclasses.field(default_factory=dict)
    device: dict = dataclasses.field(default_factory=dict)
    git_commit: str | None = None
    data: dict = dataclasses.field(default_factory=dict)
    timings: dict = dataclasses.field(default_factory=dict)  # seconds per stage
    tracking: dict | None = None
    base: ForecasterStage | None = None
    specialists: dict[str, SpecialistStage] = dataclasses.field(default_factory=dict)
    portfolio: dict[str, PairStage] = dataclasses.field(default_factory=dict)
    universe: UniverseStage | None = None  # rl.scope universe
    walk_forward: dict | None = None  # {"num_folds", "folds": [...], "pairs": {...}} (K >= 2)
    interrupted: str | None = None
    error: str | None = None
    extra: dict = dataclasses.field(
        default_factory=dict
    )  # top-level keys this version does not know

    def legacy_keys(self) -> dict[str, Any]:
        """The original trainer's top-level keys, derived from the stages."""
        pairs: dict[str, Any] = {}
        for name, entry in self.portfolio.items():
            if not entry.completed:
                pairs[name] = {"status": entry.status, "error": entry.error}
                continue
            metrics = entry.metrics or {}
            val = metrics.get("validation", {})
            pairs[name] = {
                "best_val_profit": val.get("total_return"),
                "best_epoch": (entry.candidates or {}).get(entry.algo, {}).get("updates"),
                "best_checkpoint": entry.checkpoint,
                "algo": entry.algo,
                "test_total_return": metrics.get("test", {}).get("total_return"),
                "test_sharpe": metrics.get("test", {}).get("sharpe"),
            }
        return {
            "base_checkpoint": self.base.checkpoint if self.base is not None else None,
            "specialists": {sym: entry.checkpoint for sym, entry in self.specialists.items()},
            "portfolio_pairs": pairs,
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready summary (schema version 2, legacy keys included)."""
        stages: dict[str, Any] = {}
        if self.base is not None:
            stages["base"] = self.base.to_dict()
        if self.specialists:
            stages["specialists"] = {k: v.to_dict() for k, v in self.specialists.items()}
        if self.universe is not None:
            stages["universe"] = self.universe.to_dict()
        if self.portfolio:
            stages["portfolio"] = {k: v.to_dict() for k, v in self.portfolio.items()}
        out: dict[str, Any] = {
            "schema_version": self.schema_version,
            "status": self.status,
            "config": self.config,
            "versions": self.versions,
            "device": self.device,
            "git_commit": self.git_commit,
            "data": self.data,
            "timings": self.timings,
            "stages": stages,
        }
        if self.tracking is not None:
            out["tracking"] = self.tracking
        if self.walk_forward is not None:
            out["walk_forward"] = self.walk_forward
        for key in ("interrupted", "error"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out.update(self.extra)
        out.update(self.legacy_keys())
        return to_jsonable(out)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunSummary":
        """Inverse of :meth:`to_dict` (legacy keys re-derived, unknown keys kept in ``extra``)."""
        stages = d.get("stages", {}) or {}
        known = {f.name for f in dataclasses.fields(cls)} - {
            "base",
            "specialists",
            "portfolio",
            "universe",
            "extra",
        }
        top = {k: v for k, v in d.items() if k in known}
        extra = {
            k: v for k, v in d.items() if k not in known and k not in LEGACY_KEYS and k != "stages"
        }
        return cls(
            **top,
            base=ForecasterStage.from_dict(stages["base"]) if "base" in stages else None,
            specialists={
                k: SpecialistStage.from_dict(v) for k, v in stages.get("specialists", {}).items()
            },
            portfolio={k: PairStage.from_dict(v) for k, v in stages.get("portfolio", {}).items()},
            universe=UniverseStage.from_dict(stages["universe"]) if "universe" in stages else None,
            extra=extra,
        )


def config_from_summary(summary: dict[str, Any]):
    """The :class:`~jaxport.pipeline.config.PipelineConfig` a summary was written with (the legacy
    keys of its ``config`` block are ignored)."""
    from jaxport.pipeline.config import SECTIONS, PipelineConfig

    raw = summary.get("config", {})
    top = {f.name for f in dataclasses.fields(PipelineConfig)} - set(SECTIONS)
    cfg = PipelineConfig(**{k: v for k, v in raw.items() if k in top})
    for name, cls in SECTIONS.items():
        known = {f.name for f in dataclasses.fields(cls)}
        setattr(cfg, name, cls(**{k: v for k, v in raw.get(name, {}).items() if k in known}))
    return cfg
