"""Data layer: validated CSV parsing (every DataError case), discovery, alignment, splits, CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REAL_ROWS, REAL_SYMBOLS
from jaxport.cli import app
from jaxport.data import (
    FALLBACK_DATA_DIR,
    DataError,
    describe_split,
    find_symbol_file,
    list_symbols,
    load_market,
    load_ohlcv_csv,
    resolve_data_dir,
    split_bounds,
    split_market,
)

HEADER = "Date,Open,High,Low,Close,Volume"


def good_rows(n: int = 5, start: str = "2020-01-01") -> list[str]:
    """``n`` valid daily rows on consecutive business days."""
    rows = []
    for i, day in enumerate(pd.bdate_range(start, periods=n)):
        c = 100.0 + i
        rows.append(f"{day.date()},{c - 0.5},{c + 1.0},{c - 1.0},{c},{1000 + 10 * i}")
    return rows


def write_csv(path, rows, header: str = HEADER):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def replace_field(rows, row: int, col: int, value: str) -> list[str]:
    rows = list(rows)
    cells = rows[row].split(",")
    cells[col] = value
    rows[row] = ",".join(cells)
    return rows


# ---------------------------------------------------------------- load_ohlcv_csv: every fault


@pytest.mark.parametrize(
    "header, expected",
    [
        ("Date,Open,High,Low,Close", ["missing column", "volume"]),
        ("Date,Open,High,Low,Volume", ["missing column", "close"]),
        ("Day,Open,High,Low,Close,Volume", ["missing column", "date|timestamp"]),
    ],
)
def test_missing_column(tmp_path, header, expected):
    ncols = len(header.split(","))
    rows = [",".join(r.split(",")[:ncols]) for r in good_rows()]
    path = write_csv(tmp_path / "BAD.csv", rows, header)
    with pytest.raises(DataError) as err:
        load_ohlcv_csv(path)
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg
    for fragment in expected:
        assert fragment in msg


@pytest.mark.parametrize(
    "col, value, expected",
    [
        (4, "abc", ["non-numeric", "'abc'", "close", "data row 3"]),
        (5, "12x", ["non-numeric", "volume"]),
        (1, "nan", ["NaN/inf", "open", "data row 3"]),
        (2, "inf", ["NaN/inf", "high"]),
        (3, "", ["NaN/inf", "low"]),
        (3, "0", ["non-positive price", "low", "2020-01-03"]),
        (4, "-5", ["non-positive price", "close"]),
        (5, "-1", ["negative volume", "2020-01-03"]),
        (0, "2020-13-45", ["unparseable date", "2020-13-45"]),
    ],
)
def test_bad_value(tmp_path, col, value, expected):
    path = write_csv(tmp_path / "XYZ.csv", replace_field(good_rows(), 2, col, value))
    with pytest.raises(DataError) as err:
        load_ohlcv_csv(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ")
    for fragment in expected:
        assert fragment in msg


def test_high_below_low(tmp_path):
    rows = replace_field(good_rows(), 1, 2, "90.0")  # high 90 < low 100
    path = write_csv(tmp_path / "HL.csv", rows)
    with pytest.raises(DataError, match=r"HL\.csv: high < low on 2020-01-02"):
        load_ohlcv_csv(path)


def test_duplicate_dates(tmp_path):
    rows = good_rows(4)
    rows.append(rows[1])
    path = write_csv(tmp_path / "DUP.csv", rows)
    with pytest.raises(DataError, match=r"DUP\.csv: duplicate date 2020-01-02"):
        load_ohlcv_csv(path)


def test_too_few_rows(tmp_path):
    path = write_csv(tmp_path / "FEW.csv", good_rows(3))
    with pytest.raises(DataError, match=r"FEW\.csv: too few rows \(3\); need at least 10"):
        load_ohlcv_csv(path, min_rows=10)
    assert len(load_ohlcv_csv(path, min_rows=3)) == 3
    header_only = write_csv(tmp_path / "EMPTYROWS.csv", [])
    with pytest.raises(DataError, match=r"EMPTYROWS\.csv: too few rows \(0\)"):
        load_ohlcv_csv(header_only)


def test_unreadable_and_missing_file(tmp_path):
    empty = tmp_path / "EMPTY.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=r"EMPTY\.csv: not a readable CSV"):
        load_ohlcv_csv(empty)
    with pytest.raises(DataError, match=r"NOPE\.csv: file not found"):
        load_ohlcv_csv(tmp_path / "NOPE.csv")


def test_columns_case_insensitive_extra_ignored_unsorted_sorted(tmp_path):
    rows = good_rows(6)
    shuffled = [rows[i] + f",{i * 1.5},x" for i in (3, 0, 5, 1, 4, 2)]
    path = write_csv(
        tmp_path / "MIX.csv", shuffled, "DATE,open,HIGH,Low,cLoSe,VOLUME,Adj Close,Note"
    )
    frame = load_ohlcv_csv(path)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert frame.index.is_monotonic_increasing
    assert frame.index[0] == pd.Timestamp("2020-01-01")
    np.testing.assert_allclose(frame["close"].to_numpy(), 100.0 + np.arange(6))
    assert frame.dtypes.eq(np.float64).all()


def test_timestamp_column_and_time_of_day_align_with_dates(tmp_path):
    rows = good_rows(5)
    stamped = [f"{r.split(',', 1)[0]} 05:00:00+00:00,{r.split(',', 1)[1]}" for r in rows]
    write_csv(tmp_path / "TS.csv", stamped, "timestamp,open,high,low,close,volume")
    write_csv(tmp_path / "DT.csv", rows)
    frame = load_ohlcv_csv(tmp_path / "TS.csv")
    assert frame.index[0] == pd.Timestamp("2020-01-01")
    market = load_market(tmp_path)
    assert market.num_days == 5  # the same calendar days align despite the time of day
    assert market.dates[0] == np.datetime64("2020-01-01")


# ---------------------------------------------------------------- discovery


def test_symbol_not_found_lists_available(tmp_path):
    for sym in ("AAA", "BBB"):
        write_csv(tmp_path / f"{sym}.csv", good_rows())
    with pytest.raises(DataError) as err:
        find_symbol_file(tmp_path, "zzz")
    msg = str(err.value)
    assert str(tmp_path) in msg and "ZZZ not found" in msg and "available: AAA, BBB" in msg
    with pytest.raises(DataError, match="ZZZ not found"):
        load_market(tmp_path, ["AAA", "ZZZ"])


def test_ambiguous_partial_match_lists_candidates(tmp_path):
    for name in ("AAPL_1d", "AAPL_1h", "MSFT"):
        write_csv(tmp_path / f"{name}.csv", good_rows())
    with pytest.raises(DataError) as err:
        find_symbol_file(tmp_path, "aapl")
    msg = str(err.value)
    assert "AAPL is ambiguous" in msg and "AAPL_1d.csv" in msg and "AAPL_1h.csv" in msg
    assert find_symbol_file(tmp_path, "1D").name == "AAPL_1d.csv"  # single partial match
    assert find_symbol_file(tmp_path, "msft").name == "MSFT.csv"


def test_exact_match_preferred_over_partial(tmp_path):
    write_csv(tmp_path / "GOOG.csv", good_rows())
    write_csv(tmp_path / "googl.csv", good_rows())
    assert find_symbol_file(tmp_path, "GOOG").name == "GOOG.csv"
    assert find_symbol_file(tmp_path, "GOOGL").name == "googl.csv"
    assert list_symbols(tmp_path) == ["GOOG", "GOOGL"]


def test_empty_and_missing_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("no csv here")
    for call in (
        lambda: list_symbols(tmp_path),
        lambda: load_market(tmp_path),
        lambda: find_symbol_file(tmp_path, "AAPL"),
    ):
        with pytest.raises(
            DataError, match=f"{tmp_path}: directory holds no .csv or .csv.gz files"
        ):
            call()
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="nowhere: directory does not exist"):
        list_symbols(missing)


def test_resolve_data_dir_fallback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / FALLBACK_DATA_DIR / "AAA.csv", good_rows())
    said = []
    assert resolve_data_dir(None, announce=said.append) == FALLBACK_DATA_DIR
    assert resolve_data_dir("trainingdata", announce=said.append) == FALLBACK_DATA_DIR
    assert len(said) == 2 and str(FALLBACK_DATA_DIR) in said[0]
    # an explicit non-default folder never falls back
    (tmp_path / "mine").mkdir()
    with pytest.raises(
        DataError, match="data.trainingdata_dir mine: directory holds no .csv or .csv.gz files"
    ):
        resolve_data_dir("mine")
    with pytest.raises(DataError, match="data.trainingdata_dir other: directory does not exist"):
        resolve_data_dir("other")
    # once trainingdata/ has CSVs it wins, silently
    write_csv(tmp_path / "trainingdata" / "BBB.csv", good_rows())
    said.clear()
    assert str(resolve_data_dir(None, announce=said.append)) == "trainingdata"
    assert said == []


def test_resolve_data_dir_nothing_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        DataError, match="data.trainingdata_dir trainingdata: directory does not exist"
    ):
        resolve_data_dir(None)


# ---------------------------------------------------------------- real data: alignment and splits


def test_real_data_alignment(real_market):
    m = real_market
    assert m.symbols == REAL_SYMBOLS
    assert m.num_days == REAL_ROWS
    assert m.dates[0] == np.datetime64("2013-01-02") and m.dates[-1] == np.datetime64("2023-12-29")
    assert np.all(np.diff(m.dates) > np.timedelta64(0, "D"))
    assert m.rows_dropped == {s: 0 for s in REAL_SYMBOLS}
    for field in ("open", "high", "low", "close", "volume"):
        arr = m.field(field)
        assert arr.shape == (REAL_ROWS, 7) and arr.dtype == np.float64 and np.isfinite(arr).all()
    assert (m.high >= m.low).all() and (m.close > 0).all()
    assert set(m.sources) == set(REAL_SYMBOLS)


def test_real_data_symbol_subset_order(shipped_data_dir, real_market):
    m = load_market(shipped_data_dir, ["tsla", "AAPL"])
    assert m.symbols == ("TSLA", "AAPL")
    np.testing.assert_array_equal(m.close[:, 0], real_market.close[:, REAL_SYMBOLS.index("TSLA")])
    np.testing.assert_array_equal(m.close, real_market.select(["TSLA", "AAPL"]).close)


def test_rows_dropped_when_one_symbol_trimmed(tmp_path, shipped_data_dir, real_market):
    shutil.copy(shipped_data_dir / "AAPL.csv", tmp_path / "AAPL.csv")
    msft = pd.read_csv(shipped_data_dir / "MSFT.csv")
    trimmed = msft.drop(index=[*range(100), 1000])  # first 100 rows and one mid-sample day
    trimmed.to_csv(tmp_path / "MSFT.csv", index=False)
    m = load_market(tmp_path)
    assert m.num_days == REAL_ROWS - 101
    assert m.rows_dropped == {"AAPL": 101, "MSFT": 0}
    assert m.dates[0] == real_market.dates[100]
    assert real_market.dates[1000] not in set(m.dates)
    keep = np.ones(REAL_ROWS, bool)
    keep[[*range(100), 1000]] = False
    np.testing.assert_array_equal(m.close[:, 0], real_market.close[keep, 0])


def test_real_data_chronological_split(real_market):
    b = split_bounds(real_market)  # 70 / 15 / 15
    assert (b.train_end, b.val_end, b.num_days) == (
        1938,
        2353,
        REAL_ROWS,
    )  # round(0.7T), round(0.85T)
    parts = split_market(real_market, b)
    assert [parts[k].num_days for k in ("train", "val", "test")] == [1938, 415, 415]
    np.testing.assert_array_equal(
        np.concatenate([parts[k].close for k in ("train", "val", "test")]), real_market.close
    )
    assert (
        parts["train"].dates[-1]
        < parts["val"].dates[0]
        < parts["val"].dates[-1]
        < parts["test"].dates[0]
    )
    desc = describe_split(real_market, b)
    assert desc["test"]["last_date"] == "2023-12-29" and desc["train"]["first_date"] == "2013-01-02"
    assert desc["val"]["first_date"] == str(real_market.dates[1938])


def test_real_data_split_by_dates(real_market):
    b = split_bounds(real_market, val_start="2021-01-01", test_start="2022-06-01")
    parts = split_market(real_market, b)
    assert str(parts["val"].dates[0]) == "2021-01-04"  # first trading day of 2021
    assert parts["train"].dates[-1] < np.datetime64("2021-01-01")
    assert parts["test"].dates[0] >= np.datetime64("2022-06-01") > parts["val"].dates[-1]
    with pytest.raises(DataError, match="both val_start and test_start"):
        split_bounds(real_market, val_start="2021-01-01")
    with pytest.raises(DataError, match="empty train or test"):
        split_bounds(real_market, val_start="2010-01-01", test_start="2011-01-01")
    with pytest.raises(DataError, match="fractions"):
        split_bounds(real_market, (0.5, 0.2, 0.2))


# -------------------------------------------------------------- CLI: data check, --version, errors


def test_cli_check_shipped_data_passes(cli_runner, shipped_data_dir):
    result = cli_runner.invoke(app, ["data", "check", str(shipped_data_dir)])
    assert result.exit_code == 0, result.output
    for sym in REAL_SYMBOLS:
        assert f"{sym}.csv" in result.stdout
    assert result.stdout.count(str(REAL_ROWS)) >= 7
    assert "2013-01-02" in result.stdout and "2023-12-29" in result.stdout
    assert "all 7 file(s) OK" in result.stdout


def test_cli_check_broken_dir_reports_every_file(cli_runner, tmp_path, shipped_data_dir):
    shutil.copy(shipped_data_dir / "AAPL.csv", tmp_path / "AAPL.csv")
    write_csv(tmp_path / "HILO.csv", replace_field(good_rows(), 1, 2, "90.0"))
    write_csv(
        tmp_path / "NOVOL.csv",
        [",".join(r.split(",")[:5]) for r in good_rows()],
        "Date,Open,High,Low,Close",
    )
    result = cli_runner.invoke(app, ["data", "check", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "high < low on 2020-01-02" in result.stdout
    assert "missing column(s) volume" in result.stdout
    assert "AAPL.csv" in result.stdout and "ok" in result.stdout
    assert "2 problem(s)" in result.stderr
    # only the healthy file requested -> passes; a missing symbol is a reported problem
    assert (
        cli_runner.invoke(app, ["data", "check", str(tmp_path), "--symbols", "aapl"]).exit_code == 0
    )
    result = cli_runner.invoke(app, ["data", "check", str(tmp_path), "--symbols", "AAPL,ZZZ"])
    assert result.exit_code == 1 and "ZZZ not found" in result.stdout


def test_cli_data_error_is_one_red_line_exit_2(cli_runner, tmp_path):
    result = cli_runner.invoke(app, ["data", "check", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path}: directory holds no .csv or .csv.gz files"
    assert "Traceback" not in result.output


def test_cli_version_and_module_entry_point(cli_runner):
    import jaxport

    result = cli_runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"jaxport {jaxport.__version__}"
    proc = subprocess.run(
        [sys.executable, "-m", "jaxport", "--version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout.strip() == f"jaxport {jaxport.__version__}"


def test_cli_help_is_light():
    """``jaxport --help`` (every command module registered) imports no jax/pandas/torch."""
    code = (
        "import sys; from typer.testing import CliRunner; import jaxport.cli as cli; "
        "r = CliRunner().invoke(cli.app, ['--help']); assert r.exit_code == 0, r.output; "
        "assert 'data' in r.output; "
        "print(sorted(m for m in ('jax', 'pandas', 'torch') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_covering_symbols_adds_only_files_that_keep_the_market_as_it_is(tmp_path):
    """The default universe's extra symbols: every other file that has a price on each of the
    market's dates and its OHLC columns; shorter histories, close-only and broken files are passed
    over, and ``limit`` caps the list."""
    import pandas as pd

    from jaxport.data import covering_symbols, load_market, write_synthetic_csvs

    paths = write_synthetic_csvs(tmp_path, num_symbols=6, num_days=120, seed=3)
    names = sorted(p.stem for p in paths)
    core, late, close_only, broken = names[0], names[1], names[2], names[3]
    frame = pd.read_csv(tmp_path / f"{late}.csv")
    frame.iloc[10:].to_csv(tmp_path / f"{late}.csv", index=False)  # starts 10 days late
    frame = pd.read_csv(tmp_path / f"{close_only}.csv")
    frame[["Date", "Close"]].to_csv(tmp_path / f"{close_only}.csv", index=False)
    (tmp_path / f"{broken}.csv").write_text("Date,Close\nnot-a-date,1\n")
    market = load_market(tmp_path, [core, names[4]])
    got = covering_symbols(tmp_path, market, limit=10)
    assert got == [names[5]]
    assert covering_symbols(tmp_path, market, limit=0) == []
    # a close-only market may take the close-only file; the late one never
    close_market = load_market(tmp_path, [close_only])
    assert core in covering_symbols(tmp_path, close_market, limit=10)
    assert late not in covering_symbols(tmp_path, close_market, limit=10)
    assert len(covering_symbols(tmp_path, close_market, limit=1)) == 1


def _covering_folder(tmp_path, layout: str):
    """``(folder, market)``: a folder with a late, a close-only (or, as a panel, a blank) and a
    broken symbol besides covering ones, and a market of two of its symbols (one of them late, so
    the market's own alignment dropped rows)."""
    from jaxport.data import write_synthetic_csvs

    if layout == "panel":
        dates = pd.bdate_range("2021-01-04", periods=60)
        rng = np.random.default_rng(0)
        closes = np.exp(np.cumsum(rng.normal(0, 0.01, (60, 6)), axis=0)) * 50
        panel = pd.DataFrame(closes, columns=list("ABCDEF"), index=dates).astype(object)
        panel.index.name = "date"
        panel.iloc[:5, 0] = np.nan  # A starts late
        panel.iloc[7, 1] = "n/a"  # B does not load
        panel.iloc[:3, 4] = np.nan  # E starts late too: it does not cover the market
        panel.to_csv(tmp_path / "prices.csv")
        return tmp_path, load_market(tmp_path, ["A", "C"])
    paths = write_synthetic_csvs(tmp_path, num_symbols=7, num_days=120, seed=3)
    names = sorted(p.stem for p in paths)
    late, close_only, broken = names[1], names[2], names[3]
    frame = pd.read_csv(tmp_path / f"{late}.csv")
    frame.iloc[10:].to_csv(tmp_path / f"{late}.csv", index=False)
    frame = pd.read_csv(tmp_path / f"{close_only}.csv")
    frame[["Date", "Close"]].to_csv(tmp_path / f"{close_only}.csv", index=False)
    (tmp_path / f"{broken}.csv").write_text("Date,Close\nnot-a-date,1\n")
    own = [late, names[4]] if layout == "ohlcv" else [late, close_only]
    return tmp_path, load_market(tmp_path, own)


@pytest.mark.parametrize("layout", ["ohlcv", "close-only market", "panel"])
@pytest.mark.parametrize("limit", [1, 10])
def test_add_covering_symbols_loads_like_load_market_parsing_each_file_once(
    tmp_path, monkeypatch, layout, limit
):
    """The default universe's widened market is ``load_market`` of the longer symbol list (same
    arrays, dates, columns, rows dropped and sources), but each candidate file is parsed once (a
    panel once in all) and the market's own files not again."""
    from jaxport.data import add_covering_symbols, covering_symbols, loader

    folder, market = _covering_folder(tmp_path, layout)
    extra = covering_symbols(folder, market, limit=limit)
    assert 1 <= len(extra) <= limit
    expected = load_market(folder, [*market.symbols, *extra])
    parsed = []
    read_csv = loader._read_csv

    def counting_read_csv(path, **kwargs):
        if "nrows" not in kwargs:  # a whole file, not a header
            parsed.append(path.name)
        return read_csv(path, **kwargs)

    monkeypatch.setattr(loader, "_read_csv", counting_read_csv)
    wide = add_covering_symbols(folder, market, limit)
    assert wide.symbols == expected.symbols and wide.columns == expected.columns
    np.testing.assert_array_equal(wide.dates, expected.dates)
    np.testing.assert_array_equal(wide.dates, market.dates)
    for field in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(wide, field), getattr(expected, field))
    assert wide.rows_dropped == expected.rows_dropped and wide.sources == expected.sources
    assert sum(wide.rows_dropped.values()) > 0
    assert len(parsed) == len(set(parsed)), parsed
    if layout == "panel":
        assert parsed == ["prices.csv"]
    else:
        assert not {f"{s}.csv" for s in market.symbols} & set(parsed)
    assert add_covering_symbols(folder, market, 0) is market
