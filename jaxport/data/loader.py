"""Finding, parsing, validating and aligning per-symbol OHLCV CSV files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from jaxport.data.errors import DataError
from jaxport.data.market import OHLCV_FIELDS, MarketData

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path("trainingdata")
FALLBACK_DATA_DIR = Path("tototraining/trainingdata/train")
DATE_COLUMNS = ("date", "timestamp")
PRICE_FIELDS = ("open", "high", "low", "close")


def _csv_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() == ".csv")


def _require_csv_files(directory: Path) -> list[Path]:
    """The CSVs in ``directory``; ``DataError`` saying why when there are none."""
    files = _csv_files(directory)
    if files:
        return files
    if not directory.exists():
        raise DataError(f"{directory}: directory does not exist")
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory")
    raise DataError(f"{directory}: directory holds no .csv files")


def resolve_data_dir(path: str | Path | None = None, *, announce=None) -> Path:
    """The training-data folder to use.

    An explicit ``path`` must exist and hold CSVs. With ``None`` (or the default ``trainingdata``),
    when ``trainingdata/`` is absent or has no CSVs, ``tototraining/trainingdata/train`` is used as
    the original trainer did, and ``announce`` (default: logging) is told so. Errors name the
    setting ``data.trainingdata_dir``.
    """
    say = announce or log.warning
    requested = Path(path) if path is not None else DEFAULT_DATA_DIR
    if _csv_files(requested):
        return requested
    is_default = path is None or Path(path) == DEFAULT_DATA_DIR
    if is_default and _csv_files(FALLBACK_DATA_DIR):
        say(
            f"{requested}/ has no CSV files; using {FALLBACK_DATA_DIR}/ as the original trainer did"
        )
        return FALLBACK_DATA_DIR
    if not requested.exists():
        raise DataError(f"data.trainingdata_dir {requested}: directory does not exist")
    if not requested.is_dir():
        raise DataError(f"data.trainingdata_dir {requested}: not a directory")
    raise DataError(f"data.trainingdata_dir {requested}: directory holds no .csv files")


def list_symbols(directory: str | Path) -> list[str]:
    """Symbols available in ``directory``: the upper-cased stems of its CSV files, sorted."""
    files = _require_csv_files(Path(directory))
    return sorted({p.stem.upper() for p in files})


def find_symbol_file(directory: str | Path, symbol: str) -> Path:
    """``SYM.csv`` (case-insensitive), else the single ``*SYM*.csv`` whose stem contains it."""
    directory = Path(directory)
    files = _require_csv_files(directory)
    sym = symbol.strip().upper()
    exact = [p for p in files if p.stem.upper() == sym]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        raise DataError(
            f"{directory}: symbol {sym} is ambiguous: {', '.join(p.name for p in exact)}"
        )
    partial = [p for p in files if sym in p.stem.upper()]
    if len(partial) == 1:
        return partial[0]
    if len(partial) > 1:
        raise DataError(
            f"{directory}: symbol {sym} is ambiguous, candidates: "
            f"{', '.join(p.name for p in partial)}"
        )
    available = ", ".join(sorted({p.stem.upper() for p in files}))
    raise DataError(f"{directory}: symbol {sym} not found; available: {available}")


def load_ohlcv_csv(path: str | Path, *, min_rows: int = 2) -> pd.DataFrame:
    """Parse and validate one CSV into a frame indexed by date with float64 OHLCV columns.

    Columns are matched case-insensitively (``date`` or ``timestamp``, ``open, high, low, close,
    volume``); others are ignored. Rows are sorted by date. Every fault raises ``DataError`` with
    one line naming the file.
    """
    path = Path(path)
    name = str(path)
    try:
        raw = pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"{name}: file not found") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{name}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    columns = {str(c).strip().lower(): c for c in raw.columns}
    date_col = next((columns[c] for c in DATE_COLUMNS if c in columns), None)
    missing = [c for c in OHLCV_FIELDS if c not in columns]
    if date_col is None:
        missing.insert(0, "date|timestamp")
    if missing:
        raise DataError(f"{name}: missing column(s) {', '.join(missing)}")
    frame = pd.DataFrame(index=range(len(raw)))
    for field in OHLCV_FIELDS:
        values = pd.to_numeric(raw[columns[field]], errors="coerce")
        bad = values.isna() & raw[columns[field]].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{name}: non-numeric value {raw[columns[field]].iloc[row]!r} in column {field} "
                f"(data row {row + 1})"
            )
        arr = values.to_numpy(dtype=np.float64)
        nonfinite = ~np.isfinite(arr)
        if nonfinite.any():
            row = int(np.flatnonzero(nonfinite)[0])
            raise DataError(f"{name}: NaN/inf in column {field} (data row {row + 1})")
        frame[field] = arr
    dates = pd.to_datetime(raw[date_col], errors="coerce", utc=True)
    if dates.isna().any():
        row = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise DataError(
            f"{name}: unparseable date {raw[date_col].iloc[row]!r} (data row {row + 1})"
        )
    # daily data: align on calendar days (a time of day, e.g. "05:00:00+00:00", is dropped)
    frame.index = pd.DatetimeIndex(dates.dt.tz_localize(None).dt.normalize(), name="date")
    if frame.index.has_duplicates:
        dup = frame.index[frame.index.duplicated()][0]
        raise DataError(f"{name}: duplicate date {dup.date()}")
    frame = frame.sort_index()
    prices = frame[list(PRICE_FIELDS)].to_numpy()
    if (prices <= 0).any():
        row, col = np.argwhere(prices <= 0)[0]
        raise DataError(
            f"{name}: non-positive price {prices[row, col]} in column {PRICE_FIELDS[col]} "
            f"on {frame.index[row].date()}"
        )
    if (frame["volume"].to_numpy() < 0).any():
        row = int(np.flatnonzero(frame["volume"].to_numpy() < 0)[0])
        raise DataError(f"{name}: negative volume on {frame.index[row].date()}")
    bad_hl = frame["high"].to_numpy() < frame["low"].to_numpy()
    if bad_hl.any():
        row = int(np.flatnonzero(bad_hl)[0])
        raise DataError(f"{name}: high < low on {frame.index[row].date()}")
    if len(frame) < min_rows:
        raise DataError(f"{name}: too few rows ({len(frame)}); need at least {min_rows}")
    return frame


def align_frames(frames: dict[str, pd.DataFrame]) -> MarketData:
    """Inner-join per-symbol frames on common dates (order of ``frames`` kept)."""
    symbols = tuple(frames)
    common = None
    for frame in frames.values():
        common = frame.index if common is None else common.intersection(frame.index)
    common = common.sort_values()
    arrays = {
        f: np.stack([frames[s].loc[common, f].to_numpy() for s in symbols], axis=1)
        for f in OHLCV_FIELDS
    }
    dropped = {s: int(len(frames[s]) - len(common)) for s in symbols}
    return MarketData(
        symbols=symbols,
        dates=common.to_numpy().astype("datetime64[D]"),
        rows_dropped=dropped,
        **arrays,
    )


def load_market(
    directory: str | Path,
    symbols: Iterable[str] | None = None,
    *,
    min_rows: int = 2,
) -> MarketData:
    """Load, validate and align ``symbols`` (default: every CSV in ``directory``).

    ``min_rows`` applies per file and to the aligned result (pass window + horizon + 1 or more).
    """
    directory = Path(directory)
    wanted: Sequence[str] = list(symbols) if symbols is not None else list_symbols(directory)
    if not wanted:
        raise DataError(f"{directory}: no symbols requested")
    frames: dict[str, pd.DataFrame] = {}
    sources: dict[str, str] = {}
    for sym in wanted:
        path = find_symbol_file(directory, sym)
        frames[sym.strip().upper()] = load_ohlcv_csv(path, min_rows=min_rows)
        sources[sym.strip().upper()] = str(path)
    market = align_frames(frames)
    if market.num_days < min_rows:
        raise DataError(
            f"{directory}: only {market.num_days} dates common to {', '.join(market.symbols)}; "
            f"need at least {min_rows}"
        )
    total_dropped = sum(market.rows_dropped.values())
    if total_dropped:
        log.info("alignment dropped %d rows: %s", total_dropped, market.rows_dropped)
    return MarketData(**{**market.__dict__, "sources": sources})
