"""Stage 3 for one basket (a pair by default): env data per split, PPO and/or gradient training,
selection on validation, evaluation on test, and what goes into the checkpoint.

Splits are chronological: policies train on random episodes inside the train rows, are compared on
one deterministic episode over the validation rows and reported on one over the test rows (never seen
in training or selection). Features are standardised with statistics of the train rows only.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import jax
import numpy as np

from jaxport.data import DataError, MarketData
from jaxport.env import EnvParams, PortfolioEnv
from jaxport.eval import evaluate_policy, portfolio_report
from jaxport.pipeline.config import RLConfig

FEATURE_CLIP = 10.0  # standardised features are clipped to [-FEATURE_CLIP, FEATURE_CLIP]


def env_kwargs(rl: RLConfig) -> dict[str, Any]:
    """EnvParams keyword arguments from the RL flags (bps -> fraction, annual rate as is)."""
    return {
        "leverage_cap": rl.leverage_limit,
        "annual_financing_rate": rl.borrowing_cost,
        "periods_per_year": float(rl.trading_days_per_year),
        "fee_rate": rl.transaction_cost_bps / 1e4,
    }


@dataclasses.dataclass
class PairData:
    """Env, and EnvParams for the train / validation / test parts of one basket."""

    symbols: list[str]
    env: PortfolioEnv
    train: EnvParams
    val: EnvParams
    test: EnvParams
    feature_names: list[str]
    feature_mean: np.ndarray  # [F] train-rows mean of the raw features
    feature_std: np.ndarray  # [F]
    valid_from: int  # first row with complete features
    dates: dict[str, str]

    @classmethod
    def build(cls, market: MarketData, values: np.ndarray, names, valid_from: int, bounds, rl: RLConfig) -> "PairData":
        T, N, F = values.shape
        window = rl.window
        start_min = max(valid_from, window - 1)
        train_end, val_end = bounds.train_end, bounds.val_end
        if train_end - 1 - start_min < 2:
            raise DataError(
                f"pair {'_'.join(market.symbols)}: train split too short after feature warm-up "
                f"({train_end} rows, warm-up {start_min})"
            )
        train_rows = values[start_min:train_end].reshape(-1, F)
        mean = train_rows.mean(axis=0)
        std = train_rows.std(axis=0)
        std = np.where(std > 1e-8, std, 1.0)
        feats = np.clip((values - mean) / std, -FEATURE_CLIP, FEATURE_CLIP).astype(np.float32)
        feats[:start_min] = 0.0
        close, opens = market.close, market.open
        kw = env_kwargs(rl)
        episode = int(min(rl.episode_length, train_end - 1 - start_min))
        env = PortfolioEnv(N, F, window=window)
        train = EnvParams.from_arrays(
            close[:train_end], feats[:train_end], open_prices=opens[:train_end], episode_length=episode,
            start_min=start_min, window=window, **kw,
        )
        val = EnvParams.from_arrays(
            close[:val_end], feats[:val_end], open_prices=opens[:val_end], eval_start=train_end - 1,
            episode_length=None, start_min=start_min, window=window, **kw,
        )
        test = EnvParams.from_arrays(
            close, feats, open_prices=opens, eval_start=val_end - 1, episode_length=None,
            start_min=start_min, window=window, **kw,
        )
        dates = {
            "train_first": str(market.dates[start_min]),
            "val_first": str(market.dates[train_end]),
            "test_first": str(market.dates[val_end]),
            "test_last": str(market.dates[-1]),
        }
        return cls(list(market.symbols), env, train, val, test, list(names), mean, std, valid_from, dates)


@dataclasses.dataclass
class PairResult:
    algo: str
    checkpoint_tree: dict
    config: dict
    metrics: dict  # {"test", "validation", "baselines"}
    candidates: dict  # algo -> {"validation", "test", "updates", "train_wall_s", "final_train_metrics"}
    curves: dict  # equity curves etc. for plotting
    pair: PairData

    def checkpoint_metadata(self, feature_source: dict) -> dict:
        p = self.pair
        env = p.env
        return {
            "kind": "jaxport.portfolio_policy",
            "algo": self.algo,
            "config": self.config,
            "symbols": p.symbols,
            "env": {
                "num_assets": env.num_assets,
                "num_features": env.num_features,
                "window": env.window,
                "long_only": env.long_only,
                "reward": env.reward_mode,
                "return_mode": env.return_mode,
                "leverage_cap": float(p.train.leverage_cap),
                "fee_rate": float(p.train.fee_rate),
                "annual_financing_rate": float(p.train.annual_financing_rate),
                "periods_per_year": float(p.train.periods_per_year),
                "obs_dim": env.obs_dim,
            },
            "features": {
                "names": p.feature_names,
                "mean": p.feature_mean.tolist(),
                "std": p.feature_std.tolist(),
                "clip": FEATURE_CLIP,
                "valid_from": p.valid_from,
                "source": feature_source,
            },
            "dates": p.dates,
        }


def ppo_config(rl: RLConfig, num_assets: int):
    from jaxport.rl.ppo import PPOConfig

    num_envs = rl.batch_size
    return PPOConfig(
        num_envs=num_envs,
        num_steps=rl.num_steps,
        total_timesteps=rl.epochs * num_envs * rl.num_steps,
        lr=rl.learning_rate,
        hidden=(rl.hidden_size,) * rl.num_layers,
        leverage_cap=rl.leverage_limit,
    )


def gradient_config(rl: RLConfig, episode_length: int):
    from jaxport.rl.gradient import GradientConfig

    return GradientConfig(
        policy=rl.policy,
        hidden_sizes=(rl.hidden_size,) * rl.num_layers,
        hidden_size=rl.hidden_size,
        num_layers=rl.num_layers,
        num_heads=rl.num_heads,
        leverage_cap=rl.leverage_limit,
        num_envs=rl.batch_size,
        bptt_length=min(rl.num_steps, episode_length),
        episode_length=episode_length,
        num_updates=rl.epochs,
        lr=rl.gradient_learning_rate or rl.learning_rate,
        risk_penalty=rl.risk_penalty,
    ).validate()


def _last(metrics: dict) -> dict:
    out = {}
    for k, v in metrics.items():
        arr = np.asarray(v)
        if arr.ndim >= 1 and arr.size:
            out[k] = float(arr.reshape(arr.shape[0], -1)[-1].mean())
    return out


def train_ppo(pair: PairData, rl: RLConfig, key) -> tuple[Callable, dict, dict, dict]:
    from jaxport.rl.ppo import export_policy, make_policy_fn, make_train

    cfg = ppo_config(rl, pair.env.num_assets)
    out = jax.jit(make_train(cfg, pair.env, pair.train))(key)
    metrics = jax.device_get(out["metrics"])
    policy_fn = make_policy_fn(out["params"], out["obs_norm"], cfg, deterministic=True)
    exported = export_policy(out["params"], out["obs_norm"], cfg)
    tree = {"params": exported["params"], "obs_norm": exported["obs_norm"]}
    return policy_fn, tree, exported["config"], metrics


def train_gradient(pair: PairData, rl: RLConfig, key) -> tuple[Callable, dict, dict, dict]:
    from jaxport.rl.gradient import make_gradient_policy_fn, make_gradient_train

    episode = int(pair.train.episode_length)
    cfg = gradient_config(rl, episode)
    out = jax.jit(make_gradient_train(cfg, pair.env, pair.train))(key)
    metrics = jax.device_get(out["metrics"])
    params = jax.device_get(out["params"])
    policy_fn = make_gradient_policy_fn(params, cfg, pair.env)
    config = dataclasses.asdict(cfg)
    return policy_fn, {"params": params}, config, metrics


TRAINERS = {"ppo": train_ppo, "gradient": train_gradient}


def train_and_evaluate_pair(
    pair: PairData, rl: RLConfig, *, seed: int, log: Callable[[str, dict], None] | None = None
) -> PairResult:
    """Train each algorithm of ``rl.algo``, keep the best on validation, report it on test."""
    algos = ["ppo", "gradient"] if rl.algo == "both" else [rl.algo]
    key = jax.random.PRNGKey(seed)
    candidates: dict[str, dict] = {}
    trained: dict[str, tuple] = {}
    training_curves: dict[str, dict] = {}
    for i, algo in enumerate(algos):
        t0 = time.perf_counter()
        policy_fn, tree, config, metrics = TRAINERS[algo](pair, rl, jax.random.fold_in(key, i))
        wall = time.perf_counter() - t0
        if log is not None:
            log(algo, metrics)
        val = evaluate_policy(pair.env, pair.val, policy_fn)["metrics"]
        test = evaluate_policy(pair.env, pair.test, policy_fn)["metrics"]
        candidates[algo] = {
            "validation": val,
            "test": test,
            "updates": int(np.asarray(next(iter(metrics.values()))).shape[0]) if metrics else 0,
            "train_wall_s": wall,
            "final_train_metrics": _last(metrics),
        }
        trained[algo] = (policy_fn, tree, config)
        training_curves[algo] = {k: np.asarray(v).reshape(np.asarray(v).shape[0], -1).mean(axis=1).tolist()
                                 for k, v in metrics.items() if np.asarray(v).ndim >= 1}
    best = max(algos, key=lambda a: _score(candidates[a]["validation"]))
    policy_fn, tree, config = trained[best]
    report = portfolio_report(pair.env, pair.test, policy_fn, pair.symbols)
    metrics = {
        "test": report["test"],
        "validation": candidates[best]["validation"],
        "baselines": report["baselines"],
        "selection": "highest validation total return" if len(algos) > 1 else "single algorithm",
    }
    curves = {
        "symbols": pair.symbols,
        "algo": best,
        "dates": pair.dates,
        "start_index": report["start_index"],
        "equity_curve": report["equity_curve"],
        "baseline_curves": report["baseline_curves"],
        "leverage": report["leverage"],
        "weights": report["weights"],
        "training_curves": training_curves,
    }
    return PairResult(best, tree, config, metrics, candidates, curves, pair)


def _score(metrics: dict) -> float:
    value = metrics.get("total_return", float("-inf"))
    return float(value) if np.isfinite(value) else float("-inf")


def policy_from_checkpoint(tree: dict, metadata: dict, env: PortfolioEnv) -> Callable:
    """Deterministic ``policy_fn(key, obs)`` from a portfolio checkpoint's ``(tree, metadata)``."""
    algo = metadata.get("algo")
    if algo == "ppo":
        from jaxport.rl.ppo import import_policy, make_policy_fn

        params, obs_norm, cfg = import_policy({**tree, "config": metadata["config"]})
        return make_policy_fn(params, obs_norm, cfg, deterministic=True)
    if algo == "gradient":
        from jaxport.rl.gradient import GradientConfig, make_gradient_policy_fn

        raw = dict(metadata["config"])
        cfg = GradientConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
        params = jax.tree.map(np.asarray, tree["params"])
        return make_gradient_policy_fn(params, cfg, env)
    raise DataError(f"portfolio checkpoint: unknown algo {algo!r}")
