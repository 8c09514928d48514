"""The pipeline's universe scope (#13): baskets, the trainer config it derives from the RL flags,
its bad values, and that a basket's test rows never reach the universe trainer."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxport.pipeline.config import RLConfig
from jaxport.pipeline.trainer_configs import eval_every, universe_config
from jaxport.pipeline.universe_stage import universe_baskets


def test_baskets_are_every_pair_of_distinct_symbols_in_order():
    syms = ["AAPL", "AMZN", "MSFT", "AAPL", "NVDA", "AMZN"]
    baskets = universe_baskets(syms)
    assert baskets == [list(p) for p in itertools.combinations(["AAPL", "AMZN", "MSFT", "NVDA"], 2)]
    assert universe_baskets(["AAPL"]) == [] and universe_baskets([]) == []


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 500), target=st.integers(1, 20))
def test_eval_every_divides_and_gives_enough_evaluations(n, target):
    e = eval_every(n, target)
    assert n % e == 0
    assert n // e >= min(target, n)
    # the largest such divisor: any larger divisor gives too few evaluations
    assert all(n // d < target for d in range(e + 1, n + 1) if n % d == 0)


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 4096),
    baskets=st.integers(1, 40),
    epochs=st.integers(1, 300),
    episode=st.integers(2, 256),
)
def test_universe_config_from_rl_flags(batch, baskets, epochs, episode):
    rl = RLConfig(
        batch_size=batch,
        epochs=epochs,
        seeds=3,
        risk_penalty=0.2,
        turnover_penalty=0.01,
        rebalance_rate=0.5,
        feature_noise=0.1,
        weight_decay=0.02,
        leverage_limit=1.5,
    )
    cfg = universe_config(rl, baskets, episode)
    assert cfg.num_envs * baskets >= batch and cfg.num_envs >= 4
    assert cfg.num_envs * baskets < batch + baskets or cfg.num_envs == 4
    assert cfg.num_updates == epochs and epochs % cfg.eval_every == 0
    assert cfg.episode_length == episode and cfg.bptt_length <= episode
    assert cfg.num_seeds == 3 and cfg.leverage_cap == 1.5
    assert (cfg.risk_penalty, cfg.select_risk_penalty) == (0.2, 0.2)
    assert (cfg.turnover_penalty, cfg.select_turnover_penalty) == (0.01, 0.01)
    assert (cfg.turnover_penalty, cfg.rebalance_rate) == (0.01, 0.5)
    assert (cfg.feature_noise, cfg.weight_decay) == (0.1, 0.02)


@pytest.mark.parametrize(
    "flag, value, setting",
    [
        ("--rl-scope", "basket", "--rl-scope 'basket': expected one of universe, pair"),
        ("--rl-seeds", "0", "--rl-seeds 0: must be >= 1"),
        ("--rebalance-rate", "0", "--rebalance-rate 0.0: must be in (0, 1]"),
        ("--turnover-penalty", "-1", "--turnover-penalty -1.0: must be >= 0"),
        ("--feature-noise", "-0.5", "--feature-noise -0.5: must be >= 0"),
        ("--tilt-scales", "0,1.5", "--tilt-scales [0.0, 1.5]: every scale must be in [0, 1]"),
    ],
)
def test_bad_universe_flags_are_one_line_exit_2(flag, value, setting, tmp_path, cli_runner):
    from jaxport.cli import app

    out = tmp_path / "run"
    result = cli_runner.invoke(app, ["train", "--output-dir", str(out), flag, value])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"error: {setting}"], result.output
    assert not out.exists()


def test_basket_env_params_hold_no_test_row():
    """The universe trainer gets only ``PairData.train`` / ``.val``: changing every row from the
    test block on leaves them bit-identical (and the test params do change)."""
    import jax

    from jaxport.data import MarketData, split_bounds
    from jaxport.pipeline.basket_stage import PairData

    rng = np.random.default_rng(3)
    T, N, F = 400, 2, 3
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (T, N)), 0))
    dates = np.arange(np.datetime64("2020-01-01"), np.datetime64("2020-01-01") + T)

    def market(c):
        return MarketData(("A", "B"), dates, c * 0.999, c * 1.01, c * 0.99, c, np.ones((T, N)))

    m = market(close)
    bounds = split_bounds(m, (0.7, 0.15, 0.15))
    values = rng.normal(size=(T, N, F))
    a = PairData.build(m, values, list("xyz"), 5, bounds, RLConfig())
    marked_close = close.copy()
    marked_close[bounds.test_start :] *= 1.5
    marked_values = values.copy()
    marked_values[bounds.test_start :] += 100.0
    b = PairData.build(market(marked_close), marked_values, list("xyz"), 5, bounds, RLConfig())
    for split in ("train", "val"):
        for x, y in zip(
            jax.tree_util.tree_leaves(getattr(a, split)),
            jax.tree_util.tree_leaves(getattr(b, split)),
        ):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not np.array_equal(np.asarray(a.test.prices), np.asarray(b.test.prices))


def test_grid_becomes_the_population_and_bad_grids_are_config_errors():
    from jaxport.errors import ConfigError
    from jaxport.pipeline.config import PipelineConfig, validate_config

    rl = RLConfig(seeds=2, grid={"rebalance_rate": [1.0, 0.25], "feature_noise": [0.0, 0.3]})
    cfg = universe_config(rl, 3, 64)
    assert len(cfg.members_hparams()) * cfg.num_seeds == 8
    assert {h["rebalance_rate"] for h in cfg.members_hparams()} == {1.0, 0.25}
    for grid, match in (({"hidden": [1]}, "rl.grid"), ({"lr": []}, "rl.grid")):
        bad = PipelineConfig(rl=RLConfig(grid=grid))
        with pytest.raises(ConfigError, match=match):
            validate_config(bad)


def test_ppo_config_shares_the_universe_fields():
    from jaxport.pipeline.trainer_configs import universe_ppo_config
    from jaxport.rl.universe_ppo import UniversePPOConfig

    rl = RLConfig(batch_size=64, epochs=20, seeds=2, turnover_penalty=0.01, rebalance_rate=0.5)
    shared, ppo = universe_config(rl, 4, 48), universe_ppo_config(rl, 4, 48)
    assert isinstance(ppo, UniversePPOConfig)
    for name in ("num_envs", "num_updates", "eval_every", "num_seeds", "risk_penalty"):
        assert getattr(ppo, name) == getattr(shared, name), name
    for name in ("turnover_penalty", "rebalance_rate", "select_turnover_penalty"):
        assert getattr(ppo, name) == getattr(shared, name), name
    assert ppo.num_steps == 32 and ppo.lr == UniversePPOConfig.lr
    assert (ppo.num_steps * ppo.num_envs) % ppo.num_minibatches == 0


def test_both_trainers_keep_the_better_population_and_every_member(monkeypatch):
    """rl.algo both: each trainer's population is trained; the one whose selected member scores
    higher on validation is the policy, and every member of both is kept as a candidate."""
    import jax

    import jaxport.pipeline.universe_stage as stage
    import jaxport.rl.universe_ppo as universe_ppo
    from jaxport.data import MarketData, split_bounds
    from jaxport.pipeline.basket_stage import PairData

    rng = np.random.default_rng(5)
    T, N, F = 300, 2, 2
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (T, N)), 0))
    dates = np.arange(np.datetime64("2021-01-01"), np.datetime64("2021-01-01") + T)
    market = MarketData(("A", "B"), dates, close, close, close, close, np.ones((T, N)))
    basket = PairData.build(
        market,
        rng.normal(size=(T, N, F)),
        ["x", "y"],
        0,
        split_bounds(market, (0.7, 0.15, 0.15)),
        RLConfig(),
    )
    calls = []

    def fake(trainer, scores):
        def train(cfg, env, train, val, key, **kw):
            calls.append((trainer, type(cfg).__name__, train.prices.shape[0]))
            policy = SimpleNamespace(trainer=trainer)
            members = [
                {"val_score": v, "hyperparams": {"rebalance_rate": 1.0}, "seed": i}
                for i, v in enumerate(scores)
            ]
            curve = np.zeros((len(scores), 2, 1))
            return {
                "policy": policy,
                "members": members,
                "best_member": int(np.argmax(scores)),
                "metrics": {"objective": np.zeros((len(scores), cfg.num_updates))},
                "val_curve": {"objective": curve, "sharpe": curve},
                "eval_updates": [0, cfg.num_updates],
                "universe_config": cfg,
            }

        return train

    from types import SimpleNamespace

    monkeypatch.setattr(stage, "train_universe", fake("gradient", [0.1, 0.3]))
    monkeypatch.setattr(universe_ppo, "train_universe_ppo", fake("ppo", [0.2, 0.5, 0.4]))
    monkeypatch.setattr(stage, "member_policies", lambda r, c, e: [None] * len(r["members"]))
    rl = RLConfig(algo="both", seeds=2, epochs=10)
    out = stage.train_universe_stage(rl, [basket, basket], jax.random.PRNGKey(0))
    assert [c[:2] for c in calls] == [("gradient", "UniverseConfig"), ("ppo", "UniversePPOConfig")]
    assert all(c[2] == 2 for c in calls)  # both baskets, stacked
    assert out.entry.trainer == "ppo" and out.policy.trainer == "ppo"
    assert out.entry.best_member == 1 and len(out.members) == 5
    assert {t: d["val_score"] for t, d in out.entry.trainers.items()} == {
        "gradient": 0.3,
        "ppo": 0.5,
    }


def test_universe_checkpoint_exports_to_torch(tmp_path):
    """A universe-policy checkpoint as the pipeline writes it goes through ``export_policy`` and
    loads from .pt and .safetensors; the Torch module's actions match JAX to 1e-5."""
    pytest.importorskip("torch")
    import jax
    import torch

    from jaxport.env import PortfolioEnv
    from jaxport.rl.codec import load_policy_checkpoint, save_policy_checkpoint
    from jaxport.rl.universe import UniverseConfig, init_params, make_universe_policy
    from torch_compat.export import export_policy
    from torch_compat.models import load_exported
    from torch_compat.serialization import save_exported

    env = PortfolioEnv(3, 4)
    cfg = UniverseConfig(hidden_sizes=(8,), head_size=8)
    params = init_params(cfg, env, jax.random.PRNGKey(0))
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    params = tree.unflatten(  # away from the 1/N init, so the heads matter
        [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    )
    save_policy_checkpoint(tmp_path / "ckpt", make_universe_policy(cfg, env, params, 0.5))
    policy, meta = load_policy_checkpoint(tmp_path / "ckpt")
    paths = save_exported(tmp_path / "exp", *export_policy(policy, metadata=meta))
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(32, env.obs_dim)).astype(np.float32)
    want = np.asarray(policy.act(obs))
    for path in (p for p in paths if p.suffix in (".pt", ".safetensors")):
        with torch.no_grad():
            got = load_exported(path)(torch.from_numpy(obs)).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=path.suffix)


