"""``jaxport stress``: the stationary-bootstrap index generator, policies rolled over index paths
(reproducing the deterministic episode, 1/N's expected growth, cash, trade-PnL conservation with
ruin, seeds), the Politis-White block length against ``arch``, and the command end to end (on a
walk-forward run: tests/test_walk_forward.py, which shares that module's run)."""

from __future__ import annotations

import json
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxport.eval.allocators  # noqa: F401  (registers the baseline: policy kind)
from jaxport.env import EnvParams, PortfolioEnv
from jaxport.eval import default_allocators, evaluate_policy
from jaxport.eval.bootstrap import (
    contiguous_indices,
    default_block_length,
    politis_white_block_length,
    stationary_bootstrap_indices,
)
from jaxport.eval.stress import path_days, policy_statistics, rollout_paths, warmup_days
from jaxport.rl.codec import load_policy_checkpoint, make_policy, save_policy_checkpoint

T, N, F = 500, 2, 3


def market(seed=0, vol=0.02, drift=0.0004, T=T):
    rng = np.random.default_rng(seed)
    prices = 100 * np.exp(np.cumsum(rng.normal(drift, vol, (T, N)), axis=0))
    return prices, rng.normal(size=(T, N, F))


def allocator_policies(env):
    return [make_policy(f"baseline:{a.name}", a, env) for a in default_allocators(env.num_assets)]


