"""Tests of jaxport.forecast: model shapes and causality, learning on planted volatility, checkpoints,
the statistical fallback features, specialists, distribution maths, evaluation."""

from __future__ import annotations

import dataclasses
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxport.data import DataError, MarketData, split_bounds
from jaxport.errors import CheckpointError, ConfigError
from jaxport.forecast import (
    Forecaster,
    ForecasterConfig,
    ForecasterNet,
    TrainConfig,
    compute_features,
    evaluate_forecaster,
    feature_names,
    feature_valid_from,
    features,
    finetune_specialist,
    load_forecaster,
    save_forecaster,
    train_forecaster,
)
from jaxport.forecast.distribution import (
    gaussian_crps,
    student_t_cdf,
    student_t_crps,
    student_t_expected_abs,
    student_t_logpdf,
)
from jaxport.forecast.windows import day_channels

# One tiny architecture and one batch size everywhere, so jitted programs are compiled once.
CFG = ForecasterConfig(
    context=32, patch=8, d_model=16, num_layers=1, num_heads=2, mlp_ratio=2, horizon=4, dropout=0.0
)
TC = TrainConfig(
    learning_rate=1e-2,
    batch_size=64,
    epochs=6,
    warmup_steps=10,
    patience=0,
    eval_batch_size=256,
    seed=0,
)
LOW_VOL, HIGH_VOL = 0.004, 0.03


def planted_market(T: int = 500, N: int = 2, seed: int = 0) -> MarketData:
    """Random walk whose next-day volatility is announced by today's volume (a regime the 20-day
    rolling volatility cannot see): z_t ~ Bernoulli(1/2), volume_t ~ exp(1.5 z_t), r_{t+1} ~ N(0, sigma(z_t))."""
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 2, size=(T, N))
    sig = np.where(z == 1, HIGH_VOL, LOW_VOL)
    volume = 1e6 * np.exp(1.5 * z + 0.1 * rng.standard_normal((T, N)))
    r = np.zeros((T, N))
    r[1:] = sig[:-1] * rng.standard_normal((T - 1, N))
    close = 100 * np.exp(np.cumsum(r, axis=0))
    prev = np.concatenate([close[:1], close[:-1]])
    day_sig = np.concatenate([sig[:1], sig[:-1]])
    open_ = prev * np.exp(0.25 * r)
    high = np.maximum(open_, close) * np.exp(0.3 * day_sig * np.abs(rng.standard_normal((T, N))))
    low = np.minimum(open_, close) * np.exp(-0.3 * day_sig * np.abs(rng.standard_normal((T, N))))
    dates = (np.datetime64("2001-01-01") + np.arange(T)).astype("datetime64[D]")
    return MarketData(
        symbols=tuple(f"S{i}" for i in range(N)),
        dates=dates,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
    )


def perturb_after(market: MarketData, t0: int, seed: int = 1) -> MarketData:
    """Same market with every OHLCV value after day t0 changed."""
    rng = np.random.default_rng(seed)
    f = np.ones_like(market.close)
    f[t0 + 1 :] = np.exp(0.05 * rng.standard_normal(f[t0 + 1 :].shape))
    v = np.ones_like(market.volume)
    v[t0 + 1 :] = rng.uniform(0.2, 5.0, size=v[t0 + 1 :].shape)
    return dataclasses.replace(
        market,
        open=market.open * f,
        high=market.high * f,
        low=market.low * f,
        close=market.close * f,
        volume=market.volume * v,
    )


@pytest.fixture(scope="module")
def market():
    return planted_market()


@pytest.fixture(scope="module")
def bounds(market):
    return split_bounds(market)


@pytest.fixture(scope="module")
def trained(market, bounds):
    logs = []
    result = train_forecaster(
        market, bounds, CFG, TC, log_fn=lambda step, d: logs.append((step, d))
    )
    return result, logs


# ---------------------------------------------------------------- model: shapes and causality


