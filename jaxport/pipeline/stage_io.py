"""How a pipeline stage writes and reports: :class:`StageIO`, the callbacks and output folder
the pipeline hands to each stage (forecasters, universe policy), so a stage owns its own save
and restore without importing the pipeline."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)


def _nothing(*_args, **_kwargs) -> None:
    return None


@dataclasses.dataclass
class StageIO:
    """Where a stage writes and how it reports (the pipeline passes its own callbacks).

    out_dir: checkpoints go below it (``base``, ``specialists``, ``portfolio/universe``).  rel / abs: checkpoint
    path <-> the string stored in the summary.  log_fn(stage, progress_name) -> ``log_fn(step,
    scalars)`` for training curves; log_series(name, series): a whole per-update series.  track(stage, step, scalars): one-off scalars.
    checkpoint(name): save the summary after a unit of work (and honour a stop hook).  save(): save
    the summary.
    """

    out_dir: Path
    rel: Callable[[Path], str] = str
    abs: Callable[[str], Path] = Path
    say: Callable[[str], None] = log.info
    stage_start: Callable[[str, int], None] = _nothing
    advance: Callable[[str, int, dict], None] = _nothing
    stage_end: Callable[[str], None] = _nothing
    log_fn: Callable[[str, str | None], Any] = _nothing
    track: Callable[[str, int, dict], None] = _nothing
    log_series: Callable[[str, dict], None] = _nothing
    checkpoint: Callable[[str], None] = _nothing
    save: Callable[[], None] = _nothing


__all__ = ["StageIO"]
