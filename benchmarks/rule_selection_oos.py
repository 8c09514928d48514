"""Which rule should anchor the learned policy and be the gate's fallback? Chosen WITHOUT test rows.

Standard and literature allocators only (no training), every pair of a universe, one continuous
episode per pair in the pipeline's env and costs (10 bps per unit traded, 6.75 %/yr financing
beyond 1x, cap 2x). Its daily returns are cut into yearly blocks (252 days). Walk-forward: for each
of the last K blocks (the test years), the rule is chosen on every block BEFORE it (expanding
history: the long horizons where risk reduction shows), by the pooled mean Sharpe gap to 1/N over
all pairs; then only that rule's test year is reported. Every rule's own test gap is reported too,
so the failures stand next to the choice.

Pooled gaps come with a 95 % CI from a stationary block bootstrap that resamples DATES jointly
across pairs (pairs share the market's moves). Usage::

    python benchmarks/rule_selection_oos.py --data trainingdata --folds 5 --label shipped
    python benchmarks/rule_selection_oos.py --panel trainingdata/sp500/prices.csv.gz --folds 10 \
        --label sp500

Prints the table and writes ``benchmarks/results/rule_selection_oos-<label>.json``.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import pandas as pd

from common import RESULTS_DIR, format_rows, machine_info, write_results  # noqa: F401
from jaxport.env import EnvParams, PortfolioEnv
from jaxport.eval.allocators import Allocator, run_allocators
from jaxport.eval.stats import pooled_sharpe_gap_bootstrap, returns_from_equity

BLOCK = 252  # trading days per block (one year)
WARMUP = 252  # days before the first step (the long volatility window)
EST = dict(rebalance_every=21)
RULES = {
    "equal_weight": Allocator("equal_weight", rebalance_every=1),
    "inverse_volatility": Allocator("inverse_volatility", **EST),
    "volatility_timing": Allocator("volatility_timing", eta=1.0, **EST),
    "volatility_timing_eta2": Allocator("volatility_timing", eta=2.0, name="vt_eta2", **EST),
    "vol_managed_equal_weight": Allocator("vol_managed_equal_weight", **EST),
    "equal_minimum_variance": Allocator("equal_minimum_variance", **EST),
    "minimum_variance": Allocator("minimum_variance", **EST),
    "risk_parity": Allocator("risk_parity", **EST),
}


def load_close(args) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``(close [T, S], symbols, dates)`` from a folder of OHLCV CSVs or a dates x symbols panel."""
    if args.panel:
        df = pd.read_csv(args.panel, index_col=0, parse_dates=True).dropna()
        return df.to_numpy(np.float64), list(df.columns), df.index.to_numpy()
    from jaxport.data import load_market

    market = load_market(args.data, args.symbols.split(",") if args.symbols else None)
    return np.asarray(market.close, np.float64), list(market.symbols), np.asarray(market.dates)


def pair_returns(close: np.ndarray) -> dict[str, np.ndarray]:
    """Daily returns ``[T - 1 - WARMUP]`` of every rule on one basket's continuous episode."""
    t, n = close.shape
    params = EnvParams.from_arrays(
        close.astype(np.float32), np.zeros((t, n, 1), np.float32), eval_start=WARMUP,
        episode_length=None, fee_rate=0.001, leverage_cap=2.0, annual_financing_rate=0.0675,
    )  # fmt: skip
    reports = run_allocators(PortfolioEnv(n, 1), params, tuple(RULES.values()))
    return {name: returns_from_equity(rep["equity_curve"]) for name, rep in zip(RULES, reports)}


