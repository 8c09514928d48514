"""Finding, parsing, validating and aligning per-symbol OHLCV CSV files."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from jaxport.data.errors import DataError
from jaxport.data.market import CLOSE_ONLY, OHLCV_FIELDS, MarketData

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path("trainingdata")
FALLBACK_DATA_DIR = Path("tototraining/trainingdata/train")
DATE_COLUMNS = ("date", "timestamp")
PRICE_FIELDS = ("open", "high", "low", "close")
DATA_SUFFIXES = (".csv", ".csv.gz")


def _data_stem(path: Path) -> str:
    """``AAPL`` for ``AAPL.csv`` and ``AAPL.csv.gz``."""
    name = path.name
    return name[: -len(".gz")][: -len(".csv")] if name.lower().endswith(".gz") else path.stem


def _csv_files(directory: Path) -> list[Path]:
    """The ``.csv`` and ``.csv.gz`` files directly in ``directory`` (subfolders are not searched)."""
    if not directory.is_dir():
        return []
    return sorted(
        p for p in directory.iterdir() if p.is_file() and p.name.lower().endswith(DATA_SUFFIXES)
    )


def _require_csv_files(directory: Path) -> list[Path]:
    """The CSVs in ``directory``; ``DataError`` saying why when there are none."""
    files = _csv_files(directory)
    if files:
        return files
    if not directory.exists():
        raise DataError(f"{directory}: directory does not exist")
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory")
    raise DataError(f"{directory}: directory holds no .csv or .csv.gz files")


def _read_csv(path: Path, **kwargs) -> pd.DataFrame:
    """``pd.read_csv`` (gzip inferred from the name) with every fault as a one-line ``DataError``."""
    try:
        return pd.read_csv(path, **kwargs)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (
        pd.errors.EmptyDataError,
        pd.errors.ParserError,
        UnicodeDecodeError,
        OSError,
        EOFError,
    ) as exc:
        raise DataError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None


def _is_panel(path: Path) -> bool:
    """A wide panel: first column a date, then symbol columns, none named ``close`` and at most one
    named like another OHLCV field (a ticker such as LOW may be a panel column)."""
    names = [str(c).strip().lower() for c in _read_csv(path, nrows=0).columns]
    fields = sum(n in OHLCV_FIELDS for n in names)
    return len(names) >= 2 and names[0] in DATE_COLUMNS and "close" not in names and fields <= 1


def _panel_file(directory: Path, files: list[Path]) -> Path | None:
    """The folder's panel file, or None for a folder of per-symbol files.

    A panel must be the only CSV in its folder, so that every symbol has exactly one source.
    """
    panels = [p for p in files if _is_panel(p)]
    if not panels:
        return None
    if len(files) > 1:
        others = ", ".join(p.name for p in files if p != panels[0])
        raise DataError(
            f"{panels[0]}: a wide panel (dates x symbols) must be the only CSV in its folder; "
            f"{directory} also holds {others}"
        )
    return panels[0]


def _panel_symbols(path: Path) -> list[str]:
    """Upper-cased symbol columns of a panel (one-line ``DataError`` on blanks or duplicates)."""
    symbols = [str(c).strip().upper() for c in _read_csv(path, nrows=0).columns[1:]]
    seen = set()
    for sym in symbols:
        if not sym or sym.startswith("UNNAMED:") or sym in seen:
            what = "a blank" if not sym or sym.startswith("UNNAMED:") else f"a duplicate ({sym})"
            raise DataError(f"{path}: {what} symbol column name")
        seen.add(sym)
    return symbols


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
    raise DataError(f"data.trainingdata_dir {requested}: directory holds no .csv or .csv.gz files")


def list_symbols(directory: str | Path) -> list[str]:
    """Symbols available in ``directory``, sorted: the upper-cased stems of its per-symbol CSVs, or
    the symbol columns of its one wide panel (``DataError`` when the layout is ambiguous)."""
    directory = Path(directory)
    files = _require_csv_files(directory)
    panel = _panel_file(directory, files)
    if panel is not None:
        return sorted(_panel_symbols(panel))
    return sorted({_data_stem(p).upper() for p in files})


def find_symbol_file(directory: str | Path, symbol: str) -> Path:
    """The file holding ``symbol``: the folder's panel when it has one (and that symbol column),
    else ``SYM.csv``/``SYM.csv.gz`` (case-insensitive), else the single file whose stem contains
    it."""
    directory = Path(directory)
    files = _require_csv_files(directory)
    return _find_in(directory, files, _panel_file(directory, files), symbol)


def _find_in(directory: Path, files: list[Path], panel: Path | None, symbol: str) -> Path:
    """:func:`find_symbol_file` on an already scanned folder (``files``, its ``panel`` or None)."""
    sym = symbol.strip().upper()
    if panel is not None:
        available = _panel_symbols(panel)
        if sym in available:
            return panel
        raise DataError(f"{panel}: symbol {sym} not found; available: {', '.join(available)}")
    exact = [p for p in files if _data_stem(p).upper() == sym]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        raise DataError(
            f"{directory}: symbol {sym} is ambiguous: {', '.join(p.name for p in exact)}"
        )
    partial = [p for p in files if sym in _data_stem(p).upper()]
    if len(partial) == 1:
        return partial[0]
    if len(partial) > 1:
        raise DataError(
            f"{directory}: symbol {sym} is ambiguous, candidates: "
            f"{', '.join(p.name for p in partial)}"
        )
    available = ", ".join(sorted({_data_stem(p).upper() for p in files}))
    raise DataError(f"{directory}: symbol {sym} not found; available: {available}")


def _numeric_column(name: str, raw: pd.Series, field: str, *, allow_blank: bool) -> np.ndarray:
    """float64 values of ``raw`` (one-line ``DataError`` on text, NaN/inf unless ``allow_blank``,
    where blank cells become NaN)."""
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & raw.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{name}: non-numeric value {raw.iloc[row]!r} in column {field} (data row {row + 1})"
        )
    arr = values.to_numpy(dtype=np.float64)
    nonfinite = ~np.isfinite(arr)
    if allow_blank:
        nonfinite &= ~np.isnan(arr)
    if nonfinite.any():
        row = int(np.flatnonzero(nonfinite)[0])
        raise DataError(f"{name}: NaN/inf in column {field} (data row {row + 1})")
    return arr


def _date_index(name: str, raw: pd.Series) -> pd.DatetimeIndex:
    """Calendar days of ``raw`` (a time of day, e.g. ``05:00:00+00:00``, is dropped)."""
    dates = pd.to_datetime(raw, errors="coerce", utc=True)
    if dates.isna().any():
        row = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise DataError(f"{name}: unparseable date {raw.iloc[row]!r} (data row {row + 1})")
    return pd.DatetimeIndex(dates.dt.tz_localize(None).dt.normalize(), name="date")


def _validated(name: str, frame: pd.DataFrame, min_rows: int) -> pd.DataFrame:
    """``frame`` (date-indexed, present fields only) sorted, after the value checks."""
    if frame.index.has_duplicates:
        dup = frame.index[frame.index.duplicated()][0]
        raise DataError(f"{name}: duplicate date {dup.date()}")
    frame = frame.sort_index()
    fields = [f for f in PRICE_FIELDS if f in frame.columns]
    prices = frame[fields].to_numpy()
    if (prices <= 0).any():
        row, col = np.argwhere(prices <= 0)[0]
        raise DataError(
            f"{name}: non-positive price {prices[row, col]} in column {fields[col]} "
            f"on {frame.index[row].date()}"
        )
    if "volume" in frame.columns and (frame["volume"].to_numpy() < 0).any():
        row = int(np.flatnonzero(frame["volume"].to_numpy() < 0)[0])
        raise DataError(f"{name}: negative volume on {frame.index[row].date()}")
    if "high" in frame.columns:
        bad_hl = frame["high"].to_numpy() < frame["low"].to_numpy()
        if bad_hl.any():
            row = int(np.flatnonzero(bad_hl)[0])
            raise DataError(f"{name}: high < low on {frame.index[row].date()}")
    if len(frame) < min_rows:
        raise DataError(f"{name}: too few rows ({len(frame)}); need at least {min_rows}")
    return frame


def _present_fields(name: str, columns: dict) -> tuple[str, ...]:
    """The layout of a per-symbol CSV's header: full OHLCV or close-only (date and close)."""
    has = [f for f in OHLCV_FIELDS if f in columns]
    date_missing = not any(c in columns for c in DATE_COLUMNS)
    optional = [f for f in OHLCV_FIELDS if f != "close"]
    if "close" in has and not any(f in has for f in optional) and not date_missing:
        return CLOSE_ONLY
    missing = [f for f in OHLCV_FIELDS if f not in has]
    if date_missing:
        missing.insert(0, "date|timestamp")
    if missing:
        raise DataError(f"{name}: missing column(s) {', '.join(missing)}")
    return OHLCV_FIELDS


