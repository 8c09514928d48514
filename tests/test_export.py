"""torch_compat.export / torch_compat.models: Flax models -> plain PyTorch modules.

Parity: on 256 random inputs the Torch twin and the Flax model agree to 1e-5 (float32; both compute
the same float32 graph, differences are summation order / transcendental implementations, measured
max ~1e-6). Parameters are perturbed away from their init so every layer matters.
"""

from __future__ import annotations

import functools
import inspect
import json
import runpy
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from helpers import perturb_tree, ppo_params_and_norm
from jaxport.env import PortfolioEnv
from jaxport.errors import CheckpointError
from jaxport.features import STAT_FEATURE_NAMES
from jaxport.forecast import ForecasterConfig, init_params, save_forecaster
from jaxport.forecast.model import predict_distribution, predict_normalised
from jaxport.pipeline.rundir import RunDir
from jaxport.rl import GradientConfig, PPOConfig, make_network, make_policy_apply
from jaxport.rl.codec import make_policy, save_policy_checkpoint
from jaxport.rl.gradient import make_policy_network
from torch_compat.export import export_forecaster, export_policy, export_run
from torch_compat.models import (
    ActorCritic,
    AllocatorPolicy,
    MLPAllocator,
    PatchTransformerForecaster,
    build_model,
    load_exported,
)

ROOT = Path(__file__).resolve().parents[1]
TOL = dict(rtol=1e-5, atol=1e-5)
NUM = 256
SYMBOLS = ["AAPL", "MSFT"]
ENV = PortfolioEnv(len(SYMBOLS), len(STAT_FEATURE_NAMES))  # the stat-feature env of the example
OBS_DIM = ENV.obs_dim
FCFG = ForecasterConfig(
    context=16,
    patch=4,
    d_model=16,
    num_layers=2,
    num_heads=2,
    mlp_ratio=2,
    horizon=3,
    targets=("close", "high"),
    dropout=0.0,
)


@functools.lru_cache(maxsize=None)
def _ppo(activation: str = "tanh", seed: int = 0):
    cfg = PPOConfig(hidden_sizes=(16, 8), activation=activation, leverage_cap=1.5)
    params, norm = ppo_params_and_norm(cfg, len(SYMBOLS), OBS_DIM, seed=seed)
    return cfg, params, norm


@pytest.fixture(scope="module")
def forecaster():
    return FCFG, perturb_tree(init_params(FCFG, jax.random.PRNGKey(0)), 3, scale=0.2)


def _to_torch(sd, arch):
    model = build_model(arch)
    model.load_state_dict(sd, strict=True)
    return model.eval()


# ---------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("activation", ["tanh", "gelu"])
def test_actor_critic_parity(activation):
    cfg, params, norm = _ppo(activation)
    policy = make_policy("ppo", cfg, ENV, params=params, obs_norm=norm)
    sd, arch = export_policy(policy)
    json.dumps(arch)
    model = _to_torch(sd, arch)
    assert isinstance(model, ActorCritic) and arch["config"]["obs_dim"] == OBS_DIM
    # every twin argument is spelled out: read from the stored config or the twin's default
    assert set(arch["config"]) == set(inspect.signature(ActorCritic).parameters)
    assert arch["config"]["activation"] == activation and arch["config"]["obs_clip"] == 10.0
    assert arch["policy_kind"] == "ppo" and policy.torch_twin == "ActorCritic"
    x = np.random.default_rng(5).normal(0.0, 2.0, (NUM, OBS_DIM)).astype(np.float32)
    mean, log_std, value = jax.jit(make_network(cfg, len(SYMBOLS)).apply)(params, jnp.asarray(x))
    with torch.no_grad():
        t_mean, t_log_std, t_value = model(torch.from_numpy(x))
        t_act = model.act(torch.from_numpy(x))
    np.testing.assert_allclose(t_mean.numpy(), np.asarray(mean), **TOL)
    np.testing.assert_allclose(t_value.numpy(), np.asarray(value), **TOL)
    np.testing.assert_allclose(t_log_std.detach().numpy(), np.asarray(log_std), **TOL)
    assert np.abs(np.asarray(mean)).max() > 0.1  # not a trivially flat network
    # the deterministic action on RAW observations includes the running normalisation and the squash
    act = jax.jit(make_policy_apply(cfg, len(SYMBOLS)), static_argnums=4)(
        params, norm, jax.random.PRNGKey(0), jnp.asarray(x), True
    )
    np.testing.assert_allclose(t_act.numpy(), np.asarray(act), **TOL)
    np.testing.assert_allclose(t_act.numpy(), np.asarray(policy.act(x)), **TOL)  # the codec's act


