"""Throughput of ``jaxport stress``: path-steps/s of 1/N and of the learned policy over bootstrapped
paths, next to ``jaxport bench``'s bare env steps/s measured in the same process, and how the
rollout time scales with the number of paths.

    python benchmarks/stress_throughput.py --run-dir /tmp/stress_run     # a trained run's basket
    python benchmarks/stress_throughput.py                                # synthetic basket, an
                                                                          # untrained universe net

Timing: compile once per policy group (reported as ``compile_s``), then the best of ``--repeats``
warm rollouts over every path (the chunk loop of ``jaxport stress``, results fetched to the host);
path-steps/s = paths x horizon / wall. The env yardstick is :func:`jaxport.bench.portfolio_throughput`
(random actions, same assets and features, ``--env-batch`` envs). JSON goes to
``benchmarks/results/stress_throughput-<stamp>.json`` (and ``-latest.json``).
"""

from __future__ import annotations

import argparse
import time
import types
from typing import Any

from common import format_rows, int_list, machine_info, write_results


def synthetic_basket(num_days: int = 1000, num_features: int = 65, seed: int = 0):
    """A 2-asset basket on synthetic data with an untrained universe policy (the network of the
    quick profile) and 1/N: ``(Basket, {"equal_weight": Policy, "learned": Policy})``."""
    import jax
    import numpy as np

    import jaxport.eval.allocators  # noqa: F401
    from jaxport.env import EnvParams, PortfolioEnv
    from jaxport.eval import Allocator
    from jaxport.pipeline.stress_run import Basket
    from jaxport.rl.codec import make_policy
    from jaxport.rl.universe import UniverseConfig, init_params

    rng = np.random.default_rng(seed)
    prices = 100 * np.exp(np.cumsum(rng.normal(3e-4, 0.02, (num_days, 2)), axis=0))
    feats = rng.normal(size=(num_days, 2, num_features)).astype(np.float32)
    env = PortfolioEnv(2, num_features)
    params = EnvParams.from_arrays(prices, feats)
    cfg = UniverseConfig()
    learned = make_policy("universe", cfg, env, params=init_params(cfg, env, jax.random.PRNGKey(0)))
    ew = make_policy("baseline:equal_weight", Allocator("equal_weight", rebalance_every=1), env)
    pair = types.SimpleNamespace(env=env, test=params)
    rows = np.arange(num_days - 400, num_days - 1, dtype=np.int32)
    basket = Basket("SYN_A_SYN_B", pair, rows, {}, "synthetic", "universe", ("", ""))
    return basket, {"equal_weight": ew, "learned": learned}


def run_basket(run_dir: str):
    """The first completed basket of a trained run: 1/N and the learned candidate."""
    from jaxport.pipeline.rundir import RunDir
    from jaxport.pipeline.stress_run import StressSettings, run_baskets

    basket = run_baskets(RunDir(run_dir), StressSettings(horizon=2))[0]
    return basket, {
        "equal_weight": basket.policies["equal_weight"],
        "learned": basket.policies[basket.learned],
    }


def time_policy(basket, policy, paths: int, horizon: int, chunk, repeats: int) -> dict[str, Any]:
    """Compile time, then the best warm wall time of stressing ``policy`` over ``paths`` paths."""
    import dataclasses

    from jaxport.pipeline.stress_run import StressSettings, stress_basket

    one = dataclasses.replace(basket, policies={"p": policy})
    settings = StressSettings(paths=paths, horizon=horizon, chunk=chunk)
    t0 = time.perf_counter()
    stress_basket(one, settings, 5.0)
    first = time.perf_counter() - t0
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = stress_basket(one, settings, 5.0)
        walls.append(time.perf_counter() - t0)
    best = min(walls)
    return {
        "paths": paths,
        "horizon": horizon,
        "chunk": res["chunk"],
        "first_call_s": first,
        "wall_s": best,
        "path_steps_per_s": paths * horizon / best,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run-dir", default=None, help="a jaxport train run (default: synthetic)")
    p.add_argument("--paths", default="1k,2k,5k,10k,20k", help="path counts (scaling curve)")
    p.add_argument("--horizon", type=int, default=252)
    p.add_argument("--chunk", type=int, default=None, help="paths per chunk (default: stress's)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--env-batch", type=int, default=4096, help="envs of the bare env yardstick")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    import os

    from jaxport.bench import portfolio_throughput

    basket, policies = run_basket(args.run_dir) if args.run_dir else synthetic_basket()
    env = basket.pair.env
    bare = portfolio_throughput(
        args.env_batch, env.num_assets, repeats=3, num_features=env.num_features
    )
    rows = []
    for paths in int_list(args.paths):
        for name, policy in policies.items():
            r = time_policy(basket, policy, paths, args.horizon, args.chunk, args.repeats)
            r.update(policy=name, vs_env=r["path_steps_per_s"] / bare["steps_per_s"])
            rows.append(r)
            print(
                f"{name:>13} {paths:>8} paths: {r['path_steps_per_s']:.3g} path-steps/s", flush=True
            )
    payload = {
        "benchmark": "stress_throughput",
        "source": args.run_dir or "synthetic",
        "machine": machine_info(),
        "load_avg": os.getloadavg(),
        "env_steps_per_s": bare["steps_per_s"],
        "env_batch": args.env_batch,
        "num_assets": env.num_assets,
        "num_features": env.num_features,
        "rows": rows,
    }
    path = write_results("stress_throughput", payload, args.out)
    cols = [
        ("policy", "policy", "{}"),
        ("paths", "paths", "{:d}"),
        ("chunk", "chunk", "{:d}"),
        ("first_call_s", "1st call s", "{:.1f}"),
        ("wall_s", "warm s", "{:.2f}"),
        ("path_steps_per_s", "path-steps/s", "{:.3g}"),
        ("vs_env", "vs env", "{:.2f}"),
    ]
    print(format_rows(rows, cols))
    print(
        f"bare env: {bare['steps_per_s']:.3g} steps/s at {args.env_batch} envs; load {os.getloadavg()}"
    )
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
