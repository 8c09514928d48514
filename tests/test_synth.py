"""Synthetic universe: determinism, stylised facts, OHLC consistency, CSV round trip, planted signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jaxport.cli import app
from jaxport.data import OHLCV_FIELDS, DataError, load_market
from jaxport.data.synth import generate_synthetic_market, planted_predictor, write_synthetic_csvs

PLANTED = 0.004


@pytest.fixture(scope="module")
def market():
    return generate_synthetic_market(num_symbols=8, num_days=1500, seed=3)


@pytest.fixture(scope="module")
def planted_market():
    return generate_synthetic_market(num_symbols=8, num_days=1500, seed=3, planted_signal=PLANTED)


def log_returns(m) -> np.ndarray:
    return np.diff(np.log(m.close), axis=0)


def test_shape_symbols_dates(market):
    assert market.symbols == tuple(f"SYN{i:03d}" for i in range(8))
    assert market.num_days == 1500 and market.close.shape == (1500, 8)
    assert market.dates[0] == np.datetime64("2015-01-02")
    assert np.all(np.diff(market.dates) > np.timedelta64(0, "D"))
    assert (pd.DatetimeIndex(market.dates).day_of_week < 5).all()  # business days only
    for field in OHLCV_FIELDS:
        arr = market.field(field)
        assert arr.dtype == np.float64 and np.isfinite(arr).all() and (arr > 0).all()
    np.testing.assert_array_equal(market.volume, np.round(market.volume))  # whole shares


def test_deterministic_given_seed(market):
    again = generate_synthetic_market(num_symbols=8, num_days=1500, seed=3)
    for field in OHLCV_FIELDS:
        np.testing.assert_array_equal(again.field(field), market.field(field))
    np.testing.assert_array_equal(again.dates, market.dates)
    other = generate_synthetic_market(num_symbols=8, num_days=1500, seed=4)
    for field in OHLCV_FIELDS:
        assert not np.allclose(other.field(field), market.field(field)), field


def test_stylised_facts(market):
    r = log_returns(market)
    z = r - r.mean(axis=0)
    kurt = np.mean(z**4, axis=0) / np.mean(z**2, axis=0) ** 2  # Pearson kurtosis (normal: 3)
    assert (kurt > 3.0).all(), kurt  # fat tails
    a = np.abs(r - r.mean(axis=0))
    for lag in range(1, 6):  # volatility clustering
        ac = np.mean([np.corrcoef(a[:-lag, i], a[lag:, i])[0, 1] for i in range(8)])
        assert ac > 0.05, (lag, ac)
    raw_ac = np.mean([np.corrcoef(r[:-1, i], r[1:, i])[0, 1] for i in range(8)])
    assert abs(raw_ac) < 0.06  # no return predictability without a planted signal
    corr = np.corrcoef(r.T)
    assert corr[np.triu_indices(8, 1)].mean() > 0.15  # common market factor
    daily_vol = r.std(axis=0)
    assert ((daily_vol > 0.005) & (daily_vol < 0.05)).all(), daily_vol
    log_vol = np.log(market.volume[1:])
    vol_ret = np.mean([np.corrcoef(log_vol[:, i], a[:, i])[0, 1] for i in range(8)])
    assert vol_ret > 0.2  # volume rises with |return|


def test_regime_switching_adds_tail_risk():
    on = generate_synthetic_market(num_symbols=8, num_days=1500, seed=5)
    off = generate_synthetic_market(num_symbols=8, num_days=1500, seed=5, regime_switching=False)
    # stress episodes: lower market drift and doubled vol -> a wider worst-day tail
    assert np.percentile(log_returns(on), 0.5) < np.percentile(log_returns(off), 0.5)


def test_ohlc_consistent(market, planted_market):
    for m in (market, planted_market):
        assert (m.high >= np.maximum(m.open, m.close)).all()
        assert (m.low <= np.minimum(m.open, m.close)).all()
        gaps = np.log(m.open[1:] / m.close[:-1])  # open near the previous close
        assert np.abs(gaps).max() < 0.2 and np.median(np.abs(gaps)) < 0.01


def test_planted_signal_is_detectable(market, planted_market):
    def predictive_corr(m):
        pred = planted_predictor(m.close)[1:-1].ravel()  # predictor at t (uses closes <= t)
        nxt = log_returns(m)[1:].ravel()  # return from t to t+1
        return np.corrcoef(pred, nxt)[0, 1]

    assert predictive_corr(planted_market) > 0.12
    assert abs(predictive_corr(market)) < 0.04
    # exactly what is planted: r[t+1] = base[t+1] + s * predictor[t], with the same base draws
    base = log_returns(market)[1:]
    planted = (
        log_returns(planted_market)[1:] - PLANTED * planted_predictor(planted_market.close)[1:-1]
    )
    np.testing.assert_allclose(planted, base, atol=1e-9)


def test_planted_predictor_is_causal(planted_market):
    close = planted_market.close.copy()
    full = planted_predictor(close)
    close[801:] *= 1.3
    np.testing.assert_array_equal(planted_predictor(close)[:801], full[:801])
    assert set(np.unique(full[1:])) <= {-1.0, 1.0} and (full[0] == 0).all()


def test_bad_arguments_raise_data_error():
    for kwargs, fragment in (
        ({"num_symbols": 0}, "num_symbols"),
        ({"num_days": 1}, "num_days"),
        ({"planted_signal": 0.5}, "planted_signal"),
        ({"tail_df": 2.0}, "tail_df"),
        ({"garch_alpha": 0.2, "garch_beta": 0.85}, r"alpha \+ beta"),
        ({"start_date": "not a date"}, "start_date"),
    ):
        with pytest.raises(DataError, match=fragment):
            generate_synthetic_market(**kwargs)


def test_written_csvs_load_back(tmp_path):
    kwargs = dict(
        num_symbols=3, num_days=120, seed=7, planted_signal=0.002, start_date="2020-03-02"
    )
    paths = write_synthetic_csvs(tmp_path / "syn", **kwargs)
    assert [p.name for p in paths] == ["SYN000.csv", "SYN001.csv", "SYN002.csv"]
    assert paths[0].read_text().splitlines()[0] == "Date,Open,High,Low,Close,Volume"
    loaded = load_market(tmp_path / "syn")
    expected = generate_synthetic_market(**kwargs)
    assert loaded.symbols == expected.symbols
    np.testing.assert_array_equal(loaded.dates, expected.dates)
    for field in OHLCV_FIELDS:
        np.testing.assert_allclose(loaded.field(field), expected.field(field), rtol=1e-12)


def test_cli_synth_then_check(cli_runner, tmp_path):
    out = tmp_path / "cli"
    result = cli_runner.invoke(
        app,
        [
            "data",
            "synth",
            "--out",
            str(out),
            "--symbols",
            "4",
            "--days",
            "120",  # data check applies the quick profile's training minimum (106 rows)
            "--seed",
            "2",
            "--planted-signal",
            "0.003",
        ],
    )
    assert result.exit_code == 0, result.output
    assert str(out) in result.stdout and "wrote 4 files" in result.stdout
    loaded = load_market(out)
    expected = generate_synthetic_market(num_symbols=4, num_days=120, seed=2, planted_signal=0.003)
    np.testing.assert_allclose(loaded.close, expected.close, rtol=1e-12)
    check = cli_runner.invoke(app, ["data", "check", str(out)])
    assert check.exit_code == 0 and "all 4 file(s) OK" in check.stdout
    bad = cli_runner.invoke(app, ["data", "synth", "--out", str(out), "--planted-signal", "0.5"])
    assert (
        bad.exit_code == 2 and bad.stderr.startswith("error: ") and "planted_signal" in bad.stderr
    )
    assert bad.stderr.count("\n") == 1