def test_mlp_allocator_parity():
    cfg = GradientConfig(policy="mlp", hidden_sizes=(12, 12), leverage_cap=1.5)
    env = ENV
    params = perturb_tree(
        jax.jit(make_policy_network(cfg, env).init)(jax.random.PRNGKey(1), jnp.zeros(env.obs_dim)),
        2,
    )
    sd, arch = export_policy(make_policy("gradient_mlp", cfg, env, params=params))
    model = _to_torch(sd, arch)
    assert isinstance(model, MLPAllocator) and arch["config"]["obs_dim"] == env.obs_dim
    assert set(arch["config"]) == set(inspect.signature(MLPAllocator).parameters)
    assert type(arch["config"]["leverage_cap"]) is float and arch["config"]["leverage_cap"] == 1.5
    x = np.random.default_rng(6).normal(0.0, 2.0, (NUM, env.obs_dim)).astype(np.float32)
    want = jax.jit(make_policy_network(cfg, env).apply)(params, jnp.asarray(x))
    with torch.no_grad():
        got = model(torch.from_numpy(x))
    np.testing.assert_allclose(got.numpy(), np.asarray(want), **TOL)


def test_forecaster_parity(forecaster):
    cfg, params = forecaster
    sd, arch = export_forecaster(params, cfg)
    model = _to_torch(sd, arch)
    assert isinstance(model, PatchTransformerForecaster)
    rng = np.random.default_rng(7)
    x_norm = rng.normal(size=(NUM, cfg.context, 6)).astype(np.float32)
    want = jax.jit(predict_normalised, static_argnums=1)(params, cfg, jnp.asarray(x_norm))
    with torch.no_grad():
        got = model(torch.from_numpy(x_norm))
    for g, w in zip(got, want):
        assert g.shape == (NUM, 2, 3)
        np.testing.assert_allclose(g.numpy(), np.asarray(w), **TOL)
    # raw windows: returns ~2 % a day, log-volume ~15 (the per-window normalisation is ported too)
    raw = rng.normal(0.0, 0.02, (NUM, cfg.context, 6)).astype(np.float32)
    raw[..., 4] = np.abs(raw[..., 0])
    raw[..., 5] = 15.0 + rng.normal(0.0, 0.3, (NUM, cfg.context))
    want = jax.jit(predict_distribution, static_argnums=1)(params, cfg, jnp.asarray(raw))
    with torch.no_grad():
        got = model.predict_distribution(torch.from_numpy(raw))
    for g, w in zip(
        got, want
    ):  # loc/scale are the normalised outputs times s ~ 0.02: 1e-5 * 0.02 absolute
        np.testing.assert_allclose(g.numpy(), np.asarray(w), rtol=1e-5, atol=2e-7)


def test_export_rejects_mismatched_trees(forecaster):
    cfg, params, norm = _ppo()
    with pytest.raises(CheckpointError, match="ActorCritic"):
        export_policy(
            make_policy(
                "ppo", PPOConfig(hidden_sizes=(16, 8, 4)), ENV, params=params, obs_norm=norm
            )
        )
    with pytest.raises(CheckpointError, match="forecaster export"):
        export_forecaster(forecaster[1], ForecasterConfig(**{**FCFG.to_dict(), "num_layers": 3}))
    with pytest.raises(CheckpointError, match="gradient_transformer.*no Torch twin"):
        export_policy(
            make_policy(
                "gradient_transformer", GradientConfig(policy="transformer"), ENV, params={}
            )
        )