def load_ohlcv_csv(path: str | Path, *, min_rows: int = 2) -> pd.DataFrame:
    """Parse and validate one per-symbol CSV (plain or ``.csv.gz``) into a date-indexed frame.

    Two layouts: full OHLCV (``date`` or ``timestamp``, ``open, high, low, close, volume``) or
    close-only (a date column and ``close``); the frame holds float64 columns of the fields present
    (``frame.columns`` says which). Columns are matched case-insensitively; others (e.g.
    ``adj close``) are ignored. Rows are sorted by date. Every fault raises ``DataError`` with one
    line naming the file.
    """
    path = Path(path)
    name = str(path)
    raw = _read_csv(path)
    columns = {str(c).strip().lower(): c for c in raw.columns}
    fields = _present_fields(name, columns)
    date_col = next(columns[c] for c in DATE_COLUMNS if c in columns)
    frame = pd.DataFrame(index=range(len(raw)))
    for field in fields:
        frame[field] = _numeric_column(name, raw[columns[field]], field, allow_blank=False)
    frame.index = _date_index(name, raw[date_col])
    return _validated(name, frame, min_rows)


def load_panel_csv(
    path: str | Path, symbols: Sequence[str] | None = None, *, min_rows: int = 2
) -> dict[str, pd.DataFrame]:
    """A wide close panel (first column the date, one column of closes per symbol; plain or
    ``.csv.gz``) as ``{SYMBOL: close-only frame}`` for ``symbols`` (default: every column).

    A blank cell means the symbol has no price that day (e.g. before its listing): that row is left
    out of its frame, and alignment keeps only dates every requested symbol has. Text, inf and
    non-positive prices are one-line ``DataError``s naming the file and symbol.
    """
    path = Path(path)
    available = _panel_symbols(path)
    wanted = [s.strip().upper() for s in (symbols if symbols is not None else available)]
    missing = [s for s in wanted if s not in available]
    if missing:
        raise DataError(
            f"{path}: symbol(s) {', '.join(missing)} not found; available: {', '.join(available)}"
        )
    table = _panel_table(path, available)
    return {sym: _panel_frame(path, table, sym, min_rows) for sym in wanted}