def universe_policy(env, seed=1):
    from jaxport.rl.universe import UniverseConfig, init_params

    cfg = UniverseConfig(leverage_cap=2.0, rebalance_rate=0.5)
    params = init_params(cfg, env, jax.random.PRNGKey(seed))
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed + 7), len(leaves))
    noisy = [x + 0.5 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    params = jax.tree_util.tree_unflatten(tree, noisy)
    return make_policy("universe", cfg, env, params=params, rebalance_rate=0.5)


# ------------------------------------------------------------------------------ generator
# The generator tests are statistical (a bound of several standard errors): derandomized, so a
# run cannot draw the rare seed past the bound (n=6, block=1, seed=35 gave chi2 29.2 on 5 dof,
# p ~ 2e-5, once in 3000 columns); the examples are the same in every run.
@settings(max_examples=8, deadline=None, derandomize=True)
@given(
    block=st.sampled_from([1.0, 2.0, 5.0, 12.0]), n=st.integers(20, 200), seed=st.integers(0, 99)
)
def test_mean_block_length_matches_definition(block, n, seed):
    """Blocks (runs of circular continuations) have mean length ``block_length`` (geometric)."""
    idx = np.asarray(
        stationary_bootstrap_indices(jax.random.PRNGKey(seed), n, block, num_paths=200, length=300)
    )
    chex.assert_shape(idx, (200, 300))
    assert idx.min() >= 0 and idx.max() < n
    cont = idx[:, 1:] == (idx[:, :-1] + 1) % n
    # a new block can also land on the continuation by chance (prob 1/n): correct for it
    p_new_observed = 1.0 - cont.mean()
    p_new = (1.0 / block) * (1.0 - 1.0 / n)
    se = math.sqrt(p_new * (1 - p_new) / cont.size)
    assert abs(p_new_observed - p_new) < 5 * se + 1e-9


@settings(max_examples=5, deadline=None, derandomize=True)
@given(n=st.integers(5, 40), block=st.sampled_from([1.0, 4.0, 30.0]), seed=st.integers(0, 99))
def test_positions_are_uniform(n, block, seed):
    """Block starts (and by stationarity every day) are uniform over the source rows."""
    idx = np.asarray(
        stationary_bootstrap_indices(jax.random.PRNGKey(seed), n, block, num_paths=4000, length=8)
    )
    for column in (idx[:, 0], idx[:, -1]):
        counts = np.bincount(column, minlength=n)
        expected = column.size / n
        chi2 = float(np.sum((counts - expected) ** 2 / expected))
        # chi-square with n - 1 dof: mean n - 1, sd sqrt(2 (n - 1)); 6 sd is a loose bound
        assert chi2 < (n - 1) + 6 * math.sqrt(2 * (n - 1)), (chi2, n)


def test_infinite_block_is_one_contiguous_block():
    idx = np.asarray(
        stationary_bootstrap_indices(jax.random.PRNGKey(3), 50, math.inf, num_paths=20, length=30)
    )
    assert np.all((idx[:, 1:] - idx[:, :-1]) % 50 == 1)


def test_paths_do_not_depend_on_chunking():
    rows = jnp.arange(100, 180, dtype=jnp.int32)
    key = jax.random.PRNGKey(4)
    whole = np.asarray(path_days(key, np.arange(64), rows, 5.0, 40))
    parts = [
        np.asarray(path_days(key, np.arange(i, i + 16), rows, 5.0, 40)) for i in (0, 16, 32, 48)
    ]
    np.testing.assert_array_equal(whole, np.concatenate(parts))
    assert whole.min() >= 100 and whole.max() < 180


def test_politis_white_matches_arch():
    arch = pytest.importorskip("arch.bootstrap")
    rng = np.random.default_rng(0)
    e = rng.normal(size=1500)
    ar = np.zeros_like(e)
    for t in range(1, e.size):
        ar[t] = 0.6 * ar[t - 1] + e[t]
    for x in (e, ar, ar**2):
        ref = float(arch.optimal_block_length(x)["stationary"].iloc[0])
        assert politis_white_block_length(x) == pytest.approx(ref, rel=1e-9)
    assert default_block_length(np.stack([e, ar], axis=1)) == math.ceil(
        max(politis_white_block_length(s) for s in (e, ar, e**2, ar**2))
    )


# ------------------------------------------------------------------------------ rollouts
@pytest.mark.parametrize("which", ["allocators", "learned"])
def test_contiguous_path_reproduces_the_deterministic_episode(which):
    """Block length >= horizon and a fixed start: the path IS the episode of those rows."""
    prices, feats = market()
    env = PortfolioEnv(N, F)
    start, horizon = 300, 120
    params = EnvParams.from_arrays(prices, feats, eval_start=start, episode_length=horizon)
    policies = allocator_policies(env) if which == "allocators" else [universe_policy(env)]
    warmup = warmup_days(env, policies)
    days = jnp.asarray(contiguous_indices(start - warmup, warmup + horizon, num_paths=3))
    outs = rollout_paths(policies, params, days, horizon=horizon, warmup=warmup, fan=3)
    for policy, out in zip(policies, outs):
        ref = np.asarray(evaluate_policy(env, params, policy)["equity_curve"])
        chex.assert_shape(out["fan"], (3, horizon + 1))
        for k in range(3):
            np.testing.assert_allclose(out["fan"][k], ref, rtol=2e-5, err_msg=policy.kind)
        assert float(out["total_return"][0]) == pytest.approx(ref[-1] - 1, abs=2e-5)


def test_equal_weight_growth_matches_source_mean_log_return():
    """E[log growth of 1/N over H days] = H x mean daily 1/N log return of the source rows."""
    prices, feats = market(seed=2)
    env = PortfolioEnv(N, F)
    params = EnvParams.from_arrays(prices, feats, fee_rate=0.0)
    rows = np.arange(100, 400, dtype=np.int32)
    ew = [p for p in allocator_policies(env) if p.config.kind == "equal_weight"]
    horizon, num = 60, 4000
    days = path_days(jax.random.PRNGKey(0), np.arange(num), jnp.asarray(rows), 5.0, 1 + horizon)
    out = rollout_paths(ew, params, days, horizon=horizon, warmup=1)[0]
    growth = np.asarray(out["log_growth"], np.float64)
    r = prices[rows + 1] / prices[rows] - 1
    expected = horizon * np.mean(np.log1p(r.mean(axis=1)))
    assert abs(growth.mean() - expected) < 4 * growth.std() / math.sqrt(num)


def test_cash_never_ruins_and_never_grows():
    prices, feats = market(vol=0.2)
    env = PortfolioEnv(N, F)
    params = EnvParams.from_arrays(prices, feats, bankruptcy_fraction=0.5)
    cash = [p for p in allocator_policies(env) if p.config.kind == "cash"]
    days = path_days(jax.random.PRNGKey(1), np.arange(256), jnp.arange(50, 450), 4.0, 1 + 100)
    out = jax.device_get(rollout_paths(cash, params, days, horizon=100, warmup=1)[0])
    stats = policy_statistics(out, None)
    assert stats["prob_ruin"] == 0.0
    np.testing.assert_array_equal(out["log_growth"], 0.0)
    assert stats["total_return"]["q99"] == 0.0 and stats["max_drawdown"]["q99"] == 0.0


def test_trade_pnl_conserved_on_every_path_ruin_included():
    """Closed + open trade profit = E_H - E0 on every path, including bankrupt ones."""
    prices, feats = market(vol=0.08, drift=-0.002)
    env = PortfolioEnv(N, F)
    params = EnvParams.from_arrays(prices, feats, bankruptcy_fraction=0.6, leverage_cap=2.0)
    policies = allocator_policies(env) + [universe_policy(env)]
    warmup = warmup_days(env, policies)
    days = path_days(jax.random.PRNGKey(2), np.arange(128), jnp.arange(70, 480), 6.0, warmup + 80)
    ruined = 0
    for group in (policies[:-1], policies[-1:]):
        for out in jax.device_get(rollout_paths(group, params, days, horizon=80, warmup=warmup)):
            assert np.max(np.abs(out["trade_pnl_error"])) < 1e-4
            ruined += int(np.sum(out["ruin"]))
    assert ruined > 0  # the volatile market does bankrupt some paths


def test_same_seed_same_numbers_and_shipped_equal_weight_is_equal_weight(tmp_path):
    """Same key: identical per-path numbers. A 1/N shipped as a checkpoint (rolled alone) gives
    the same distribution as 1/N rolled with the other allocators."""
    prices, feats = market(seed=5)
    env = PortfolioEnv(N, F)
    params = EnvParams.from_arrays(prices, feats)
    allocs = allocator_policies(env)
    ew = next(p for p in allocs if p.config.kind == "equal_weight")
    save_policy_checkpoint(tmp_path / "ew", ew)
    shipped = load_policy_checkpoint(tmp_path / "ew", env)[0]
    warmup = warmup_days(env, allocs)

    def run(policies, seed):
        days = path_days(
            jax.random.PRNGKey(seed), np.arange(96), jnp.arange(60, 400), 4.0, warmup + 50
        )
        return jax.device_get(rollout_paths(policies, params, days, horizon=50, warmup=warmup))

    a, b = run(allocs, 9), run(allocs, 9)
    for x, y in zip(a, b):
        for k in ("total_return", "sharpe", "max_drawdown"):
            np.testing.assert_array_equal(x[k], y[k])
    alone = run([shipped], 9)[0]
    together = a[[p.config.kind for p in allocs].index("equal_weight")]
    np.testing.assert_allclose(alone["total_return"], together["total_return"], atol=1e-6)
    np.testing.assert_allclose(alone["sharpe"], together["sharpe"], atol=1e-4)
    other = run(allocs, 10)[0]
    assert not np.array_equal(other["total_return"], a[0]["total_return"])


def test_statistics_definitions():
    rng = np.random.default_rng(0)
    paths = {
        "total_return": rng.normal(0.05, 0.2, 1000),
        "log_growth": rng.normal(0.0, 0.2, 1000),
        "sharpe": rng.normal(0.5, 1, 1000),
        "max_drawdown": rng.uniform(0, 0.7, 1000),
        "ruin": rng.uniform(size=1000) < 0.1,
        "trade_pnl_error": np.zeros(1000),
    }
    ref = dict(paths, total_return=paths["total_return"] - 0.01)
    s = policy_statistics(paths, ref)
    tr = paths["total_return"]
    assert s["prob_loss"] == pytest.approx(np.mean(tr < 0))
    assert s["prob_drawdown_gt_20"] == pytest.approx(np.mean(paths["max_drawdown"] > 0.2))
    assert s["prob_ruin"] == pytest.approx(np.mean(paths["ruin"]))
    assert s["prob_beats_equal_weight"] == 1.0
    assert s["cvar05_total_return"] < s["total_return"]["q05"] < s["total_return"]["q50"]
    assert set(s["sharpe"]) == {"mean", "q01", "q05", "q25", "q50", "q75", "q95", "q99"}


# ------------------------------------------------------------------------------ end to end
TINY_TOML = """
seed = 1
[data]
features = "stat"
[rl]
scope = "universe"
seeds = 1
algo = "gradient"
epochs = 2
batch_size = 8
num_steps = 8
episode_length = 16
hidden_size = 8
num_layers = 1
"""


def _flat(tree, prefix=""):
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _flat(sub, f"{prefix}/{key}").items()}
    return {prefix: tree}


