"""Experiment tracking: TensorBoard event files per stage (tensorboardX) and optional wandb.

wandb is used only when a project is given; if it is not installed or cannot reach its server, the
tracker says so once and goes on (offline mode or TensorBoard only) — it never stops a run.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping

log = logging.getLogger(__name__)


def per_update(values: Any) -> list[float]:
    """A per-update metric ``[U, ...]`` -> one float per update (mean over trailing axes; NaN
    where the metric is undefined, e.g. PPO's ``episode_return`` on an update in which no episode
    ended)."""
    import numpy as np  # noqa: PLC0415

    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.shape[0] == 0:
        return []
    return arr.reshape(arr.shape[0], -1).mean(axis=1).tolist()


def finite_points(values: Any, start_step: int = 0) -> tuple[list[int], list[float]]:
    """``(steps, values)`` of the finite entries of a per-update series (steps count updates from
    ``start_step``). What TensorBoard receives and what the report plots."""
    steps, out = [], []
    for i, v in enumerate(per_update(values)):
        if math.isfinite(v):
            steps.append(start_step + i)
            out.append(v)
    return steps, out


class Tracker:
    """Scalar logger for one run: ``tracker.log(stage, step, {"loss": 0.1})``.

    Each stage gets its own TensorBoard run folder ``<tensorboard_dir>/<stage>/``; wandb (if
    enabled) receives the same scalars as ``<stage>/<name>``.
    """

    def __init__(
        self,
        tensorboard_dir: str | Path,
        *,
        wandb_project: str | None = None,
        wandb_entity: str | None = None,
        run_config: Mapping[str, Any] | None = None,
        announce: Callable[[str], None] | None = None,
    ):
        self.tensorboard_dir = Path(tensorboard_dir)
        self.tensorboard_dir.mkdir(parents=True, exist_ok=True)
        self._writers: dict[str, Any] = {}
        self._say = announce or log.warning
        self.wandb_run = None
        self.wandb_status = "disabled"
        if wandb_project:
            self._start_wandb(wandb_project, wandb_entity, dict(run_config or {}))

    def _start_wandb(self, project: str, entity: str | None, config: dict) -> None:
        try:
            import wandb  # noqa: PLC0415
        except ImportError:
            self.wandb_status = "missing"
            self._say(
                "wandb is not installed (pip install 'jaxport[wandb]'); logging to TensorBoard only"
            )
            return
        mode = os.environ.get("WANDB_MODE")
        try:
            self.wandb_run = wandb.init(
                project=project, entity=entity, config=config, mode=mode, reinit=True
            )
            self.wandb_status = mode or "online"
        except Exception as exc:  # network down, no API key, ...
            self._say(
                f"wandb could not start online ({type(exc).__name__}); continuing in offline mode"
            )
            try:
                self.wandb_run = wandb.init(
                    project=project, entity=entity, config=config, mode="offline", reinit=True
                )
                self.wandb_status = "offline"
            except Exception as exc2:  # pragma: no cover - depends on wandb internals
                self._say(
                    f"wandb offline mode failed too ({type(exc2).__name__}); TensorBoard only"
                )
                self.wandb_status = "failed"

    def writer(self, stage: str):
        if stage not in self._writers:
            from tensorboardX import SummaryWriter  # noqa: PLC0415

            self._writers[stage] = SummaryWriter(
                logdir=str(self.tensorboard_dir / stage), flush_secs=10
            )
        return self._writers[stage]

    def log(self, stage: str, step: int, scalars: Mapping[str, Any]) -> None:
        """Log finite scalars; non-finite values and non-numbers are skipped."""
        clean = {}
        for name, value in scalars.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(number):
                clean[name] = number
        writer = self.writer(stage)
        for name, number in clean.items():
            writer.add_scalar(f"{stage}/{name}", number, int(step))
        if self.wandb_run is not None and clean:
            try:
                self.wandb_run.log({f"{stage}/{k}": v for k, v in clean.items()})
            except Exception as exc:  # pragma: no cover
                self._say(f"wandb logging failed ({type(exc).__name__}); disabling wandb")
                self.wandb_run = None

    def log_series(self, stage: str, series: Mapping[str, Any], start_step: int = 0) -> None:
        """Log per-update metric arrays (``[U]`` or ``[U, ...]``, reduced per update): each
        metric's finite points at their update index (:func:`finite_points`), so a metric that is
        undefined on some updates still draws a curve through the updates where it is defined."""
        by_step: dict[int, dict[str, float]] = {}
        for name, values in series.items():
            for step, value in zip(*finite_points(values, start_step)):
                by_step.setdefault(step, {})[name] = value
        for step in sorted(by_step):
            self.log(stage, step, by_step[step])

    def flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        if self.wandb_run is not None:
            try:
                self.wandb_run.finish()
            except Exception:  # pragma: no cover
                pass
            self.wandb_run = None
