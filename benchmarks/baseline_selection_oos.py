"""Which baseline should the baseline gate ship? Standard allocators only (no training), every pair
of the shipped symbols, yearly walk-forward folds (validation year, then test year), in the same env
with the pipeline's default costs (10 bps per unit traded, 6.75 %/yr financing beyond 1x).

For each selection rule: the test Sharpe gap to 1/N of what the rule picks on validation, over all
pair-folds. Usage: ``python benchmarks/baseline_selection_oos.py [K folds, default 6]``; prints the
table and writes ``benchmarks/results/baseline_selection_oos.json``. A few minutes on 2 cores.
"""

import itertools
import json
import sys
from pathlib import Path

import numpy as np

from jaxport.data import load_market
from jaxport.data.split import walk_forward_bounds
from jaxport.env import EnvParams, PortfolioEnv
from jaxport.eval.allocators import evaluate_allocators
from jaxport.eval.stats import returns_from_equity, sharpe_ratio
from jaxport.pipeline.basket_stage import validation_objective

SYMBOLS = ["AAPL", "AMZN", "GOOGL", "META", "MSFT", "NVDA", "TSLA"]
DIVERSIFIED = ["equal_weight", "inverse_volatility", "minimum_variance", "risk_parity"]
RISK_PENALTY = 0.1  # the pipeline's default --risk-penalty


def curves(env, close, opens, start, end):
    """Every default allocator's equity curve over rows [start, end) (flat name -> curve)."""
    T, n = close.shape
    params = EnvParams.from_arrays(
        close[:end], np.zeros((end, n, 1), np.float32), open_prices=opens[:end],
        eval_start=start - 1, episode_length=None, fee_rate=0.001, leverage_cap=2.0,
        annual_financing_rate=0.0675,
    )  # fmt: skip
    out = {}
    for name, c in evaluate_allocators(env, params)["curves"].items():
        if isinstance(c, dict):
            out.update({f"buy_and_hold:{s}": v for s, v in c.items()})
        else:
            out[name] = c
    return out


def scores(curve) -> dict:
    c = np.asarray(curve, np.float64)
    r = returns_from_equity(c)
    sharpe = sharpe_ratio(r) if np.std(r) > 0 else 0.0
    return {"objective": validation_objective(c, RISK_PENALTY), "sharpe": sharpe}


def main(k: int = 6) -> dict:
    market = load_market("trainingdata", SYMBOLS)
    folds = walk_forward_bounds(market.num_days, k, test_rows=252, embargo=8)
    env = PortfolioEnv(2, 1)
    rows = []
    for a, b in itertools.combinations(range(len(SYMBOLS)), 2):
        close, opens = market.close[:, [a, b]], market.open[:, [a, b]]
        for f in folds:
            val = curves(env, close, opens, f.val_start, f.val_end)
            test = curves(env, close, opens, f.test_start, f.test_end)
            rows.append({n: (scores(val[n]), scores(test[n])["sharpe"]) for n in val})
    rules = {
        "best of all baselines by objective": (None, "objective"),
        "best of all baselines by Sharpe": (None, "sharpe"),
        "best diversified by objective": (DIVERSIFIED, "objective"),
        "best diversified by Sharpe": (DIVERSIFIED, "sharpe"),
        **{f"always {n}": ([n], "objective") for n in DIVERSIFIED},
    }
    table = {}
    for label, (names, measure) in rules.items():
        gaps = []
        for row in rows:
            pick = max(names or list(row), key=lambda n: row[n][0][measure])
            gaps.append(row[pick][1] - row["equal_weight"][1])
        g = np.asarray(gaps)
        table[label] = {
            "median_gap": float(np.median(g)),
            "mean_gap": float(np.mean(g)),
            "share_below_minus_0.1": float(np.mean(g < -0.1)),
        }
    head = "selection rule (on the validation year)"
    print(f"{head:42s} {'median':>8s} {'mean':>8s} {'<-0.1':>6s}")
    for label, t in table.items():
        print(
            f"{label:42s} {t['median_gap']:+8.3f} {t['mean_gap']:+8.3f} "
            f"{t['share_below_minus_0.1']:6.2f}"
        )
    result = {"folds": k, "test_rows": 252, "pair_folds": len(rows), "rules": table}
    path = Path(__file__).parent / "results" / "baseline_selection_oos.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(path)
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6)