# ---------------------------------------------------------------------------------- run export
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, forecaster):
    """A pipeline-shaped RUN_DIR with tiny models saved by the project's own savers."""
    root = tmp_path_factory.mktemp("run")
    fcfg, fparams = forecaster
    save_forecaster(root / "base", fparams, fcfg, extra={"note": "generic"})
    save_forecaster(root / "specialists" / "AAPL", perturb_tree(fparams, 9, 0.05), fcfg)
    cfg, params, norm = _ppo()
    env_meta = {
        "leverage_cap": 1.5,
        "fee_rate": 0.0005,
        "annual_financing_rate": 0.0675,
        "periods_per_year": 252.0,
    }
    save_policy_checkpoint(
        root / "portfolio" / "AAPL_MSFT",
        make_policy("ppo", cfg, ENV, params=params, obs_norm=norm),
        {
            "algo": "ppo",
            "symbols": SYMBOLS,
            "env": env_meta,
            "features": {"names": list(STAT_FEATURE_NAMES), "source": "stat"},
        },
    )
    gcfg = GradientConfig(policy="mlp", hidden_sizes=(8,), leverage_cap=1.5)
    gparams = jax.jit(make_policy_network(gcfg, ENV).init)(
        jax.random.PRNGKey(4), jnp.zeros(ENV.obs_dim)
    )
    save_policy_checkpoint(
        root / "portfolio" / "MSFT_NVDA",
        make_policy("gradient_mlp", gcfg, ENV, params=gparams),
        {"algo": "gradient", "symbols": ["MSFT", "NVDA"], "env": env_meta},
    )
    tcfg = GradientConfig(policy="transformer", hidden_size=8, num_layers=1, num_heads=2)
    tparams = jax.jit(make_policy_network(tcfg, ENV).init)(
        jax.random.PRNGKey(5), jnp.zeros(ENV.obs_dim)
    )
    save_policy_checkpoint(
        root / "portfolio" / "AAPL_NVDA",
        make_policy("gradient_transformer", tcfg, ENV, params=tparams),
        {"algo": "gradient", "symbols": ["AAPL", "NVDA"], "env": env_meta},
    )
    summary = {
        "stages": {
            "base": {"status": "completed", "checkpoint": "base"},
            "specialists": {
                "AAPL": {"checkpoint": "specialists/AAPL", "kept": True},
                "MSFT": {"checkpoint": "base", "kept": False},
            },
            "portfolio": {
                "AAPL_MSFT": {
                    "status": "completed",
                    "checkpoint": "portfolio/AAPL_MSFT",
                    "algo": "ppo",
                },
                "MSFT_NVDA": {
                    "status": "completed",
                    "checkpoint": "portfolio/MSFT_NVDA",
                    "algo": "gradient",
                },
                "AAPL_NVDA": {
                    "status": "completed",
                    "checkpoint": "portfolio/AAPL_NVDA",
                    "algo": "gradient",
                },
                "AMZN_TSLA": {"status": "failed", "error": "boom"},
            },
        }
    }
    (root / "pipeline_summary.json").write_text(json.dumps(summary))
    return root, (cfg, params, norm), (gcfg, gparams)


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("exported")
    return out, export_run(run_dir[0], out)


