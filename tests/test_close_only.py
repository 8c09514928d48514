"""Close-only price data: per-symbol date+close CSVs, wide close panels (.csv / .csv.gz), the
vendored S&P 500 sample, and every consumer's degradation (stat features, forecaster, env, run
settings, ``jaxport data check`` / ``train`` errors)."""

from __future__ import annotations

import gzip
import hashlib

import chex
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REAL_ROWS, REAL_SYMBOLS, REPO_ROOT
from jaxport.cli import app
from jaxport.data import (
    CLOSE_ONLY,
    OHLCV_FIELDS,
    DataError,
    find_symbol_file,
    list_symbols,
    load_market,
    load_ohlcv_csv,
    load_panel_csv,
)
from jaxport.data.synth import generate_synthetic_market
from jaxport.errors import ConfigError

SP500_DIR = REPO_ROOT / "trainingdata" / "sp500"
SP500_FILE = SP500_DIR / "prices.csv.gz"
SP500_SHA256 = "ee21cac28befb1d0a739a9ceb22184f995394726aa0cfde9a21941d1ac04ac0d"
SP500_SYMBOLS = (
    "AAPL AMD BAC BBY CVX GE HD JNJ JPM KO LLY MRK MSFT PEP PFE PG RRC UNH WMT XOM"
).split()


def _panel_frame(market) -> pd.DataFrame:
    dates = pd.DatetimeIndex(market.dates.astype("datetime64[ns]"), name="Date")
    return pd.DataFrame(market.close, index=dates, columns=list(market.symbols))


def write_close_csvs(market, directory, *, gz: bool = False) -> None:
    """One ``Date,Close`` CSV per symbol (full float precision)."""
    directory.mkdir(parents=True, exist_ok=True)
    panel = _panel_frame(market)
    for sym in market.symbols:
        name = f"{sym}.csv.gz" if gz else f"{sym}.csv"
        panel[[sym]].rename(columns={sym: "Close"}).to_csv(directory / name, float_format="%.17g")