def test_predict_shapes_and_ranges():
    fc = Forecaster.init(CFG, seed=3)
    x = np.random.default_rng(0).normal(0, 0.01, (5, CFG.context, 6)).astype(np.float32)
    out = fc.predict(x)
    chex.assert_tree_all_finite(out)
    loc, scale, dof = (np.asarray(a) for a in out)
    for a in (loc, scale, dof):
        chex.assert_shape(a, (5, CFG.num_targets, CFG.horizon))
    assert np.all(scale > 0) and np.all(dof > CFG.min_dof)
    # untrained head: std ~ window RMS * sqrt(h) (the documented initialisation)
    rms = np.sqrt(np.mean(x[..., 0] ** 2, axis=-1) + CFG.scale_eps**2)
    std = scale * np.sqrt(dof / (dof - 2))
    ratio = std[:, 0, :] / (rms[:, None] * np.sqrt(np.arange(1, CFG.horizon + 1)))
    np.testing.assert_allclose(ratio, 1.0, rtol=0.15)
    with pytest.raises(DataError):
        fc.predict(x[:, :-1])
    with pytest.raises(ConfigError, match="context"):
        ForecasterConfig(context=30, patch=8)


def test_transformer_is_causal_over_patches():
    fc = Forecaster.init(CFG, seed=1)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(3, CFG.context, 6)), jnp.float32)
    j = 2  # perturb patches j.. ; tokens < j must not move, tokens >= j must
    x2 = x.at[:, j * CFG.patch :].add(1.0)
    enc = jax.jit(
        lambda v: ForecasterNet(CFG).apply({"params": fc.params}, v, method=ForecasterNet.encode)
    )
    h, h2 = enc(x), enc(x2)
    chex.assert_shape(h, (3, CFG.num_patches, CFG.d_model))
    np.testing.assert_array_equal(np.asarray(h[:, :j]), np.asarray(h2[:, :j]))
    assert float(jnp.max(jnp.abs(h[:, j:] - h2[:, j:]))) > 1e-3


@pytest.mark.parametrize("use_model", [False, True])
def test_features_are_causal(market, trained, use_model):
    model = Forecaster(CFG, trained[0].params) if use_model else None
    t0 = 300
    a, names = features(model, market, horizon=4, sequence_length=20)
    b, names_b = features(model, perturb_after(market, t0), horizon=4, sequence_length=20)
    assert names == names_b
    chex.assert_shape(a, (market.num_days, market.num_symbols, len(names)))
    np.testing.assert_allclose(a[: t0 + 1], b[: t0 + 1], rtol=0, atol=1e-6)
    assert np.abs(a[t0 + 1 :] - b[t0 + 1 :]).max() > 1e-3  # the perturbation is visible afterwards
    valid_from = feature_valid_from(model, sequence_length=20)
    assert valid_from == (CFG.context + 1 if use_model else 21)
    assert np.all(a[:valid_from] == 0) and np.all(np.any(a[valid_from:] != 0, axis=-1))


# ---------------------------------------------------------------- statistical fallback


def test_fallback_matches_hand_numpy(market):
    L, H = 10, 3
    targets = ("close", "open", "high", "low")
    out = compute_features(None, market, targets=targets, horizon=H, sequence_length=L)
    values, names = features(None, market, targets=targets, horizon=H, sequence_length=L)
    np.testing.assert_array_equal(values, out.values)
    assert out.source == "statistical" and out.valid_from == L + 1
    assert names == feature_names(targets, H)
    assert names[:7] == tuple(f"close_toto_mean_t+{h}" for h in (1, 2, 3)) + tuple(
        f"close_toto_std_t+{h}" for h in (1, 2, 3)
    ) + ("open_toto_mean_t+1",)
    assert names[-1] == "close_toto_residual" and len(names) == 4 * 2 * H + 1
    T, N = market.num_days, market.num_symbols
    expect = np.zeros((T, N, len(names)))
    for t in range(L, T):
        for n in range(N):
            for k, col in enumerate(targets):
                x = np.log(market.field(col)[t - L + 1 : t + 1, n] / market.close[t - L : t, n])
                for h in range(1, H + 1):
                    expect[t, n, k * 2 * H + h - 1] = x.mean() * h
                    expect[t, n, k * 2 * H + H + h - 1] = math.sqrt(h) * (x.std() + 1e-6)
    r = np.log(market.close[1:] / market.close[:-1])
    expect[L + 1 :, :, -1] = (r[L:] - expect[L:-1, :, 0]) / expect[L:-1, :, H]
    expect[: L + 1] = 0.0
    np.testing.assert_allclose(values, expect, rtol=2e-4, atol=2e-6)
    # a subset of targets gives the matching subset of columns
    sub, sub_names = features(None, market, targets=("high",), horizon=H, sequence_length=L)
    np.testing.assert_allclose(sub[..., :-1], values[..., 4 * H : 6 * H], rtol=1e-6)
    np.testing.assert_allclose(sub[..., -1], values[..., -1], rtol=1e-6)
    assert sub_names == feature_names(("high",), H)