def test_selection_rows_hold_no_gate_row_and_gate_rows_no_test_row():
    """``PairData.val`` (selection) ends where the gate's held-out rows begin: marking every row
    from the gate block on leaves the selection params bit-identical and changes the gate's."""
    import jax

    from jaxport.data import MarketData, split_bounds
    from jaxport.pipeline.basket_stage import PairData, gate_block_start

    rng = np.random.default_rng(4)
    T, N, F = 400, 2, 3
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (T, N)), 0))
    dates = np.arange(np.datetime64("2020-01-01"), np.datetime64("2020-01-01") + T)

    def market(c):
        return MarketData(("A", "B"), dates, c, c, c, c, np.ones((T, N)))

    bounds = split_bounds(market(close), (0.7, 0.15, 0.15))
    gate_start = gate_block_start(bounds.val_start, bounds.val_end, 0.5)
    assert bounds.val_start + 2 <= gate_start <= bounds.val_end - 2
    values = rng.normal(size=(T, N, F))
    rl = RLConfig(anchor="vol_managed_equal_weight")
    a = PairData.build(market(close), values, list("xyz"), 5, bounds, rl)
    marked = close.copy()
    marked[gate_start:] *= 1.5
    b = PairData.build(market(marked), values, list("xyz"), 5, bounds, rl)
    assert a.val.prices.shape[0] == gate_start and int(a.gate.eval_start) == gate_start - 1
    assert a.gate.prices.shape[0] == bounds.val_end
    for x, y in zip(jax.tree_util.tree_leaves(a.val), jax.tree_util.tree_leaves(b.val)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not np.array_equal(np.asarray(a.gate.prices), np.asarray(b.gate.prices))
    # the anchor columns are raw (mean 0, std 1) and appended last
    assert a.feature_names[-2:] == ["anchor_log_vol", "anchor_log_vol_ratio"]
    assert a.env.num_features == F + 2 and list(a.feature_std[-2:]) == [1.0, 1.0]
    # gate_fraction 0: the gate reads the selection rows (the pre-#21 protocol)
    same = PairData.build(market(close), values, list("xyz"), 5, bounds, RLConfig(gate_fraction=0))
    assert same.gate is same.val
    assert a.tilt is a.val  # no tilt scale to choose: no tilt rows


def test_tilt_rows_sit_between_the_selection_and_the_gate_rows():
    """With a tilt scale to choose, the last ``tilt_fraction`` of the selection rows becomes the
    tilt block: marking every row from it on leaves the selection params bit-identical, and
    marking the gate rows leaves the tilt params bit-identical."""
    import jax

    from jaxport.data import MarketData, split_bounds
    from jaxport.pipeline.basket_stage import PairData, gate_block_start

    rng = np.random.default_rng(5)
    T, N, F = 500, 2, 3
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (T, N)), 0))
    dates = np.arange(np.datetime64("2020-01-01"), np.datetime64("2020-01-01") + T)

    def build(c, rl):
        m = MarketData(("A", "B"), dates, c, c, c, c, np.ones((T, N)))
        return PairData.build(m, values, list("xyz"), 5, bounds, rl)

    values = rng.normal(size=(T, N, F))
    bounds = split_bounds(
        MarketData(("A", "B"), dates, close, close, close, close, np.ones((T, N))),
        (0.6, 0.25, 0.15),
    )
    rl = RLConfig(tilt_scales=[0.0, 1.0], tilt_fraction=0.4)
    gate_start = gate_block_start(bounds.val_start, bounds.val_end, rl.gate_fraction)
    tilt_start = gate_block_start(bounds.val_start, gate_start, 0.4)
    assert bounds.val_start + 2 <= tilt_start <= gate_start - 2
    a = build(close, rl)
    assert a.val.prices.shape[0] == tilt_start
    assert int(a.tilt.eval_start) == tilt_start - 1 and a.tilt.prices.shape[0] == gate_start
    assert (
        a.dates["val_last"] < a.dates["tilt_first"] <= a.dates["tilt_last"] < a.dates["gate_first"]
    )

    def same(x, y):
        return all(
            np.array_equal(np.asarray(u), np.asarray(v))
            for u, v in zip(jax.tree_util.tree_leaves(x), jax.tree_util.tree_leaves(y))
        )

    for start, unchanged, changed in ((tilt_start, "val", "tilt"), (gate_start, "tilt", "gate")):
        marked = close.copy()
        marked[start:] *= 1.5
        b = build(marked, rl)
        assert same(getattr(a, unchanged), getattr(b, unchanged)), unchanged
        assert not same(getattr(a, changed), getattr(b, changed)), changed
    # tilt_fraction 0: the scale is chosen on the selection rows themselves
    assert (
        build(close, dataclasses.replace(rl, tilt_fraction=0.0)).tilt.prices.shape[0] == gate_start
    )


