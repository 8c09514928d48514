"""Walk-forward out-of-sample study of the universe allocator's regularisers (issue #13 item 5).

Data: all 21 pairs of the 7 shipped symbols (trainingdata/). Folds:
``jaxport.data.split.walk_forward_bounds`` with 3 yearly (252-row) test blocks at the end of the
data, validation blocks of the same length before each, embargo 8 rows. Features: the statistical
set (``jaxport.features.market_stat_features``, causal), standardised per fold with the mean/std
of that fold's TRAIN rows (pooled over the 7 symbols), clipped to +-5; a cheap proxy for the
pipeline's forecast features. Env: the pipeline's defaults (``jaxport.pipeline.basket_stage.
env_kwargs(RLConfig())``: fee 10 bps, leverage cap 2, financing 6.75 %/yr, 252 days/yr; open prices
as in the pipeline). Validation/test params hold no row after their own block.

Per fold: ONE ``train_universe`` call over the 21 pair baskets, its population the cartesian grid
of rebalance_rate x turnover_penalty x feature_noise x weight_decay (traced DYNAMIC_FIELDS) x
seeds, all in one jitted program with checkpoint selection on validation. Every member's
best-checkpoint policy (``member_policies``), the selected policy (``result["policy"]``), an
optional validation-ranked ensemble, today's per-pair gradient policy (the pipeline's pair scope:
``gradient_config(RLConfig(), episode)``, 60 updates, one policy per pair vmapped over the pairs) and
1/N (``Allocator("equal_weight")``, rebalanced daily) are evaluated on each pair's validation and
test rows with ``jaxport.eval`` in the same env.

Writes benchmarks/results/universe_oos.json (after every fold, atomically). Usage::

    python benchmarks/universe_oos.py                 # the full study (3 folds)
    python benchmarks/universe_oos.py --folds 2 --num-updates 20 --seeds 1   # smoke / timing
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from jaxport.checkpoint import atomic_write_text  # noqa: E402
from jaxport.data import load_market  # noqa: E402
from jaxport.data.split import walk_forward_bounds  # noqa: E402
from jaxport.env import EnvParams, PortfolioEnv  # noqa: E402
from jaxport.eval import evaluate_policy  # noqa: E402
from jaxport.eval.allocators import Allocator, evaluate_allocators  # noqa: E402
from jaxport.features import market_stat_features  # noqa: E402
from jaxport.features.stat import warmup_days  # noqa: E402
from jaxport.pipeline.basket_stage import env_kwargs  # noqa: E402
from jaxport.pipeline.config import RLConfig  # noqa: E402
from jaxport.pipeline.trainer_configs import gradient_config  # noqa: E402
from jaxport.rl.gradient import make_policy_apply, make_train  # noqa: E402
from jaxport.rl.universe import (  # noqa: E402
    UniverseConfig,
    apply_policy,
    make_network,
    make_universe_policy,
    member_policies,
    stack_env_params,
    train_universe,
)

OUT = REPO_ROOT / "benchmarks" / "results" / "universe_oos.json"
TEST_ROWS = 252  # one trading year per test block
EMBARGO = 8  # rows between train/validation and validation/test
FEATURE_CLIP = 5.0
GRID = (
    ("rebalance_rate", (1.0, 0.25)),
    ("turnover_penalty", (0.0, 0.002)),
    ("feature_noise", (0.0, 0.3)),
    ("weight_decay", (1e-4, 1e-2)),
)
EW = Allocator("equal_weight", rebalance_every=1)


# ------------------------------------------------------------------------------------------ data
def fold_pairs(market, raw, bounds, w0, kw, episode_length):
    """Per pair ``{name, train, val, test}`` EnvParams of one fold (train-row standardisation)."""
    train_end = bounds.train_end
    rows = raw[w0:train_end]  # [R, S, F]: train rows only, pooled over symbols
    mu = rows.mean(axis=(0, 1))
    sd = rows.std(axis=(0, 1))
    sd = np.where(sd > 1e-8, sd, 1.0)
    feats = np.clip((raw - mu) / sd, -FEATURE_CLIP, FEATURE_CLIP).astype(np.float32)
    feats[:w0] = 0.0
    close = np.asarray(market.close, np.float32)
    opens = np.asarray(market.open, np.float32)
    episode = int(min(episode_length, train_end - 1 - w0))
    out = []
    for i, j in itertools.combinations(range(market.num_symbols), 2):
        idx = [i, j]
        p, o, f = close[:, idx], opens[:, idx], feats[:, idx]

        def part(end, **extra):
            return EnvParams.from_arrays(
                p[:end], f[:end], open_prices=o[:end], start_min=w0, **extra, **kw
            )

        out.append(
            dict(
                name=f"{market.symbols[i]}-{market.symbols[j]}",
                train=part(train_end, episode_length=episode),
                val=part(bounds.val_end, eval_start=bounds.val_start - 1, episode_length=None),
                test=part(bounds.test_end, eval_start=bounds.test_start - 1, episode_length=None),
            )
        )
    return out, episode


def describe(market, b):
    d = market.dates
    return dict(
        fold=b.fold,
        train=[str(d[0]), str(d[b.train_end - 1]), int(b.train_end)],
        val=[str(d[b.val_start]), str(d[b.val_end - 1]), int(b.val_end - b.val_start)],
        test=[str(d[b.test_start]), str(d[b.test_end - 1]), int(b.test_end - b.test_start)],
    )


# ------------------------------------------------------------------------------------------ eval
def numbers(m):
    return dict(
        sharpe=float(m["sharpe"]),
        total_return=float(m["total_return"]),
        turnover=float(m["turnover_mean"]),
        leverage=float(m["mean_leverage"]),
    )


def ew_numbers(env, pairs):
    out = []
    for pr in pairs:
        row = {}
        for part in ("val", "test"):
            m = evaluate_allocators(env, pr[part], [EW])["metrics"]["equal_weight"]
            row[part] = dict(sharpe=float(m["sharpe"]), total_return=float(m["total_return"]))
        out.append(row)
    return out


def eval_rows(env, pairs, ew, act, **kw):
    """``[pair]`` rows ``{val, test}`` of numbers plus ``gap`` (Sharpe minus 1/N's)."""
    rows = []
    for pr, e in zip(pairs, ew):
        row = {}
        for part in ("val", "test"):
            n = numbers(evaluate_policy(env, pr[part], act, **kw)["metrics"])
            n["gap"] = n["sharpe"] - e[part]["sharpe"]
            row[part] = n
        rows.append(row)
    return rows


def make_ensemble_act(ucfg, env):
    """``act((params [K, ...], rates [K], weights [K]), key, obs)``: weighted mean of the members'
    executed exposures."""
    network = make_network(ucfg, env)
    cap = float(ucfg.leverage_cap)

    def act(pp, key, obs):
        del key
        params, rates, weights = pp
        acts = jax.vmap(lambda p, r: apply_policy(network, p, obs, r, cap))(params, rates)
        return jnp.tensordot(weights, acts, axes=1)

    return act


# ------------------------------------------------------------------------------------------ study
def run_fold(market, raw, bounds, args, ucfg, log):
    w0 = warmup_days()
    kw = env_kwargs(RLConfig())
    pairs, episode = fold_pairs(market, raw, bounds, w0, kw, ucfg.episode_length)
    env = PortfolioEnv(2, raw.shape[-1])
    ew = ew_numbers(env, pairs)
    fold = dict(split=describe(market, bounds), pairs=[p["name"] for p in pairs], equal_weight=ew)

    # ---- universe population: one program over every pair basket
    tr = stack_env_params([p["train"] for p in pairs])
    va = stack_env_params([p["val"] for p in pairs])
    t0 = time.perf_counter()
    res = train_universe(ucfg, env, tr, va, jax.random.PRNGKey(1000 + bounds.fold))
    jax.block_until_ready(res["params"])
    train_s = time.perf_counter() - t0
    num_members = len(res["members"])
    steps = num_members * len(pairs) * ucfg.num_envs * ucfg.bptt_length * ucfg.num_updates
    log(
        f"fold {bounds.fold}: universe train {train_s:.0f}s ({num_members} members, "
        f"{steps / train_s:,.0f} env-steps/s incl. compile)"
    )
    final_params = res["final_params"]
    val_obj = res["val_curve"]["objective"].mean(-1)  # [M, evals + 1], mean over baskets
    metrics = res["metrics"]
    t0 = time.perf_counter()
    members = []
    for m, pol in enumerate(member_policies(res, ucfg, env)):
        info = res["members"][m]
        rate = info["hyperparams"]["rebalance_rate"]
        fin = make_universe_policy(
            ucfg, env, jax.tree_util.tree_map(lambda x: x[m], final_params), rate
        )
        members.append(
            dict(
                hyperparams={k: info["hyperparams"][k] for k, _ in ucfg.grid},
                seed=info["seed"],
                best_update=info["best_update"],
                val_score=info["val_score"],
                final_val_score=float(val_obj[m, -1]),
                val_curve_mean_objective=[float(x) for x in val_obj[m]],
                train_objective_first10=float(np.mean(metrics["objective"][m, :10])),
                train_objective_last10=float(np.mean(metrics["objective"][m, -10:])),
                train_turnover_last10=float(np.mean(metrics["turnover"][m, -10:])),
                train_leverage_last10=float(np.mean(metrics["mean_leverage"][m, -10:])),
                per_pair=eval_rows(env, pairs, ew, pol),
                final_per_pair=eval_rows(env, pairs, ew, fin),
            )
        )
    eval_s = time.perf_counter() - t0
    log(
        f"fold {bounds.fold}: member evaluation {eval_s:.0f}s "
        f"(best_update per member: {[mm['best_update'] for mm in members]})"
    )
    best = int(res["best_member"])
    sel_rows = eval_rows(env, pairs, ew, res["policy"])
    best_final = int(np.argmax([mm["final_val_score"] for mm in members]))
    fold["universe"] = dict(
        train_wall_s_incl_compile=train_s,
        eval_wall_s=eval_s,
        env_steps=steps,
        members=members,
        best_member=best,
        selected=dict(member=best, hyperparams=members[best]["hyperparams"], per_pair=sel_rows),
        selected_final=dict(
            member=best_final,
            hyperparams=members[best_final]["hyperparams"],
            per_pair=members[best_final]["final_per_pair"],
        ),
    )

    # ---- validation-ranked ensembles: the top quarter of members by validation score, equal
    #      weights, mean executed exposure (of the best checkpoints, and of the final params)
    if not args.no_ensemble:
        for name, tree, score_key in (
            ("ensemble", res["params"], "val_score"),
            ("ensemble_final", final_params, "final_val_score"),
        ):
            scores = np.array([mm[score_key] for mm in members])
            k = max(1, num_members // 4)
            top = np.argsort(-scores)[:k]
            rates = jnp.asarray([res["members"][m]["hyperparams"]["rebalance_rate"] for m in top])
            params = jax.tree_util.tree_map(lambda x: x[jnp.asarray(top)], tree)
            pp = (params, rates, jnp.full((k,), 1.0 / k, jnp.float32))
            rows = eval_rows(env, pairs, ew, make_ensemble_act(ucfg, env), policy_params=pp)
            fold["universe"][name] = dict(
                rule=f"top {k} of {num_members} members by {score_key}, equal weights",
                members=[int(m) for m in top],
                per_pair=rows,
            )

    # ---- before: today's per-pair gradient policy (pipeline pair scope), vmapped over pairs
    if not args.no_gradient:
        gcfg = gradient_config(
            dataclasses.replace(RLConfig(), epochs=args.gradient_updates), episode
        )
        train = make_train(gcfg, env)
        keys = jax.random.split(jax.random.PRNGKey(2000 + bounds.fold), len(pairs))
        t0 = time.perf_counter()
        gout = jax.block_until_ready(jax.jit(jax.vmap(train))(keys, tr))
        gtrain_s = time.perf_counter() - t0
        gsteps = len(pairs) * gcfg.num_envs * gcfg.bptt_length * gcfg.num_updates
        apply = make_policy_apply(gcfg, env)
        grows = []
        for k, (pr, e) in enumerate(zip(pairs, ew)):
            pk = jax.tree_util.tree_map(lambda x: x[k], gout["params"])
            grows += eval_rows(env, [pr], [e], apply, policy_params=pk)
        log(f"fold {bounds.fold}: gradient per pair train {gtrain_s:.0f}s")
        fold["gradient_per_pair"] = dict(
            config=gcfg.to_dict(),
            train_wall_s_incl_compile=gtrain_s,
            env_steps=gsteps,
            per_pair=grows,
        )
    return fold


# ------------------------------------------------------------------------------------------ summary
def _gaps(rows, part="test"):
    return np.array([r[part]["gap"] for r in rows])


def _stat(gaps_by_fold, turn=None):
    """median / share >= 0 over pair x fold, plus the per-fold medians."""
    allg = np.concatenate(gaps_by_fold)
    out = dict(
        median_test_gap=float(np.median(allg)),
        share_gap_ge_0=float(np.mean(allg >= 0)),
        fold_medians=[float(np.median(g)) for g in gaps_by_fold],
    )
    if turn is not None:
        out["mean_test_turnover"] = float(np.mean(turn))
    return out


def summarise(folds, grid):
    """Per-combination table, paired regulariser effects and the policies' pooled numbers, for
    the members' best checkpoints (``best``) and their final params (``final``)."""
    out = {}
    for which, pp in (("best", "per_pair"), ("final", "final_per_pair")):
        out[which] = _summarise_members(folds, grid, pp)
    out["policies"] = _summarise_policies(folds)
    return out


def _summarise_members(folds, grid, pp):
    names = [k for k, _ in grid]
    combos = list(itertools.product(*[vs for _, vs in grid]))
    key = lambda hp: tuple(hp[k] for k in names)  # noqa: E731
    # gap[c][fold] -> [seeds, pairs]
    per_combo = []
    for c in combos:
        gaps_f, vgaps_f, turn, lev, ret = [], [], [], [], []
        for f in folds:
            ms = [m for m in f["universe"]["members"] if key(m["hyperparams"]) == c]
            g = np.array([_gaps(m[pp]) for m in ms])  # [seeds, pairs]
            gaps_f.append(g.mean(0))  # pooled over seeds (mean gap per pair)
            vgaps_f.append(np.array([_gaps(m[pp], "val") for m in ms]).mean(0))
            turn += [r["test"]["turnover"] for m in ms for r in m[pp]]
            lev += [r["test"]["leverage"] for m in ms for r in m[pp]]
            ret += [r["test"]["total_return"] for m in ms for r in m[pp]]
        row = dict(zip(names, c))
        row.update(_stat(gaps_f, turn))
        row.update(
            median_val_gap=float(np.median(np.concatenate(vgaps_f))),
            mean_test_leverage=float(np.mean(lev)),
            median_test_total_return=float(np.median(ret)),
        )
        per_combo.append(row)

    # paired effect of each regulariser: gap(value b) - gap(value a) with everything else equal
    # (other fields, seed, pair, fold); median over all, and per fold (the noise across folds)
    effects = {}
    for fi, (name, values) in enumerate(grid):
        a, b = values[0], values[-1]
        diffs_f = []
        for f in folds:
            idx = {(key(m["hyperparams"]), m["seed"]): m for m in f["universe"]["members"]}
            d = []
            for (c, s), m in idx.items():
                if c[fi] != a:
                    continue
                cb = c[:fi] + (b,) + c[fi + 1 :]
                d.append(_gaps(idx[(cb, s)][pp]) - _gaps(m[pp]))
            diffs_f.append(np.concatenate(d))
        allv = np.concatenate(diffs_f)
        fm = [float(np.median(x)) for x in diffs_f]
        effects[name] = dict(
            compare=f"{b} minus {a}",
            median_paired_test_gap_diff=float(np.median(allv)),
            mean_paired_test_gap_diff=float(np.mean(allv)),
            share_b_better=float(np.mean(allv > 0)),
            fold_medians=fm,
            fold_sd=float(np.std(fm, ddof=1)) if len(fm) > 1 else None,
        )
    every = _stat([np.concatenate([_gaps(m[pp]) for m in f["universe"]["members"]]) for f in folds])
    return dict(per_combo=per_combo, regulariser_effects=effects, all_members=every)


def _summarise_policies(folds):

    def pooled(getter):
        rows_f = [getter(f) for f in folds]
        out = _stat([_gaps(r) for r in rows_f], [x["test"]["turnover"] for r in rows_f for x in r])
        out["median_val_gap"] = float(np.median(np.concatenate([_gaps(r, "val") for r in rows_f])))
        out["pairs_losing_10pct_while_ew_gains"] = [
            f"fold{f['split']['fold']}:{f['pairs'][i]}"
            for f, rows in zip(folds, rows_f)
            for i, r in enumerate(rows)
            if r["test"]["total_return"] < -0.10
            and f["equal_weight"][i]["test"]["total_return"] > 0
        ]
        return out

    policies = {}
    for name in ("selected", "selected_final"):
        policies[name] = pooled(lambda f: f["universe"][name]["per_pair"])
        policies[name]["per_fold_choice"] = [f["universe"][name]["hyperparams"] for f in folds]
    for name in ("ensemble", "ensemble_final"):
        if all(name in f["universe"] for f in folds):
            policies[name] = pooled(lambda f: f["universe"][name]["per_pair"])
    if all("gradient_per_pair" in f for f in folds):
        policies["gradient_per_pair_before"] = pooled(lambda f: f["gradient_per_pair"]["per_pair"])
    return policies


def print_summary(summary, grid):
    for which in ("best", "final"):
        print(f"\n=== members' {which} checkpoint: test Sharpe gap to 1/N, seeds pooled ===")
        _print_members(summary[which], grid)
    print("\npolicies (test gap to 1/N over pair x fold):")
    for n, p in summary["policies"].items():
        extra = f" turn {p['mean_test_turnover']:.3f}" if "mean_test_turnover" in p else ""
        print(
            f"  {n:<26} median {p['median_test_gap']:+.3f} share>=0 {p['share_gap_ge_0']:.2f} "
            f"fold medians " + "/".join(f"{x:+.3f}" for x in p["fold_medians"]) + extra
        )


def _print_members(s, grid):
    names = [k for k, _ in grid]
    short = dict(
        rebalance_rate="rate", turnover_penalty="to_pen", feature_noise="noise", weight_decay="wd"
    )
    head = [short.get(n, n) for n in names] + [
        "med_gap",
        "share>=0",
        "fold_meds",
        "turn",
        "med_vgap",
    ]
    print("  ".join(f"{h:>8}" for h in head))
    for r in sorted(s["per_combo"], key=lambda r: -r["median_test_gap"]):
        cells = [f"{r[n]:>8g}" for n in names]
        cells += [
            f"{r['median_test_gap']:>8.3f}",
            f"{r['share_gap_ge_0']:>8.2f}",
            "/".join(f"{x:+.2f}" for x in r["fold_medians"]),
            f"{r['mean_test_turnover']:>8.3f}",
            f"{r['median_val_gap']:>8.3f}",
        ]
        print("  ".join(cells))
    print("\nregulariser effects (paired test-gap difference):")
    for n, e in s["regulariser_effects"].items():
        print(
            f"  {n:<17} {e['compare']:<18} median {e['median_paired_test_gap_diff']:+.3f} "
            f"mean {e['mean_paired_test_gap_diff']:+.3f} share_b_better "
            f"{e['share_b_better']:.2f} fold medians "
            + "/".join(f"{x:+.3f}" for x in e["fold_medians"])
        )
    a = s["all_members"]
    print(
        f"  all members pooled: median {a['median_test_gap']:+.3f} share>=0 "
        f"{a['share_gap_ge_0']:.2f}"
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folds", default="0,1,2", help="fold indices to run (of 3)")
    ap.add_argument("--num-updates", type=int, default=120)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--gradient-updates", type=int, default=60)
    ap.add_argument("--no-gradient", action="store_true")
    ap.add_argument("--no-ensemble", action="store_true")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    t_start = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t_start:6.0f}s] {msg}", flush=True)

    market = load_market(REPO_ROOT / "trainingdata")
    feats, names = market_stat_features(market)
    raw = np.asarray(feats, np.float64)
    all_bounds = walk_forward_bounds(market.num_days, 3, test_rows=TEST_ROWS, embargo=EMBARGO)
    wanted = [int(x) for x in args.folds.split(",") if x.strip()]
    ucfg = UniverseConfig(
        num_envs=16,
        bptt_length=32,
        episode_length=128,
        num_updates=args.num_updates,
        eval_every=args.eval_every,
        lr=3e-3,
        risk_penalty=0.1,
        num_seeds=args.seeds,
        grid=GRID,
    ).validate()
    result = dict(
        description=(
            "Walk-forward OOS study of jaxport.rl.universe.train_universe regularisers (#13 item "
            "5). Features: statistical (market_stat_features), a cheap proxy for the pipeline's "
            "forecast features, standardised per fold with train-row statistics. gap = policy "
            "test Sharpe - 1/N test Sharpe (annualised, same env)."
        ),
        command="python benchmarks/universe_oos.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        backend=jax.default_backend(),
        data=dict(
            symbols=list(market.symbols),
            features=list(names),
            rows=market.num_days,
            test_rows=TEST_ROWS,
            embargo=EMBARGO,
            warmup=warmup_days(),
        ),
        env=env_kwargs(RLConfig()),
        universe_config=ucfg.to_dict(),
        folds=[],
    )
    out = Path(args.out)
    for fi in wanted:
        result["folds"].append(run_fold(market, raw, all_bounds[fi], args, ucfg, log))
        result["summary"] = summarise(result["folds"], ucfg.grid)
        result["wall_s"] = time.perf_counter() - t_start
        atomic_write_text(out, json.dumps(result, separators=(",", ":")))
        log(f"fold {fi} done; wrote {out}")
    print_summary(result["summary"], ucfg.grid)
    log("done")


if __name__ == "__main__":
    main()
