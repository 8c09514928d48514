"""Do the forecaster's features carry out-of-sample signal?  In-sample vs cross-fitted features.

Usage (from the repository root)::

    python benchmarks/forecast_feature_oos.py            # seed 0; blocked K = 3, 5; expanding K = 5
    python benchmarks/forecast_feature_oos.py --seeds 0,1,2 --blocks 3,5

On the shipped ``trainingdata/`` (all symbols, split 70/15/15) with the pipeline's quick forecaster
(``jaxport.pipeline.config.BaseConfig``), for each feature set and split, pooled over symbols and
rows ``t`` with a full feature row and ``t + h`` inside the data:

* mean features: Pearson / Spearman correlation of ``close_toto_mean_t+h`` with the realised
  ``log(close[t+h] / close[t])`` (h = 1 and 8);
* std features: correlation of ``close_toto_std_t+h`` with the realised
  ``|log(close[t+h] / close[t])|``;

plus a 95 % moving-block bootstrap interval (21-day blocks over dates, all symbols together) for
each Pearson figure, since h-day returns of neighbouring rows overlap.

Feature sets: ``statistical`` (rolling fallback, nothing fitted), ``in_sample`` (today's path: one
model fitted on the train rows featurises every row), ``crossfit_blocked_K<k>`` and
``crossfit_expanding_K<k>`` (:mod:`jaxport.forecast.crossfit`; the test rows use today's model).
Wall times: the plain path (one fit + featurise) and each cross-fit's extra fits + featurising.
Writes ``benchmarks/results/forecast_feature_oos.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from jaxport.data import describe_split, load_market, split_bounds  # noqa: E402
from jaxport.forecast import Forecaster, ForecasterConfig, TrainConfig, train_forecaster  # noqa: E402
from jaxport.forecast.crossfit import crossfit_features, feature_fn, forecaster_fit_fn  # noqa: E402
from jaxport.forecast.toto_features import compute_features  # noqa: E402

HORIZONS = (1, 8)


def quick_configs(seed: int) -> tuple[ForecasterConfig, TrainConfig, int, int]:
    """The forecaster ``jaxport train`` builds with the quick profile (pipeline BaseConfig)."""
    from jaxport.pipeline.config import BaseConfig, DataConfig

    d = DataConfig()
    fcfg, tcfg = BaseConfig().forecaster_configs(
        horizon=d.toto_horizon, targets=d.toto_targets, seed=seed
    )
    return fcfg, tcfg, d.toto_horizon, d.sequence_length


def _block_bootstrap_ci(x, y, dates_idx, reps=400, block=21, seed=0):
    """95 % interval of Pearson r, resampling blocks of consecutive dates (all symbols kept)."""
    rng = np.random.default_rng(seed)
    days = np.unique(dates_idx)
    pos = np.searchsorted(days, dates_idx)
    by_day = [np.flatnonzero(pos == i) for i in range(days.size)]
    n_blocks = int(np.ceil(days.size / block))
    out = []
    for _ in range(reps):
        starts = rng.integers(0, max(days.size - block, 1), n_blocks)
        pick = np.concatenate([np.concatenate(by_day[s : s + block]) for s in starts])
        out.append(np.corrcoef(x[pick], y[pick])[0, 1])
    lo, hi = np.nanpercentile(out, [2.5, 97.5])
    return [float(lo), float(hi)]


def signal_table(values, names, valid_from, market, bounds, *, bootstrap=True) -> dict:
    """``{split: {feature@h: {pearson, spearman, ci95, n}}}`` (see module doc)."""
    close = np.log(market.close)
    T = market.num_days
    out = {}
    for split, (a, b) in bounds.ranges().items():
        rows = {}
        for h in HORIZONS:
            t = np.arange(max(a, valid_from), min(b, T - h))
            realised = close[t + h] - close[t]  # [n, N]
            dates_idx = np.repeat(t, market.num_symbols)
            for kind, target in (("mean", realised), ("std", np.abs(realised))):
                col = names.index(f"close_toto_{kind}_t+{h}")
                x = values[t, :, col].reshape(-1).astype(np.float64)
                y = target.reshape(-1)
                entry = {
                    "pearson": float(np.corrcoef(x, y)[0, 1]),
                    "spearman": float(stats.spearmanr(x, y).statistic),
                    "n": int(x.size),
                }
                if bootstrap:
                    entry["ci95"] = _block_bootstrap_ci(x, y, dates_idx)
                rows[f"{kind}@t+{h}"] = entry
        out[split] = rows
    return out


def _timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def run_seed(market, bounds, seed, runs) -> dict:
    """Statistical, in-sample and every ``(scheme, K)`` cross-fit feature set for one seed."""
    fcfg, tcfg, horizon, seq = quick_configs(seed)
    featurise = feature_fn(targets=fcfg.targets, horizon=horizon, sequence_length=seq)
    res = {"config": fcfg.to_dict(), "train_config": tcfg.to_dict(), "sets": {}, "wall_s": {}}
    stat, stat_s = _timed(
        compute_features, None, market, targets=fcfg.targets, horizon=horizon, sequence_length=seq
    )
    res["sets"]["statistical"] = signal_table(
        stat.values, stat.names, stat.valid_from, market, bounds
    )
    res["wall_s"]["statistical"] = {"featurise": stat_s}
    print(f"[seed {seed}] plain: training today's forecaster ...", flush=True)
    trained, fit_s = _timed(train_forecaster, market, bounds, fcfg, tcfg)
    today = Forecaster(fcfg, trained.params)
    plain, feat_s = _timed(featurise, today, market)
    res["sets"]["in_sample"] = signal_table(
        plain.values, plain.names, plain.valid_from, market, bounds
    )
    res["wall_s"]["in_sample"] = {"fit": fit_s, "featurise": feat_s, "total": fit_s + feat_s}
    res["in_sample_training"] = {
        k: trained.summary()[k] for k in ("steps", "best_epoch", "best_val_loss")
    }
    fit = forecaster_fit_fn(fcfg, tcfg, es_rows=(bounds.train_end, bounds.val_end))
    for scheme, k in runs:
        name = f"crossfit_{scheme}_K{k}"
        print(f"[seed {seed}] {name} ...", flush=True)
        cf, wall = _timed(
            crossfit_features,
            market,
            bounds,
            fit,
            featurise,
            num_blocks=k,
            horizon=horizon,
            scheme=scheme,
            final_model=today,
        )
        res["sets"][name] = signal_table(cf.values, cf.names, cf.valid_from, market, bounds)
        res["wall_s"][name] = {
            "extra_fits": cf.wall_s["fit"],
            "featurise": cf.wall_s["featurise"],
            "extra_total": wall,
            "total": fit_s + wall,
            "ratio_to_plain": (fit_s + wall) / (fit_s + feat_s),
        }
        res.setdefault("provenance", {})[name] = {
            m["name"]: {
                "rows": m["rows"],
                "allowed_target_ranges": m["fit_target_ranges"],
                **{
                    k: m["fit"].get(k) for k in ("train_origin_ranges", "es_origin_ranges", "steps")
                },
            }
            for m in cf.summary()["models"]
        }
        res.setdefault("valid_from", {})[name] = cf.valid_from
    return res


def _fmt(entry):
    return f"{entry['pearson']:+.3f}/{entry['spearman']:+.3f}"


def mean_over_seeds(results: dict) -> dict:
    """``{set: {split: {feature@h: {pearson, spearman, pearson_min, pearson_max}}}}`` over seeds."""
    seeds = list(results["seeds"].values())
    out = {}
    for name, table in seeds[0]["sets"].items():
        out[name] = {}
        for split, row in table.items():
            out[name][split] = {}
            for col in row:
                p = [r["sets"][name][split][col]["pearson"] for r in seeds]
                sp = [r["sets"][name][split][col]["spearman"] for r in seeds]
                out[name][split][col] = {
                    "pearson": float(np.mean(p)),
                    "spearman": float(np.mean(sp)),
                    "pearson_min": float(np.min(p)),
                    "pearson_max": float(np.max(p)),
                }
    return out


def print_table(results: dict) -> None:
    tables = dict(results["seeds"])
    if len(tables) > 1:
        tables["mean"] = {"sets": results["mean_over_seeds"], "wall_s": {}}
    for seed, res in tables.items():
        print(
            f"\n=== seed {seed}: Pearson/Spearman, pooled over "
            f"{len(results['data']['symbols'])} symbols"
        )
        cols = [f"{k}@t+{h}" for k in ("mean", "std") for h in HORIZONS]
        head = (
            f"{'features':<26}{'split':<7}"
            + "".join(f"{c:>16}" for c in cols)
            + f"{'mean@t+8 95% CI':>20}"
        )
        print(head)
        print("-" * len(head))
        for name, table in res["sets"].items():
            for split in ("train", "val", "test"):
                row = table[split]
                ci = row["mean@t+8"].get("ci95")
                if ci is None and "pearson_min" in row["mean@t+8"]:  # mean table: seed range
                    ci = [row["mean@t+8"]["pearson_min"], row["mean@t+8"]["pearson_max"]]
                ci_txt = f"[{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""
                print(
                    f"{name:<26}{split:<7}"
                    + "".join(f"{_fmt(row[c]):>16}" for c in cols)
                    + f"{ci_txt:>20}"
                )
        if not res["wall_s"]:
            print("(last column for the mean over seeds: min and max of the seeds' Pearson)")
        print("\nwall time (s):")
        for name, w in res["wall_s"].items():
            print(f"  {name:<26}" + ", ".join(f"{k} {v:.1f}" for k, v in w.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(ROOT / "trainingdata"))
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds (default 0)")
    ap.add_argument("--blocks", default="3,5", help="comma-separated K for the blocked scheme")
    ap.add_argument(
        "--expanding-blocks", default="5", help="K for the expanding scheme ('' = skip)"
    )
    ap.add_argument(
        "--out", default=str(ROOT / "benchmarks" / "results" / "forecast_feature_oos.json")
    )
    args = ap.parse_args()
    market = load_market(args.data_dir)
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
        "seeds": {},
    }
    blocks = [int(k) for k in args.blocks.split(",") if k.strip()]
    expanding = [int(k) for k in args.expanding_blocks.split(",") if k.strip()]
    runs = [("blocked", k) for k in blocks] + [("expanding", k) for k in expanding]
    t0 = time.perf_counter()
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        results["seeds"][str(seed)] = run_seed(market, bounds, seed, runs)
    results["mean_over_seeds"] = mean_over_seeds(results)
    results["wall_s_total"] = time.perf_counter() - t0
    print_table(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=out.parent, delete=False, suffix=".tmp") as fh:
        json.dump(results, fh, indent=2)
    os.chmod(fh.name, 0o644)
    os.replace(fh.name, out)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
