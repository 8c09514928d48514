"""Walk-forward backtests (#12): fold bounds, no look-ahead into a fold's test rows, bad values,
``jaxport eval`` reproducing every fold from its checkpoints, ``jaxport stress`` and ``jaxport
report`` of a walk-forward run. One walk-forward run (``wf_run``) serves every test of the run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxport.data import SplitBounds
from jaxport.data.split import walk_forward_bounds
from jaxport.errors import ConfigError

# Statistical features, one pair, the universe policy (2 seeds): every stage runs in seconds.
FAST_TOML = """
seed = 1
skip_base = true
skip_specialists = true
[data]
features = "toto+stat"
toto_horizon = 2
sequence_length = 20
pairs = [["SYN000", "SYN001"]]
[rl]
scope = "universe"
seeds = 2
algo = "gradient"
epochs = 6
batch_size = 16
num_steps = 16
episode_length = 32
hidden_size = 8
num_layers = 1
"""


# ---------------------------------------------------------------------------------- fold bounds
@settings(max_examples=60, deadline=None)
@given(
    T=st.integers(200, 5000),
    k=st.integers(1, 6),
    embargo=st.integers(0, 10),
    frac=st.floats(0.03, 0.2),
)
def test_walk_forward_bounds_layout(T, k, embargo, frac):
    rows = max(2, int(T * frac))
    try:
        folds = walk_forward_bounds(T, k, test_rows=rows, embargo=embargo, min_train_rows=50)
    except ConfigError as exc:
        assert T - (k + 1) * rows - 2 * embargo < 50, exc
        return
    assert len(folds) == k
    assert folds[-1].test_end == T
    for i, b in enumerate(folds):
        assert b.fold == i and b.num_days == T
        assert b.test_end - b.test_start == rows == b.val_end - b.val_start
        assert b.test_start - b.val_end == embargo == b.val_start - b.train_end
        assert b.train_end >= 50
        if i:  # consecutive test blocks, expanding train windows
            assert b.test_start == folds[i - 1].test_end
            assert b.train_end == folds[i - 1].train_end + rows
        t = b.truncated()
        assert t.num_days == b.test_end and t.ranges() == b.ranges()


def test_default_test_block_and_plain_split_unchanged():
    folds = walk_forward_bounds(1000, 3, embargo=8)
    assert [b.test_end - b.test_start for b in folds] == [150] * 3
    plain = SplitBounds(700, 850, 1000)
    assert plain.ranges() == {"train": (0, 700), "val": (700, 850), "test": (850, 1000)}
    assert (plain.val_start, plain.test_start, plain.test_end, plain.embargo) == (700, 850, 1000, 0)
    with pytest.raises(ConfigError, match="walk_forward 0"):
        walk_forward_bounds(1000, 0)
    with pytest.raises(ConfigError, match="too many folds"):
        walk_forward_bounds(1000, 6, min_train_rows=100)


def test_fold_env_params_hold_no_row_after_their_block():
    """Selection params end where the gate's held-out rows begin, gate params at val_end (no test
    row), test params at test_end."""
    from jaxport.data.synth import generate_synthetic_market
    from jaxport.features import stat_features
    from jaxport.pipeline.basket_stage import PairData, gate_block_start
    from jaxport.pipeline.config import RLConfig

    market = generate_synthetic_market(2, 600, seed=2)
    b = walk_forward_bounds(600, 3, embargo=4, min_train_rows=100)[0]
    cut = market.slice_days(0, b.test_end)
    feats, names = stat_features(cut.open, cut.high, cut.low, cut.close, cut.volume)
    pair = PairData.build(cut, np.asarray(feats), names, 60, b.truncated(), RLConfig())
    assert pair.train.prices.shape[0] == b.train_end
    gate_start = gate_block_start(b.val_start, b.val_end, RLConfig().gate_fraction)
    assert b.val_start < gate_start < b.val_end
    assert pair.val.prices.shape[0] == gate_start and int(pair.val.eval_start) == b.val_start - 1
    assert pair.gate.prices.shape[0] == b.val_end and int(pair.gate.eval_start) == gate_start - 1
    assert pair.test.prices.shape[0] == b.test_end and int(pair.test.eval_start) == b.test_start - 1
    assert pair.dates["test_last"] == str(market.dates[b.test_end - 1])


# ---------------------------------------------------------------------------------- pipeline
def _write_synth(out: Path, **kwargs) -> Path:
    from jaxport.data.synth import write_synthetic_csvs

    write_synthetic_csvs(out, **{"num_symbols": 2, "num_days": 700, "seed": 5, **kwargs})
    return out


def _run(data_dir: Path, out: Path, toml: Path, k: int = 2, **kw) -> dict:
    from jaxport.pipeline.config import build_config
    from jaxport.pipeline.run import Pipeline

    overrides = {
        "output_dir": str(out / "models"),
        "tensorboard_dir": str(out / "logs"),
        "data": {"trainingdata_dir": str(data_dir)},
    }
    cfg = build_config("quick", toml, overrides)
    return Pipeline(cfg, walk_forward=k, **kw).run()


@pytest.fixture(scope="module")
def fast_toml(tmp_path_factory):
    path = tmp_path_factory.mktemp("wfcfg") / "fast.toml"
    path.write_text(FAST_TOML, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def wf_run(tmp_path_factory, fast_toml):
    root = tmp_path_factory.mktemp("wf")
    data = _write_synth(root / "data")
    summary = _run(data, root / "a", fast_toml)
    return root, data, summary


def _fold_fingerprint(run_root: Path, summary: dict, k: int) -> dict:
    """Everything fold ``k`` fitted or decided: policy arrays, validation numbers, the gate."""
    from jaxport.checkpoint import load_checkpoint

    fold = summary["walk_forward"]["folds"][k]
    out = {}
    for name, entry in fold["stages"]["portfolio"].items():
        tree, meta = load_checkpoint(run_root / entry["checkpoint"])
        leaves = {
            "/".join(map(str, p)): np.asarray(v)
            for p, v in __import__("jax").tree_util.tree_flatten_with_path(tree)[0]
        }
        cands = {
            a: (c["validation"], c["objective"], c["final_train_metrics"])
            for a, c in entry["candidates"].items()
        }
        out[name] = (
            leaves,
            entry["gate"],
            entry["shipped"],
            entry["metrics"]["validation"],
            cands,
            meta["features"]["mean"],
            meta["features"]["std"],
        )
    universe = fold["stages"]["universe"]
    for ckpt in ("universe", "universe_population"):
        tree, _ = load_checkpoint(run_root / Path(universe["checkpoint"]).parent / ckpt)
        out[ckpt] = {
            "/".join(map(str, p)): np.asarray(v)
            for p, v in __import__("jax").tree_util.tree_flatten_with_path(tree)[0]
        }
    out["universe_members"] = (universe["members"], universe["validation_curve"])
    return out


def test_walk_forward_summary_schema(wf_run):
    root, _, summary = wf_run
    assert summary["schema_version"] == 2 and summary["status"] == "completed"
    wf = summary["walk_forward"]
    assert wf["num_folds"] == 2 and len(wf["folds"]) == 2 and wf["embargo"] == 2
    for fold in wf["folds"]:
        assert fold["train_last_date"] < fold["val_first_date"] < fold["test_first_date"]
        assert fold["test_first_date"] <= fold["test_last_date"]
        entry = fold["pairs"]["SYN000_SYN001"]
        assert entry["shipped"] in ("universe",) or entry["shipped"].startswith("baseline:")
        assert {
            "equal_weight",
            "inverse_volatility",
            "minimum_variance",
            "risk_parity",
            "cash",
            "buy_and_hold",
        } <= set(entry["baselines"])
        assert "sharpe" in entry["test"]
    assert wf["folds"][0]["test_last_date"] < wf["folds"][1]["test_first_date"]
    stats = wf["pairs"]["SYN000_SYN001"]
    lo, hi = stats["sharpe_gap_vs_equal_weight"]["ci95"]
    assert lo <= stats["sharpe_gap_vs_equal_weight"]["mean"] <= hi
    assert 0 <= stats["folds_beating_equal_weight"] <= 2
    assert 0 <= stats["probabilistic_sharpe"] <= 1 and 0 <= stats["deflated_sharpe"] <= 1
    cand = summary["stages"]["portfolio"]["SYN000_SYN001"]["candidates"]["universe"]
    assert cand["trained_in"] == "stages.universe" and len(cand["members"]) == 2
    universe = summary["stages"]["universe"]
    assert universe["checkpoint"].startswith("folds/1/")
    assert universe["baskets"] == [["SYN000", "SYN001"]]
    assert summary["timings"]["universe"] > 0
    for fold in wf["folds"]:  # every fold trained its own universe policy
        assert fold["stages"]["universe"]["checkpoint"].startswith(f"folds/{fold['fold']}/")
    # top-level stages are the last fold's models
    assert summary["stages"]["portfolio"]["SYN000_SYN001"]["checkpoint"].startswith("folds/1/")
    assert (root / "a" / "models" / "folds" / "0" / "portfolio" / "SYN000_SYN001").is_dir()


def test_no_fold_sees_its_test_rows(wf_run, tmp_path, fast_toml):
    """Plant a marker in fold 0's test rows (prices from test_start on times a random walk): no
    checkpoint, validation statistic or gate decision of fold 0 changes; fold 1 (which trains on
    those rows) does."""
    from jaxport.data import load_market

    root, data, summary = wf_run
    b = summary["walk_forward"]["folds"][0]["bounds"]
    marked = tmp_path / "marked"
    marked.mkdir()
    rng = np.random.default_rng(11)
    market = load_market(data, ["SYN000", "SYN001"])
    walk = np.exp(np.cumsum(rng.normal(0, 0.03, market.num_days - b["test_start"])))
    for sym in ("SYN000", "SYN001"):
        text = (data / f"{sym}.csv").read_text().splitlines()
        header, rows = text[0], text[1:]
        cols = header.split(",")
        out = [header]
        for i, line in enumerate(rows):
            cells = line.split(",")
            if i >= b["test_start"]:
                f = walk[i - b["test_start"]]
                for c in ("Open", "High", "Low", "Close"):
                    j = cols.index(c)
                    cells[j] = repr(float(float(cells[j]) * f))
            out.append(",".join(cells))
        (marked / f"{sym}.csv").write_text("\n".join(out) + "\n")
    planted = _run(marked, tmp_path / "b", fast_toml)
    a0 = _fold_fingerprint(root / "a" / "models", summary, 0)
    b0 = _fold_fingerprint(tmp_path / "b" / "models", planted, 0)
    assert set(a0) == set(b0) and {"universe", "universe_population"} <= set(a0)
    for ckpt in ("universe", "universe_population"):
        assert a0[ckpt].keys() == b0[ckpt].keys()
        for key in a0[ckpt]:
            np.testing.assert_array_equal(a0[ckpt][key], b0[ckpt][key], err_msg=key)
    assert json.dumps(a0.pop("universe_members")) == json.dumps(b0.pop("universe_members"))
    for name in a0:
        if name in ("universe", "universe_population"):
            continue
        leaves_a, *rest_a = a0[name]
        leaves_b, *rest_b = b0[name]
        assert leaves_a.keys() == leaves_b.keys()
        for key in leaves_a:
            np.testing.assert_array_equal(leaves_a[key], leaves_b[key], err_msg=key)
        assert json.dumps(rest_a, default=str) == json.dumps(rest_b, default=str)
    # the marker is really there: fold 0's test numbers and fold 1's training differ
    t_a = summary["walk_forward"]["folds"][0]["pairs"]["SYN000_SYN001"]["test"]
    t_b = planted["walk_forward"]["folds"][0]["pairs"]["SYN000_SYN001"]["test"]
    base_a = summary["walk_forward"]["folds"][0]["pairs"]["SYN000_SYN001"]["baselines"]
    base_b = planted["walk_forward"]["folds"][0]["pairs"]["SYN000_SYN001"]["baselines"]
    assert t_a != t_b or base_a != base_b


def test_eval_reproduces_every_fold(wf_run):
    from jaxport.pipeline.reevaluate import all_match, evaluate_run

    root, _, summary = wf_run
    result = evaluate_run(root / "a" / "models", write=False)
    assert len(result["folds"]) == 2
    assert all_match(result), json.dumps(result, default=str)[:2000]
    for k, fold in enumerate(result["folds"]):
        want = summary["walk_forward"]["folds"][k]["pairs"]["SYN000_SYN001"]
        got = fold["pairs"]["SYN000_SYN001"]
        assert got["shipped"] == want["shipped"]
        assert got["test"]["total_return"] == pytest.approx(want["test"]["total_return"], abs=1e-6)


def test_stress_per_fold_and_pooled(wf_run):
    """``jaxport stress`` of the 2-fold run: each fold stressed on its own test rows with its own
    policies; the top-level baskets pool the folds' paths (K x paths)."""
    from jaxport.pipeline.stress_run import StressSettings, stress_run

    root, _, summary = wf_run
    res = stress_run(root / "a" / "models", StressSettings(paths=24, horizon=20, chunk=24, seed=2))
    assert [f["fold"] for f in res["folds"]] == [0, 1]
    folds = summary["walk_forward"]["folds"]
    shipped = [f["pairs"]["SYN000_SYN001"]["shipped"] for f in folds]
    assert [f["shipped_as"]["SYN000_SYN001"] for f in res["folds"]] == shipped
    pooled = res["_per_path"]["SYN000_SYN001"]
    assert pooled["equal_weight"]["total_return"].shape == (48,)
    ew = [f["baskets"]["SYN000_SYN001"]["equal_weight"] for f in res["folds"]]
    mean = res["baskets"]["SYN000_SYN001"]["equal_weight"]["total_return"]["mean"]
    assert mean == pytest.approx(np.mean([e["total_return"]["mean"] for e in ew]), rel=1e-6)
    dates = [f["source_dates"]["SYN000_SYN001"] for f in res["folds"]]
    assert dates[0][1] < dates[1][0]  # fold 0's test rows end before fold 1's begin


