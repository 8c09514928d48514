"""The baseline gate (#12): the decision rule, the validation objective, shipped baselines as real
policies, and the two synthetic universes (planted signal -> learned; pure noise -> baseline)."""

from __future__ import annotations

import numpy as np
import pytest

from jaxport.pipeline.basket_stage import baseline_gate, validation_objective


def test_validation_objective_hand_computed():
    eq = [1.0, 1.01, 0.999, 1.02]
    r = np.array([1.01, 0.999 / 1.01, 1.02 / 0.999])
    want = np.mean(np.log(r)) - 0.5 * np.var(r - 1)
    assert validation_objective(eq, 0.5) == pytest.approx(want, rel=1e-12)
    assert validation_objective([1.0, 1.0, 1.0], 0.1) == 0.0
    assert validation_objective([1.0, -1.0], 0.1) == float("-inf")


BASE = {
    "equal_weight": {"objective": 1e-4, "sharpe": 1.0, "total_return": 0.02},
    "minimum_variance": {"objective": 2e-4, "sharpe": 0.8, "total_return": 0.03},
    "cash": {"objective": 0.0, "sharpe": 0.0, "total_return": 0.0},
}


def test_gate_ships_learned_only_when_it_beats_every_baseline_on_both():
    win = {
        "gradient": {"objective": 3e-4, "sharpe": 1.5, "total_return": 0.05},
        "ppo": {"objective": 5e-4, "sharpe": 0.9, "total_return": 0.09},
    }
    d = baseline_gate(win, BASE)
    assert d["shipped"] == "gradient"  # ppo has the better objective but loses on Sharpe
    assert d["best_baseline"] == "minimum_variance" and d["best_baseline_sharpe"] == 1.0
    lose = {"gradient": {"objective": 3e-4, "sharpe": 0.95, "total_return": 0.05}}
    # no learned candidate passes: 1/N ships by default, the best baseline only on request
    assert baseline_gate(lose, BASE)["shipped"] == "baseline:equal_weight"
    d = baseline_gate(lose, BASE, fallback=None)
    assert d["shipped"] == "baseline:minimum_variance"
    lose2 = {"gradient": {"objective": 1.5e-4, "sharpe": 2.0, "total_return": 0.05}}
    d = baseline_gate(lose2, BASE)
    assert d["shipped"] == "baseline:equal_weight" and "did not beat" in d["reason"]
    no_1n = {k: v for k, v in BASE.items() if k != "equal_weight"}
    assert baseline_gate(lose2, no_1n)["shipped"] == "baseline:minimum_variance"
    # --no-gate: the best learned by validation return, as before the gate
    assert baseline_gate(win, BASE, enabled=False)["shipped"] == "ppo"
    assert baseline_gate(lose, BASE, enabled=False)["shipped"] == "gradient"


def test_gate_rule_fallback_compares_with_the_fallback_only():
    """--gate-rule fallback: a learned policy that beats the fallback (not every baseline) ships;
    one that does not, or that loses on either measure, leaves the fallback shipped."""
    mid = {"gradient": {"objective": 1.5e-4, "sharpe": 1.2, "total_return": 0.05}}
    assert baseline_gate(mid, BASE)["shipped"] == "baseline:equal_weight"  # every_baseline
    d = baseline_gate(mid, BASE, rule="fallback")
    assert d["shipped"] == "gradient" and d["bar"] == ["equal_weight"]
    assert d["best_baseline_objective"] == 1e-4 and "beat equal_weight" in d["reason"]
    # against minimum_variance (objective 2e-4) as the fallback it fails, and that ships
    d = baseline_gate(mid, BASE, rule="fallback", fallback="minimum_variance")
    assert d["shipped"] == "baseline:minimum_variance" and d["bar"] == ["minimum_variance"]
    low_sharpe = {"gradient": {"objective": 3e-4, "sharpe": 0.99, "total_return": 0.05}}
    assert baseline_gate(low_sharpe, BASE, rule="fallback")["shipped"] == "baseline:equal_weight"
    # every_baseline's bar is every baseline
    assert baseline_gate(mid, BASE)["bar"] == sorted(BASE)
    with pytest.raises(ValueError, match="gate rule"):
        baseline_gate(mid, BASE, rule="loose")