def test_export_run(run_dir, exported, tmp_path, forecaster):
    root, (cfg, params, norm), (gcfg, gparams) = run_dir
    out, paths = exported
    names = sorted(p.name for p in paths)
    stems = ["base_forecaster", "specialist_AAPL", "portfolio_AAPL_MSFT", "portfolio_MSFT_NVDA"]
    assert names == sorted(
        [f"{s}{ext}" for s in stems for ext in (".pt", ".json", ".safetensors")] + ["manifest.json"]
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["models"]) == {
        "base_forecaster",
        "specialist_AAPL",
        "portfolio_AAPL_MSFT",
        "portfolio_MSFT_NVDA",
    }
    assert "no pipeline config" in manifest["models"]["portfolio_AAPL_MSFT"]["env_data"]
    assert manifest["models"]["portfolio_MSFT_NVDA"]["policy_kind"] == "gradient_mlp"
    assert "no Torch twin" in manifest["skipped"]["portfolio_AAPL_NVDA"]
    # every file loads in plain torch, strictly, and computes what the Flax model computes
    x = np.random.default_rng(0).normal(size=(8, OBS_DIM)).astype(np.float32)
    ppo = load_exported(out / "portfolio_AAPL_MSFT.pt")
    assert (
        ppo.arch["env"]["symbols"] == SYMBOLS and ppo.arch["env"]["options"]["leverage_cap"] == 1.5
    )
    want = jax.jit(make_policy_apply(cfg, 2), static_argnums=4)(
        params, norm, jax.random.PRNGKey(0), jnp.asarray(x), True
    )
    with torch.no_grad():
        np.testing.assert_allclose(ppo.act(torch.from_numpy(x)).numpy(), np.asarray(want), **TOL)
    ppo_st = load_exported(out / "portfolio_AAPL_MSFT.safetensors")  # no pickle; same weights
    with torch.no_grad():
        np.testing.assert_array_equal(
            ppo_st.act(torch.from_numpy(x)).numpy(), ppo.act(torch.from_numpy(x)).numpy()
        )
    grad = load_exported(out / "portfolio_MSFT_NVDA.pt")
    want = jax.jit(make_policy_network(gcfg, PortfolioEnv(2, len(STAT_FEATURE_NAMES))).apply)(
        gparams, jnp.asarray(x)
    )
    with torch.no_grad():
        np.testing.assert_allclose(grad(torch.from_numpy(x)).numpy(), np.asarray(want), **TOL)
    base = load_exported(out / "base_forecaster.pt")
    spec = load_exported(out / "specialist_AAPL.pt")
    w = torch.from_numpy(
        np.random.default_rng(1).normal(size=(4, FCFG.context, 6)).astype(np.float32)
    )
    with torch.no_grad():
        want = jax.jit(predict_normalised, static_argnums=1)(
            forecaster[1], FCFG, jnp.asarray(w.numpy())
        )[0]
        np.testing.assert_allclose(base(w)[0].numpy(), np.asarray(want), **TOL)
        assert not torch.allclose(base(w)[0], spec(w)[0])
    assert base.arch["source"]["extra"] == {"note": "generic"}
    # without a summary the layout is scanned
    (root / "pipeline_summary.json").rename(root / "summary.bak")
    try:
        run = RunDir(root, require_summary=False)
        assert [n for n, _ in run.forecaster_checkpoints()] == [
            "base_forecaster",
            "specialist_AAPL",
        ]
        assert [n for n, _ in run.policy_checkpoints()] == ["AAPL_MSFT", "AAPL_NVDA", "MSFT_NVDA"]
    finally:
        (root / "summary.bak").rename(root / "pipeline_summary.json")
    with pytest.raises(CheckpointError, match="no checkpoints"):
        export_run(tmp_path, tmp_path / "x")


def test_torch_example_runs_exported_policy(exported, capsys):
    out = exported[0]
    script = ROOT / "examples" / "torch_policy_episode.py"
    main = runpy.run_path(str(script))["main"]
    equity = main(
        [
            str(out / "portfolio_AAPL_MSFT.pt"),
            "--data",
            str(ROOT / "trainingdata"),
            "--max-steps",
            "15",
        ]
    )
    printed = capsys.readouterr().out
    assert "AAPL, MSFT: 15 steps" in printed and f"{equity:.4f}" in printed
    assert 0.5 < equity < 2.0 and equity != 1.0


# ---------------------------------------------------------------------------------- baselines
def _real_episode(symbols, eval_start: int, steps: int):
    """``(env, params)`` over real closes (trainingdata/), no features (allocators ignore them)."""
    from jaxport.data import load_market
    from jaxport.env import EnvParams

    closes = np.asarray(load_market(ROOT / "trainingdata", symbols).close, np.float32)
    closes = closes[: eval_start + steps + 1]
    env = PortfolioEnv(len(symbols), 1)
    params = EnvParams.from_arrays(
        closes,
        np.zeros(closes.shape + (1,), np.float32),
        eval_start=eval_start,
        episode_length=None,
    )
    return env, params


