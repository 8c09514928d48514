"""Statistical features: definitions (vs a pandas float64 reference), causality, scale, jit."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxport.features import (
    RETURN_SCALE,
    STAT_FEATURE_NAMES,
    market_stat_features,
    stat_feature_array,
    stat_features,
    warmup_days,
)

F = len(STAT_FEATURE_NAMES)
FIELDS = ("open", "high", "low", "close", "volume")


def arrays(market):
    return tuple(getattr(market, f) for f in FIELDS)


def reference_features(o, h, l, c, v) -> np.ndarray:
    """Straightforward float64 pandas implementation of the documented definitions ([T, N, F])."""
    del o
    c, h, l, v = (pd.DataFrame(np.asarray(a, np.float64)) for a in (c, h, l, v))
    r1 = np.log(c / c.shift(1))
    out = {}
    for k in (1, 5, 20):
        out[f"ret_{k}"] = np.log(c / c.shift(k)) / (RETURN_SCALE * np.sqrt(k))
    for k in (5, 20):
        out[f"vol_{k}"] = np.sqrt((r1**2).rolling(k).mean()) / RETURN_SCALE
    out["mom_60"] = np.log(c / c.shift(60)) / (RETURN_SCALE * np.sqrt(60))
    d = c.diff()
    rs = d.clip(lower=0).rolling(14).sum() / (-d).clip(lower=0).rolling(14).sum()
    out["rsi_14"] = ((100 - 100 / (1 + rs)) - 50) / 50
    out["close_z_20"] = (c - c.rolling(20).mean()) / c.rolling(20).std(ddof=0)
    out["hl_range"] = np.log(h / l) / RETURN_SCALE
    lv = np.log1p(v)
    out["volume_z_20"] = (lv - lv.rolling(20).mean()) / lv.rolling(20).std(ddof=0)
    return np.stack([out[name].to_numpy() for name in STAT_FEATURE_NAMES], axis=-1)


@pytest.fixture(scope="module")
def synth_features(synthetic_market):
    feats, names = market_stat_features(synthetic_market)
    return np.asarray(feats)


@pytest.fixture(scope="module")
def real_features(real_market):
    feats, _ = market_stat_features(real_market)
    return np.asarray(feats)


def test_shapes_names_dtype(synthetic_market, synth_features):
    T, N = synthetic_market.close.shape
    feats, names = stat_features(*arrays(synthetic_market))
    chex.assert_shape(feats, (T, N, F))
    chex.assert_type(feats, jnp.float32)
    assert names == STAT_FEATURE_NAMES and len(set(names)) == F == 10
    # jnp inputs give the same as NumPy float64 inputs
    feats_j, _ = stat_features(*(jnp.asarray(a, jnp.float32) for a in arrays(synthetic_market)))
    np.testing.assert_allclose(np.asarray(feats_j), synth_features, rtol=1e-5, atol=1e-5)
    # works for a single series [T] too (trailing axes are carried along)
    one = stat_features(*(a[:, 0] for a in arrays(synthetic_market)))[0]
    chex.assert_shape(one, (T, F))
    np.testing.assert_allclose(np.asarray(one), synth_features[:, 0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="shapes differ"):
        stat_features(*arrays(synthetic_market)[:4], synthetic_market.volume[:-1])


def test_warmup_rows_are_zero(synth_features):
    w = warmup_days()
    assert w == 60
    assert np.all(synth_features[:w] == 0.0)
    assert np.all(np.any(synth_features[w] != 0.0, axis=-1))  # first defined row is populated


def test_matches_reference_definitions(
    synthetic_market, synth_features, real_market, real_features
):
    w = warmup_days()
    for market, feats in ((synthetic_market, synth_features), (real_market, real_features)):
        ref = reference_features(*arrays(market))
        assert np.isfinite(ref[w:]).all()
        for j, name in enumerate(STAT_FEATURE_NAMES):
            np.testing.assert_allclose(
                feats[w:, :, j], ref[w:, :, j], rtol=1e-3, atol=2e-3, err_msg=name
            )


@settings(max_examples=15, deadline=None)
@given(t=st.integers(0, 398), seed=st.integers(0, 2**16))
def test_no_look_ahead(synthetic_market, synth_features, t, seed):
    """Changing anything after day t leaves every feature row <= t bit-identical."""
    rng = np.random.default_rng(seed)
    o, h, l, c, v = (np.array(a) for a in arrays(synthetic_market))
    T, N = c.shape
    shock = np.exp(rng.normal(0.0, 0.2, (T - t - 1, N)))
    for a in (o, h, l, c):
        a[t + 1 :] *= shock
    h[t + 1 :] *= 1.01
    v[t + 1 :] *= rng.uniform(0.1, 10.0, (T - t - 1, N))
    perturbed, _ = stat_features(o, h, l, c, v)
    perturbed = np.asarray(perturbed)
    np.testing.assert_array_equal(perturbed[: t + 1], synth_features[: t + 1])
    assert np.any(perturbed[-1] != synth_features[-1])  # the perturbation is visible afterwards


def test_current_day_is_used(synthetic_market, synth_features):
    """Row t depends on day t itself (the features are not lagged by accident)."""
    t = 200
    o, h, l, c, v = (np.array(a) for a in arrays(synthetic_market))
    c[t] *= 1.05
    h[t] = np.maximum(h[t], c[t])
    v[t] *= 3
    feats = np.asarray(stat_features(o, h, l, c, v)[0])
    np.testing.assert_array_equal(feats[:t], synth_features[:t])
    changed = np.all(feats[t] != synth_features[t], axis=0)  # per feature, every symbol
    for name in (
        "ret_1",
        "ret_5",
        "ret_20",
        "vol_5",
        "vol_20",
        "mom_60",
        "rsi_14",
        "close_z_20",
        "volume_z_20",
    ):
        assert changed[STAT_FEATURE_NAMES.index(name)], name


def test_real_data_finite_and_order_one(real_features):
    x = real_features[warmup_days() :]
    assert np.isfinite(x).all()
    p99 = np.percentile(np.abs(x), 99, axis=(0, 1))
    std = x.std(axis=(0, 1))
    for name, p, s in zip(STAT_FEATURE_NAMES, p99, std):
        assert p < 10.0, (name, p)
        assert 0.1 < s < 5.0, (name, s)
    assert np.abs(real_features).max() < 50.0


def test_jit_matches_eager(synthetic_market, synth_features):
    inputs = tuple(jnp.asarray(a, jnp.float32) for a in arrays(synthetic_market))
    jitted = np.asarray(jax.jit(stat_feature_array)(*inputs))
    with jax.disable_jit():
        eager = np.asarray(stat_feature_array(*inputs))
    np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jitted, synth_features, rtol=1e-5, atol=1e-5)


def test_flat_prices_and_gradients_are_finite(synthetic_market):
    T, N = synthetic_market.close.shape  # same shape as the fixture: reuses the compiled function
    flat = np.full((T, N), 50.0)
    feats = np.asarray(stat_features(flat, flat * 1.01, flat * 0.99, flat, np.zeros((T, N)))[0])
    assert np.isfinite(feats).all()
    w = warmup_days()
    for name in ("ret_1", "ret_20", "vol_20", "mom_60", "rsi_14", "close_z_20", "volume_z_20"):
        np.testing.assert_allclose(feats[w:, :, STAT_FEATURE_NAMES.index(name)], 0.0, atol=1e-6)
    np.testing.assert_allclose(
        feats[w:, :, STAT_FEATURE_NAMES.index("hl_range")],
        np.log(1.01 / 0.99) / RETURN_SCALE,
        rtol=1e-5,
    )
    close = jnp.asarray(synthetic_market.close[:80, :2], jnp.float32)
    loss = lambda c: stat_feature_array(c, c * 1.01, c * 0.99, c, jnp.ones_like(c) * 1e6).sum()  # noqa: E731
    grad = np.asarray(jax.jit(jax.grad(loss))(close))
    assert np.isfinite(grad).all() and np.any(grad != 0)