@pytest.mark.parametrize(
    "rows, frac, held", [(100, 0.5, 50), (100, 0.0, 0), (3, 0.5, 0), (100, 0.9, 90), (10, 0.1, 0)]
)
def test_gate_block_start(rows, frac, held):
    from jaxport.pipeline.basket_stage import gate_block_start

    assert gate_block_start(1000, 1000 + rows, frac) == 1000 + rows - held


def test_pooled_walk_forward_precision_and_pooled_gap():
    from jaxport.eval.walk_forward import pooled_walk_forward

    rng = np.random.default_rng(5)

    def curve(r):
        return np.concatenate([[1.0], np.cumprod(1.0 + r)]).tolist()

    folds = {}
    for p in ("A_B", "C_D"):
        folds[p] = []
        for k in range(3):
            ew = rng.normal(3e-4, 0.01, 60)
            good = ew + 0.002  # the learned candidate beats 1/N every day
            shipped_learned = (p, k) in {("A_B", 0), ("C_D", 2)}
            folds[p].append(
                {
                    "equity": curve(good if shipped_learned else ew),
                    "equal_weight": curve(ew),
                    "candidates": {"universe": curve(good)},
                    "pbo": [0.25],
                    "shipped": "universe" if shipped_learned else "baseline:equal_weight",
                }
            )
    out = pooled_walk_forward(folds, seed=1)
    assert out["pair_folds"] == 6 and out["learned_shipped_share"] == pytest.approx(2 / 6)
    assert out["learned_shipped"]["count"] == 2 and out["learned_shipped"]["win_rate"] == 1.0
    cand = out["candidates"]["universe"]
    assert cand["num_baskets"] == 2 and cand["num_days"] == 180
    assert cand["mean"] > 0 and cand["ci95"][0] > 0
    assert 0 < out["shipped"]["mean"] < cand["mean"] and out["pbo_mean"] == 0.25