def test_model_features_use_the_same_names(market, trained):
    fc = Forecaster(CFG, trained[0].params)
    v_model, n_model = features(fc, market, horizon=4)
    v_stat, n_stat = features(None, market, horizon=4)
    assert n_model == n_stat and v_model.shape == v_stat.shape and v_model.dtype == np.float32
    with pytest.raises(DataError):
        features(fc, market, horizon=CFG.horizon + 1)


def test_append_stat(market):
    pytest.importorskip("jaxport.features.stat")
    base, names = features(None, market, horizon=2, sequence_length=20)
    both, names2 = features(None, market, horizon=2, sequence_length=20, append_stat=True)
    assert names2[: len(names)] == names and len(names2) > len(names)
    np.testing.assert_array_equal(both[..., : len(names)], base)
    assert both.shape == (market.num_days, market.num_symbols, len(names2))
    vf = feature_valid_from(None, sequence_length=20, append_stat=True)
    assert (
        vf >= 21
        and compute_features(
            None, market, horizon=2, sequence_length=20, append_stat=True
        ).valid_from
        == vf
    )


# ---------------------------------------------------------------- training and evaluation


def test_training_learns_planted_volatility(market, bounds, trained):
    result, logs = trained
    hist = result.history
    assert len(hist["train_loss"]) == TC.epochs and result.steps == hist["steps"][-1]
    assert hist["train_loss"][-1] < hist["train_loss"][0] - 0.1
    assert result.best_val_loss < result.initial_val_loss - 0.15
    assert result.windows_per_s > 0 and all(w > 0 for w in hist["windows_per_s"])
    assert any("forecaster/val_loss" in d for _, d in logs) and any(
        "forecaster/train_loss" in d for _, d in logs
    )
    report = evaluate_forecaster(Forecaster(CFG, result.params), market, bounds)
    model, base = report["model"]["pooled"], report["baselines"]["rolling_gaussian"]["pooled"]
    # oracle NLL is about -3.1, the volume-blind rolling Gaussian about -2.4
    assert model["nll"] < base["nll"] - 0.3, (model, base)
    assert model["crps"] < 0.95 * base["crps"], (model, base)
    assert model["abs_return_mae"] < base["abs_return_mae"]
    assert set(report["model"]["per_symbol"]) == {"S0", "S1"} and model["n"] == base["n"] > 0
    assert np.isfinite(report["baselines"]["garch"]["pooled"]["nll"])
    assert report["split"]["num_days"] * market.num_symbols == model["n"]


