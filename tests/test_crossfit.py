"""Cross-fitted (out-of-sample) forecast features: no pre-test row is featurised by a model that
trained on that row's targets; provenance covers every row once; the embargo holds."""

from __future__ import annotations

import dataclasses

import chex
import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxport.data import split_bounds
from jaxport.data.synth import generate_synthetic_market
from jaxport.errors import ConfigError, DataError, JaxportError
from jaxport.forecast import ForecasterConfig, TrainConfig, split_windows, train_forecaster
from jaxport.forecast.crossfit import (
    crossfit_features,
    forecaster_fit_fn,
    plan_crossfit,
    select_origins,
    specialist_fit_fn,
)
from jaxport.forecast.toto_features import ForecastFeatures

H = 4  # forecast horizon of every test here (days)


@pytest.fixture(scope="module")
def market():
    return generate_synthetic_market(num_symbols=3, num_days=400, seed=1)


def perturb_returns(market, first_day: int, last_day: int, seed: int = 0):
    """The same market with close log-returns of days ``first_day..last_day`` shifted by noise
    (other days' close-to-close returns, and open/high/low vs their own close, unchanged)."""
    noise = np.random.default_rng(seed).normal(
        0.0, 0.02, (last_day - first_day + 1, market.num_symbols)
    )
    shift = np.zeros((market.num_days, market.num_symbols))
    shift[first_day : last_day + 1] = noise
    factor = np.exp(np.cumsum(shift, axis=0))
    return dataclasses.replace(
        market, **{f: getattr(market, f) * factor for f in ("open", "high", "low", "close")}
    )


# ------------------------------------------------------------------------ a fake, memorising model
def memorising_fit(market, spec):
    """A 'model' that memorises every target it may train on: sum of squared target-day returns of
    all allowed windows (any change to a target it saw changes it)."""
    r = np.diff(np.log(market.close), axis=0, prepend=np.log(market.close[:1]))
    origins = np.flatnonzero(spec.origin_mask)
    days = (origins[:, None] + np.arange(1, H + 1)[None, :]).reshape(-1)
    return float(np.sum(r[days] ** 2 * (1.0 + days[:, None] % 7)))


def fingerprint_features(model, market):
    T, N = market.num_days, market.num_symbols
    value = 0.0 if model is None else model
    return ForecastFeatures(np.full((T, N, 1), value, np.float32), ("fingerprint",), 0, "fake")


def block_changes(market, scheme, block, *, embargo=None, num_blocks=5):
    """Per model id: did its rows' features change when the targets of ``block``'s rows moved?"""
    test_start = 340
    kw = {"num_blocks": num_blocks, "horizon": H, "embargo": embargo, "scheme": scheme}
    kw["first_block"] = "fallback"
    base = crossfit_features(market, test_start, memorising_fit, fingerprint_features, **kw)
    s, e = base.plan.specs[block].rows
    moved = crossfit_features(
        perturb_returns(market, s + 1, e - 1 + H),
        test_start,
        memorising_fit,
        fingerprint_features,
        **kw,
    )
    changed = {}
    for spec in base.plan.specs:
        a, b = spec.rows
        changed[spec.model_id] = not np.array_equal(base.values[a:b], moved.values[a:b])
    return base.plan, changed


@pytest.mark.parametrize("scheme", ["blocked", "expanding"])
def test_marker_in_block_targets_never_reaches_that_block(market, scheme):
    """Plant a marker in the targets of one block's rows: that block's features must not move (its
    model never trained on them), and the features of models allowed to train on them must move."""
    for block in range(5):
        plan, changed = block_changes(market, scheme, block)
        spec = plan.specs[block]
        assert not changed[block], f"{scheme}: block {block} features moved with its own targets"
        assert changed[plan.final.model_id], "the final model trains on every pre-test target"
        for other in plan.blocks:
            if other.model_id == block or other.kind != "fitted":
                continue
            later = other.rows[0] > spec.rows[0]
            if scheme == "blocked" or later:
                assert changed[other.model_id], (
                    f"{scheme}: block {other.model_id} ignored block {block}"
                )
            else:  # expanding: earlier blocks were fitted before the marked rows existed
                assert not changed[other.model_id]


def test_marker_test_detects_a_leaky_embargo(market):
    """The check above has teeth: with no embargo a model after the block trains on targets of the
    block's last rows, and the marked block's features move."""
    _, changed = block_changes(market, "blocked", 2, embargo=0)
    assert changed[2]


