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
from jaxport.features.risk import ANCHOR_FEATURE_NAMES, anchor_features
from jaxport.pipeline.config import (
    GATE_RULES,
    RLConfig,
    chooses_tilt_scale,
    effective_objective,
    uses_anchor,
)
from jaxport.pipeline.tracking import per_update
from jaxport.pipeline.trainer_configs import gradient_config, ppo_config
from jaxport.rl.codec import Policy, env_metadata, gradient_kind, make_policy

ANCHOR_COLUMNS = len(ANCHOR_FEATURE_NAMES)
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
    with complete features (``valid_from``) and which model produced each symbol's (``sources``:
    symbol -> ``"forecaster"`` / ``"statistical"``, or for cross-fitted features ``{"source",
    "models": [{"model", "kind", "rows" (half-open), "dates" (inclusive), "checkpoint"}]}``)."""

    values: np.ndarray
    names: list[str]
    valid_from: int
    sources: dict[str, Any]


def pair_features(
    data_cfg, market: MarketData, symbols: list[str], models: dict[str, Any]
) -> PairFeatures:
    """Forecast features ``[T, N, F]`` for ``symbols``, each from its own forecaster (or the
    statistical fallback).

    ``models`` maps symbol -> Forecaster, None (statistical fallback) or a
    :class:`~jaxport.forecast.crossfit.FittedCrossFit` (each row from a model that never trained
    on its targets; see :mod:`jaxport.pipeline.forecast_stage`).  ``data_cfg``: the run's
    ``DataConfig`` (``forecast_moments`` picks the columns).
    """
    from jaxport.forecast.crossfit import FittedCrossFit, feature_fn

    d = data_cfg
    use_models = d.features in ("toto", "toto+stat") and not d.disable_toto
    featurise = feature_fn(
        targets=d.toto_targets,
        horizon=d.toto_horizon,
        sequence_length=d.sequence_length,
        append_stat=d.features == "toto+stat",
        moments=getattr(d, "forecast_moments", "mean+std"),
    )
    parts, names, valid_from, sources = [], None, 0, {}
    for sym in symbols:
        sub = market.select([sym])
        model = models.get(sym) if use_models else None
        if isinstance(model, FittedCrossFit):
            out = model.featurise(sub, featurise)
            sources[sym] = {"source": out.source, "models": model.provenance(sub.dates)}
        else:
            out = featurise(model, sub)
            sources[sym] = out.source
        parts.append(out.values)
        names = out.names
        valid_from = max(valid_from, out.valid_from)
    return PairFeatures(np.concatenate(parts, axis=1), list(names), int(valid_from), sources)


def gate_block_start(val_start: int, val_end: int, gate_fraction: float) -> int:
    """First row of the gate's held-out block: the last ``gate_fraction`` of the validation rows
    ``[val_start, val_end)`` (at least 2 rows on each side; ``val_end`` when the fraction is 0 or
    the block is too short to cut)."""
    rows = val_end - val_start
    held = int(round(rows * float(gate_fraction)))
    if gate_fraction <= 0 or held < 2 or rows - held < 2:
        return val_end
    return val_end - held


@dataclasses.dataclass
class PairData:
    """Env, and EnvParams for the train / validation / test parts of one basket.

    ``val`` holds the selection rows (checkpoints, members, algorithms are chosen there),
    ``tilt`` the later rows on which the universe stage chooses the learned tilt's scale (the last
    ``rl.tilt_fraction`` of the selection block when it chooses one; else ``tilt is val``) and
    ``gate`` the last, untouched rows of the validation block on which the gate decides
    (:func:`gate_block_start`; ``gate is val`` when ``rl.gate_fraction`` is 0).
    """

    symbols: list[str]
    env: PortfolioEnv
    train: EnvParams
    val: EnvParams
    test: EnvParams
    gate: EnvParams
    tilt: EnvParams
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
        val_start, test_start, test_end = bounds.val_start, bounds.test_start, bounds.test_end
        if train_end - 1 - start_min < 2:
            raise DataError(
                f"pair {'_'.join(market.symbols)}: train split too short after feature warm-up "
                f"({train_end} rows, warm-up {start_min})"
            )
        anchored = uses_anchor(rl)
        if anchored:  # raw columns (mean 0, std 1 below): the anchor rule reads them
            values = np.concatenate([values, anchor_features(market.close)], axis=-1)
            names = [*names, *ANCHOR_FEATURE_NAMES]
            T, N, F = values.shape
        train_rows = values[valid_from:train_end].reshape(-1, F)
        mean = train_rows.mean(axis=0)
        std = train_rows.std(axis=0)
        std = np.where(std > 1e-8, std, 1.0)
        if anchored:
            mean[-ANCHOR_COLUMNS:], std[-ANCHOR_COLUMNS:] = 0.0, 1.0
        feats = np.clip((values - mean) / std, -FEATURE_CLIP, FEATURE_CLIP).astype(np.float32)
        feats[:valid_from] = 0.0
        close, opens = market.close, market.open
        kw = env_kwargs(rl)
        episode = int(min(rl.episode_length, train_end - 1 - start_min))
        env = PortfolioEnv(N, F, window=window)
        # validation and test params hold no row after their own block (arrays truncated); the
        # validation block is cut in two: selection rows, then the gate's held-out rows
        gate_start = gate_block_start(val_start, val_end, rl.gate_fraction)
        tilt_fraction = rl.tilt_fraction if chooses_tilt_scale(rl) else 0.0
        tilt_start = gate_block_start(val_start, gate_start, tilt_fraction)

        def rows_until(end: int, **extra) -> EnvParams:
            return EnvParams.from_arrays(
                close[:end],
                feats[:end],
                open_prices=opens[:end],
                start_min=start_min,
                window=window,
                **extra,
                **kw,
            )

        def block(first: int, end: int) -> EnvParams:
            return rows_until(end, eval_start=first - 1, episode_length=None)

        train = rows_until(train_end, episode_length=episode)
        val = block(val_start, tilt_start)
        tilt = val if tilt_start == gate_start else block(tilt_start, gate_start)
        gate = val if gate_start == val_end else block(gate_start, val_end)
        test = block(test_start, test_end)
        dates = {
            "train_first": str(market.dates[start_min]),
            "train_last": str(market.dates[train_end - 1]),
            "val_first": str(market.dates[val_start]),
            "val_last": str(market.dates[tilt_start - 1]),
            "tilt_first": str(market.dates[min(tilt_start, gate_start - 1)]),
            "tilt_last": str(market.dates[gate_start - 1]),
            "gate_first": str(market.dates[min(gate_start, val_end - 1)]),
            "gate_last": str(market.dates[val_end - 1]),
            "test_first": str(market.dates[test_start]),
            "test_last": str(market.dates[test_end - 1]),
        }
        return cls(
            list(market.symbols),
            env,
            train,
            val,
            test,
            gate,
            tilt,
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
    algo: str  # how the shipped policy was made: "ppo" | "gradient" | "baseline"
    policy: Policy
    metrics: dict  # {"test", "validation", "baselines", "selection"}
    candidates: dict  # algo -> {"validation", "test", "objective", "updates", "train_wall_s", ...}
    curves: dict  # equity curves etc. for plotting
    pair: PairData
    shipped: str = ""  # "ppo" | "gradient" | "baseline:<name>"
    gate: dict | None = None  # the validation numbers that decided what was shipped
    learned: dict = dataclasses.field(default_factory=dict)  # algo -> trained Policy (all of them)

    def checkpoint_metadata(self, feature_source: dict) -> dict:
        """Metadata of the policy checkpoint besides the codec's ``policy`` block."""
        p = self.pair
        return {
            "algo": self.algo,
            "shipped": self.shipped or self.algo,
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


def _last(metrics: dict) -> dict:
    out = {}
    for k, v in metrics.items():
        arr = np.asarray(v)
        if arr.ndim >= 1 and arr.size:
            out[k] = float(arr.reshape(arr.shape[0], -1)[-1].mean())
    return out


#: AOT-compiled trainers keyed by ``(algo, config, env, argument shapes/dtypes)``: env params are
#: traced, so every pair of the same shape reuses one executable. Oldest entries are dropped.
_COMPILED: dict[tuple, Any] = {}
_COMPILED_MAX = 16


def _arg_signature(args) -> tuple:
    leaves, treedef = jax.tree_util.tree_flatten(args)
    sig = tuple(
        (tuple(np.shape(x)), str(getattr(x, "dtype", type(x).__name__)), getattr(x, "weak_type", 0))
        for x in leaves
    )
    return treedef, sig


def timed_train(
    algo: str,
    cfg,
    env: PortfolioEnv,
    train: Callable,
    key,
    params,
    *,
    mesh=None,
    out_shardings=None,
) -> tuple[dict, dict]:
    """Run ``train(key, params)`` through an ahead-of-time compiled executable:
    ``(output, {"compile_s", "run_s", "compile_cache_hit"})`` (seconds; ``compile_s`` is tracing,
    lowering and XLA compilation, 0.0 on a cache hit; ``run_s`` includes the device transfer of the
    output). ``mesh`` with more than one device: compiled with the env batch split over it
    (:func:`jaxport.distributed.compile_sharded`, ``out_shardings`` passed on; the mesh is part of
    the cache key) and the output gathered whole onto the default device."""
    sharded = mesh is not None and mesh.devices.size > 1
    cache_key = (algo, cfg, env, _arg_signature((key, params)), mesh if sharded else None)
    compiled = _COMPILED.get(cache_key)
    hit = compiled is not None
    compile_s = 0.0
    if not hit:
        t0 = time.perf_counter()
        if sharded:
            from jaxport.distributed import compile_sharded

            compiled = compile_sharded(train, mesh, key, params, out_shardings=out_shardings)
        else:
            compiled = jax.jit(train).lower(key, params).compile()
        compile_s = time.perf_counter() - t0
        while len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.pop(next(iter(_COMPILED)))
        _COMPILED[cache_key] = compiled
    t0 = time.perf_counter()
    if sharded:  # gathered back onto the default device: evaluation as on one device
        from jaxport.distributed import to_host

        run, place = compiled
        out = jax.block_until_ready(jax.device_put(to_host(run(*place(key, params)))))
    else:
        out = jax.block_until_ready(compiled(key, params))
    run_s = time.perf_counter() - t0
    return out, {"compile_s": compile_s, "run_s": run_s, "compile_cache_hit": hit}


def train_mesh(rl: RLConfig):
    """The device mesh the pair trainers shard their env batch over (``rl.devices``; ``None`` on
    one device: the single-device path), after checking ``rl.batch_size`` divides over it."""
    from jaxport.distributed import check_batch, rl_mesh

    mesh = rl_mesh(rl.devices, batch=rl.batch_size)
    if mesh.devices.size == 1:
        return None
    check_batch(rl.batch_size, mesh, "rl.batch_size")
    return mesh


def train_ppo(pair: PairData, rl: RLConfig, key) -> tuple[Policy, dict, dict]:
    """PPO on the train rows: ``(policy, per-update metrics, timing)`` (timing as in
    :func:`timed_train`)."""
    from jaxport.distributed import ppo_out_shardings
    from jaxport.rl import make_train

    cfg = ppo_config(rl, pair.env.num_assets)
    train = make_train(cfg, pair.env)  # env params traced: one compile per shape
    mesh = train_mesh(rl)
    out_sh = None if mesh is None else (lambda shape: ppo_out_shardings(mesh, shape))
    out, timing = timed_train(
        "ppo", cfg, pair.env, train, key, pair.train, mesh=mesh, out_shardings=out_sh
    )
    metrics = jax.device_get(out["metrics"])
    policy = make_policy("ppo", cfg, pair.env, params=out["params"], obs_norm=out["obs_norm"])
    return policy, metrics, timing


def train_gradient(pair: PairData, rl: RLConfig, key) -> tuple[Policy, dict, dict]:
    """Gradient ascent through the env on the train rows: ``(policy, per-update metrics,
    timing)`` (timing as in :func:`timed_train`)."""
    from jaxport.rl import make_gradient_train

    episode = int(pair.train.episode_length)
    cfg = gradient_config(rl, episode)
    train = make_gradient_train(cfg, pair.env)  # one compile per shape
    out, timing = timed_train(
        "gradient", cfg, pair.env, train, key, pair.train, mesh=train_mesh(rl)
    )
    metrics = jax.device_get(out["metrics"])
    policy = make_policy(gradient_kind(cfg), cfg, pair.env, params=out["params"])
    return policy, metrics, timing


TRAINERS = {"ppo": train_ppo, "gradient": train_gradient}


def validation_objective(
    equity_curve,
    risk_penalty: float,
    objective: str = "mean-variance",
    periods_per_year: float = 252.0,
) -> float:
    """The run's objective on an evaluation equity curve ``[E_0..E_n]`` (per-step simple returns
    ``r_t = E_t / E_{t-1} - 1``): ``mean-variance`` = mean per-step log growth minus
    ``risk_penalty`` x the population variance of ``r`` (as the gradient trainer's loss; per-day
    units, not annualised); ``log-growth`` = mean per-step log growth; ``sharpe`` = the annualised
    Sharpe of ``r`` (ddof 1, 0 for a constant curve). ``-inf`` for a curve that is not finite and
    positive."""
    eq = np.asarray(equity_curve, np.float64).reshape(-1)
    if eq.size < 2 or not np.all(np.isfinite(eq)) or np.any(eq <= 0):
        return float("-inf")
    ratio = eq[1:] / eq[:-1]
    if objective == "sharpe":
        r = ratio - 1.0
        sd = np.std(r, ddof=1) if r.size > 1 else 0.0
        return float(np.mean(r) / sd * np.sqrt(periods_per_year)) if sd > 1e-12 else 0.0
    if objective == "log-growth":
        return float(np.mean(np.log(ratio)))
    return float(np.mean(np.log(ratio)) - risk_penalty * np.var(ratio - 1.0))


def run_objective(equity_curve, rl: RLConfig) -> float:
    """:func:`validation_objective` with the run's ``rl.objective`` and settings."""
    return validation_objective(
        equity_curve, rl.risk_penalty, effective_objective(rl), float(rl.trading_days_per_year)
    )


def baseline_policy(allocator, env: PortfolioEnv) -> Policy:
    """A standard allocator as a shippable :class:`Policy` of kind ``"baseline:<name>"``."""
    return make_policy(f"baseline:{allocator.name}", allocator, env)


#: What the gate ships when no learned candidate passes. Picking the baseline with the best
#: validation score instead lost to 1/N out of sample: over 21 pairs x 6 yearly walk-forward folds of
#: the shipped data, the test Sharpe gap to 1/N had median -0.21 (60 % of pair-folds below -0.1)
#: choosing among all baselines, and median 0.00 / mean -0.07 among the diversified allocators only
#: (benchmarks/baseline_selection_oos.py). 1/N (DeMiguel, Garlappi & Uppal 2009) is the default.
GATE_FALLBACK = "equal_weight"

#: What each ``rl.objective`` measures (gate text and summary).
OBJECTIVE_TEXT = {
    "mean-variance": "mean daily log growth - risk_penalty x variance of daily returns",
    "log-growth": "mean daily log growth",
    "sharpe": "annualised Sharpe of daily returns",
}


def baseline_gate(
    learned: dict[str, dict],
    baselines: dict[str, dict],
    *,
    enabled: bool = True,
    fallback: str | None = GATE_FALLBACK,
    objective: str = "mean-variance",
    rule: str = "every_baseline",
) -> dict[str, Any]:
    """Decide what a basket ships from validation numbers.

    ``learned`` / ``baselines``: name -> ``{"objective", "sharpe", ...}`` (validation block). A
    learned candidate passes when its objective AND its Sharpe are above those of every baseline
    (``rule="every_baseline"``: above the best baseline by each measure) or of the ``fallback``
    alone (``rule="fallback"``); the passing one with the best objective is shipped, else
    ``fallback`` (1/N by default, see :data:`GATE_FALLBACK`; ``None``: the baseline
    with the best validation objective). With ``enabled=False`` the learned candidate
    with the highest validation total return is shipped (the pre-gate rule). Returns ``{"enabled",
    "shipped", "reason", "best_baseline", "best_baseline_objective", "best_baseline_sharpe",
    "learned": {...}, "baselines": {...}}``.
    """

    def key(d, k):
        v = d.get(k, float("-inf"))
        return float(v) if v is not None and np.isfinite(v) else float("-inf")

    if rule not in GATE_RULES:
        raise ValueError(f"gate rule {rule!r}: expected one of {', '.join(GATE_RULES)}")
    best_base = max(baselines, key=lambda n: key(baselines[n], "objective")) if baselines else None
    # the bar: every baseline, or the fallback alone (when it was evaluated)
    bar = (
        {fallback: baselines[fallback]}
        if rule == "fallback" and fallback in baselines
        else baselines
    )
    bar_text = "every baseline" if bar is baselines else fallback
    max_obj = max((key(b, "objective") for b in bar.values()), default=float("-inf"))
    max_sharpe = max((key(b, "sharpe") for b in bar.values()), default=float("-inf"))
    best_sharpe_base = (
        max(baselines, key=lambda n: key(baselines[n], "sharpe")) if baselines else None
    )
    out = {
        "enabled": bool(enabled),
        "rule": rule,
        "fallback": fallback,
        "bar": sorted(bar),  # the baselines a learned policy had to beat
        "measure": f"objective ({OBJECTIVE_TEXT.get(objective, objective)}) and annualised "
        "Sharpe, on the gate's held-out validation rows",
        "objective": objective,
        "best_baseline": best_base,
        "best_baseline_objective": max_obj,
        "best_baseline_sharpe": max_sharpe,
        "best_sharpe_baseline": best_sharpe_base,
        "learned": learned,
        "baselines": baselines,
    }
    if not enabled or not baselines:
        best = max(learned, key=lambda n: key(learned[n], "total_return"))
        out.update(shipped=best, reason="gate off (--no-gate): best learned by validation return")
        return out
    passing = [
        n
        for n, d in learned.items()
        if key(d, "objective") > max_obj and key(d, "sharpe") > max_sharpe
    ]
    if passing:
        best = max(passing, key=lambda n: key(learned[n], "objective"))
        out.update(
            shipped=best,
            reason=f"{best} beat {bar_text} on validation (objective "
            f"{learned[best]['objective']:.2e} > {max_obj:.2e}, Sharpe "
            f"{learned[best]['sharpe']:.2f} > {max_sharpe:.2f})",
        )
    else:
        best_l = max(learned, key=lambda n: key(learned[n], "objective")) if learned else None
        why = (
            f"best learned {best_l} (objective {learned[best_l]['objective']:.2e}, Sharpe "
            f"{learned[best_l]['sharpe']:.2f}) did not beat {bar_text} (best objective "
            f"{max_obj:.2e}, best Sharpe {max_sharpe:.2f}) on validation"
            if best_l
            else "no learned candidate"
        )
        ship = fallback if fallback in baselines else best_base
        how = "the gate's fallback" if ship == fallback else "best validation objective"
        out.update(shipped=f"baseline:{ship}", reason=f"{why}; ships {ship} ({how})")
    return out


def evaluate_candidate(
    pair: PairData, policy: Policy, rl: RLConfig, metrics: dict | None = None, **extra
) -> dict[str, Any]:
    """One learned candidate's record: deterministic metrics on the selection rows
    (``validation``, with ``objective``: :func:`run_objective`), on the gate's held-out rows
    (``gate``: ``{metrics, objective}``) and on test, the update count and last training metrics
    from ``metrics`` (name -> per-update series), plus ``extra`` (timings, ...)."""
    metrics = metrics or {}
    val_run = evaluate_policy(pair.env, pair.val, policy)
    gate_run = val_run if pair.gate is pair.val else evaluate_policy(pair.env, pair.gate, policy)
    return {
        "validation": val_run["metrics"],
        "objective": run_objective(val_run["equity_curve"], rl),
        "gate": {
            "metrics": gate_run["metrics"],
            "objective": run_objective(gate_run["equity_curve"], rl),
        },
        "test": evaluate_policy(pair.env, pair.test, policy)["metrics"],
        "updates": int(np.asarray(next(iter(metrics.values()))).shape[0]) if metrics else 0,
        **extra,
        "final_train_metrics": _last(metrics),
    }


def train_and_evaluate_pair(
    pair: PairData,
    rl: RLConfig,
    *,
    seed: int,
    log: Callable[[str, dict], None] | None = None,
    gate: bool = True,
) -> PairResult:
    """Train each algorithm of ``rl.algo`` on this pair alone, gate them against the standard
    allocators on validation (:func:`baseline_gate`), report the shipped policy on test."""
    algos = ["ppo", "gradient"] if rl.algo == "both" else [rl.algo]
    key = jax.random.PRNGKey(seed)
    candidates: dict[str, dict] = {}
    trained: dict[str, Policy] = {}
    training_curves: dict[str, dict] = {}
    for i, algo in enumerate(algos):
        t0 = time.perf_counter()
        policy, metrics, timing = TRAINERS[algo](pair, rl, jax.random.fold_in(key, i))
        wall = time.perf_counter() - t0
        if log is not None:
            log(algo, metrics)
        candidates[algo] = evaluate_candidate(
            pair, policy, rl, metrics, train_wall_s=wall, **timing
        )
        trained[algo] = policy
        training_curves[algo] = {k: per_update(v) for k, v in metrics.items() if np.ndim(v) >= 1}
    return gate_and_report(pair, rl, trained, candidates, training_curves, gate=gate)


def gate_and_report(
    pair: PairData,
    rl: RLConfig,
    trained: dict[str, Policy],
    candidates: dict[str, dict],
    training_curves: dict[str, dict],
    *,
    gate: bool = True,
) -> PairResult:
    """Gate the learned ``trained`` policies (records from :func:`evaluate_candidate`) against the
    standard allocators on validation and report what ships on test."""
    from jaxport.eval import default_allocators, run_allocators

    allocators = {a.name: a for a in default_allocators(pair.env.num_assets)}
    gate_base = run_allocators(pair.env, pair.gate, tuple(allocators.values()))
    base_scores = {
        rep["name"]: {
            "objective": run_objective(rep["equity_curve"], rl),
            "sharpe": rep["metrics"]["sharpe"],
            "total_return": rep["metrics"]["total_return"],
        }
        for rep in gate_base
    }
    learned_scores = {
        a: {
            "objective": c["gate"]["objective"],
            "sharpe": c["gate"]["metrics"]["sharpe"],
            "total_return": c["gate"]["metrics"]["total_return"],
        }
        for a, c in candidates.items()
    }
    decision = baseline_gate(
        learned_scores,
        base_scores,
        enabled=gate,
        objective=effective_objective(rl),
        rule=rl.gate_rule,
        fallback=rl.gate_fallback,
    )
    decision["rows"] = {"first": pair.dates["gate_first"], "last": pair.dates["gate_last"]}
    shipped = decision["shipped"]
    if shipped.startswith("baseline:"):
        name = shipped.split(":", 1)[1]
        policy = baseline_policy(allocators[name], pair.env)
        algo = "baseline"
        validation = next(r["metrics"] for r in gate_base if r["name"] == name)
    else:
        policy, algo = trained[shipped], shipped
        validation = candidates[shipped]["gate"]["metrics"]
    report = portfolio_report(pair.env, pair.test, policy, pair.symbols)
    metrics = {
        "test": report["test"],
        "validation": validation,
        "baselines": report["baselines"],
        "selection": decision["reason"],
    }
    curves = {
        "symbols": pair.symbols,
        "algo": algo,
        "shipped": shipped,
        "policy_kind": policy.kind,
        "dates": pair.dates,
        "start_index": report["start_index"],
        "curve_dates": pair.curve_dates(report["start_index"], report["num_steps"]),
        "equity_curve": report["equity_curve"],
        "baseline_curves": report["baseline_curves"],
        # every learned candidate's test equity curve (shipped or not), for eval/report/export
        # and the walk-forward pooled statistics
        "learned_curves": {
            a: evaluate_policy(pair.env, pair.test, p)["equity_curve"] for a, p in trained.items()
        },
        "leverage": report["leverage"],
        "weights": report["weights"],
        "training_curves": training_curves,
    }
    return PairResult(
        algo, policy, metrics, candidates, curves, pair, shipped, decision, learned=trained
    )
