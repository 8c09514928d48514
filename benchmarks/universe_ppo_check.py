"""Quick check of PPO for the universe allocator (``jaxport.rl.universe_ppo``) on the shipped data
(issue #13 item 4): does PPO really update (approx-KL, clip fraction, action std over training),
and how does the selected policy trade and compare with 1/N on held-out rows?

Data: all 21 pairs of the 7 shipped symbols (trainingdata/), ONE chronological split = the last
walk-forward fold of ``benchmarks/universe_oos.py`` (test = the last 252 rows, validation = the
252 rows before, embargo 8 rows, train = every row before). Features: the statistical set
(``market_stat_features``, causal), standardised with the train rows' mean/std pooled over the
symbols, clipped to +-5 (as in universe_oos). Env: the pipeline's defaults (fee 10 bps, cap 2,
financing 6.75 %/yr, open prices). ONE ``train_universe_ppo`` call over the 21 pair baskets (the
population: ``--grid`` x ``--seeds``), checkpoint selection on validation; the selected policy
and 1/N (daily rebalanced) are evaluated on every pair's validation and test rows.

Writes benchmarks/results/universe_ppo_check.json (atomically). Usage::

    python benchmarks/universe_ppo_check.py                       # default quick budget
    python benchmarks/universe_ppo_check.py --num-updates 20 --seeds 1   # smoke
"""

from __future__ import annotations

import argparse
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
from jaxport.data import load_market  # noqa: E402
from jaxport.data.split import walk_forward_bounds  # noqa: E402
from jaxport.env import EnvParams, PortfolioEnv  # noqa: E402
from jaxport.eval import evaluate_policy  # noqa: E402
from jaxport.eval.allocators import Allocator, evaluate_allocators  # noqa: E402
from jaxport.features import market_stat_features  # noqa: E402
from jaxport.features.stat import warmup_days  # noqa: E402
from jaxport.pipeline.basket_stage import env_kwargs  # noqa: E402
from jaxport.pipeline.config import RLConfig  # noqa: E402
from jaxport.rl.universe import make_universe_policy, stack_env_params  # noqa: E402
from jaxport.rl.universe_ppo import UniversePPOConfig, train_universe_ppo  # noqa: E402

OUT = REPO_ROOT / "benchmarks" / "results" / "universe_ppo_check.json"
TEST_ROWS, EMBARGO, FEATURE_CLIP = 252, 8, 5.0
EW = Allocator("equal_weight", rebalance_every=1)


def pair_params(market, raw, bounds, w0, kw, episode_length):
    """Per pair ``{name, train, val, test}`` EnvParams (train-row feature standardisation)."""
    rows = raw[w0 : bounds.train_end]
    mu, sd = rows.mean(axis=(0, 1)), rows.std(axis=(0, 1))
    feats = np.clip((raw - mu) / np.where(sd > 1e-8, sd, 1.0), -FEATURE_CLIP, FEATURE_CLIP)
    feats = feats.astype(np.float32)
    feats[:w0] = 0.0
    close = np.asarray(market.close, np.float32)
    opens = np.asarray(market.open, np.float32)
    episode = int(min(episode_length, bounds.train_end - 1 - w0))
    out = []
    for i, j in itertools.combinations(range(market.num_symbols), 2):
        p, o, f = close[:, [i, j]], opens[:, [i, j]], feats[:, [i, j]]

        def part(end, **extra):
            return EnvParams.from_arrays(
                p[:end], f[:end], open_prices=o[:end], start_min=w0, **extra, **kw
            )

        out.append(
            dict(
                name=f"{market.symbols[i]}-{market.symbols[j]}",
                train=part(bounds.train_end, episode_length=episode),
                val=part(bounds.val_end, eval_start=bounds.val_start - 1, episode_length=None),
                test=part(bounds.test_end, eval_start=bounds.test_start - 1, episode_length=None),
            )
        )
    return out


