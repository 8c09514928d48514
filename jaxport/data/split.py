"""Chronological train / validation / test splits (never shuffled: no look-ahead leakage)."""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from jaxport.data.errors import DataError
from jaxport.data.market import MarketData
from jaxport.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class SplitBounds:
    """Row indices ``[0, train_end)``, ``[train_end, val_end)``, ``[val_end, T)`` of a MarketData."""

    train_end: int
    val_end: int
    num_days: int

    def ranges(self) -> dict[str, tuple[int, int]]:
        return {
            "train": (0, self.train_end),
            "val": (self.train_end, self.val_end),
            "test": (self.val_end, self.num_days),
        }


def split_bounds(
    market: MarketData,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    *,
    val_start: str | None = None,
    test_start: str | None = None,
) -> SplitBounds:
    """Chronological split by fractions, or by first dates of validation/test (``YYYY-MM-DD``)."""
    T = market.num_days
    if val_start is not None or test_start is not None:
        if val_start is None or test_start is None:
            raise DataError("split: give both val_start and test_start, or neither")
        v = int(np.searchsorted(market.dates, np.datetime64(val_start, "D")))
        t = int(np.searchsorted(market.dates, np.datetime64(test_start, "D")))
    else:
        if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
            raise DataError(f"split: fractions must be three non-negative numbers summing to 1, got {fractions}")
        v = int(round(T * fractions[0]))
        t = int(round(T * (fractions[0] + fractions[1])))
    if not (0 < v <= t < T):
        raise DataError(f"split: empty train or test part (train_end={v}, val_end={t}, rows={T})")
    return SplitBounds(train_end=v, val_end=t, num_days=T)


def split_market(market: MarketData, bounds: SplitBounds) -> dict[str, MarketData]:
    """``{"train", "val", "test"}`` -> MarketData slices."""
    return {name: market.slice_days(a, b) for name, (a, b) in bounds.ranges().items()}


def describe_split(market: MarketData, bounds: SplitBounds) -> dict:
    """JSON-ready split boundaries with dates."""
    out = {}
    for name, (a, b) in bounds.ranges().items():
        out[name] = {
            "start_row": a,
            "end_row": b,
            "rows": b - a,
            "first_date": str(market.dates[a]) if b > a else None,
            "last_date": str(market.dates[b - 1]) if b > a else None,
        }
    return out


def min_rows_for(
    warmup: int,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    *,
    horizon: int = 1,
    min_steps: int = 2,
) -> int:
    """Fewest aligned rows (days) that a chronological ``fractions`` split can train and test on.

    ``warmup``: rows before the first usable one (forecaster context or feature window, plus one);
    ``horizon``: days ahead that each forecast target reaches; ``min_steps``: fewest env steps in
    each part. Train must hold ``warmup + max(horizon, min_steps + 1)`` rows, validation
    ``max(horizon, min_steps)`` and test ``min_steps``. Parts are rounded as in
    :func:`split_bounds`, so the bound may exceed the exact minimum by a row or two; every larger
    row count satisfies it too.
    """
    fractions = [float(f) for f in fractions]
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"data.split {fractions}: expected three fractions >= 0 summing to 1")
    needs = {
        "train": warmup + max(horizon, min_steps + 1),
        "validation": max(horizon, min_steps),
        "test": min_steps,
    }
    rows = 0
    for (part, need), fraction in zip(needs.items(), fractions):
        if fraction <= 0:
            raise ConfigError(f"data.split {fractions}: the {part} part is empty")
        # round() moves a part by at most one row: (need + 1) / fraction rows always suffice.
        rows = max(rows, math.ceil((need + 1) / fraction - 1e-9))
    return rows
