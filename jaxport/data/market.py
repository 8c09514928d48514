"""Aligned multi-symbol price arrays (host-side NumPy; converted to JAX by the layers above).

Full OHLCV data or close-only data (``columns`` says which): see :class:`MarketData`.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from jaxport.data.errors import DataError

OHLCV_FIELDS = ("open", "high", "low", "close", "volume")
RANGE_FIELDS = ("open", "high", "low")  # present all together or not at all
CLOSE_ONLY = ("close",)


@dataclasses.dataclass(frozen=True)
class MarketData:
    """Daily prices of N symbols on T common dates.

    Prices are in the CSV's currency units, volume in shares. Arrays are float64 ``[T, N]``;
    ``dates`` is ``datetime64[D]`` ``[T]``, strictly increasing.

    ``columns`` names the fields the source data has (in ``OHLCV_FIELDS`` order; always ``close``).
    Every array attribute exists so that slicing and selecting stay uniform, but an absent field
    holds a stand-in that no consumer may read as data: absent ``open``/``high``/``low`` hold the
    close (exact for close-to-close returns, which never read them), absent ``volume`` holds zeros.
    Consumers check :attr:`has_ohlc` / :attr:`has_volume` (or call :meth:`field`, which raises
    ``DataError`` for an absent field) and degrade: the stat features drop their range and volume
    indicators, the forecaster zeroes those input channels and forecasts only present columns, and
    the env's ``open_to_close`` mode refuses data without opens.
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
    columns: tuple = OHLCV_FIELDS  # fields present in the source data (the rest are stand-ins)

    @property
    def has_ohlc(self) -> bool:
        """True when open, high and low are real data (not the close stand-in)."""
        return all(f in self.columns for f in RANGE_FIELDS)

    @property
    def has_volume(self) -> bool:
        """True when volume is real data (not the zero stand-in)."""
        return "volume" in self.columns

    def require(self, fields, what: str) -> None:
        """One-line ``DataError`` naming ``what`` (a flag, mode or stage) when ``fields`` are absent."""
        missing = [f for f in fields if f not in self.columns]
        if missing:
            raise DataError(
                f"{what} needs column(s) {', '.join(missing)}, which the data lacks "
                f"(it has {', '.join(self.columns)}; {self.source_label()})"
            )

    def source_label(self) -> str:
        """Where the data came from, for messages: the file(s), or ``in-memory data``."""
        files = sorted(set(map(str, self.sources.values())))
        if not files:
            return "in-memory data"
        return files[0] if len(files) == 1 else f"{files[0]} and {len(files) - 1} more file(s)"

    @property
    def num_days(self) -> int:
        return int(self.dates.shape[0])

    @property
    def num_symbols(self) -> int:
        return len(self.symbols)

    def field(self, name: str) -> np.ndarray:
        """The ``[T, N]`` array of ``name``; ``DataError`` when the data lacks that column."""
        if name not in OHLCV_FIELDS:
            raise KeyError(f"unknown OHLCV field {name!r}; expected one of {OHLCV_FIELDS}")
        self.require((name,), f"field {name}")
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
        """JSON-ready description (symbols, columns, rows, date range, rows dropped, sources)."""
        return {
            "symbols": list(self.symbols),
            "columns": list(self.columns),
            "rows": self.num_days,
            "first_date": str(self.dates[0]) if self.num_days else None,
            "last_date": str(self.dates[-1]) if self.num_days else None,
            "rows_dropped": {k: int(v) for k, v in self.rows_dropped.items()},
            "sources": {k: str(v) for k, v in self.sources.items()},
        }
