"""Progress bars of ``jaxport train``: one bar per long step, each with count/total, elapsed time
and ETA, driven by the pipeline's :class:`~jaxport.pipeline.run.Reporter` hooks.

Bars: the generic forecaster's optimiser steps (the bar ends where training ends, early stopping
included), the cross-fit block models, the specialists, the universe policy's updates and the
evaluation of each basket. In a terminal the bars update live; when the output is redirected rich
draws them once, when they finish, as whole lines (the console is wide there, see
:func:`jaxport.cli.common.make_console`).
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

#: Bar titles of the pipeline's stage names (others are shown as they are).
STAGE_TITLES = {
    "base": "stage 1: generic forecaster (steps)",
    "base/crossfit": "stage 1: cross-fit blocks",
    "specialists": "stage 2: specialists",
    "universe": "stage 3: universe policy (updates)",
    "portfolio": "stage 3: evaluate + gate per basket",
}


def format_duration(seconds: float) -> str:
    """``3725.2`` -> ``"1 h 02 min 05 s"``; ``65`` -> ``"1 min 05 s"``; ``4.2`` -> ``"4.2 s"``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min {s:02d} s" if h else f"{m} min {s:02d} s"


class StageBars:
    """The bars and the three hooks a :class:`~jaxport.pipeline.run.Reporter` takes."""

    def __init__(self, console: Console):
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            transient=False,
        )
        self.tasks: dict[str, int] = {}
        self.started = time.perf_counter()

    def stage_start(self, name: str, total: int) -> None:
        title = STAGE_TITLES.get(name, name)
        self.tasks[name] = self.progress.add_task(title, total=total or None, info="")

    def advance(self, name: str, n: int, metrics: dict) -> None:
        """``n`` more done, or (``"step"`` in ``metrics``) the absolute position; the first three
        other metrics are shown after the bar."""
        if name not in self.tasks:
            return
        metrics = dict(metrics)
        step, total = metrics.pop("step", None), metrics.pop("total", None)
        info = ", ".join(
            f"{k.split('/')[-1]}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in list(metrics.items())[:3]
        )
        update: dict = {"info": info} if info else {}
        if total:
            update["total"] = total
        if step is not None:
            update["completed"] = step
        else:
            update["advance"] = n
        self.progress.update(self.tasks[name], **update)

    def stage_end(self, name: str) -> None:
        """Close the bar where the work ended: a bar that stopped early (early stopping) gets
        that count as its total; one with no count yet is filled."""
        if name not in self.tasks:
            return
        task = self.progress.tasks[self.tasks[name]]
        if task.completed > 0:
            self.progress.update(self.tasks[name], total=task.completed)
        else:
            self.progress.update(self.tasks[name], total=task.total or 1, completed=task.total or 1)

    def elapsed(self) -> float:
        """Seconds since the bars were made (the run's wall time)."""
        return time.perf_counter() - self.started


__all__ = ["STAGE_TITLES", "StageBars", "format_duration"]