def _panel_table(
    path: Path, available: list[str]
) -> tuple[list[str], pd.DataFrame, pd.DatetimeIndex]:
    """``(symbol columns, raw table, dates)`` of a panel: the file parsed once, dates checked."""
    raw = _read_csv(path)
    return available, raw, _date_index(str(path), raw.iloc[:, 0])


def _panel_frame(path: Path, table: tuple, sym: str, min_rows: int) -> pd.DataFrame:
    """The validated close-only frame of column ``sym`` of a parsed :func:`_panel_table`."""
    available, raw, dates = table
    column = raw.iloc[:, 1 + available.index(sym)]
    close = _numeric_column(f"{path} [{sym}]", column, "close", allow_blank=True)
    keep = ~np.isnan(close)
    frame = pd.DataFrame({"close": close[keep]}, index=dates[keep])
    return _validated(f"{path} [{sym}]", frame, min_rows)


def _frame_reader(directory: Path, min_rows: int) -> Callable[[str], tuple[Path, pd.DataFrame]]:
    """``read(symbol) -> (file, frame)`` over ``directory``, which is scanned once: a per-symbol
    CSV is parsed when its symbol is read, a wide panel once, at its first symbol (the others reuse
    the parsed table). Faults are one-line ``DataError``s naming the file."""
    files = _require_csv_files(directory)
    panel = _panel_file(directory, files)
    tables: dict[Path, tuple] = {}

    def read(symbol: str) -> tuple[Path, pd.DataFrame]:
        path = _find_in(directory, files, panel, symbol)
        if path != panel:
            return path, load_ohlcv_csv(path, min_rows=min_rows)
        if panel not in tables:
            tables[panel] = _panel_table(panel, _panel_symbols(panel))
        return panel, _panel_frame(panel, tables[panel], symbol.strip().upper(), min_rows)

    return read