@pytest.mark.parametrize("symbols", [("AAPL", "MSFT"), ("AAPL", "MSFT", "NVDA")])
def test_allocator_policy_parity_over_real_episode(symbols):
    """Every default allocator shipped as ``baseline:<name>``: the Torch twin, through the one
    policy contract ``act(obs, info)`` (the price table bound by ``reset(prices=...)``, the day
    from ``info["t"]``, steps counted by the policy), chooses the JAX allocator's action at every step of
    a real-data episode (1e-5), and the episode ends at the JAX evaluation's equity."""
    from jaxport.eval import default_allocators, run_allocators
    from jaxport.pipeline.basket_stage import baseline_policy

    env, params = _real_episode(list(symbols), eval_start=70, steps=64)
    prices = torch.from_numpy(np.array(params.prices))
    allocators = default_allocators(len(symbols))
    reports = run_allocators(env, params, allocators)  # the JAX allocators, one compile
    step = jax.jit(env.step_env)
    for a, ref in zip(allocators, reports):
        sd, arch = export_policy(baseline_policy(a, env))
        json.dumps(arch)
        assert sd == {} and arch["policy_kind"] == f"baseline:{a.name}"
        model = _to_torch(sd, arch)
        assert isinstance(model, AllocatorPolicy) and arch["kind"] == "allocator_policy"
        obs, state = env.reset_env(jax.random.PRNGKey(0), params)
        model.reset(prices=prices)
        got = []
        for _ in range(ref["num_steps"]):
            action = model.act(torch.tensor(np.asarray(obs)), {"t": torch.tensor(int(state.t))})
            got.append(action.numpy())
            # the env is driven by the TORCH action
            obs, state, _, _, _ = step(jax.random.PRNGKey(0), state, jnp.asarray(got[-1]), params)
        assert len(got) == 64
        np.testing.assert_allclose(
            np.stack(got), np.asarray(ref["weights"]), rtol=0, atol=1e-5, err_msg=a.name
        )
        assert float(state.equity) / float(params.initial_equity) == pytest.approx(
            ref["equity_curve"][-1], rel=1e-5
        ), a.name


def test_allocator_policy_early_days_and_schedule():
    """Short windows at the start of the data (fewer than ``lookback`` returns, < 2 -> 1/N) match
    the JAX estimators, and off-schedule steps hold the drifted weights read from the obs."""
    from jaxport.data import load_market
    from jaxport.eval.allocators import Allocator

    closes = np.asarray(
        load_market(ROOT / "trainingdata", ["AAPL", "MSFT", "NVDA"]).close, np.float32
    )[:80]
    kinds = ("inverse_volatility", "minimum_variance", "risk_parity", "volatility_timing")
    for kind in kinds + ("vol_managed_equal_weight", "equal_minimum_variance"):
        a = Allocator(kind, lookback=30, rebalance_every=5, long_lookback=50)
        model = AllocatorPolicy(
            a.kind, 3, a.lookback, a.rebalance_every, shrinkage=a.shrinkage, long_lookback=50
        )
        for t in (0, 1, 2, 3, 10, 29, 30, 31, 49, 50, 51, 79):
            want = np.asarray(a.target(jnp.asarray(closes), jnp.int32(t)))
            got = model.target(model.price_window(torch.from_numpy(closes), t)).numpy()
            np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"{kind} t={t}")
        obs = torch.arange(ENV.obs_dim + 1, dtype=torch.float32)  # 3 assets: w = obs[-6:-3]
        held = model.act_at(obs, model.price_window(torch.from_numpy(closes), 40), 3)
        np.testing.assert_array_equal(held.numpy(), obs[-6:-3].numpy())
        assert model.is_rebalance_step(10) and not model.is_rebalance_step(11)