@pytest.mark.parametrize("k", ["0", "40"])
def test_bad_walk_forward_is_one_line_exit_2(k, tmp_path, fast_toml):
    from typer.testing import CliRunner

    from jaxport.cli import app

    data = _write_synth(tmp_path / "data")
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--trainingdata-dir",
            str(data),
            "--output-dir",
            str(out / "models"),
            "--tensorboard-dir",
            str(out / "logs"),
            "--config",
            str(fast_toml),
            "--walk-forward",
            k,
        ],
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "--walk-forward" in lines[0], result.output
    assert not out.exists()


def test_report_draws_walk_forward(wf_run):
    """``jaxport report`` of the 2-fold run writes ``walk_forward.png``; the plotted gap and interval
    are the summary's, and each fold's curves are that fold's evaluation file."""
    from jaxport.pipeline.report import walk_forward_series, write_report
    from jaxport.pipeline.rundir import RunDir

    root, _, summary = wf_run
    run = RunDir(root / "a" / "models")
    report = write_report(run, root / "report")
    assert (root / "report" / "walk_forward.png").stat().st_size > 0
    assert "walk_forward.png" in report.read_text(encoding="utf-8")
    series = walk_forward_series(run)
    assert set(series) == set(summary["walk_forward"]["pairs"]) == {"SYN000_SYN001"}
    for name, s in series.items():
        want = summary["walk_forward"]["pairs"][name]["sharpe_gap_vs_equal_weight"]
        assert s["gap"]["mean"] == want["mean"] and s["gap"]["ci95"] == list(want["ci95"])
        assert [f["fold"] for f in s["folds"]] == [0, 1]
        for f in s["folds"]:
            fold = summary["walk_forward"]["folds"][f["fold"]]
            assert f["shipped"] == fold["pairs"][name]["shipped"]
            assert f["dates"] is not None and len(f["dates"]) == len(f["policy"])
            assert str(f["dates"][0]) >= fold["val_first_date"]
            assert str(f["dates"][-1]) == fold["test_last_date"]
            assert f["equal_weight"].shape == f["policy"].shape
            assert f["policy"][0] == pytest.approx(f["equal_weight"][0])