def summary_curve(x):
    """``[M, U]`` -> per member mean over the first 10 %, the middle and the last 10 %."""
    u = x.shape[1]
    k = max(1, u // 10)
    return dict(
        first=[float(v) for v in x[:, :k].mean(1)],
        middle=[float(v) for v in x[:, u // 2 - k // 2 : u // 2 - k // 2 + k].mean(1)],
        last=[float(v) for v in x[:, -k:].mean(1)],
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--num-updates", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--num-envs", type=int, default=16)
    ap.add_argument("--num-steps", type=int, default=32)
    ap.add_argument("--risk-penalty", type=float, default=0.1)
    ap.add_argument("--turnover-penalty", type=float, default=0.0)
    ap.add_argument(
        "--grid", default="gamma=0.0,0.9", help="FIELD=v1,v2[;FIELD=...] over traced fields"
    )
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    grid = tuple(
        (k.strip(), tuple(float(v) for v in vs.split(",")))
        for k, vs in (g.split("=") for g in args.grid.split(";") if g.strip())
    )
    market = load_market(REPO_ROOT / "trainingdata")
    feats, names = market_stat_features(market)
    raw = np.asarray(feats, np.float64)
    bounds = walk_forward_bounds(market.num_days, 3, test_rows=TEST_ROWS, embargo=EMBARGO)[-1]
    cfg = UniversePPOConfig(
        num_envs=args.num_envs,
        num_steps=args.num_steps,
        episode_length=128,
        num_updates=args.num_updates,
        eval_every=args.eval_every,
        risk_penalty=args.risk_penalty,
        turnover_penalty=args.turnover_penalty,
        num_seeds=args.seeds,
        grid=grid,
    ).validate()
    kw = env_kwargs(RLConfig())
    pairs = pair_params(market, raw, bounds, warmup_days(), kw, cfg.episode_length)
    env = PortfolioEnv(2, raw.shape[-1])
    tr = stack_env_params([p["train"] for p in pairs])
    va = stack_env_params([p["val"] for p in pairs])

    t0 = time.perf_counter()
    res = train_universe_ppo(cfg, env, tr, va, jax.random.PRNGKey(0))
    train_s = time.perf_counter() - t0
    num_members = len(res["members"])
    steps = num_members * len(pairs) * cfg.num_envs * cfg.num_steps * cfg.num_updates

    m = res["metrics"]
    rows = []
    for pr in pairs:
        row = dict(pair=pr["name"])
        for part in ("val", "test"):
            pol = evaluate_policy(env, pr[part], res["policy"])["metrics"]
            ew = evaluate_allocators(env, pr[part], [EW])["metrics"]["equal_weight"]
            row[part] = dict(
                sharpe=float(pol["sharpe"]),
                ew_sharpe=float(ew["sharpe"]),
                gap=float(pol["sharpe"] - ew["sharpe"]),
                turnover=float(pol["turnover_mean"]),
                leverage=float(pol["mean_leverage"]),
                total_return=float(pol["total_return"]),
                ew_total_return=float(ew["total_return"]),
            )
        rows.append(row)
    test_gaps = np.array([r["test"]["gap"] for r in rows])
    # what PPO learned, whatever the selection: every member's params after the last update
    final = []
    for mi in range(num_members):
        pol = make_universe_policy(
            res["universe_config"],
            env,
            jax.tree_util.tree_map(lambda x: x[mi], res["final_params"]),  # noqa: B023
            res["members"][mi]["hyperparams"]["rebalance_rate"],
        )
        gaps, turns = [], []
        for pr in pairs:
            pm = evaluate_policy(env, pr["test"], pol)["metrics"]
            ew = evaluate_allocators(env, pr["test"], [EW])["metrics"]["equal_weight"]
            gaps.append(float(pm["sharpe"] - ew["sharpe"]))
            turns.append(float(pm["turnover_mean"]))
        final.append(
            dict(
                member=mi,
                median_test_gap=float(np.median(gaps)),
                share_test_gap_ge_0=float(np.mean(np.array(gaps) >= 0)),
                mean_test_turnover=float(np.mean(turns)),
            )
        )
    best = res["best_member"]
    result = dict(
        description=(
            "jaxport.rl.universe_ppo.train_universe_ppo on the shipped data (21 pairs, stat "
            "features, last walk-forward fold as one split). gap = policy Sharpe - 1/N Sharpe "
            "(annualised, same env). Training metrics per member: mean over the first 10 %, the "
            "middle 10 % and the last 10 % of updates."
        ),
        command="python benchmarks/universe_ppo_check.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        backend=jax.default_backend(),
        split=dict(
            train_end=int(bounds.train_end),
            val=[int(bounds.val_start), int(bounds.val_end)],
            test=[int(bounds.test_start), int(bounds.test_end)],
            dates_test=[
                str(market.dates[bounds.test_start]),
                str(market.dates[bounds.test_end - 1]),
            ],
        ),
        features=list(names),
        config=cfg.to_dict(),
        train_wall_s_incl_compile=train_s,
        env_steps=steps,
        env_steps_per_s_incl_compile=steps / train_s,
        members=[
            dict(
                hyperparams={k: mm["hyperparams"][k] for k, _ in cfg.grid},
                seed=mm["seed"],
                best_update=mm["best_update"],
                val_score=mm["val_score"],
            )
            for mm in res["members"]
        ],
        best_member=best,
        val_curve_mean_objective=[
            [float(v) for v in row] for row in res["val_curve"]["objective"].mean(-1)
        ],
        eval_updates=res["eval_updates"],
        final_params_test=final,
        training={
            k: summary_curve(m[k])
            for k in (
                "approx_kl",
                "clip_fraction",
                "action_std_scores",
                "action_std_gross",
                "entropy",
                "turnover",
                "mean_leverage",
                "objective",
                "explained_variance",
            )
        },
        selected=dict(
            median_test_gap=float(np.median(test_gaps)),
            share_test_gap_ge_0=float(np.mean(test_gaps >= 0)),
            median_val_gap=float(np.median([r["val"]["gap"] for r in rows])),
            mean_test_turnover=float(np.mean([r["test"]["turnover"] for r in rows])),
            mean_test_leverage=float(np.mean([r["test"]["leverage"] for r in rows])),
            pairs_losing_10pct_while_ew_gains=[
                r["pair"]
                for r in rows
                if r["test"]["total_return"] < -0.10 and r["test"]["ew_total_return"] > 0
            ],
            per_pair=rows,
        ),
        wall_s=time.perf_counter() - t_start,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=1))
    s = result["selected"]
    tk = result["training"]
    print(
        f"train {train_s:.0f}s incl. compile ({steps:,} env steps, {steps / train_s:,.0f}/s); "
        f"best member {best} {result['members'][best]}"
    )
    for k in ("approx_kl", "clip_fraction", "action_std_scores", "action_std_gross", "turnover"):
        print(f"  {k:<18} first {tk[k]['first']}  last {tk[k]['last']}")
    for f in final:
        print(f"  final params of member {f['member']}: {f}")
    print(
        f"selected: median test gap {s['median_test_gap']:+.3f} (share >= 0 "
        f"{s['share_test_gap_ge_0']:.2f}), median val gap {s['median_val_gap']:+.3f}, test "
        f"turnover {s['mean_test_turnover']:.4f}/day, leverage {s['mean_test_leverage']:.2f}; "
        f"wrote {out}"
    )


if __name__ == "__main__":
    main()