def _tiny_run(root, *extra):
    from typer.testing import CliRunner

    from jaxport.cli import app

    runner = CliRunner()
    data = root / "data"
    res = runner.invoke(
        app, ["data", "synth", "--out", str(data), "--symbols", "3", "--days", "700"]
    )
    assert res.exit_code == 0, res.output
    (root / "tiny.toml").write_text(TINY_TOML, encoding="utf-8")
    args = ["train", "--trainingdata-dir", str(data), "--output-dir", str(root / "run")]
    args += ["--tensorboard-dir", str(root / "logs"), "--config", str(root / "tiny.toml")]
    args += ["--skip-base", "--skip-specialists", *extra]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return root / "run"


@pytest.fixture(scope="module")
def stress_run_dir(tmp_path_factory):
    return _tiny_run(tmp_path_factory.mktemp("stress"))


def test_stress_command_end_to_end(stress_run_dir, cli_runner, tmp_path):
    from jaxport.cli import app

    out = tmp_path / "stress"
    args = ["stress", str(stress_run_dir), "--paths", "40", "--horizon", "30", "--out", str(out)]
    res = cli_runner.invoke(app, args + ["--seed", "3", "--chunk", "16"])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "stress.json").read_text())
    for key in ("schema_version", "paths", "horizon", "method", "block_length", "source", "seed"):
        assert key in data
    assert data["paths"] == 40 and data["horizon"] == 30 and data["source"] == "test"
    assert {"path_steps_per_s", "wall_s"} <= set(data["throughput"])
    for name, basket in data["baskets"].items():
        expected = {"shipped", "equal_weight", "inverse_volatility", "minimum_variance"}
        expected |= {"risk_parity", "cash", "universe"}
        assert expected <= set(basket), name
        for stats in basket.values():
            assert set(stats["total_return"]) == {
                "mean",
                "q01",
                "q05",
                "q25",
                "q50",
                "q75",
                "q95",
                "q99",
            }
            for k in ("prob_loss", "prob_drawdown_gt_20", "prob_drawdown_gt_50", "prob_ruin"):
                assert 0.0 <= stats[k] <= 1.0
            assert "cvar05_total_return" in stats and "prob_beats_equal_weight" in stats
            assert stats["trade_pnl_max_abs_error"] < 1e-4
        assert basket["cash"]["prob_ruin"] == 0.0 and basket["cash"]["log_growth"]["q99"] == 0.0
        if data["shipped_as"][name] == "baseline:equal_weight":
            assert basket["shipped"] == basket["equal_weight"]
        assert (out / f"stress_fan_{name}.png").exists() and (
            out / f"stress_hist_{name}.png"
        ).exists()
    # same seed, other chunking: identical numbers; a finished result is not overwritten silently
    again = cli_runner.invoke(app, args + ["--seed", "3", "--chunk", "40", "--overwrite"])
    assert again.exit_code == 0, again.output
    rerun = json.loads((out / "stress.json").read_text())["baskets"]
    assert _flat(rerun).keys() == _flat(data["baskets"]).keys()
    for key, value in _flat(data["baskets"]).items():  # batch shapes differ: float noise only
        assert _flat(rerun)[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    refused = cli_runner.invoke(app, args + ["--seed", "3"])
    assert refused.exit_code == 2 and "--overwrite" in refused.output
    # jaxport report picks the stress result up from RUN_DIR/stress
    import shutil

    shutil.copytree(out, stress_run_dir / "stress")
    rep = cli_runner.invoke(app, ["report", str(stress_run_dir), "--out", str(tmp_path / "rep")])
    assert rep.exit_code == 0, rep.output
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "## Stress test" in text and "| equal_weight |" in text
    name = next(iter(data["baskets"]))
    assert (
        f"(stress_fan_{name}.png)" in text
        and (tmp_path / "rep" / f"stress_fan_{name}.png").exists()
    )
    shutil.rmtree(stress_run_dir / "stress")


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--paths", "0"], "--paths"),
        (["--paths", "-5"], "--paths"),
        (["--horizon", "100000"], "--horizon"),
        (["--block-length", "0.5"], "--block-length"),
        (["--source", "future"], "--source"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(
    stress_run_dir, cli_runner, tmp_path, extra, needle
):
    from jaxport.cli import app

    out = tmp_path / "out"
    res = cli_runner.invoke(app, ["stress", str(stress_run_dir), "--out", str(out), *extra])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], res.output
    assert not out.exists()


def test_missing_run_and_run_without_portfolio_stage(cli_runner, tmp_path, stress_run_dir):
    from jaxport.cli import app

    res = cli_runner.invoke(app, ["stress", str(tmp_path / "nope")])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
    run = tmp_path / "no_portfolio"
    run.mkdir()
    summary = json.loads((stress_run_dir / "pipeline_summary.json").read_text())
    summary["stages"].pop("portfolio", None)
    (run / "pipeline_summary.json").write_text(json.dumps(summary))
    res = cli_runner.invoke(app, ["stress", str(run)])
    assert res.exit_code == 2 and "portfolio" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (run / "stress").exists()


DEVICES_CHILD = """
import json, sys, types
import numpy as np
import jax
from jaxport.env import EnvParams, PortfolioEnv
from jaxport.eval import default_allocators
from jaxport.pipeline.stress_run import Basket, StressSettings, _mesh, stress_basket
from jaxport.rl.codec import make_policy
import jaxport.eval.allocators

rng = np.random.default_rng(0)
prices = 100 * np.exp(np.cumsum(rng.normal(3e-4, 0.02, (400, 2)), axis=0))
env = PortfolioEnv(2, 3)
params = EnvParams.from_arrays(prices, rng.normal(size=(400, 2, 3)))
pols = {a.name: make_policy(f"baseline:{a.name}", a, env) for a in default_allocators(2)}
pair = types.SimpleNamespace(env=env, test=params)
basket = Basket("A_B", pair, np.arange(100, 399, dtype=np.int32), pols, "x", None, ("", ""))
out = {}
for devices in (1, 2):
    settings = StressSettings(paths=30, horizon=40, chunk=16, devices=devices)
    res = stress_basket(basket, settings, 5.0, _mesh(devices))
    out[devices] = {k: v["total_return"].tolist() for k, v in res["paths"].items()}
    out[f"chunk{devices}"] = res["chunk"]
print(json.dumps({"n": jax.device_count(), **{str(k): v for k, v in out.items()}}))
"""


def test_devices_shard_paths_same_numbers():
    """``--devices 2`` (two fake CPU devices, in a subprocess) gives the 1-device numbers."""
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    proc = subprocess.run(
        [sys.executable, "-c", DEVICES_CHILD], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["n"] == 2 and res["chunk2"] % 2 == 0
    for name, one in res["1"].items():
        np.testing.assert_allclose(res["2"][name], one, rtol=1e-5, atol=1e-6, err_msg=name)