def sharpe(r: np.ndarray) -> np.ndarray:
    sd = r.std(axis=-1, ddof=1)
    return np.where(sd > 1e-12, r.mean(axis=-1) / np.where(sd > 1e-12, sd, 1.0), 0.0) * np.sqrt(252)


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="trainingdata")
    ap.add_argument("--panel", default=None, help="dates x symbols CSV (.gz ok) instead of --data")
    ap.add_argument("--symbols", default=None)
    ap.add_argument("--folds", type=int, default=5, help="test years at the end (K)")
    ap.add_argument("--label", default="shipped")
    ap.add_argument("--n-boot", type=int, default=2000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    close, symbols, dates = load_close(args)
    pairs = list(itertools.combinations(range(len(symbols)), 2))
    rets = {n: [] for n in RULES}
    for a, b in pairs:
        for name, r in pair_returns(close[:, [a, b]]).items():
            rets[name].append(r)
    rets = {n: np.stack(v) for n, v in rets.items()}  # [P, D]
    days = rets["equal_weight"].shape[1]
    num_blocks = days // BLOCK
    first = days - num_blocks * BLOCK  # drop the oldest partial block
    blocks = [slice(first + i * BLOCK, first + (i + 1) * BLOCK) for i in range(num_blocks)]
    if args.folds >= num_blocks:
        raise SystemExit(f"error: --folds {args.folds}: only {num_blocks} yearly blocks")
    # gap[rule][pair, block]: annualised Sharpe minus 1/N's, within each block
    gap = {n: np.stack([sharpe(r[:, s]) - sharpe(rets["equal_weight"][:, s]) for s in blocks], 1)
           for n, r in rets.items()}  # fmt: skip
    # history score: pooled Sharpe gap over ALL days before the test block (long horizon)
    test_ids = list(range(num_blocks - args.folds, num_blocks))
    folds, chosen_rets = [], []
    for k in test_ids:
        hist = slice(first, blocks[k].start)
        score = {
            n: float(np.mean(sharpe(r[:, hist]) - sharpe(rets["equal_weight"][:, hist])))
            for n, r in rets.items()
        }
        pick = max(score, key=score.get)
        folds.append({
            "test_first": str(dates[WARMUP + 1 + blocks[k].start])[:10],
            "test_last": str(dates[WARMUP + blocks[k].stop])[:10],
            "history_scores": score, "chosen": pick,
            "chosen_test_gap": float(np.mean(gap[pick][:, k])),
            "rule_test_gaps": {n: float(np.mean(g[:, k])) for n, g in gap.items()},
        })  # fmt: skip
        chosen_rets.append(rets[pick][:, blocks[k]])
    test = np.concatenate([np.arange(blocks[k].start, blocks[k].stop) for k in test_ids])
    sizes = [BLOCK] * len(test_ids)
    boot = dict(fold_sizes=sizes, n_boot=args.n_boot)
    ew = rets["equal_weight"][:, test]
    pooled = {n: pooled_sharpe_gap_bootstrap(r[:, test], ew, **boot) for n, r in rets.items()}
    chosen = pooled_sharpe_gap_bootstrap(np.concatenate(chosen_rets, 1), ew, **boot)
    chosen_gaps = np.stack([gap[f["chosen"]][:, k] for f, k in zip(folds, test_ids)], 1)
    wins = {n: float(np.mean(g[:, test_ids] > 0)) for n, g in gap.items()}
    wins["chosen on history"] = float(np.mean(chosen_gaps > 0))
    rows = [
        {"rule": n, "gap": p["mean"], "lo": p["ci95"][0], "hi": p["ci95"][1], "win": wins[n]}
        for n, p in {**pooled, "chosen on history": chosen}.items()
    ]
    print(f"{args.label}: {len(symbols)} symbols, {len(pairs)} pairs, test years "
          f"{folds[0]['test_first']}..{folds[-1]['test_last']} ({len(test_ids)} folds)")  # fmt: skip
    print(format_rows(rows, [("rule", "rule", "{}"), ("gap", "pooled gap", "{:+.3f}"),
                             ("lo", "ci lo", "{:+.3f}"), ("hi", "ci hi", "{:+.3f}"),
                             ("win", "pair-years > 1/N", "{:.0%}")]))  # fmt: skip
    print("chosen per fold:", [f["chosen"] for f in folds])
    payload = {
        "label": args.label,
        "protocol": "rule chosen per test year by the pooled Sharpe gap to 1/N over every earlier "
        "day (no test row); gaps pooled over pairs on the stitched test years; CI: stationary "
        "block bootstrap of dates, joint across pairs, within years",
        "symbols": symbols,
        "num_pairs": len(pairs),
        "folds": folds,
        "pooled_test_gap": pooled,
        "chosen_pooled_test_gap": chosen,
        "wall_s": time.perf_counter() - t0,
        "machine": machine_info(),
    }
    write_results(f"rule_selection_oos-{args.label}", payload)
    return payload


if __name__ == "__main__":
    main()