def load_symbol_frame(
    directory: str | Path, symbol: str, *, min_rows: int = 2
) -> tuple[Path, pd.DataFrame]:
    """``(file, frame)`` of one symbol of ``directory``, from its per-symbol CSV or the panel."""
    return _frame_reader(Path(directory), min_rows)(symbol)


def align_frames(frames: dict[str, pd.DataFrame]) -> MarketData:
    """Inner-join per-symbol frames on common dates (order of ``frames`` kept).

    ``columns`` of the result: the fields every frame has (full OHLCV, or close-only as soon as one
    frame is); absent fields get the stand-ins that :class:`MarketData` documents.
    """
    symbols = tuple(frames)
    common = None
    for frame in frames.values():
        common = frame.index if common is None else common.intersection(frame.index)
    common = common.sort_values()
    columns = tuple(f for f in OHLCV_FIELDS if all(f in frame.columns for frame in frames.values()))
    if columns != OHLCV_FIELDS:
        columns = CLOSE_ONLY
    arrays = {
        f: np.stack([frames[s].loc[common, f].to_numpy() for s in symbols], axis=1) for f in columns
    }
    for f in OHLCV_FIELDS:
        if f not in arrays:  # stand-ins: close for a price, zeros for volume
            arrays[f] = np.zeros_like(arrays["close"]) if f == "volume" else arrays["close"].copy()
    dropped = {s: int(len(frames[s]) - len(common)) for s in symbols}
    return MarketData(
        symbols=symbols,
        dates=common.to_numpy().astype("datetime64[D]"),
        rows_dropped=dropped,
        columns=columns,
        **arrays,
    )


def covering_symbols(
    directory: str | Path, market: MarketData, limit: int, *, min_rows: int = 2
) -> list[str]:
    """Up to ``limit`` more symbols of ``directory`` (in :func:`list_symbols` order) that could join
    ``market`` without changing it: each has a price on every one of ``market.dates`` and, when
    ``market`` has OHLC, OHLCV columns too (a close-only file would turn the market close-only).
    Files that do not load are passed over (logged): nobody asked for them."""
    return list(_covering_frames(Path(directory), market, limit, min_rows))


def add_covering_symbols(
    directory: str | Path, market: MarketData, limit: int, *, min_rows: int = 2
) -> MarketData:
    """``market`` with the :func:`covering_symbols` of ``directory`` appended (same dates, rows
    and columns; their files are parsed once, the market's own not again): what
    :func:`load_market` of the longer symbol list gives."""
    directory = Path(directory)
    extra = _covering_frames(directory, market, limit, min_rows)
    if not extra:
        return market
    frames = {**_market_frames(market), **{s: frame for s, (_, frame) in extra.items()}}
    wide = align_frames(frames)
    wide = dataclasses.replace(
        wide,
        rows_dropped={**wide.rows_dropped, **market.rows_dropped},
        sources={**market.sources, **{s: str(path) for s, (path, _) in extra.items()}},
    )
    _log_alignment(directory, wide, frames)
    return wide