def test_universe_training_symbols_add_the_basket_symbols_once():
    from jaxport.pipeline.config import PipelineConfig
    from jaxport.pipeline.run import universe_training_symbols

    cfg = PipelineConfig()
    pairs = [["B", "C"], ["C", "Z"]]
    assert universe_training_symbols(cfg, ["A", "B"], pairs) == ["A", "B", "C", "Z"]
    cfg.data.universe_symbols = ["X", "Y", "B"]
    assert universe_training_symbols(cfg, ["A", "B"], pairs) == ["X", "Y", "B", "C", "Z"]


def test_broaden_universe_appends_the_covering_symbols_to_market_and_config(tmp_path):
    """The default universe: the data folder's other covering symbols join the market (as
    ``load_market`` of the longer list gives it) and ``data.universe_symbols`` (the base symbols
    first); a late-starting file does not."""
    import pandas as pd

    from jaxport.data import load_market, write_synthetic_csvs
    from jaxport.pipeline.config import build_config, min_rows_needed
    from jaxport.pipeline.run import broaden_universe

    paths = write_synthetic_csvs(tmp_path, num_symbols=5, num_days=400, seed=1)
    names = sorted(p.stem for p in paths)
    frame = pd.read_csv(tmp_path / f"{names[2]}.csv")
    frame.iloc[5:].to_csv(tmp_path / f"{names[2]}.csv", index=False)  # starts 5 days late
    cfg = build_config("quick")
    market = load_market(tmp_path, names[:2], min_rows=min_rows_needed(cfg))
    wide, wide_cfg = broaden_universe(cfg, tmp_path, market, [names[1]])
    assert wide.symbols == (*names[:2], names[3], names[4])
    expected = load_market(tmp_path, wide.symbols)
    np.testing.assert_array_equal(wide.close, expected.close)
    assert wide.sources == expected.sources and wide.rows_dropped == expected.rows_dropped
    assert wide_cfg.data.universe_symbols == [names[1], names[3], names[4]]
    assert cfg.data.universe_symbols is None  # the given config is left as it was