# --------------------------------------------------------------------------- plan properties
@settings(max_examples=60, deadline=None)
@given(
    T=st.integers(120, 900),
    test_frac=st.floats(0.5, 1.0),
    horizon=st.integers(1, 10),
    extra=st.integers(0, 5),
    num_blocks=st.integers(2, 6),
    scheme=st.sampled_from(["blocked", "expanding"]),
    purge=st.integers(0, 20),
)
def test_plan_provenance_and_embargo(T, test_frac, horizon, extra, num_blocks, scheme, purge):
    test_start = max(2, int(T * test_frac))
    embargo = horizon - 1 + extra  # any embargo >= horizon - 1 is leak-free
    try:
        plan = plan_crossfit(
            T,
            test_start,
            horizon=horizon,
            num_blocks=num_blocks,
            embargo=embargo,
            scheme=scheme,
            input_purge=purge,
        )
    except JaxportError:
        return  # too few rows for this many blocks: refused with a one-line message
    chex.assert_shape(plan.row_model, (T,))
    # (b) every row is produced by exactly one model, and row_model agrees with the specs' rows
    count = np.zeros(T, int)
    for spec in plan.specs:
        a, b = spec.rows
        count[a:b] += 1
        assert np.all(plan.row_model[a:b] == spec.model_id)
    assert np.all(count == 1)
    assert plan.final.rows == (test_start, T)
    # (c) no model trains on a target of a row it featurises, nor on a target in the test rows
    for spec in plan.specs:
        origins = np.flatnonzero(spec.origin_mask)
        assert np.all(origins + horizon <= test_start - 1)
        if spec is plan.final:
            continue
        s, e = spec.rows
        train_targets = (origins[:, None] + np.arange(1, horizon + 1)).reshape(-1)
        featurised_targets = np.arange(s + 1, e + horizon)
        assert not np.isin(train_targets, featurised_targets).any()
        assert not np.isin(origins, np.arange(s, e)).any()
        if scheme == "expanding":
            assert np.all(origins + horizon < s)
        # input_purge: no allowed window reads a held-out day as input either
        lo, hi = spec.held_out
        touched = (origins[:, None] + np.arange(-purge, horizon + 1)).reshape(-1)
        assert not np.isin(touched, np.arange(lo, hi)).any()


def test_plan_refuses_bad_settings():
    with pytest.raises(ConfigError, match="num_blocks"):
        plan_crossfit(100, 80, horizon=8, num_blocks=1)
    with pytest.raises(ConfigError, match="num_blocks"):
        plan_crossfit(100, 80, horizon=8, num_blocks=20)
    with pytest.raises(ConfigError, match="scheme"):
        plan_crossfit(100, 80, horizon=8, scheme="random")


def test_expanding_first_block_invalid(market):
    res = crossfit_features(
        market,
        340,
        memorising_fit,
        fingerprint_features,
        num_blocks=4,
        horizon=H,
        scheme="expanding",
    )
    first = res.plan.specs[0]
    assert first.kind == "none" and res.models[0] is None
    assert res.valid_from == first.rows[1]
    assert np.all(res.values[: first.rows[1]] == 0.0)
    assert np.all(res.values[first.rows[1] :] != 0.0)


def test_final_model_reused(market):
    res = crossfit_features(
        market, 340, memorising_fit, fingerprint_features, num_blocks=3, horizon=H, final_model=-1.0
    )
    assert np.all(res.values[340:] == -1.0)
    assert res.models[res.plan.final.model_id] == -1.0
    summary = res.summary()
    assert [m["name"] for m in summary["models"]] == ["block0", "block1", "block2", "final"]
    assert (
        summary["models"][-1]["fit_target_ranges"][-1][1] == 340
    )  # targets end before the test rows


# --------------------------------------------------------------------------- the real forecaster
TINY = ForecasterConfig(
    context=16, patch=8, d_model=8, num_layers=1, num_heads=2, mlp_ratio=1, horizon=H, dropout=0.0
)
TINY_TC = TrainConfig(
    learning_rate=3e-3,
    batch_size=32,
    epochs=2,
    max_steps=4,
    warmup_steps=1,
    patience=0,
    eval_batch_size=256,
    seed=0,
)


def _same(a, b) -> bool:
    return all(
        np.array_equal(x, y)
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    )


def test_final_spec_is_todays_model(market):
    """With es_rows = the validation split, the 'final' fit is train_forecaster(market, bounds)."""
    bounds = split_bounds(market)
    plan = plan_crossfit(market.num_days, bounds, horizon=H, num_blocks=3)
    fit = forecaster_fit_fn(TINY, TINY_TC, es_rows=(bounds.train_end, bounds.val_end))
    ours = fit(market, plan.final)
    today = train_forecaster(market, bounds, TINY, TINY_TC)
    assert _same(ours.params, today.params)
    rec = ours.extra["crossfit"]
    assert rec["train_origin_ranges"] == [[TINY.context, bounds.train_end - H]]
    assert rec["es_origin_ranges"] == [[bounds.train_end - 1, bounds.val_end - H]]