def test_specialist_kept_only_if_better(market, bounds, trained):
    generic = trained[0].params
    frozen = dataclasses.replace(TC, learning_rate=0.0, epochs=1)
    same = finetune_specialist(generic, CFG, market, bounds, "S0", frozen)
    assert not same.kept and same.params is generic
    assert same.specialist_val_nll == pytest.approx(same.generic_val_nll, abs=1e-6)
    untrained = Forecaster.init(CFG, seed=7).params
    better = finetune_specialist(
        untrained, CFG, market, bounds, "S1", dataclasses.replace(TC, epochs=6)
    )
    assert better.kept and better.specialist_val_nll < better.generic_val_nll - 0.05
    assert better.params is better.train.params
    assert better.train.num_val_windows < trained[0].num_val_windows  # one symbol only


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_roundtrip_identical_predictions(tmp_path, trained, market):
    fc = Forecaster(CFG, trained[0].params)
    path = tmp_path / "ckpt"
    save_forecaster(path, fc.params, CFG, extra={"symbols": ["S0", "S1"], "val_nll": 1.25})
    params, config, extra = load_forecaster(path)
    assert config == CFG and extra == {"symbols": ["S0", "S1"], "val_nll": 1.25}
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(fc.params)
    x = jnp.asarray(
        day_channels(market.open, market.high, market.low, market.close, market.volume)[
            100 : 100 + CFG.context, 0
        ][None],
        jnp.float32,
    )
    for a, b in zip(fc.predict(x), Forecaster(config, params).predict(x)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # overwrite atomically (no temporary directories left behind) and restore through the class
    fc2 = Forecaster.init(CFG, seed=5)
    fc2.save(path, extra={"v": 2})
    again = Forecaster.load(path)
    np.testing.assert_array_equal(np.asarray(again.predict(x)[1]), np.asarray(fc2.predict(x)[1]))
    assert again.extra == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    with pytest.raises(CheckpointError):
        load_forecaster(tmp_path)


# ---------------------------------------------------------------- distribution maths


def test_student_t_closed_forms_match_numerics():
    stats = pytest.importorskip("scipy.stats")
    integrate = pytest.importorskip("scipy.integrate")
    loc, scale, dof, y = (
        np.array(v)
        for v in zip((0.001, 0.02, 3.5, 0.03), (-0.01, 0.01, 8.0, -0.002), (0.0, 0.05, 2.6, -0.2))
    )
    closed = jax.jit(
        lambda *a: (
            student_t_logpdf(*a),
            student_t_cdf(*a),
            student_t_crps(*a),
            student_t_expected_abs(*a[1:]),
        )
    )
    logpdf, cdf, crps, eabs = (np.asarray(v) for v in closed(y, loc, scale, dof))
    np.testing.assert_allclose(logpdf, stats.t.logpdf(y, dof, loc, scale), rtol=1e-4)
    np.testing.assert_allclose(cdf, stats.t.cdf(y, dof, loc, scale), atol=1e-5)
    for i in range(3):
        F = lambda v: stats.t.cdf(v, dof[i], loc[i], scale[i])  # noqa: E731
        f = lambda v: stats.t.pdf(v, dof[i], loc[i], scale[i])  # noqa: E731
        crps_num = (
            integrate.quad(lambda v: F(v) ** 2, -np.inf, y[i])[0]
            + integrate.quad(lambda v: (1 - F(v)) ** 2, y[i], np.inf)[0]
        )
        assert crps[i] == pytest.approx(crps_num, rel=1e-3)
        eabs_num = (
            integrate.quad(lambda v: -v * f(v), -np.inf, 0)[0]
            + integrate.quad(lambda v: v * f(v), 0, np.inf)[0]
        )
        assert eabs[i] == pytest.approx(eabs_num, rel=1e-3)
    # Gaussian CRPS closed form vs quadrature
    G = lambda v: stats.norm.cdf(v, 0.001, 0.02)  # noqa: E731
    num = (
        integrate.quad(lambda v: G(v) ** 2, -np.inf, 0.01)[0]
        + integrate.quad(lambda v: (1 - G(v)) ** 2, 0.01, np.inf)[0]
    )
    assert float(gaussian_crps(0.01, 0.001, 0.02)) == pytest.approx(num, rel=1e-3)


# ---------------------------------------------------------------- one source of profiles


@pytest.mark.parametrize("name", ["quick", "full"])
def test_cli_trains_the_benchmarked_profile(name):
    """`jaxport train --profile NAME` builds exactly forecast.profile(NAME) (the benchmarks' model),
    apart from the run's horizon, targets and seed."""
    from jaxport.forecast import profile
    from jaxport.pipeline.config import build_config

    net, train = profile(name)
    cfg = build_config(name)
    d = cfg.data
    fcfg, tcfg = cfg.base.forecaster_configs(horizon=d.toto_horizon, targets=d.toto_targets, seed=0)
    assert fcfg == net and tcfg == train


def test_profile_errors_name_the_setting_not_a_flag(market):
    from jaxport.forecast import profile

    with pytest.raises(ConfigError, match="forecaster profile 'huge'") as err:
        profile("huge")
    assert "--" not in str(err.value)
    with pytest.raises(DataError, match="unsupported model object"):  # no duck-typed adapters
        features(object(), market, horizon=1)
