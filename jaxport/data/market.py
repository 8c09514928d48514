"""Aligned multi-symbol OHLCV arrays (host-side NumPy; converted to JAX by the layers above)."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

OHLCV_FIELDS = ("open", "high", "low", "close", "volume")


@dataclasses.dataclass(frozen=True)
class MarketData:
    """Daily OHLCV of N symbols on T common dates.

    Prices are in the CSV's currency units, volume in shares. Arrays are float64 ``[T, N]``;
    ``dates`` is ``datetime64[D]`` ``[T]``, strictly increasing.
    """

    symbols: tuple[str, ...]
    dates: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    rows_dropped: dict = dataclasses.field(default_factory=dict)  # symbol -> rows lost in alignment
    sources: dict = dataclasses.field(default_factory=dict)  # symbol -> CSV path

    @property
    def num_days(self) -> int:
        return int(self.dates.shape[0])

    @property
    def num_symbols(self) -> int:
        return len(self.symbols)

    def field(self, name: str) -> np.ndarray:
        if name not in OHLCV_FIELDS:
            raise KeyError(f"unknown OHLCV field {name!r}; expected one of {OHLCV_FIELDS}")
        return getattr(self, name)

    def slice_days(self, start: int, stop: int) -> "MarketData":
        """Rows ``[start, stop)`` (chronological)."""
        sl = slice(start, stop)
        return dataclasses.replace(
            self,
            dates=self.dates[sl],
            **{f: getattr(self, f)[sl] for f in OHLCV_FIELDS},
        )

    def select(self, symbols: Sequence[str]) -> "MarketData":
        """The given symbols, in the given order (dates unchanged)."""
        index = {s: i for i, s in enumerate(self.symbols)}
        missing = [s for s in symbols if s not in index]
        if missing:
            raise KeyError(f"symbols not loaded: {missing}; loaded: {list(self.symbols)}")
        cols = [index[s] for s in symbols]
        return dataclasses.replace(
            self,
            symbols=tuple(symbols),
            rows_dropped={s: self.rows_dropped.get(s, 0) for s in symbols},
            sources={s: self.sources[s] for s in symbols if s in self.sources},
            **{f: getattr(self, f)[:, cols] for f in OHLCV_FIELDS},
        )

    def summary(self) -> dict:
        """JSON-ready description (symbols, rows, date range, rows dropped, sources)."""
        return {
            "symbols": list(self.symbols),
            "rows": self.num_days,
            "first_date": str(self.dates[0]) if self.num_days else None,
            "last_date": str(self.dates[-1]) if self.num_days else None,
            "rows_dropped": {k: int(v) for k, v in self.rows_dropped.items()},
            "sources": {k: str(v) for k, v in self.sources.items()},
        }
