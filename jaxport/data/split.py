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
    """Row indices of a chronological split of a MarketData (half-open ranges):

    train ``[0, train_end)``, validation ``[val_start, val_end)``, test ``[test_start, test_end)``.
    ``val_start`` defaults to ``train_end``, ``test_start`` to ``val_end`` and ``test_end`` to
    ``num_days`` (the plain contiguous split). A walk-forward fold (:func:`walk_forward_bounds`)
    leaves embargo rows between the parts (``train_end <= val_start``, ``val_end <= test_start``)
    and may end before the data does (``test_end < num_days``); ``fold`` is its 0-based index.
    """

    train_end: int
    val_end: int
    num_days: int
    val_start: int | None = None
    test_start: int | None = None
    test_end: int | None = None
    fold: int | None = None

    def __post_init__(self):
        if self.val_start is None:
            object.__setattr__(self, "val_start", int(self.train_end))
        if self.test_start is None:
            object.__setattr__(self, "test_start", int(self.val_end))
        if self.test_end is None:
            object.__setattr__(self, "test_end", int(self.num_days))
        if not (
            0
            < self.train_end
            <= self.val_start
            <= self.val_end
            <= self.test_start
            < self.test_end
            <= self.num_days
        ):
            raise DataError(
                f"split: bounds out of order (train_end={self.train_end}, val_start="
                f"{self.val_start}, val_end={self.val_end}, test_start={self.test_start}, "
                f"test_end={self.test_end}, rows={self.num_days})"
            )

    @property
    def embargo(self) -> int:
        """Rows left out between train and validation (and between validation and test)."""
        return int(self.val_start - self.train_end)

    def ranges(self) -> dict[str, tuple[int, int]]:
        return {
            "train": (0, self.train_end),
            "val": (self.val_start, self.val_end),
            "test": (self.test_start, self.test_end),
        }

    def truncated(self) -> "SplitBounds":
        """The same bounds on the data cut after ``test_end`` (``num_days = test_end``)."""
        return dataclasses.replace(self, num_days=int(self.test_end))


def walk_forward_bounds(
    num_days: int,
    k: int,
    *,
    test_rows: int | None = None,
    embargo: int = 0,
    min_train_rows: int = 1,
) -> list[SplitBounds]:
    """``k`` expanding-window walk-forward folds over the end of ``num_days`` rows.

    The last ``k * test_rows`` rows are ``k`` consecutive test blocks (``test_rows`` defaults to
    ``round(0.15 * num_days)``, the standard test part). Fold ``i`` (0 = earliest) has its test
    block ``[test_start, test_end)``, a validation block of the same length right before it
    (``embargo`` rows apart) and trains on every row before ``val_start - embargo``. ``embargo``
    (rows, e.g. the forecast horizon) keeps any target from straddling a boundary. One-line
    ``ConfigError`` when ``k < 1`` or the first fold keeps fewer than ``min_train_rows`` train rows.
    """
    T = int(num_days)
    k = int(k)
    if k < 1:
        raise ConfigError(f"walk_forward {k}: the number of folds must be >= 1")
    rows = int(round(0.15 * T)) if test_rows is None else int(test_rows)
    embargo = int(embargo)
    if rows < 2 or embargo < 0:
        raise ConfigError(
            f"walk-forward: test blocks of {rows} rows (embargo {embargo}) are too short"
        )
    first_train = T - (k + 1) * rows - 2 * embargo  # fold 0: T - k*rows - embargo - rows - embargo
    if first_train < max(1, int(min_train_rows)):
        raise ConfigError(
            f"walk_forward {k}: too many folds for {T} rows (fold 1 would train on "
            f"{max(first_train, 0)} rows, needs >= {min_train_rows}; test blocks of {rows} rows, "
            f"embargo {embargo})"
        )
    out = []
    for i in range(k):
        test_end = T - (k - 1 - i) * rows
        test_start = test_end - rows
        val_end = test_start - embargo
        val_start = val_end - rows
        out.append(
            SplitBounds(
                train_end=val_start - embargo,
                val_end=val_end,
                num_days=T,
                val_start=val_start,
                test_start=test_start,
                test_end=test_end,
                fold=i,
            )
        )
    return out


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
            raise DataError(
                f"split: fractions must be three non-negative numbers summing to 1, got {fractions}"
            )
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
