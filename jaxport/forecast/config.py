"""Static configuration of the forecaster (architecture) and of its training (budget knobs).

Both are frozen dataclasses of plain Python values, so they are hashable (usable as ``jit`` static
arguments) and JSON-serialisable (stored in checkpoints by :func:`dataclasses.asdict`).
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

from jaxport.errors import ConfigError

#: Columns whose log-return vs today's close the model can forecast.
TARGET_COLUMNS = ("close", "open", "high", "low")

#: Per-day input channels of the model (see :mod:`jaxport.forecast.windows`).
INPUT_CHANNELS = ("r_close", "r_open", "r_high", "r_low", "abs_r_close", "volume_z")


@dataclasses.dataclass(frozen=True)
class ForecasterConfig:
    """Architecture of the Toto-style patch transformer.

    context: days of history per window (must be a multiple of ``patch``).
    patch: days per patch token.  d_model / num_layers / num_heads / mlp_ratio: transformer sizes.
    horizon: forecast steps (trading days) per target.  targets: forecast columns (subset of
    ``TARGET_COLUMNS``); each target is ``log(col[t+h] / close[t])``.
    dropout: dropout rate on attention/MLP outputs during training.
    min_dof: lower bound of the Student-T degrees of freedom (> 2 so the variance exists).
    input_clip: normalised inputs are clipped to ``[-input_clip, input_clip]``.
    scale_eps: added (squared) to the mean square of close log-returns when computing the per-window
    scale, in log-return units (1e-4 = 1 basis point per day).
    rope_base: RoPE frequency base.
    """

    context: int = 128
    patch: int = 8
    d_model: int = 192
    num_layers: int = 4
    num_heads: int = 6
    mlp_ratio: int = 4
    horizon: int = 8
    targets: Tuple[str, ...] = TARGET_COLUMNS
    dropout: float = 0.1
    min_dof: float = 2.5
    input_clip: float = 10.0
    scale_eps: float = 1e-4
    rope_base: float = 10000.0

    def __post_init__(self):
        object.__setattr__(self, "targets", tuple(str(t).lower() for t in self.targets))
        if self.context <= 0 or self.patch <= 0 or self.context % self.patch:
            raise ConfigError(
                f"forecaster config: context={self.context} must be a positive multiple of "
                f"patch={self.patch}"
            )
        if self.d_model % self.num_heads or (self.d_model // self.num_heads) % 2:
            raise ConfigError(
                f"forecaster config: d_model={self.d_model} must split into "
                f"num_heads={self.num_heads} heads of even size"
            )
        if self.horizon < 1 or self.num_layers < 1 or self.mlp_ratio < 1:
            raise ConfigError("forecaster config: horizon, num_layers and mlp_ratio must be >= 1")
        bad = [t for t in self.targets if t not in TARGET_COLUMNS]
        if bad or not self.targets or len(set(self.targets)) != len(self.targets):
            raise ConfigError(
                f"forecaster config: targets {self.targets} must be distinct names from "
                f"{TARGET_COLUMNS}"
            )
        if not self.min_dof > 2.0:
            raise ConfigError(
                f"forecaster config: min_dof={self.min_dof} must be > 2 (finite variance)"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"forecaster config: dropout={self.dropout} must be in [0, 1)")

    @property
    def num_patches(self) -> int:
        return self.context // self.patch

    @property
    def num_channels(self) -> int:
        return len(INPUT_CHANNELS)

    @property
    def num_targets(self) -> int:
        return len(self.targets)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["targets"] = list(self.targets)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ForecasterConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (tuple(v) if k == "targets" else v) for k, v in d.items() if k in known})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training budget and optimiser settings.

    learning_rate: peak AdamW learning rate (after linear warm-up, then cosine decay to
    ``learning_rate * final_lr_fraction``).  weight_decay: AdamW decoupled weight decay.
    batch_size: windows per step.  epochs: passes over the (shuffled) training windows.
    max_steps: hard cap on optimiser steps (None = epochs only).  warmup_steps: linear warm-up.
    grad_clip: global-norm gradient clipping.  patience: epochs without validation improvement
    before early stopping (0 disables early stopping).  eval_batch_size: windows per validation
    call.  max_val_windows: validation windows used per epoch (evenly strided subsample; None =
    all).  log_every: steps between ``log_fn`` train-loss reports.  seed: PRNG seed (init,
    shuffling, dropout).
    """

    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 256
    epochs: int = 20
    max_steps: int | None = None
    warmup_steps: int = 100
    final_lr_fraction: float = 0.05
    grad_clip: float = 1.0
    patience: int = 3
    eval_batch_size: int = 2048
    max_val_windows: int | None = None
    log_every: int = 50
    seed: int = 0

    def __post_init__(self):
        if self.batch_size < 1 or self.epochs < 1:
            raise ConfigError("train config: batch_size and epochs must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"train config: max_steps={self.max_steps} must be >= 1 or None")
        if not self.learning_rate >= 0:
            raise ConfigError(f"train config: learning_rate={self.learning_rate} must be >= 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


#: THE named profiles of the forecaster: ``(architecture, training budget)``. ``jaxport train``
#: trains ``quick`` (``--profile quick``, the default) or ``full`` (``--profile full``) through
#: :class:`jaxport.pipeline.config.BaseConfig`, which reads its numbers from here, and the
#: forecaster benchmarks read the same entries, so they measure the model the CLI trains.
#: ``quick``: ~22k parameters, context 64; ``full``: the ~1.8M-parameter model
#: (:class:`ForecasterConfig` defaults, context 128); ``large``: ~4.8M, for benchmarks only. All
#: stop early on the validation loss.
PROFILES: dict[str, tuple[ForecasterConfig, TrainConfig]] = {
    "quick": (
        ForecasterConfig(
            context=64, patch=8, d_model=32, num_layers=2, num_heads=2, mlp_ratio=2, dropout=0.0
        ),
        TrainConfig(
            learning_rate=3e-3,
            batch_size=128,
            epochs=6,
            max_steps=500,
            warmup_steps=30,
            patience=2,
            max_val_windows=2048,
            log_every=25,
        ),
    ),
    "full": (
        ForecasterConfig(),
        TrainConfig(
            learning_rate=5e-4,
            batch_size=256,
            epochs=15,
            max_steps=4000,
            warmup_steps=200,
            patience=3,
            max_val_windows=None,
            log_every=25,
        ),
    ),
    "large": (
        ForecasterConfig(d_model=256, num_layers=6, num_heads=8, dropout=0.1),
        TrainConfig(learning_rate=3e-4, batch_size=256, epochs=20, warmup_steps=150, patience=4),
    ),
}


def profile(name: str) -> tuple[ForecasterConfig, TrainConfig]:
    """``(ForecasterConfig, TrainConfig)`` of a named profile (``quick``, ``full``, ``large``)."""
    if name not in PROFILES:
        raise ConfigError(
            f"forecaster profile {name!r}: unknown; expected one of {sorted(PROFILES)}"
        )
    return PROFILES[name]


def specialist_train_config(generic: TrainConfig) -> TrainConfig:
    """Fine-tuning defaults derived from the generic run: LR / 5, a third of the steps, short
    warm-up."""
    steps = None if generic.max_steps is None else max(1, generic.max_steps // 3)
    return dataclasses.replace(
        generic,
        learning_rate=generic.learning_rate / 5,
        epochs=max(1, generic.epochs // 2),
        max_steps=steps,
        warmup_steps=max(1, generic.warmup_steps // 4),
        batch_size=min(generic.batch_size, 64),
        patience=max(1, generic.patience),
    )