def test_gate_fallbacks_exist_for_any_basket_size():
    from jaxport.eval import default_allocators
    from jaxport.pipeline.config import GATE_FALLBACKS

    for n in (2, 3, 5):
        names = {a.name for a in default_allocators(n)}
        assert set(GATE_FALLBACKS) <= names, n


def test_shipped_baseline_is_a_real_policy(tmp_path):
    """baseline:<name> checkpoints round-trip and evaluate exactly like the allocator."""
    from jaxport.env import EnvParams, PortfolioEnv
    from jaxport.eval import default_allocators, evaluate_allocators, evaluate_policy
    from jaxport.pipeline.basket_stage import baseline_policy
    from jaxport.rl.codec import load_policy_checkpoint, save_policy_checkpoint

    rng = np.random.default_rng(0)
    T = 260
    prices = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (T, 2)), 0))
    env = PortfolioEnv(2, 1)
    params = EnvParams.from_arrays(prices, np.zeros((T, 2, 1)), eval_start=90, episode_length=None)
    ref = evaluate_allocators(env, params, symbols=["A", "B"])["metrics"]
    for a in default_allocators(2):
        path = tmp_path / a.name.replace(":", "_")
        save_policy_checkpoint(path, baseline_policy(a, env))
        policy, meta = load_policy_checkpoint(path)
        assert policy.kind == f"baseline:{a.name}" and policy.needs_env_state
        assert meta["policy"]["torch_twin"] == "AllocatorPolicy"
        got = evaluate_policy(env, params, policy)["metrics"]
        want = ref["buy_and_hold"]["AB"[a.asset]] if a.kind == "buy_and_hold" else ref[a.name]
        assert got["total_return"] == pytest.approx(want["total_return"], abs=1e-7), a.name
        assert got["sharpe"] == pytest.approx(want["sharpe"], abs=1e-6), a.name
    with pytest.raises(ValueError, match="state"):
        policy.act(np.zeros(env.obs_dim, np.float32))


# ---------------------------------------------------------------------------------- universes
SIGNAL_TOML = """
seed = 0
skip_base = true
skip_specialists = true
[data]
features = "toto+stat"
toto_horizon = 1
sequence_length = 20
[rl]
scope = "pair"
algo = "gradient"
epochs = 40
batch_size = 32
num_steps = 32
episode_length = 64
hidden_size = 16
num_layers = 1
gradient_learning_rate = 0.01
risk_penalty = 0.0
"""


def _universe_run(tmp_path, symbols: int, planted: float, k: int = 2) -> dict:
    from jaxport.data.synth import write_synthetic_csvs
    from jaxport.pipeline.config import build_config
    from jaxport.pipeline.run import Pipeline

    data = tmp_path / "data"
    write_synthetic_csvs(data, num_symbols=symbols, num_days=800, seed=7, planted_signal=planted)
    toml = tmp_path / "cfg.toml"
    toml.write_text(SIGNAL_TOML, encoding="utf-8")
    names = [f"SYN{i:03d}" for i in range(symbols)]
    overrides = {
        "output_dir": str(tmp_path / "models"),
        "tensorboard_dir": str(tmp_path / "logs"),
        "data": {
            "trainingdata_dir": str(data),
            "pairs": [[a, b] for a, b in zip(names, names[1:])],
        },
    }
    return Pipeline(build_config("quick", toml, overrides), walk_forward=k).run()


@pytest.mark.slow
def test_planted_signal_ships_learned_with_positive_gap(tmp_path):
    summary = _universe_run(tmp_path, symbols=2, planted=0.015)
    wf = summary["walk_forward"]
    shipped = [f["pairs"]["SYN000_SYN001"]["shipped"] for f in wf["folds"]]
    assert all(s == "gradient" for s in shipped), shipped
    stats = wf["pairs"]["SYN000_SYN001"]
    assert stats["sharpe_gap_vs_equal_weight"]["ci95"][0] > 0, stats
    assert stats["folds_beating_equal_weight"] == len(wf["folds"])


@pytest.mark.slow
def test_pure_noise_ships_baselines_in_most_baskets(tmp_path):
    summary = _universe_run(tmp_path, symbols=4, planted=0.0)
    decisions = [
        e["shipped"] for f in summary["walk_forward"]["folds"] for e in f["pairs"].values()
    ]
    baselines = sum(s.startswith("baseline:") for s in decisions)
    assert baselines > len(decisions) / 2, decisions
