"""Stage 3 for one basket (a pair by default): env data per split, PPO and/or gradient training,
selection on validation, evaluation on test, and what goes into the checkpoint.

Splits are chronological: policies train on random episodes inside the train rows, are compared on
one deterministic episode over the validation rows and reported on one over the test rows (never
seen in training or selection). Features are standardised with statistics of the train rows only.
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
from jaxport.pipeline.tracking import per_update
from jaxport.rl.codec import Policy, env_metadata, gradient_kind, make_policy

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
class PairFeatures:
    """Forecast features of one basket: ``values [T, N, F]`` (raw), their ``names``, the first row
    with complete features (``valid_from``) and which model produced each symbol's (``sources``)."""

    values: np.ndarray
    names: list[str]
    valid_from: int
    sources: dict[str, str]


def pair_features(
    data_cfg, market: MarketData, symbols: list[str], models: dict[str, Any]
) -> PairFeatures:
    """Forecast features ``[T, N, F]`` for ``symbols``, each from its own forecaster (or the
    statistical fallback).

    ``models`` maps symbol -> Forecaster or None (``data_cfg``: the run's ``DataConfig``).
    """
    from jaxport.forecast import compute_features

    d = data_cfg
    use_models = d.features in ("toto", "toto+stat") and not d.disable_toto
    parts, names, valid_from, sources = [], None, 0, {}
    for sym in symbols:
        out = compute_features(
            models.get(sym) if use_models else None,
            market.select([sym]),
            targets=d.toto_targets,
            horizon=d.toto_horizon,
            sequence_length=d.sequence_length,
            append_stat=d.features == "toto+stat",
        )
        parts.append(out.values)
        names = out.names
        valid_from = max(valid_from, out.valid_from)
        sources[sym] = out.source
    return PairFeatures(np.concatenate(parts, axis=1), list(names), int(valid_from), sources)


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
    dates: dict[str, str]  # train_first, val_first, test_first, test_last
    calendar: np.ndarray  # [T] datetime64[D]: the date of every row

    @classmethod
    def build(
        cls, market: MarketData, values: np.ndarray, names, valid_from: int, bounds, rl: RLConfig
    ) -> "PairData":
        """Standardise ``values [T, N, F]`` with train-row statistics and build the three EnvParams.

        The first day an episode may start on is ``valid_from + window - 1``: every day of its
        ``window``-day observation then has complete features (no zeroed warm-up rows).
        """
        T, N, F = values.shape
        window = rl.window
        start_min = valid_from + window - 1
        train_end, val_end = bounds.train_end, bounds.val_end
        if train_end - 1 - start_min < 2:
            raise DataError(
                f"pair {'_'.join(market.symbols)}: train split too short after feature warm-up "
                f"({train_end} rows, warm-up {start_min})"
            )
        train_rows = values[valid_from:train_end].reshape(-1, F)
        mean = train_rows.mean(axis=0)
        std = train_rows.std(axis=0)
        std = np.where(std > 1e-8, std, 1.0)
        feats = np.clip((values - mean) / std, -FEATURE_CLIP, FEATURE_CLIP).astype(np.float32)
        feats[:valid_from] = 0.0
        close, opens = market.close, market.open
        kw = env_kwargs(rl)
        episode = int(min(rl.episode_length, train_end - 1 - start_min))
        env = PortfolioEnv(N, F, window=window)
        train = EnvParams.from_arrays(
            close[:train_end],
            feats[:train_end],
            open_prices=opens[:train_end],
            episode_length=episode,
            start_min=start_min,
            window=window,
            **kw,
        )
        val = EnvParams.from_arrays(
            close[:val_end],
            feats[:val_end],
            open_prices=opens[:val_end],
            eval_start=train_end - 1,
            episode_length=None,
            start_min=start_min,
            window=window,
            **kw,
        )
        test = EnvParams.from_arrays(
            close,
            feats,
            open_prices=opens,
            eval_start=val_end - 1,
            episode_length=None,
            start_min=start_min,
            window=window,
            **kw,
        )
        dates = {
            "train_first": str(market.dates[start_min]),
            "val_first": str(market.dates[train_end]),
            "test_first": str(market.dates[val_end]),
            "test_last": str(market.dates[-1]),
        }
        return cls(
            list(market.symbols),
            env,
            train,
            val,
            test,
            list(names),
            mean,
            std,
            valid_from,
            dates,
            np.asarray(market.dates),
        )

    def env_metadata(self) -> dict:
        """The env block of the policy checkpoint: static shape/mode plus the numeric settings."""
        p = self.train
        return {
            **env_metadata(self.env),
            "leverage_cap": float(p.leverage_cap),
            "fee_rate": float(p.fee_rate),
            "annual_financing_rate": float(p.annual_financing_rate),
            "periods_per_year": float(p.periods_per_year),
        }

    def curve_dates(self, start_index: int, num_steps: int) -> list[str]:
        """ISO dates of an evaluation curve's ``num_steps + 1`` points from row ``start_index``."""
        return [str(d) for d in self.calendar[start_index : start_index + num_steps + 1]]