def test_export_run_with_shipped_baseline_replays_torch_only(tmp_path):
    """A run whose pair shipped ``baseline:minimum_variance`` exports through ``jaxport export`` in
    a fresh process (the kind must be known without importing jaxport.eval first), and the Torch
    example replays it to the JAX evaluation's final equity on the same real-data episode."""
    import subprocess
    import sys

    from jaxport.eval import evaluate_policy
    from jaxport.eval.allocators import Allocator
    from jaxport.pipeline.basket_stage import baseline_policy
    from torch_compat import TorchPortfolioEnv

    symbols = ["AAPL", "MSFT"]
    root = tmp_path / "run"
    allocator = Allocator("minimum_variance", lookback=40, rebalance_every=5)
    policy = baseline_policy(allocator, PortfolioEnv(2, len(STAT_FEATURE_NAMES)))
    save_policy_checkpoint(
        root / "portfolio" / "AAPL_MSFT",
        policy,
        {"algo": "baseline", "symbols": symbols, "env": {"leverage_cap": 1.0, "fee_rate": 0.001}},
    )
    out = tmp_path / "exported"
    proc = subprocess.run(
        [sys.executable, "-m", "jaxport", "export", str(root), "--to", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["models"]["portfolio_AAPL_MSFT"]["policy_kind"] == "baseline:minimum_variance"
    model = load_exported(out / "portfolio_AAPL_MSFT.safetensors")
    assert isinstance(model, AllocatorPolicy) and model.config["lookback"] == 40
    main = runpy.run_path(str(ROOT / "examples" / "torch_policy_episode.py"))["main"]
    equity = main([str(out / "portfolio_AAPL_MSFT.pt"), "--data", str(ROOT / "trainingdata")])
    # the example's episode (no .env.npz: the last 252 days of the data) evaluated in JAX
    opts = dict(leverage_cap=1.0, fee_rate=0.001)
    env = TorchPortfolioEnv.from_csv_dir(ROOT / "trainingdata", symbols, **opts)
    start = max(int(env.params.start_min), int(env.params.num_days) - 1 - 252)
    env = TorchPortfolioEnv.from_csv_dir(
        ROOT / "trainingdata", symbols, eval_start=start, episode_length=None, **opts
    )
    ref = evaluate_policy(env.jax_env, env.params, policy.with_env(env.jax_env))["metrics"]
    assert equity == pytest.approx(1.0 + ref["total_return"], rel=1e-5)
    assert equity != 1.0


def test_allocator_kinds_have_one_source_that_needs_no_jax():
    """torch_compat.models and the core read the allocator names from jaxport.allocator_kinds,
    and importing the Torch twins (with those names) does not import JAX."""
    from jaxport import allocator_kinds
    from jaxport.eval import allocators
    from jaxport.pipeline import labels
    from torch_compat import models

    assert models.ALLOCATOR_KINDS is allocators.ALLOCATOR_KINDS is allocator_kinds.ALLOCATOR_KINDS
    assert labels.STANDARD_ALLOCATORS == tuple(
        k for k in allocators.ALLOCATOR_KINDS if k != "buy_and_hold"
    )
    script = (
        "import sys, torch_compat.models as m\n"
        "print(len(m.ALLOCATOR_KINDS), sorted(k for k in ('jax', 'jaxlib') if k in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(len(allocators.ALLOCATOR_KINDS)), "[]"]


#: The arguments without defaults of each Torch twin, given as NumPy scalars (as an exporter
#: reading array shapes might pass them).
_REQUIRED_ARGS = {
    "actor_critic": dict(obs_dim=np.int64(7), action_dim=np.int32(2)),
    "mlp_allocator": dict(obs_dim=np.int64(7), num_assets=np.int64(2)),
    "universe_allocator": dict(window=np.int64(2), num_features=np.int64(3)),
    "allocator_policy": dict(allocator="risk_parity", num_assets=np.int64(3)),
    "patch_transformer_forecaster": dict(context=np.int64(16), patch=np.int64(4)),
}


@pytest.mark.parametrize("kind", sorted(_REQUIRED_ARGS))
def test_model_config_is_its_constructor_arguments_as_plain_json(kind):
    """``model.config`` names every constructor argument (signature order) as plain JSON values of
    the annotated types, and ``build_model`` rebuilds a module with the same config from it."""
    from torch_compat.models import MODELS

    cls = MODELS[kind]
    model = cls(**_REQUIRED_ARGS[kind])
    names = list(inspect.signature(cls).parameters)
    assert list(model.config) == names
    assert json.loads(json.dumps(model.config)) == model.config
    for name in _REQUIRED_ARGS[kind]:
        if name != "allocator":
            assert type(model.config[name]) is int, name
    assert build_model({"kind": kind, "config": model.config}).config == model.config
    if kind == "allocator_policy":
        assert model.config["name"] == "risk_parity"  # the default name is the rule's