def test_real_forecaster_marker_and_records(market):
    """The real fit wrapper trains only on allowed windows: returns moved on days that no window of
    block 1's model touches leave that model bit-identical, while every other model changes."""
    bounds = split_bounds(market)
    plan = plan_crossfit(market.num_days, bounds, horizon=H, num_blocks=3)
    fit = forecaster_fit_fn(TINY, TINY_TC, es_rows=(bounds.train_end, bounds.val_end))
    base = crossfit_features(market, plan, fit)
    lo, _ = plan.specs[1].held_out
    # block 1's model: windows before the held-out days end by lo - 1; windows after them read
    # inputs from their first origin - context + 1 on
    post = [a for a, _ in plan.specs[1].origin_ranges() if a > lo]
    first_untouched, last_untouched = lo, post[0] - TINY.context
    assert last_untouched - first_untouched > 20
    moved = crossfit_features(perturb_returns(market, first_untouched, last_untouched), plan, fit)
    for spec in plan.specs:
        same = _same(base.models[spec.model_id].params, moved.models[spec.model_id].params)
        assert same == (spec.model_id == 1), spec.name
    chex.assert_shape(base.values, (market.num_days, market.num_symbols, len(base.names)))
    assert base.valid_from == TINY.context + 1
    for (
        spec
    ) in plan.specs:  # what each model trained / early-stopped on lies inside its allowed mask
        rec = base.models[spec.model_id].extra["crossfit"]
        for key in ("train_origin_ranges", "es_origin_ranges"):
            for a, b in rec[key]:
                assert spec.origin_mask[a:b].all()
        train_end = max(b for _, b in rec["train_origin_ranges"]) - 1
        es_first = min(a for a, _ in rec["es_origin_ranges"])
        if es_first > train_end:  # early-stopping windows after the train windows: no shared target
            assert train_end + H <= es_first


def test_specialist_uses_the_generic_model_of_its_block(market):
    bounds = split_bounds(market)
    plan = plan_crossfit(market.num_days, bounds, horizon=H, num_blocks=3)
    generic = crossfit_features(market, plan, forecaster_fit_fn(TINY, TINY_TC, symbols=[0, 1]))
    sym = market.symbols[2]
    spec_tc = dataclasses.replace(TINY_TC, max_steps=2, learning_rate=1e-3)
    special = crossfit_features(market, plan, specialist_fit_fn(generic.models, sym, spec_tc))
    chex.assert_shape(special.select([sym]), (market.num_days, 1, len(generic.names)))
    for spec in plan.specs:
        rec = special.models[spec.model_id].extra["crossfit"]
        assert rec["symbol"] == sym and isinstance(rec["kept"], bool)
        if not rec["kept"]:
            assert _same(special.models[spec.model_id].params, generic.models[spec.model_id].params)


def test_select_origins_tail_rule():
    plan = plan_crossfit(400, 340, horizon=H, num_blocks=3)
    last = plan.specs[2]  # holds out the validation rows: early stopping falls back to the tail
    train, es = select_origins(last, context=16, horizon=H, es_rows=(280, 340))
    assert es.size > 0 and train.size > 0
    assert train.max() + H <= es.min()
    assert np.all(last.origin_mask[np.concatenate([train, es])])


def test_train_forecaster_on_explicit_windows_matches_the_split(market):
    """train_index / val_index: the split's own windows give the split's model; bad windows are
    refused with one line."""
    bounds = split_bounds(market)
    today = train_forecaster(market, bounds, TINY, TINY_TC)
    train_idx = split_windows(market, bounds, TINY, "train")
    val_idx = split_windows(market, bounds, TINY, "val")
    explicit = train_forecaster(
        market, None, TINY, TINY_TC, train_index=train_idx, val_index=val_idx
    )
    assert _same(today.params, explicit.params)
    assert explicit.num_train_windows == today.num_train_windows
    with pytest.raises(DataError, match="out of range"):
        train_forecaster(market, None, TINY, TINY_TC, train_index=[[0, 3]], val_index=val_idx)
    with pytest.raises(DataError, match="bounds"):
        train_forecaster(market, None, TINY, TINY_TC, train_index=train_idx)


def test_fitted_crossfit_featurises_like_crossfit_features(market):
    res = crossfit_features(
        market, 340, memorising_fit, fingerprint_features, num_blocks=3, horizon=H
    )
    again = res.fitted.featurise(market, fingerprint_features)
    np.testing.assert_array_equal(again.values, res.values)
    one = res.fitted.featurise(market.select([market.symbols[1]]), fingerprint_features)
    np.testing.assert_array_equal(one.values, res.select([market.symbols[1]]))
    summary = res.summary()
    first = summary["models"][0]
    assert first["dates"] == [str(market.dates[0]), str(market.dates[first["rows"][1] - 1])]
    prov = res.fitted.provenance(market.dates)
    assert [p["rows"] for p in prov] == [list(s.rows) for s in res.plan.specs]