@dataclasses.dataclass
class PairResult:
    algo: str  # training method of the selected candidate ("ppo" | "gradient")
    policy: Policy
    metrics: dict  # {"test", "validation", "baselines", "selection"}
    candidates: (
        dict  # algo -> {"validation", "test", "updates", "train_wall_s", "final_train_metrics"}
    )
    curves: dict  # equity curves etc. for plotting
    pair: PairData

    def checkpoint_metadata(self, feature_source: dict) -> dict:
        """Metadata of the policy checkpoint besides the codec's ``policy`` block."""
        p = self.pair
        return {
            "algo": self.algo,
            "symbols": p.symbols,
            "env": p.env_metadata(),
            "features": {
                "names": p.feature_names,
                "mean": p.feature_mean,
                "std": p.feature_std,
                "clip": FEATURE_CLIP,
                "valid_from": p.valid_from,
                "source": feature_source,
            },
            "dates": p.dates,
        }


def ppo_config(rl: RLConfig, num_assets: int):
    from jaxport.rl import PPOConfig

    num_envs = rl.batch_size
    return PPOConfig(
        num_envs=num_envs,
        num_steps=rl.num_steps,
        total_timesteps=rl.epochs * num_envs * rl.num_steps,
        lr=rl.learning_rate,
        hidden_sizes=(rl.hidden_size,) * rl.num_layers,
        leverage_cap=rl.leverage_limit,
    )


def gradient_config(rl: RLConfig, episode_length: int):
    from jaxport.rl import GradientConfig

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


def train_ppo(pair: PairData, rl: RLConfig, key) -> tuple[Policy, dict]:
    """PPO on the train rows: ``(policy, per-update metrics)``."""
    from jaxport.rl import make_train

    cfg = ppo_config(rl, pair.env.num_assets)
    out = make_train(cfg, pair.env)(key, pair.train)  # env params traced: one compile per shape
    metrics = jax.device_get(out["metrics"])
    policy = make_policy("ppo", cfg, pair.env, params=out["params"], obs_norm=out["obs_norm"])
    return policy, metrics


def train_gradient(pair: PairData, rl: RLConfig, key) -> tuple[Policy, dict]:
    """Gradient ascent through the env on the train rows: ``(policy, per-update metrics)``."""
    from jaxport.rl import make_gradient_train

    episode = int(pair.train.episode_length)
    cfg = gradient_config(rl, episode)
    out = make_gradient_train(cfg, pair.env)(key, pair.train)  # one compile per shape
    metrics = jax.device_get(out["metrics"])
    policy = make_policy(gradient_kind(cfg), cfg, pair.env, params=out["params"])
    return policy, metrics


TRAINERS = {"ppo": train_ppo, "gradient": train_gradient}


def train_and_evaluate_pair(
    pair: PairData, rl: RLConfig, *, seed: int, log: Callable[[str, dict], None] | None = None
) -> PairResult:
    """Train each algorithm of ``rl.algo``, keep the best on validation, report it on test."""
    algos = ["ppo", "gradient"] if rl.algo == "both" else [rl.algo]
    key = jax.random.PRNGKey(seed)
    candidates: dict[str, dict] = {}
    trained: dict[str, Policy] = {}
    training_curves: dict[str, dict] = {}
    for i, algo in enumerate(algos):
        t0 = time.perf_counter()
        policy, metrics = TRAINERS[algo](pair, rl, jax.random.fold_in(key, i))
        wall = time.perf_counter() - t0
        if log is not None:
            log(algo, metrics)
        val = evaluate_policy(pair.env, pair.val, policy)["metrics"]
        test = evaluate_policy(pair.env, pair.test, policy)["metrics"]
        candidates[algo] = {
            "validation": val,
            "test": test,
            "updates": int(np.asarray(next(iter(metrics.values()))).shape[0]) if metrics else 0,
            "train_wall_s": wall,
            "final_train_metrics": _last(metrics),
        }
        trained[algo] = policy
        training_curves[algo] = {k: per_update(v) for k, v in metrics.items() if np.ndim(v) >= 1}
    best = max(algos, key=lambda a: _score(candidates[a]["validation"]))
    policy = trained[best]
    report = portfolio_report(pair.env, pair.test, policy, pair.symbols)
    metrics = {
        "test": report["test"],
        "validation": candidates[best]["validation"],
        "baselines": report["baselines"],
        "selection": "highest validation total return" if len(algos) > 1 else "single algorithm",
    }
    curves = {
        "symbols": pair.symbols,
        "algo": best,
        "policy_kind": policy.kind,
        "dates": pair.dates,
        "start_index": report["start_index"],
        "curve_dates": pair.curve_dates(report["start_index"], report["num_steps"]),
        "equity_curve": report["equity_curve"],
        "baseline_curves": report["baseline_curves"],
        "leverage": report["leverage"],
        "weights": report["weights"],
        "training_curves": training_curves,
    }
    return PairResult(best, policy, metrics, candidates, curves, pair)


def _score(metrics: dict) -> float:
    value = metrics.get("total_return", float("-inf"))
    return float(value) if np.isfinite(value) else float("-inf")
