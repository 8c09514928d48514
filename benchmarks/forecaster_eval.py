"""Train the forecaster on the real symbols; compare it with volatility baselines on the test split.

Usage (from the repository root)::

    python benchmarks/forecaster_eval.py                         # quick profile
    python benchmarks/forecaster_eval.py --profile quick --profile full --max-steps 1500
    python benchmarks/forecaster_eval.py --specialists   # also fine-tune one specialist per symbol

Prints training throughput and a pooled table (next-day close log-returns on the chronological test
split: NLL, CRPS, |r| MAE, directional accuracy) and writes everything to
``benchmarks/results/forecaster_eval.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import jax

from jaxport.data import describe_split, load_market, resolve_data_dir, split_bounds
from jaxport.forecast import (
    Forecaster,
    evaluate_forecaster,
    finetune_specialist,
    format_table,
    profile,
    specialist_train_config,
    train_forecaster,
)

ROOT = Path(__file__).resolve().parents[1]


def run_profile(name, market, bounds, args) -> dict:
    config, tc = profile(name)
    overrides = {
        k: v
        for k, v in (("max_steps", args.max_steps), ("epochs", args.epochs), ("seed", args.seed))
        if v is not None
    }
    tc = dataclasses.replace(tc, **overrides)
    print(f"\n=== profile {name}: {config}\n    {tc}")
    t0 = time.perf_counter()
    result = train_forecaster(market, bounds, config, tc)
    train_wall = time.perf_counter() - t0
    fc = Forecaster(config, result.params)
    print(
        f"trained {fc.num_params:,} params: {result.steps} steps, {train_wall:.1f} s wall, "
        f"{result.windows_per_s:,.0f} windows/s (after compilation), "
        f"best val NLL {result.best_val_loss:.4f} "
        f"(epoch {result.best_epoch}, initial {result.initial_val_loss:.4f})"
    )
    t0 = time.perf_counter()
    report = evaluate_forecaster(fc, market, bounds)
    eval_wall = time.perf_counter() - t0
    print(format_table(report))
    init_report = evaluate_forecaster(
        Forecaster.init(config, seed=tc.seed), market, bounds, garch=False
    )
    print(
        f"(untrained model, same split: NLL {init_report['model']['pooled']['nll']:.4f}, "
        f"CRPS {init_report['model']['pooled']['crps']:.6f})"
    )
    out = {
        "num_params": fc.num_params,
        "train": result.summary(),
        "train_wall_s": train_wall,
        "eval_wall_s": eval_wall,
        "eval": report,
        "untrained_model_pooled": init_report["model"]["pooled"],
    }
    if args.specialists:
        stc = specialist_train_config(tc)
        specs = {}
        for sym in market.symbols:
            sp = finetune_specialist(result.params, config, market, bounds, sym, stc)
            specs[sym] = sp.summary()
            print(
                f"specialist {sym}: generic val {sp.generic_val_nll:.4f}"
                f" -> specialist {sp.specialist_val_nll:.4f} "
                f"kept={sp.kept}"
            )
        out["specialists"] = specs
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(ROOT / "trainingdata"))
    ap.add_argument(
        "--profile",
        action="append",
        help="quick | full | large (repeatable; default quick, as jaxport train)",
    )
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--specialists", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "forecaster_eval.json"))
    args = ap.parse_args()
    market = load_market(resolve_data_dir(args.data_dir))
    bounds = split_bounds(market)
    results = {
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "jax_backend": jax.default_backend(),
            "jax_version": jax.__version__,
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
        "data": market.summary(),
        "split": describe_split(market, bounds),
        "runs": {},
    }
    for name in args.profile or ["quick"]:
        results["runs"][name] = run_profile(name, market, bounds, args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