def write_panel(market, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _panel_frame(market).to_csv(path, float_format="%.17g")


@pytest.fixture(scope="module")
def close_only_dir(tmp_path_factory, real_market):
    """The shipped data written out close-only, one ``Date,Close`` CSV per symbol."""
    directory = tmp_path_factory.mktemp("close_only")
    write_close_csvs(real_market, directory)
    return directory


@pytest.fixture(scope="module")
def close_only_market(close_only_dir):
    return load_market(close_only_dir)


# ---------------------------------------------------------------- loading: equal to the OHLCV close
def test_close_only_csvs_load_the_ohlcv_close_exactly(close_only_market, real_market):
    m = close_only_market
    assert m.symbols == REAL_SYMBOLS and m.columns == CLOSE_ONLY
    assert not m.has_ohlc and not m.has_volume
    assert real_market.columns == OHLCV_FIELDS and real_market.has_ohlc and real_market.has_volume
    np.testing.assert_array_equal(m.dates, real_market.dates)
    np.testing.assert_array_equal(m.close, real_market.close)
    chex.assert_shape([m.open, m.high, m.low, m.volume], (REAL_ROWS, len(REAL_SYMBOLS)))
    # documented stand-ins: close for absent prices, zeros for absent volume
    np.testing.assert_array_equal(m.open, m.close)
    assert not m.volume.any()
    with pytest.raises(DataError, match="field open needs column.s. open, which the data lacks"):
        m.field("open")
    sub = m.select(["MSFT", "AAPL"]).slice_days(10, 20)
    assert sub.columns == CLOSE_ONLY and sub.close.shape == (10, 2)
    assert m.summary()["columns"] == ["close"]


@pytest.mark.parametrize("layout", ["csv.gz", "panel.csv", "panel.csv.gz"])
def test_gz_and_panel_layouts_equal_the_ohlcv_close(layout, tmp_path, real_market):
    if layout == "csv.gz":
        write_close_csvs(real_market, tmp_path, gz=True)
        expected_file = tmp_path / "AAPL.csv.gz"
    else:
        expected_file = tmp_path / f"prices.{layout.split('.', 1)[1]}"
        write_panel(real_market, expected_file)
    assert list_symbols(tmp_path) == sorted(REAL_SYMBOLS)
    assert find_symbol_file(tmp_path, "aapl") == expected_file
    market = load_market(tmp_path, ["TSLA", "aapl"])
    assert market.symbols == ("TSLA", "AAPL") and market.columns == CLOSE_ONLY
    np.testing.assert_array_equal(market.close, real_market.select(["TSLA", "AAPL"]).close)
    np.testing.assert_array_equal(market.dates, real_market.dates)
    assert market.sources["AAPL"] == str(expected_file)


def test_panel_blank_cells_are_days_without_a_price(tmp_path):
    dates = pd.bdate_range("2020-01-01", periods=6)
    frame = pd.DataFrame(
        {"AAA": [np.nan, np.nan, 10.0, 11.0, 12.0, 13.0], "BBB": [1.0, 2, 3, np.nan, 5, 6]},
        index=pd.DatetimeIndex(dates, name="date"),
    )
    frame.to_csv(tmp_path / "prices.csv")
    frames = load_panel_csv(tmp_path / "prices.csv")
    assert list(frames) == ["AAA", "BBB"] and len(frames["AAA"]) == 4 and len(frames["BBB"]) == 5
    market = load_market(tmp_path)
    assert market.num_days == 3 and market.rows_dropped == {"AAA": 1, "BBB": 2}
    np.testing.assert_array_equal(market.close, [[10.0, 3.0], [12.0, 5.0], [13.0, 6.0]])


@settings(max_examples=25, deadline=None)
@given(
    data=st.data(),
    num_days=st.integers(3, 12),
    num_symbols=st.integers(1, 4),
)
def test_panel_loads_like_per_symbol_files(tmp_path_factory, data, num_days, num_symbols):
    """Property: a panel with blanks aligns exactly like the same closes as per-symbol files."""
    prices = data.draw(
        st.lists(
            st.one_of(st.none(), st.floats(0.01, 1e4)),
            min_size=num_days * num_symbols,
            max_size=num_days * num_symbols,
        )
    )
    values = np.array([np.nan if p is None else p for p in prices]).reshape(num_days, num_symbols)
    symbols = [f"S{i}" for i in range(num_symbols)]
    dates = pd.DatetimeIndex(pd.bdate_range("2021-03-01", periods=num_days), name="Date")
    panel = pd.DataFrame(values, index=dates, columns=symbols)
    root = tmp_path_factory.mktemp("prop")
    panel.to_csv(root / "panel.csv.gz", float_format="%.17g")
    (root / "each").mkdir()
    for sym in symbols:
        panel[[sym]].dropna().rename(columns={sym: "close"}).to_csv(
            root / "each" / f"{sym}.csv", float_format="%.17g"
        )
    common = panel.dropna()
    if len(common) < 2 or panel.notna().sum().min() < 2:
        with pytest.raises(DataError):
            load_market(root, min_rows=2)
        return
    from_panel, from_files = load_market(root), load_market(root / "each")
    np.testing.assert_array_equal(from_panel.close, common.to_numpy())
    np.testing.assert_array_equal(from_files.close, from_panel.close)
    np.testing.assert_array_equal(from_files.dates, from_panel.dates)


# ---------------------------------------------------------------- discovery and errors
@pytest.mark.parametrize(
    "files, message",
    [
        (
            {"prices.csv": "Date,AAA,BBB\n2020-01-01,1,2\n", "AAA.csv": "Date,Close\n"},
            "prices.csv: a wide panel (dates x symbols) must be the only CSV in its folder",
        ),
        ({"prices.csv": "Date,AAA,aaa\n2020-01-01,1,2\n"}, "prices.csv: a duplicate (AAA)"),
        ({"AAA.csv": "Date,Open,Close\n2020-01-01,1,2\n"}, "AAA.csv: missing column(s) high"),
        ({"AAA.csv.gz": "Date,Close\n2020-01-01,1\n2020-01-02,x\n"}, "AAA.csv.gz: non-numeric"),
        ({"AAA.csv": "Close\n1\n2\n"}, "AAA.csv: missing column(s) date|timestamp"),
        (  # an OHLCV file without close is not mistaken for a panel
            {"AAA.csv": "Date,Open,High,Low,Volume\n2020-01-01,1,2,1,5\n", "BBB.csv": "x"},
            "AAA.csv: missing column(s) close",
        ),
        ({"prices.csv": "Date,AAA,LOW\n2020-01-01,1,2\n"}, "too few rows (1)"),
        ({"prices.csv": "Date,AAA,BBB\n2020-01-01,1,2\n2020-01-02,1,-2\n"}, "[BBB]: non-positive"),
        ({"prices.csv": "Date,AAA,BBB\n2020-01-01,1,2\n2020-01-02,1,x\n"}, "[BBB]: non-numeric"),
        ({"prices.csv": "Date,AAA\n2020-01-01,1\n2020-01-01,2\n"}, "[AAA]: duplicate date"),
    ],
)
def test_bad_layouts_are_one_line_errors_naming_the_file(tmp_path, files, message):
    for name, text in files.items():
        path = tmp_path / name
        if name.endswith(".gz"):
            path.write_bytes(gzip.compress(text.encode()))
        else:
            path.write_text(text)
    with pytest.raises(DataError) as info:
        load_market(tmp_path)
    text = str(info.value)
    assert "\n" not in text and message in text and str(tmp_path) in text, text


def test_panel_symbol_not_found_and_data_check_exit_2(tmp_path, cli_runner, real_market):
    write_panel(real_market, tmp_path / "prices.csv.gz")
    with pytest.raises(DataError, match=r"prices.csv.gz: symbol ZZZ not found; available: AAPL"):
        find_symbol_file(tmp_path, "zzz")
    result = cli_runner.invoke(app, ["data", "check", str(tmp_path), "--symbols", "AAPL,MSFT"])
    assert result.exit_code == 0, result.output
    assert "prices.csv.gz" in result.stdout and "close" in result.stdout
    assert "all 2 symbol(s) OK" in result.stdout
    (tmp_path / "AAPL.csv").write_text("Date,Close\n2020-01-01,1\n")
    result = cli_runner.invoke(app, ["data", "check", str(tmp_path)])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "prices.csv.gz" in lines[0]


def test_ohlcv_file_loading_is_unchanged(shipped_data_dir, real_market):
    frame = load_ohlcv_csv(shipped_data_dir / "AAPL.csv")
    assert list(frame.columns) == list(OHLCV_FIELDS) and len(frame) == REAL_ROWS
    np.testing.assert_array_equal(frame["open"].to_numpy(), real_market.select(["AAPL"]).open[:, 0])


def test_mixed_layouts_align_on_close_only(tmp_path, shipped_data_dir, real_market):
    (tmp_path / "AAPL.csv").write_bytes((shipped_data_dir / "AAPL.csv").read_bytes())
    write_close_csvs(real_market.select(["MSFT"]), tmp_path)
    market = load_market(tmp_path)
    assert market.columns == CLOSE_ONLY
    np.testing.assert_array_equal(market.close, real_market.select(["AAPL", "MSFT"]).close)


# ---------------------------------------------------------------- the vendored S&P 500 sample
def test_vendored_sp500_sample_sha256_shape_and_range():
    assert hashlib.sha256(SP500_FILE.read_bytes()).hexdigest() == SP500_SHA256
    assert (SP500_DIR / "LICENSE").read_text().startswith("BSD 3-Clause License")
    assert SP500_SHA256 in (SP500_DIR / "README.md").read_text()
    assert list_symbols(SP500_DIR) == sorted(SP500_SYMBOLS)
    market = load_market(SP500_DIR)
    assert market.symbols == tuple(sorted(SP500_SYMBOLS)) and market.columns == CLOSE_ONLY
    chex.assert_shape(market.close, (8313, 20))
    assert str(market.dates[0]) == "1990-01-02" and str(market.dates[-1]) == "2022-12-28"
    assert not any(market.rows_dropped.values())


def test_default_discovery_still_finds_exactly_the_seven_ohlcv_symbols(shipped_data_dir):
    from jaxport.pipeline.config import build_config
    from jaxport.pipeline.run import resolve_symbols

    assert (shipped_data_dir / "sp500" / "prices.csv.gz").is_file()  # the subfolder is there
    assert list_symbols(shipped_data_dir) == sorted(REAL_SYMBOLS)  # ... and not searched
    market = load_market(shipped_data_dir)
    assert market.columns == OHLCV_FIELDS and market.symbols == REAL_SYMBOLS
    base, spec, _ = resolve_symbols(build_config("quick"), shipped_data_dir)
    assert set(base) <= set(REAL_SYMBOLS) and set(spec) <= set(REAL_SYMBOLS)


# ---------------------------------------------------------------- consumers degrade
def test_stat_features_drop_range_and_volume_and_keep_the_rest(close_only_market, real_market):
    from jaxport.features import STAT_FEATURE_NAMES, market_stat_features, stat_feature_names

    full, full_names = market_stat_features(real_market)
    part, names = market_stat_features(close_only_market)
    assert full_names == STAT_FEATURE_NAMES
    assert names == stat_feature_names(False, False)
    assert "hl_range" not in names and "volume_z_20" not in names and len(names) == 8
    chex.assert_shape(part, (REAL_ROWS, len(REAL_SYMBOLS), 8))
    keep = [full_names.index(n) for n in names]
    np.testing.assert_array_equal(np.asarray(part), np.asarray(full)[..., keep])


def test_forecaster_inputs_and_targets_limited_to_close(close_only_market, real_market):
    from jaxport.forecast import Forecaster, ForecasterConfig, compute_features
    from jaxport.forecast.windows import check_market_columns, market_channels

    full, part = market_channels(real_market), market_channels(close_only_market)
    chex.assert_shape(part, (REAL_ROWS, len(REAL_SYMBOLS), 6))
    np.testing.assert_array_equal(part[..., [0, 4]], full[..., [0, 4]])  # close channels kept
    assert not part[..., [1, 2, 3, 5]].any() and full[..., [1, 2, 3, 5]].any()
    small = dict(context=16, patch=8, d_model=16, num_layers=1, num_heads=2, mlp_ratio=1)
    with pytest.raises(
        DataError, match="forecaster targets close,open,high,low needs column.s. op"
    ):
        check_market_columns(ForecasterConfig(**small), close_only_market)
    model = Forecaster.init(ForecasterConfig(targets=("close",), horizon=2, **small))
    window = close_only_market.slice_days(0, 40)
    fc = model.forecast_market(window)
    chex.assert_shape(fc.loc, (40, len(REAL_SYMBOLS), 1, 2))
    assert np.isfinite(fc.loc).all()
    feats = compute_features(None, window, targets=("close",), horizon=2, sequence_length=5)
    assert feats.names[0] == "close_toto_mean_t+1" and np.isfinite(feats.values).all()
    with pytest.raises(DataError, match="toto features: targets close,open needs column.s. open"):
        compute_features(None, window, targets=("close", "open"), horizon=2, sequence_length=5)


def test_forecaster_trains_on_close_only_data():
    from jaxport.data import split_bounds
    from jaxport.forecast import ForecasterConfig, TrainConfig, train_forecaster

    synth = generate_synthetic_market(num_symbols=2, num_days=300, seed=1)
    market = type(synth)(
        symbols=synth.symbols,
        dates=synth.dates,
        open=synth.close,
        high=synth.close,
        low=synth.close,
        close=synth.close,
        volume=np.zeros_like(synth.close),
        columns=CLOSE_ONLY,
    )
    cfg = ForecasterConfig(
        context=16, patch=8, d_model=16, num_layers=1, num_heads=2, mlp_ratio=1, horizon=2
    )
    tc = TrainConfig(batch_size=32, epochs=1, max_steps=3, warmup_steps=1, log_every=100)
    bounds = split_bounds(market)
    with pytest.raises(DataError, match="forecaster targets close,open,high,low"):
        train_forecaster(market, bounds, cfg, tc)
    import dataclasses

    result = train_forecaster(market, bounds, dataclasses.replace(cfg, targets=("close",)), tc)
    assert np.isfinite(result.best_val_loss)


def test_env_close_to_close_works_and_open_to_close_needs_opens(close_only_dir):
    from jaxport.env.gym import build_jax_env, env_args_from_csv

    kwargs, meta = env_args_from_csv(close_only_dir, ["AAPL", "MSFT"], "stat", {"window": 4})
    assert kwargs["open_prices"] is None and len(meta["feature_names"]) == 8
    env, params = build_jax_env(**kwargs)
    assert env.num_assets == 2 and env.num_features == 8
    with pytest.raises(DataError, match="return_mode open_to_close needs opens") as info:
        env_args_from_csv(close_only_dir, None, "stat", {"return_mode": "open_to_close"})
    assert str(close_only_dir) in str(info.value)


# ---------------------------------------------------------------- run settings: degrade or refuse
def test_default_targets_degrade_once_explicit_ones_are_refused(close_only_market, real_market):
    import dataclasses

    from jaxport.cli.common import with_flag_names
    from jaxport.pipeline.config import build_config
    from jaxport.pipeline.data_columns import fit_config_to_data

    cfg = build_config("quick")
    said = []
    assert fit_config_to_data(cfg, real_market, said.append) is cfg and said == []
    fitted = fit_config_to_data(cfg, close_only_market, said.append)
    assert fitted.data.toto_targets == ["close"] and cfg.data.toto_targets[1] == "open"
    assert len(said) == 1 and "close-only" in said[0] and "open,high,low" in said[0]
    asked = dataclasses.replace(
        cfg, data=dataclasses.replace(cfg.data, toto_targets=["close", "high"])
    )
    with pytest.raises(ConfigError) as info:
        fit_config_to_data(asked, close_only_market, said.append)
    line = with_flag_names(str(info.value))
    assert line.startswith("--toto-targets close,high: the data has no high column"), line


def test_cli_train_explicit_target_on_close_only_data_is_exit_2(
    close_only_dir, tmp_path, cli_runner
):
    out = tmp_path / "out"
    result = cli_runner.invoke(
        app,
        [
            "train",
            "--trainingdata-dir",
            str(close_only_dir),
            "--output-dir",
            str(out),
            "--tensorboard-dir",
            str(tmp_path / "logs"),
            "--toto-targets",
            "close,open",
        ],
    )
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: --toto-targets close,open: the data has no open column")
    assert str(close_only_dir) in lines[0]
    assert not out.exists() or not any(out.iterdir())