@settings(max_examples=30, deadline=None)
@given(
    # totals off the 0 and -10 % boundaries by more than float rounding
    ew_total=st.lists(st.integers(-50, 50).map(lambda k: k / 100 + 0.003), min_size=1, max_size=6),
    shift=st.integers(-30, 30).map(lambda k: k / 100 + 0.001),
)
def test_losses_while_equal_weight_gains_counts_by_hand(ew_total, shift):
    """The moonshot's "no basket loses more than 10 % while 1/N gains": per pair-fold, a policy's
    total test return below -10 % in a block where 1/N's is above 0, counted by hand."""
    from jaxport.eval.walk_forward import losses_while_equal_weight_gains

    def curve(total):  # a 3-day equity curve with that total return (fraction)
        return [1.0, 1.0 + total / 2, 1.0 + total]

    folds = [
        {
            "equity": curve(g + shift),
            "equal_weight": curve(g),
            "candidates": {"universe": curve(-g)},
        }
        for g in ew_total
    ]
    out = losses_while_equal_weight_gains({"A_B": folds[:2], "C_D": folds[2:]})
    gained = [g for g in ew_total if g > 0]
    for name, totals in (
        ("shipped", [g + shift for g in gained]),
        ("universe", [-g for g in gained]),
    ):
        assert out[name]["pair_folds"] == len(ew_total)
        assert out[name]["count"] == sum(t < -0.10 for t in totals)
        if gained:
            assert out[name]["worst"] == pytest.approx(min(totals))
        else:
            assert out[name]["worst"] is None


