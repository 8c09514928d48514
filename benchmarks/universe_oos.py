"""Out-of-sample check of the universe allocator on the shipped data (issue #13 item 2).

All 21 pairs of the 7 shipped symbols (trainingdata/), statistical features
(``jaxport.features.market_stat_features``) standardised with train-row statistics (pooled over the
symbols), chronological 70/15/15 split. ONE universe policy (population + checkpoint selection on
the validation rows of every pair) is trained on all pairs' train rows; today's per-pair gradient
policy (``GradientConfig()`` defaults, one policy per pair, vmapped over the pairs) is the
comparison. Every policy and the 1/N baseline (``equal_weight``, rebalanced daily) are evaluated on
each pair's validation and test rows with ``jaxport.eval.evaluate_policy`` in the same env.

Writes benchmarks/results/universe_oos.json. Usage: ``python benchmarks/universe_oos.py [--quick]``.
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
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from jaxport.checkpoint import atomic_write_text  # noqa: E402
from jaxport.data import load_market, split_bounds  # noqa: E402
from jaxport.env import EnvParams, PortfolioEnv  # noqa: E402
from jaxport.eval import evaluate_baselines, evaluate_policy  # noqa: E402
from jaxport.features.stat import market_stat_features, warmup_days  # noqa: E402
from jaxport.rl.gradient import GradientConfig, make_policy_apply, make_train  # noqa: E402
from jaxport.rl.universe import UniverseConfig, stack_env_params, train_universe  # noqa: E402

OUT = REPO_ROOT / "benchmarks" / "results" / "universe_oos.json"
ENV_KW = dict(leverage_cap=2.0)


def build_pairs():
    market = load_market(REPO_ROOT / "trainingdata")
    feats, names = market_stat_features(market)
    feats = np.asarray(feats, np.float64)
    bounds = split_bounds(market, (0.7, 0.15, 0.15))
    w0 = warmup_days()
    rows = feats[w0 : bounds.train_end]
    mu, sd = rows.mean(axis=(0, 1)), rows.std(axis=(0, 1)) + 1e-8
    feats = np.clip((feats - mu) / sd, -5, 5).astype(np.float32)
    close = market.close.astype(np.float32)
    pairs = list(itertools.combinations(range(market.num_symbols), 2))
    out = []
    for i, j in pairs:
        idx = [i, j]
        p, f = close[:, idx], feats[:, idx]
        tr = EnvParams.from_arrays(
            p[: bounds.train_end], f[: bounds.train_end], start_min=w0, **ENV_KW
        )
        va = EnvParams.from_arrays(
            p[: bounds.val_end],
            f[: bounds.val_end],
            eval_start=bounds.train_end,
            episode_length=None,
            **ENV_KW,
        )
        te = EnvParams.from_arrays(p, f, eval_start=bounds.val_end, episode_length=None, **ENV_KW)
        out.append(dict(name=f"{market.symbols[i]}-{market.symbols[j]}", train=tr, val=va, test=te))
    info = dict(
        symbols=list(market.symbols),
        features=list(names),
        rows=market.num_days,
        train_end=bounds.train_end,
        val_end=bounds.val_end,
    )
    return out, info


def summarise(env, pairs, act, **kw):
    res = []
    for pr in pairs:
        row = {"pair": pr["name"]}
        for part in ("val", "test"):
            m = evaluate_policy(env, pr[part], act, **kw)["metrics"]
            b = evaluate_baselines(env, pr[part])["metrics"]["equal_weight"]
            row[part] = dict(
                sharpe=m["sharpe"],
                ew_sharpe=b["sharpe"],
                gap=m["sharpe"] - b["sharpe"],
                turnover=m["turnover_mean"],
                leverage=m["mean_leverage"],
                total_return=m["total_return"],
                ew_total_return=b["total_return"],
            )
        res.append(row)
    return summarise_rows(res)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller budgets (smoke run)")
    args = ap.parse_args(argv)
    pairs, info = build_pairs()
    n_feat = pairs[0]["train"].features.shape[-1]
    result = {"data": info, "backend": jax.default_backend()}

    # ---- universe policy: one population over all 21 pairs
    ucfg = UniverseConfig(
        num_envs=8,
        bptt_length=32,
        episode_length=128,
        num_updates=60 if args.quick else 200,
        eval_every=20,
        lr=3e-3,
        weight_decay=1e-4,
        feature_noise=0.1,
        num_seeds=2,
        grid=(("turnover_penalty", (0.0, 1e-3)),),
        risk_penalty=1.0,
        select_risk_penalty=1.0,
    )
    uenv = PortfolioEnv(2, n_feat, long_only=True)
    tr = stack_env_params([p["train"] for p in pairs])
    va = stack_env_params([p["val"] for p in pairs])
    t0 = time.perf_counter()
    out = train_universe(ucfg, uenv, tr, va, jax.random.PRNGKey(0))
    wall = time.perf_counter() - t0
    members = len(out["members"])
    steps = members * len(pairs) * ucfg.num_envs * ucfg.bptt_length * ucfg.num_updates
    uni = summarise(uenv, pairs, out["policy"])
    uni.update(
        config=ucfg.to_dict(),
        wall_s_incl_compile=wall,
        env_steps=steps,
        env_steps_per_s=steps / wall,
        members=out["members"],
        best_member=out["best_member"],
    )
    result["universe"] = uni

    # ---- today's per-pair gradient policy (defaults), vmapped over the 21 pairs
    gcfg = GradientConfig()
    if args.quick:
        gcfg = dataclasses.replace(gcfg, num_updates=100)
    genv = PortfolioEnv(2, n_feat)
    gtr = stack_env_params([p["train"] for p in pairs])
    train = make_train(gcfg, genv, pairs[0]["train"])
    t0 = time.perf_counter()
    gout = jax.block_until_ready(
        jax.jit(jax.vmap(train))(jax.random.split(jax.random.PRNGKey(0), len(pairs)), gtr)
    )
    gwall = time.perf_counter() - t0
    apply = make_policy_apply(gcfg, genv)
    gsteps = len(pairs) * gcfg.num_envs * gcfg.bptt_length * gcfg.num_updates
    grows = []
    for k, pr in enumerate(pairs):
        params_k = jax.tree_util.tree_map(lambda x: x[k], gout["params"])
        grows.append(summarise(genv, [pr], apply, policy_params=params_k)["per_pair"][0])
    gres = summarise_rows(grows)
    gres.update(
        config=gcfg.to_dict(),
        wall_s_incl_compile=gwall,
        env_steps=gsteps,
        env_steps_per_s=gsteps / gwall,
    )
    result["gradient_per_pair"] = gres
    atomic_write_text(OUT, json.dumps(result, indent=2))
    for name in ("universe", "gradient_per_pair"):
        a = result[name]["aggregate"]
        print(
            name,
            json.dumps(a),
            f"wall={result[name]['wall_s_incl_compile']:.0f}s",
            f"steps/s={result[name]['env_steps_per_s']:.0f}",
        )


def summarise_rows(res):
    gaps = np.array([r["test"]["gap"] for r in res])
    loses = [
        r["pair"]
        for r in res
        if r["test"]["total_return"] < -0.10 and r["test"]["ew_total_return"] > 0
    ]
    return dict(
        aggregate=dict(
            median_test_gap=float(np.median(gaps)),
            median_val_gap=float(np.median([r["val"]["gap"] for r in res])),
            pairs_beating_ew=int(np.sum(gaps > 0)),
            mean_test_turnover=float(np.mean([r["test"]["turnover"] for r in res])),
            mean_test_leverage=float(np.mean([r["test"]["leverage"] for r in res])),
            pairs_losing_10pct_while_ew_gains=loses,
        ),
        per_pair=res,
    )


if __name__ == "__main__":
    main()
