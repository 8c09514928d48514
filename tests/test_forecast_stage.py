"""Stages 1-2 with cross-fitted features (jaxport.pipeline.forecast_stage): every train/validation
row's features come from a model that never touched that row's targets (checked from the recorded
provenance and the plan), moving a block's target days leaves that block's features unchanged,
and a run's summary entries rebuild the same features (resume, RunDir)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import chex
import numpy as np
import pytest

from jaxport.data import split_bounds
from jaxport.data.synth import generate_synthetic_market
from jaxport.forecast import Forecaster
from jaxport.forecast.crossfit import FittedCrossFit
from jaxport.pipeline.basket_stage import pair_features
from jaxport.pipeline.config import build_config
from jaxport.pipeline.forecast_stage import (
    CROSSFIT_KEY,
    feature_models,
    run_base_stage,
    run_specialist_stage,
)
from jaxport.pipeline.stage_io import StageIO

H = 4  # forecast horizon (days)
C = 16  # forecaster context (days)
BASE = ["SYN000", "SYN001", "SYN002"]
SPECIALISTS = ["SYN000"]
PAIR = ["SYN000", "SYN002"]  # one symbol with specialists, one served by the generic models


def tiny_config(blocks: int = 3, moments: str = "mean+std"):
    return build_config(
        "quick",
        overrides={
            "seed": 1,
            "data": {"toto_horizon": H, "crossfit_blocks": blocks, "forecast_moments": moments},
            "base": {
                "steps": 6,
                "batch_size": 32,
                "epochs": 2,
                "warmup_steps": 1,
                "patience": 0,
                "max_val_windows": 128,
                "context": C,
                "patch": 8,
                "d_model": 8,
                "num_layers": 1,
                "num_heads": 2,
                "mlp_ratio": 1,
            },
            "finetune": {"epochs": 1, "max_steps": 3, "learning_rate": 3e-3},
        },
    )


def perturb_returns(market, first_day: int, last_day: int, seed: int = 0):
    """The market with close-to-close log-returns of days ``first_day..last_day`` moved (all OHLC
    prices from ``first_day`` on scaled by the cumulative noise; other days' returns unchanged)."""
    noise = np.random.default_rng(seed).normal(
        0.0, 0.03, (last_day - first_day + 1, market.num_symbols)
    )
    shift = np.zeros((market.num_days, market.num_symbols))
    shift[first_day : last_day + 1] = noise
    factor = np.exp(np.cumsum(shift, axis=0))
    return dataclasses.replace(
        market, **{f: getattr(market, f) * factor for f in ("open", "high", "low", "close")}
    )


def run_stages(cfg, market, out: Path):
    """Stages 1-2 as the pipeline runs them (the test-split forecast evaluation, irrelevant here and
    slow to compile, is stubbed)."""
    bounds = split_bounds(market)
    io = StageIO(out_dir=out, rel=lambda p: str(Path(p).relative_to(out)), abs=lambda r: out / r)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("jaxport.forecast.evaluate_forecaster", lambda *a, **k: {})
        base = run_base_stage(cfg, market, bounds, BASE, io)
        entries: dict = {}
        spec = run_specialist_stage(cfg, market, bounds, SPECIALISTS, base, io, entries)
    return bounds, base, spec


@pytest.fixture(scope="module")
def market():
    return generate_synthetic_market(num_symbols=3, num_days=400, seed=1)


@pytest.fixture(scope="module")
def run(market, tmp_path_factory):
    out = tmp_path_factory.mktemp("stages")
    cfg = tiny_config()
    bounds, base, spec = run_stages(cfg, market, out)
    feats = pair_features(cfg.data, market.select(PAIR), PAIR, spec.features)
    return {"cfg": cfg, "bounds": bounds, "base": base, "spec": spec, "feats": feats, "out": out}


def touched_days(fit: dict, context: int, horizon: int) -> np.ndarray:
    """Every day a fit's windows read (inputs ``u-context+1 .. u``) or predict (``u+1 ..
    u+horizon``), over its train and early-stopping origins."""
    origins = [
        np.arange(a, b) for key in ("train_origin_ranges", "es_origin_ranges") for a, b in fit[key]
    ]
    u = np.concatenate(origins)
    assert u.size > 0
    return np.unique((u[:, None] + np.arange(-context + 1, horizon + 1)[None, :]).reshape(-1))


def test_train_and_validation_rows_come_from_models_blind_to_their_targets(run, market):
    base, spec, feats, bounds = run["base"], run["spec"], run["feats"], run["bounds"]
    base_record = base.entry.extra[CROSSFIT_KEY]
    plan = base.crossfit.plan
    assert base_record["num_blocks"] == 3 and base_record["embargo"] == H
    by_ckpt = {m["checkpoint"]: m for m in base_record["models"]}
    T = market.num_days
    chex.assert_shape(feats.values, (T, len(PAIR), len(feats.names)))
    for sym in PAIR:
        source = feats.sources[sym]
        assert source["source"].startswith("crossfit:blocked")
        covered = np.zeros(T, int)
        spec_record = (
            (spec.entries[sym].extra or {}).get(CROSSFIT_KEY) if sym in spec.entries else None
        )
        for entry in source["models"]:
            a, b = entry["rows"]
            covered[a:b] += 1
            if b <= a or a >= bounds.val_end:
                assert entry["model"] == "final"
                continue
            assert b <= bounds.val_end and entry["model"] != "final", entry
            spec_ = next(s for s in plan.specs if s.name == entry["model"])
            # the fits that shaped this model: its generic block model, and its specialist if kept
            generic = next(m for m in base_record["models"] if m["name"] == entry["model"])
            fits = [generic["fit"]]
            if entry["checkpoint"].startswith("specialists/"):
                assert sym in SPECIALISTS
                special = next(m for m in spec_record["models"] if m["name"] == entry["model"])
                assert special["kept"] and special["checkpoint"] == entry["checkpoint"]
                fits.append(special["fit"])
            else:
                assert by_ckpt[entry["checkpoint"]]["name"] == entry["model"]
            targets = np.arange(a + 1, b - 1 + H + 1)  # days t+1 .. t+H of rows a .. b-1
            for fit in fits:
                assert not np.isin(touched_days(fit, C, H), targets).any(), (sym, entry)
                for key in ("train_origin_ranges", "es_origin_ranges"):  # inside the plan's mask
                    for u0, u1 in fit[key]:
                        assert spec_.origin_mask[u0:u1].all()
        assert np.all(covered == 1)
    # the test rows' model trained and early-stopped on pre-test targets only
    final = base_record["models"][-1]
    assert final["name"] == "final" and final["checkpoint"] == base.entry.checkpoint
    assert touched_days(final["fit"], 0, H).max() <= bounds.val_end - 1


def test_moving_a_blocks_targets_leaves_its_features_unchanged(run, market, tmp_path):
    cfg, plan, feats = run["cfg"], run["base"].crossfit.plan, run["feats"]
    s, e = plan.specs[1].rows
    moved = perturb_returns(market, s + 1, e - 1 + H)
    _, _, spec2 = run_stages(cfg, moved, tmp_path)
    # the models fitted on the moved data, featurising the original data
    again = pair_features(cfg.data, market.select(PAIR), PAIR, spec2.features)
    assert np.array_equal(again.values[s:e], feats.values[s:e])
    # teeth: the models allowed to train on those days changed
    for other in (plan.specs[0], plan.final):
        a, b = other.rows
        assert not np.array_equal(again.values[a:b], feats.values[a:b]), other.name


def test_summary_entries_rebuild_the_same_features(run, market):
    base, spec, out, cfg = run["base"], run["spec"], run["out"], run["cfg"]
    models = feature_models(
        base.entry, spec.entries, lambda rel: Forecaster.load(out / rel), PAIR, market.num_days
    )
    assert all(isinstance(m, FittedCrossFit) for m in models.values())
    rebuilt = pair_features(cfg.data, market.select(PAIR), PAIR, models)
    assert rebuilt.names == run["feats"].names and rebuilt.sources == run["feats"].sources
    np.testing.assert_allclose(rebuilt.values, run["feats"].values, rtol=1e-6, atol=1e-6)


def test_std_moments_keep_names_and_columns(run, market):
    cfg = run["cfg"]
    std_cfg = dataclasses.replace(cfg.data, forecast_moments="std")
    std = pair_features(std_cfg, market.select(PAIR), PAIR, run["spec"].features)
    full = run["feats"]
    assert not any("_toto_mean_" in n for n in std.names)
    assert std.names == [n for n in full.names if "_toto_mean_" not in n]
    keep = [full.names.index(n) for n in std.names]
    np.testing.assert_array_equal(std.values, full.values[..., keep])


def test_crossfit_off_is_one_model(market, tmp_path):
    cfg = tiny_config(blocks=0)
    _, base, spec = run_stages(cfg, market, tmp_path)
    assert base.crossfit is None and CROSSFIT_KEY not in base.entry.extra
    assert all(isinstance(m, Forecaster) for m in spec.features.values())
    feats = pair_features(cfg.data, market.select(PAIR), PAIR, spec.features)
    assert feats.sources == {sym: "forecaster" for sym in PAIR}