def _covering_frames(
    directory: Path, market: MarketData, limit: int, min_rows: int
) -> dict[str, tuple[Path, pd.DataFrame]]:
    """``{symbol: (file, frame)}`` of :func:`covering_symbols`, each file parsed once."""
    if limit <= 0:
        return {}
    read = _frame_reader(directory, min_rows)
    dates = np.asarray(market.dates)
    out: dict[str, tuple[Path, pd.DataFrame]] = {}
    for sym in list_symbols(directory):
        if sym in market.symbols:
            continue
        try:
            path, frame = read(sym)
        except DataError as err:
            log.info("%s: not added to the universe (%s)", sym, err)
            continue
        has_ohlc = all(f in frame.columns for f in OHLCV_FIELDS)
        days = frame.index.to_numpy().astype("datetime64[D]")
        if has_ohlc < market.has_ohlc or not np.isin(dates, days).all():
            continue
        out[sym] = (path, frame)
        if len(out) == limit:
            break
    return out


def _market_frames(market: MarketData) -> dict[str, pd.DataFrame]:
    """``market`` back as per-symbol frames of its present columns (:func:`align_frames` input)."""
    index = pd.DatetimeIndex(market.dates.astype("datetime64[ns]"), name="date")
    return {
        sym: pd.DataFrame({f: getattr(market, f)[:, i] for f in market.columns}, index=index)
        for i, sym in enumerate(market.symbols)
    }


def load_market(
    directory: str | Path,
    symbols: Iterable[str] | None = None,
    *,
    min_rows: int = 2,
) -> MarketData:
    """Load, validate and align ``symbols`` (default: every symbol in ``directory``).

    ``directory`` holds per-symbol CSVs (OHLCV or close-only) or one wide close panel (see
    :func:`list_symbols`). ``min_rows`` applies per symbol and to the aligned result (pass
    window + horizon + 1 or more).
    """
    directory = Path(directory)
    wanted: Sequence[str] = list(symbols) if symbols is not None else list_symbols(directory)
    wanted = list(dict.fromkeys(s.strip().upper() for s in wanted))
    if not wanted:
        raise DataError(f"{directory}: no symbols requested")
    files = _require_csv_files(directory)
    panel = _panel_file(directory, files)
    paths = {sym: _find_in(directory, files, panel, sym) for sym in wanted}
    frames: dict[str, pd.DataFrame] = {}
    if panel is not None:
        frames.update(load_panel_csv(panel, wanted, min_rows=min_rows))
    for sym in wanted:
        if sym not in frames:
            frames[sym] = load_ohlcv_csv(paths[sym], min_rows=min_rows)
    market = align_frames({sym: frames[sym] for sym in wanted})
    if market.num_days < min_rows:
        raise DataError(
            f"{directory}: only {market.num_days} dates common to {', '.join(market.symbols)}; "
            f"need at least {min_rows}"
        )
    _log_alignment(directory, market, frames)
    return dataclasses.replace(market, sources={s: str(p) for s, p in paths.items()})


def _log_alignment(directory: Path, market: MarketData, frames: dict[str, pd.DataFrame]) -> None:
    """Log the rows that aligning ``frames`` into ``market`` dropped, and OHLCV files cut to their
    close because another file is close-only."""
    total_dropped = sum(market.rows_dropped.values())
    if total_dropped:
        log.info("alignment dropped %d rows: %s", total_dropped, market.rows_dropped)
    full = [s for s in market.symbols if len(frames[s].columns) > 1]
    if not market.has_ohlc and full:
        log.warning(
            "%s: %s mixes OHLCV and close-only files; using close only",
            directory,
            ", ".join(full),
        )
