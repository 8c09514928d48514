"""Stage 3 with ``rl.scope = "universe"``: ONE allocator trained on every pair of the universe symbols
(``data.universe_symbols``, resolved by the run) at once, then evaluated and gated on each basket.

The universe policy (:mod:`jaxport.rl.universe`) is symbol-agnostic and permutation-equivariant, so
the same parameters act in any basket of any size. Training sees only each basket's train rows,
checkpoint and population selection only its validation rows (the test rows of a basket are in
neither EnvParams: they are truncated at ``train_end`` / ``val_end``). Each requested basket then
gets the usual per-basket gate against the standard allocators on its own validation rows
(:func:`jaxport.pipeline.basket_stage.gate_and_report`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import time
from typing import Any, Callable, Sequence

import jax
import numpy as np

from jaxport.checkpoint import load_checkpoint, save_checkpoint
from jaxport.eval import evaluate_policy
from jaxport.eval.stats import probability_of_backtest_overfitting, returns_from_equity
from jaxport.pipeline.basket_stage import (
    FEATURE_CLIP,
    PairData,
    PairResult,
    evaluate_candidate,
    gate_and_report,
    run_objective,
)
from jaxport.pipeline.config import PipelineConfig, RLConfig, chooses_tilt_scale, sharded_batch
from jaxport.pipeline.labels import scales_text
from jaxport.pipeline.provenance import stage_seed
from jaxport.pipeline.stage_io import StageIO
from jaxport.pipeline.summary import UniverseStage
from jaxport.pipeline.tracking import per_update
from jaxport.pipeline.trainer_configs import universe_config, universe_ppo_config
from jaxport.rl.codec import Policy
from jaxport.rl.universe import (
    member_policies,
    stack_env_params,
    train_universe,
)

CANDIDATE = "universe"  # the candidate's name in the gate and the summary
POPULATION_KIND = "universe_population"  # checkpoint kind of every member's policy


def universe_baskets(symbols: Sequence[str]) -> list[list[str]]:
    """Every pair (2-asset basket) of the distinct ``symbols``, in the given order."""
    unique = list(dict.fromkeys(symbols))
    return [list(p) for p in itertools.combinations(unique, 2)]


@dataclasses.dataclass
class UniverseOutcome:
    """What the universe stage hands to every basket: the selected policy, every member's policy
    (for per-basket candidate counts; empty after a resume), the selected member's per-update
    training series and the summary entry."""

    policy: Policy
    members: list[Policy]
    metrics: dict[str, np.ndarray]
    entry: UniverseStage

    def save_population(self, path) -> None:
        """Every member's policy tree and the selected member's training series (what a resumed
        run needs to report the remaining baskets exactly as an uninterrupted one)."""
        tree = {
            "members": {str(m): p.tree for m, p in enumerate(self.members)},
            "metrics": dict(self.metrics),
        }
        save_checkpoint(
            path, tree, {"num_members": len(self.members)}, kind=POPULATION_KIND, overwrite=True
        )

    @classmethod
    def restore(cls, policy: Policy, entry: UniverseStage, path) -> "UniverseOutcome":
        """The outcome of a finished universe stage from its population checkpoint."""
        tree, meta = load_checkpoint(path, kind=POPULATION_KIND)
        members = [
            dataclasses.replace(policy, tree=tree["members"][str(m)])
            for m in range(int(meta["num_members"]))
        ]
        metrics = {k: np.asarray(v) for k, v in tree.get("metrics", {}).items()}
        return cls(policy, members, metrics, entry)


def run_universe_stage(
    config: PipelineConfig,
    data: Sequence[PairData],
    baskets: Sequence[Sequence[str]],
    io: StageIO,
    *,
    previous: UniverseStage | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[UniverseOutcome, bool]:
    """The universe stage with its save and restore: ``(outcome, resumed)``.

    A finished stage (``previous`` completed, its population checkpoint present) is restored from
    ``io.out_dir/portfolio/universe`` and ``universe_population``; otherwise the population is
    trained on ``data`` (one :class:`PairData` per basket of ``baskets``), sharded over
    ``config.rl.devices``, and the selected policy, every member and the training series are
    saved (``outcome.entry.checkpoint`` is set; the caller records the entry in the summary).
    ``progress(done, total)`` is called after every validation period of the gradient trainer
    (:func:`jaxport.rl.universe.progress_hook`).
    """
    from jaxport.distributed import rl_mesh
    from jaxport.rl.codec import load_policy_checkpoint, save_policy_checkpoint

    rl = config.rl
    ckpt = io.out_dir / "portfolio" / "universe"
    population = ckpt.parent / "universe_population"
    if previous is not None and previous.status == "completed" and population.exists():
        policy, _ = load_policy_checkpoint(ckpt, env=data[0].env)
        return UniverseOutcome.restore(policy, previous, population), True
    symbols = dict.fromkeys(s for b in baskets for s in b)
    io.say(
        f"universe policy: {len(baskets)} baskets of {len(symbols)} symbols "
        f"({', '.join(symbols)}), {rl.seeds} seed(s)"
    )
    key = jax.random.PRNGKey(stage_seed(config.seed, "universe"))
    mesh = rl_mesh(rl.devices, batch=sharded_batch(rl)[0])
    from jaxport.rl.universe import progress_hook

    with progress_hook(progress) if progress is not None else contextlib.nullcontext():
        outcome = train_universe_stage(rl, data, key, mesh=mesh)
    first = data[0]
    metadata = {
        "algo": "universe",
        "shipped": "universe",
        "baskets": [list(b) for b in baskets],
        "env": first.env_metadata(),
        "features": {"names": first.feature_names, "clip": FEATURE_CLIP},
        "dates": first.dates,
    }
    save_policy_checkpoint(ckpt, outcome.policy, metadata, overwrite=True)
    outcome.save_population(population)
    if outcome.entry.tilt is not None:
        t = outcome.entry.tilt
        io.say(
            f"universe policy: tilt scale {t['scale']:g} of {scales_text(t['scales'])} chosen "
            "on the tilt rows "
            f"{t['rows']['first']}..{t['rows']['last']} (0 = the untrained start: the anchor rule)"
        )
    outcome.entry.checkpoint = io.rel(ckpt)
    io.log_series("portfolio/universe", outcome.metrics)
    return outcome, False


def _trainers(rl: RLConfig) -> list[str]:
    return ["gradient", "ppo"] if rl.algo == "both" else [rl.algo]


def train_universe_stage(
    rl: RLConfig, baskets: Sequence[PairData], key: jax.Array, *, mesh=None
) -> UniverseOutcome:
    """Train the population on every basket's train rows and select on their validation rows.

    ``rl.algo`` picks the trainer: ``gradient`` (:func:`jaxport.rl.universe.train_universe`),
    ``ppo`` (:func:`jaxport.rl.universe_ppo.train_universe_ppo`) or ``both`` (each trains its
    population; the one whose selected member has the better mean validation objective is kept,
    and every member of both counts as a candidate). The kept policy's learned tilt is then scaled
    by the ``rl.tilt_scales`` entry with the best validation score on every basket's tilt rows
    (``PairData.tilt``, which training never sees; :func:`jaxport.rl.universe.choose_tilt_scale`;
    recorded as ``entry.tilt``). ``mesh`` (more than one device) shards either
    trainer's population (:mod:`jaxport.rl.population`). ``outcome.entry.checkpoint`` is left
    for the caller to fill.
    """
    env = baskets[0].env
    episode = int(min(int(np.asarray(b.train.episode_length)) for b in baskets))
    train = stack_env_params([b.train for b in baskets])
    val = stack_env_params([b.val for b in baskets])
    runs = {}
    for i, trainer in enumerate(_trainers(rl)):
        k = jax.random.fold_in(key, i) if i else key
        t0 = time.perf_counter()
        kwargs = {} if mesh is None or mesh.size < 2 else {"mesh": mesh}  # 1 device: as is
        if trainer == "ppo":
            from jaxport.rl.universe_ppo import train_universe_ppo

            cfg = universe_ppo_config(rl, len(baskets), episode)
            result = train_universe_ppo(cfg, env, train, val, k, **kwargs)
            policies = member_policies(result, result["universe_config"], env)
            steps_per_update = cfg.num_steps
        else:
            cfg = universe_config(rl, len(baskets), episode)
            result = train_universe(cfg, env, train, val, k, **kwargs)
            policies = member_policies(result, cfg, env)
            steps_per_update = cfg.bptt_length
        wall = time.perf_counter() - t0
        members = len(result["members"])
        env_steps = members * len(baskets) * cfg.num_envs * steps_per_update * cfg.num_updates
        runs[trainer] = dict(
            cfg=cfg,
            result=result,
            policies=policies,
            score=float(result["members"][result["best_member"]]["val_score"]),
            training={
                "wall_s": wall,
                "members": members,
                "env_steps": int(env_steps),
                "env_steps_per_s": env_steps / wall if wall > 0 else None,
            },
        )
    chosen = max(runs, key=lambda t: runs[t]["score"])
    run = runs[chosen]
    result, best = run["result"], int(run["result"]["best_member"])
    policy, tilt = result["policy"], None
    if chooses_tilt_scale(rl):
        from jaxport.rl.universe import choose_tilt_scale

        rows = stack_env_params([b.tilt for b in baskets])
        tilt = choose_tilt_scale(policy, rows, rl.tilt_scales)
        policy = tilt.pop("policy")
        tilt["rows"] = {
            "first": baskets[0].dates["tilt_first"],
            "last": baskets[0].dates["tilt_last"],
        }
    curve = result["val_curve"]
    entry = UniverseStage(
        status="completed",
        baskets=[list(b.symbols) for b in baskets],
        trainer=chosen,
        config=run["cfg"].to_dict(),
        best_member=best,
        members=result["members"],
        validation_curve={
            "updates": list(result["eval_updates"]),
            "objective": np.asarray(curve["objective"][best]).mean(axis=-1).tolist(),
            "sharpe": np.asarray(curve["sharpe"][best]).mean(axis=-1).tolist(),
            # every member's curve [M][evals] (the report draws the population)
            "members_objective": np.asarray(curve["objective"]).mean(axis=-1).tolist(),
        },
        training=run["training"],
        tilt=tilt,
        trainers={
            t: {"val_score": r["score"], "members": r["result"]["members"], **r["training"]}
            for t, r in runs.items()
        },
    )
    metrics = {k: np.asarray(v)[best] for k, v in result["metrics"].items()}
    policies = run["policies"] + [p for t, r in runs.items() if t != chosen for p in r["policies"]]
    return UniverseOutcome(policy, policies, metrics, entry)


def _member_scores(pair: PairData, members: Sequence[Policy], rl: RLConfig):
    """Every member's selection-row objective/Sharpe, gate-row Sharpe and test Sharpe on this
    basket (the trials the deflated Sharpe ratio counts; selection never reads the test numbers),
    and the probability of backtest overfitting of choosing among them on the validation block
    (selection and gate rows; :func:`~jaxport.eval.stats.probability_of_backtest_overfitting`)."""
    rows, val_returns = [], []
    for policy in members:
        policy = policy.with_env(pair.env)
        val = evaluate_policy(pair.env, pair.val, policy)
        gate = val if pair.gate is pair.val else evaluate_policy(pair.env, pair.gate, policy)
        test = evaluate_policy(pair.env, pair.test, policy)["metrics"]
        rows.append(
            {
                "val_objective": run_objective(val["equity_curve"], rl),
                "val_sharpe": val["metrics"]["sharpe"],
                "gate_sharpe": gate["metrics"]["sharpe"],
                "test_sharpe": test["sharpe"],
                "test_total_return": test["total_return"],
            }
        )
        curves = [val["equity_curve"]] + ([] if gate is val else [gate["equity_curve"]])
        val_returns.append(np.concatenate([returns_from_equity(c) for c in curves]))
    pbo = probability_of_backtest_overfitting(np.stack(val_returns, axis=1))
    return rows, pbo


def universe_pair_result(
    pair: PairData, rl: RLConfig, outcome: UniverseOutcome, *, gate: bool = True
) -> PairResult:
    """Evaluate the universe policy on one basket and gate it against the standard allocators on
    that basket's validation rows (what ships: the universe policy or a baseline)."""
    policy = outcome.policy.with_env(pair.env)
    record: dict[str, Any] = evaluate_candidate(
        pair, policy, rl, outcome.metrics, trained_in="stages.universe"
    )
    if outcome.members:
        record["members"], record["pbo"] = _member_scores(pair, outcome.members, rl)
    curves = {k: per_update(v) for k, v in outcome.metrics.items() if np.ndim(v) >= 1}
    return gate_and_report(
        pair, rl, {CANDIDATE: policy}, {CANDIDATE: record}, {CANDIDATE: curves}, gate=gate
    )


__all__ = [
    "CANDIDATE",
    "UniverseOutcome",
    "train_universe_stage",
    "universe_baskets",
    "universe_pair_result",
    "run_universe_stage",
]