def test_stage_ships_the_tilt_scale_chosen_on_the_selection_rows(monkeypatch):
    """With ``rl.tilt_scales``, the kept policy is the trained one at the scale with the best
    validation score on the stacked selection rows, and the stage records every scale's score."""
    import jax

    import jaxport.pipeline.universe_stage as stage
    from jaxport.data import MarketData, split_bounds
    from jaxport.pipeline.basket_stage import PairData
    from jaxport.rl.universe import (
        UniverseConfig,
        choose_tilt_scale,
        init_params,
        make_universe_policy,
        stack_env_params,
    )

    rng = np.random.default_rng(7)
    T, N = 400, 2
    close = 100 * np.exp(np.cumsum(rng.normal(3e-4, 0.012, (T, N)), 0))
    dates = np.arange(np.datetime64("2021-01-01"), np.datetime64("2021-01-01") + T)
    market = MarketData(("A", "B"), dates, close, close, close, close, np.ones((T, N)))
    rl = RLConfig(seeds=1, epochs=10, tilt_scales=[1.0, 0.0, 0.5], tilt_fraction=0.5)
    bounds = split_bounds(market, (0.6, 0.25, 0.15))
    basket = PairData.build(market, rng.normal(size=(T, N, 2)), ["x", "y"], 0, bounds, rl)
    cfg = UniverseConfig(hidden_sizes=(4,), head_size=4, anchor="volatility_timing")
    params = init_params(cfg, basket.env, jax.random.PRNGKey(0))
    keys = iter(jax.random.split(jax.random.PRNGKey(1), 16))
    params = jax.tree_util.tree_map(lambda x: x + jax.random.normal(next(keys), x.shape), params)
    trained = make_universe_policy(cfg, basket.env, params, rebalance_rate=1.0)

    def fake_train(cfg, env, train, val, key, **kw):
        return {
            "policy": trained,
            "members": [{"val_score": 0.1, "hyperparams": {"rebalance_rate": 1.0}, "seed": 0}],
            "best_member": 0,
            "metrics": {"objective": np.zeros((1, cfg.num_updates))},
            "val_curve": {"objective": np.zeros((1, 2, 2)), "sharpe": np.zeros((1, 2, 2))},
            "eval_updates": [0, cfg.num_updates],
        }

    monkeypatch.setattr(stage, "train_universe", fake_train)
    monkeypatch.setattr(stage, "member_policies", lambda r, c, e: [trained])
    out = stage.train_universe_stage(rl, [basket, basket], jax.random.PRNGKey(0))
    assert basket.tilt is not basket.val  # the scale is chosen on the held-out tilt rows
    want = choose_tilt_scale(trained, stack_env_params([basket.tilt, basket.tilt]), [0, 0.5, 1])
    tilt = out.entry.tilt
    assert tilt["scales"] == [0.0, 0.5, 1.0] and tilt["scale"] == want["scale"]
    np.testing.assert_allclose(tilt["score"], want["score"], rtol=1e-6)
    assert tilt["scale"] == [0.0, 0.5, 1.0][int(np.argmax(tilt["score"]))]
    for a, b in zip(
        jax.tree_util.tree_leaves(out.policy.tree), jax.tree_util.tree_leaves(want["policy"].tree)
    ):
        np.testing.assert_array_equal(a, b)
    assert out.members == [trained]  # the population's members stay as trained
    assert tilt["rows"] == {"first": basket.dates["tilt_first"], "last": basket.dates["tilt_last"]}
    default = stage.train_universe_stage(
        RLConfig(seeds=1, epochs=10, tilt_scales=[1.0]), [basket, basket], jax.random.PRNGKey(0)
    )
    assert default.entry.tilt is None and default.policy is trained
