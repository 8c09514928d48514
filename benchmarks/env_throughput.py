"""PortfolioEnv throughput (env-steps/s) versus Torch references and gymnax CartPole-v1.

    python benchmarks/env_throughput.py              # default grid, a few minutes on 2 cores
    python benchmarks/env_throughput.py --quick      # the target point only: 4096 envs x 2 assets
    python benchmarks/env_throughput.py --num-envs 1,64,1k,4k,16k,64k --num-assets 2,8,64,512

At every (num_envs, num_assets), in the same process and interleaved (benchmarks/common.py):

* ``jax``            PortfolioEnv.step under jit + vmap + lax.scan (jaxport.bench harness);
* ``cartpole``       gymnax CartPole-v1 in the same harness (random actions, auto-reset step);
* ``torch_eager``    benchmarks/torch_reference.py: the same step batched over envs in PyTorch;
* ``torch_compile``  the same under ``torch.compile`` (inductor, static shapes; the compiled body
                     includes the action draw, like the JAX scan body);
* ``gym_loop``       torch_compat.TorchPortfolioEnv (Gymnasium env, PyTorch tensors) stepped one env
                     at a time in a Python loop with reset on done (the original project's shape);
                     measured once per num_assets, it does not depend on num_envs;
* ``gym_vector``     gymnasium.vector.SyncVectorEnv of ``num_envs`` TorchPortfolioEnv (only up to
                     ``--gym-max-envs``: a Python loop over envs, its rate does not grow with B).

Torch gets its best thread count per size (an eager pilot picks 1 or 2 threads; recorded).

XLA options: the headline ``jax`` column is what a user gets, jaxport's per-compile options
(:func:`jaxport.xla_options.compiler_options`: ``xla_cpu_experimental_ynn_fusion_type=""``, YNNPACK
fusions off, on CPU; none on GPU/TPU; never process-wide XLA_FLAGS). ``--xla-flags both``
(default) also times the same program at XLA's defaults (``jax_xla_default``) and gymnax CartPole
with jaxport's options (``cartpole_ynn_off``), in the same process and the same round-robin, so
``ynn_off_speedup`` = ynn-off / default steps/s and ``ynn_off_vs_cartpole_ynn_off`` are
like-for-like ratios; ``cartpole`` (the ``vs_cartpole`` yardstick) is gymnax at XLA's defaults.
Sizes whose estimated memory exceeds ``--memory-budget-mb`` are skipped and listed. Prints a table
with ratios (JAX / reference) and writes JSON under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

#: XLA compile options of each JAX variant (per-compile, never process-wide XLA_FLAGS)
XLA_VARIANTS = {
    "default": {},
    "ynn-off": {"xla_cpu_experimental_ynn_fusion_type": ""},  # YNNPACK fusions off (XLA CPU)
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--num-envs", default="1,64,1k,4k", help="comma list; k = 1024 (full: 1,64,1k,4k,16k,64k)"
    )
    p.add_argument("--num-assets", default="2,8", help="comma list (full: 2,8,64,512)")
    p.add_argument(
        "--num-features", type=int, default=4, help="features per asset in the observation"
    )
    p.add_argument("--impls", default="jax,cartpole,torch_eager,torch_compile,gym_loop,gym_vector")
    p.add_argument(
        "--repeats", type=int, default=5, help="timed calls per implementation (best kept)"
    )
    p.add_argument(
        "--memory-budget-mb", type=float, default=4096.0, help="skip sizes estimated above this"
    )
    p.add_argument(
        "--torch-threads", default="auto", help="'auto' (pilot picks 1 or 2 per size) or an int"
    )
    p.add_argument(
        "--gym-max-envs", type=int, default=64, help="largest num_envs for the SyncVectorEnv row"
    )
    p.add_argument(
        "--gym-seconds", type=float, default=2.0, help="time budget of each Python-loop measurement"
    )
    p.add_argument(
        "--xla-flags",
        choices=("default", "ynn-off", "both"),
        default="both",
        help="JAX variants timed: XLA defaults, YNNPACK fusions off (jaxport's CPU default, the"
        " headline), or both",
    )
    p.add_argument(
        "--quick", action="store_true", help="only 4096 envs x 2 assets (the target point)"
    )
    p.add_argument(
        "--out",
        default=None,
        help="JSON path (default benchmarks/results/env_throughput-<stamp>.json)",
    )
    return p.parse_args(argv)


import jax  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    current_rss_mb,
    device_memory_stats,
    estimate_env_bytes,
    format_rows,
    int_list,
    interleaved_best,
    machine_info,
    peak_rss_mb,
    rate_within,
    steps_for,
    synthetic_arrays,
    write_results,
)
from jaxport import bench, xla_options  # noqa: E402
from jaxport.env import EnvParams, PortfolioEnv  # noqa: E402

RESULTS_PARTIAL = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "results", "env_throughput-partial.tmp"
)

TARGETS = {  # at 4096 envs x 2 assets, JAX / reference steps/s
    "cartpole": 0.5,
    "torch_compile": 1.0,
    "torch_eager": 2.0,
    "gym_loop": 100.0,
}


# ------------------------------------------------------------------------------------ JAX
def jax_runner(prices, features, num_envs, num_steps, compiler_options):
    """Timed call of the jaxport.bench harness, compiled with exactly ``compiler_options``."""
    num_assets = prices.shape[1]
    env = PortfolioEnv(num_assets=num_assets, num_features=features.shape[2])
    params = EnvParams.from_arrays(prices, features)

    def sample_action(key, n):
        return jax.random.uniform(key, (n, num_assets), minval=-2.0, maxval=2.0)

    run, (obs, state) = bench.make_scan_runner(
        env, params, sample_action, num_envs, num_steps, compiler_options
    )
    compiled = run.lower(jax.random.key(0), obs, state).compile()
    jax.block_until_ready(compiled(jax.random.key(0), obs, state))  # warm-up
    return lambda i: jax.block_until_ready(compiled(jax.random.key(i + 1), obs, state))


_CARTPOLE = {}


def cartpole_runner(num_envs, num_steps, compiler_options):
    """Timed call of gymnax CartPole-v1 in the same harness, compiled with ``compiler_options``."""
    tag = (num_envs, num_steps, tuple(sorted(compiler_options.items())))
    if tag not in _CARTPOLE:
        import gymnax

        env, params = gymnax.make("CartPole-v1")

        def sample_action(key, n):
            return jax.random.randint(key, (n,), 0, env.num_actions)

        run, (obs, state) = bench.make_scan_runner(
            env, params, sample_action, num_envs, num_steps, compiler_options
        )
        jax.block_until_ready(run(jax.random.key(0), obs, state))
        _CARTPOLE[tag] = lambda i: jax.block_until_ready(run(jax.random.key(i + 1), obs, state))
    return _CARTPOLE[tag]


# ------------------------------------------------------------------------------------ Torch
def torch_runner(prices, features, num_envs, num_steps, compiled: bool, threads: int):
    """A Python loop of ``num_steps`` calls of ``body`` (action draw + batched step + return
    sum)."""
    import torch

    from torch_reference import TorchPortfolioReference, portfolio_step

    torch.set_num_threads(threads)
    ref = TorchPortfolioReference(prices, features, num_envs=num_envs)
    consts = ref.consts
    num_assets = prices.shape[1]

    def body(state, ret):
        action = torch.rand(num_envs, num_assets) * 4.0 - 2.0
        obs, state, reward, _, _ = portfolio_step(state, action, consts)
        return obs, state, ret + reward

    if compiled:
        # every size compiles `body` afresh (static shapes); dynamo counts recompiles per code
        # object
        torch._dynamo.reset()
        fn = torch.compile(body, dynamic=False, fullgraph=True)
    else:
        fn = body
    ref.reset()
    state0, ret0 = ref.state, torch.zeros(num_envs)

    def run(i):
        torch.set_num_threads(threads)
        state, ret = state0, ret0
        with torch.no_grad():
            for _ in range(num_steps):
                obs, state, ret = fn(state, ret)
        return obs

    run(-1)  # compile (inductor) + warm-up
    run(-2)
    return run


def pick_torch_threads(prices, features, num_envs, setting: str) -> int:
    if setting != "auto":
        return int(setting)
    ncpu = os.cpu_count() or 1
    if ncpu == 1:
        return 1
    candidates = sorted({1, min(2, ncpu), ncpu})
    steps = max(5, min(50, 20000 // max(1, num_envs)))
    runs = {t: torch_runner(prices, features, num_envs, steps, False, t) for t in candidates}
    best = interleaved_best({str(t): r for t, r in runs.items()}, repeats=3)
    return int(min(best, key=lambda k: best[k]["best_s"]))


# ------------------------------------------------------------------------------------ Gymnasium
def gym_loop_rate(prices, features, seconds):
    import torch

    from torch_compat.env import TorchPortfolioEnv

    env = TorchPortfolioEnv(prices, features)
    env.reset(seed=0)
    n = prices.shape[1]

    def chunk():
        for _ in range(10):
            _, _, term, trunc, _ = env.step(torch.rand(n) * 4.0 - 2.0)
            if term or trunc:
                env.reset()
        return 10

    return rate_within(chunk, seconds)


def gym_vector_rate(prices, features, num_envs, seconds):
    import gymnasium as gym

    from torch_compat.env import TorchPortfolioEnv

    venv = gym.vector.SyncVectorEnv(
        [lambda: TorchPortfolioEnv(prices, features) for _ in range(num_envs)]
    )
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    n = prices.shape[1]

    def chunk():
        venv.step(rng.uniform(-2.0, 2.0, (num_envs, n)).astype(np.float32))
        return num_envs

    out = rate_within(chunk, seconds, warmup_calls=3)
    venv.close()
    return out


# ------------------------------------------------------------------------------------ driver
def run(args) -> dict:
    num_envs_list = [4096] if args.quick else int_list(args.num_envs)
    num_assets_list = [2] if args.quick else int_list(args.num_assets)
    impls = [s.strip() for s in args.impls.split(",") if s.strip()]
    known = {"jax", "cartpole", "torch_eager", "torch_compile", "gym_loop", "gym_vector"}
    if set(impls) - known:
        raise SystemExit(
            f"--impls: unknown {sorted(set(impls) - known)}; choose from {sorted(known)}"
        )
    if "jax" not in impls:
        raise SystemExit("--impls must include jax (ratios are JAX / reference)")
    # the headline "jax" column: jaxport's options (ynn-off on CPU) unless only defaults are asked
    shipped = xla_options.compiler_options(jax.default_backend(), ignore_env=True)
    head_xla = "default" if args.xla_flags == "default" or not shipped else "ynn-off"
    extra_default = args.xla_flags == "both" and head_xla == "ynn-off"
    budget = args.memory_budget_mb * 2**20
    rows, skipped = [], []
    gym_loop = {}
    t_start = time.perf_counter()
    torch_info = _torch_info()  # before the benchmark changes the thread count
    partial_path = RESULTS_PARTIAL if args.out is None else None
    for n_assets in num_assets_list:
        prices, features = synthetic_arrays(n_assets, num_features=args.num_features)
        if "gym_loop" in impls:
            try:
                gym_loop[n_assets] = gym_loop_rate(prices, features, args.gym_seconds)
            except ImportError as err:
                print(f"gym_loop skipped: {err}")
        for n_envs in num_envs_list:
            est = estimate_env_bytes(n_envs, n_assets, args.num_features)
            torch_est = 2 * est  # eager Torch materialises every intermediate
            if est > budget:
                skipped.append(
                    {
                        "num_envs": n_envs,
                        "num_assets": n_assets,
                        "est_mb": est / 2**20,
                        "reason": f"estimated {est / 2**20:.0f} MiB"
                        f" > budget {args.memory_budget_mb:.0f} MiB",
                    }
                )
                print(
                    f"skip {n_envs} envs x {n_assets} assets: {skipped[-1]['reason']}", flush=True
                )
                continue
            steps = steps_for(
                n_envs * max(1, n_assets // 4)
            )  # ~2M env-steps (fewer for many assets)
            row = {
                "num_envs": n_envs,
                "num_assets": n_assets,
                "num_steps": steps,
                "est_mb": est / 2**20,
                "jax_xla": head_xla,
            }
            head_opts = XLA_VARIANTS[head_xla]
            fns = {"jax": jax_runner(prices, features, n_envs, steps, head_opts)}
            if extra_default:
                fns["jax_xla_default"] = jax_runner(prices, features, n_envs, steps, {})
            if "cartpole" in impls:
                fns["cartpole"] = cartpole_runner(n_envs, steps, {})
                if head_opts:
                    fns["cartpole_ynn_off"] = cartpole_runner(n_envs, steps, head_opts)
            want_torch = [k for k in ("torch_eager", "torch_compile") if k in impls]
            if want_torch and torch_est > budget:
                row["torch_skipped"] = f"estimated {torch_est / 2**20:.0f} MiB > budget"
                want_torch = []
            if want_torch:
                threads = pick_torch_threads(prices, features, n_envs, args.torch_threads)
                row["torch_threads"] = threads
                if "torch_eager" in want_torch:
                    fns["torch_eager"] = torch_runner(
                        prices, features, n_envs, steps, False, threads
                    )
                if "torch_compile" in want_torch:
                    t0 = time.perf_counter()
                    fns["torch_compile"] = torch_runner(
                        prices, features, n_envs, steps, True, threads
                    )
                    row["torch_compile_s"] = time.perf_counter() - t0
            timing = interleaved_best(fns, args.repeats)
            for name, t in timing.items():
                row[f"{name}_steps_per_s"] = n_envs * steps / t["best_s"]
                row[f"{name}_median_steps_per_s"] = n_envs * steps / t["median_s"]
                row[f"{name}_cpu_ns"] = 1e9 * t["cpu_best_s"] / (n_envs * steps)
            if n_assets in gym_loop:
                row["gym_loop_steps_per_s"] = gym_loop[n_assets]["steps_per_s"]
                row["gym_loop_cpu_ns"] = 1e3 * gym_loop[n_assets]["cpu_us_per_env_step"]
            if "gym_vector" in impls and n_envs <= args.gym_max_envs:
                gv = gym_vector_rate(prices, features, n_envs, args.gym_seconds)
                row["gym_vector_steps_per_s"] = gv["steps_per_s"]
                row["gym_vector_cpu_ns"] = 1e3 * gv["cpu_us_per_env_step"]
            if "jax_xla_default_steps_per_s" in row:  # the headline is ynn-off
                row["jax_ynn_off_steps_per_s"] = row["jax_steps_per_s"]
                row["ynn_off_speedup"] = row["jax_steps_per_s"] / row["jax_xla_default_steps_per_s"]
                row["ynn_off_cpu_speedup"] = row["jax_xla_default_cpu_ns"] / row["jax_cpu_ns"]
            if "cartpole_ynn_off_steps_per_s" in row:
                row["ynn_off_vs_cartpole_ynn_off"] = (
                    row["jax_steps_per_s"] / row["cartpole_ynn_off_steps_per_s"]
                )
            for ref in ("cartpole", "torch_eager", "torch_compile", "gym_loop", "gym_vector"):
                if f"{ref}_steps_per_s" in row:
                    row[f"vs_{ref}"] = row["jax_steps_per_s"] / row[f"{ref}_steps_per_s"]
                if f"{ref}_cpu_ns" in row:
                    row[f"cpu_vs_{ref}"] = row[f"{ref}_cpu_ns"] / row["jax_cpu_ns"]
            row["peak_rss_mb"] = peak_rss_mb()
            row["rss_mb"] = current_rss_mb()
            row["device_memory"] = device_memory_stats()
            rows.append(row)
            print(line(row), flush=True)
            del fns
            if partial_path is not None:  # keep what is measured if a long sweep is interrupted
                write_results(
                    "env_throughput",
                    _payload(args, rows, skipped, t_start, torch_info, partial=True),
                    partial_path,
                )
    return _payload(args, rows, skipped, t_start, torch_info)


def _payload(args, rows, skipped, t_start, torch_info, partial=False) -> dict:
    return {
        "benchmark": "env_throughput",
        "partial": partial,
        "machine": machine_info(),
        "torch": torch_info,
        "args": vars(args),
        "wall_s": time.perf_counter() - t_start,
        "rows": rows,
        "skipped": skipped,
        "targets": check_targets(rows),
        "linearity": linearity(rows),
        "jax_xla": rows[0]["jax_xla"] if rows else None,
        "xla_options": xla_options.applied_options(),
    }


def _torch_info():
    try:
        import torch

        return {"version": torch.__version__, "default_threads": torch.get_num_threads()}
    except ImportError:
        return None


def line(r: dict) -> str:
    parts = [
        f"{r['num_envs']:>6} envs x {r['num_assets']:>3} assets:"
        f" jax {r['jax_steps_per_s'] / 1e6:7.2f} M/s"
    ]
    if "ynn_off_speedup" in r:
        parts.append(
            f"XLA defaults {r['jax_xla_default_steps_per_s'] / 1e6:.3g} M/s"
            f" (ynn-off {r['ynn_off_speedup']:.2f}x default)"
        )
    if "ynn_off_vs_cartpole_ynn_off" in r:
        parts.append(
            f"cartpole ynn-off {r['cartpole_ynn_off_steps_per_s'] / 1e6:.3g} M/s"
            f" ({r['ynn_off_vs_cartpole_ynn_off']:.3g}x)"
        )
    for ref in ("cartpole", "torch_eager", "torch_compile", "gym_loop", "gym_vector"):
        if f"vs_{ref}" in r:
            parts.append(f"{ref} {r[f'{ref}_steps_per_s'] / 1e6:.3g} M/s ({r[f'vs_{ref}']:.3g}x)")
    return " | ".join(parts)


def check_targets(rows) -> list[dict]:
    out = []
    for r in rows:
        if r["num_envs"] == 4096 and r["num_assets"] == 2:
            for ref, need in TARGETS.items():
                if f"vs_{ref}" in r:
                    out.append(
                        {
                            "reference": ref,
                            "need": need,
                            "ratio": r[f"vs_{ref}"],
                            "cpu_ratio": r.get(f"cpu_vs_{ref}"),
                            "met": r[f"vs_{ref}"] >= need,
                        }
                    )
    return out


def linearity(rows) -> list[dict]:
    """Cost per env-step (CPU ns) relative to the smallest num_assets at the same num_envs."""
    out = []
    by_b = {}
    for r in rows:
        by_b.setdefault(r["num_envs"], []).append(r)
    for b, rs in by_b.items():
        rs = sorted(rs, key=lambda r: r["num_assets"])
        base = rs[0]
        for r in rs[1:]:
            growth = r["jax_cpu_ns"] / base["jax_cpu_ns"]
            ratio = r["num_assets"] / base["num_assets"]
            out.append(
                {
                    "num_envs": b,
                    "from_assets": base["num_assets"],
                    "to_assets": r["num_assets"],
                    "cost_growth": growth,
                    "asset_ratio": ratio,
                    "at_most_linear": growth <= ratio,
                }
            )
    return out


COLUMNS = [
    ("num_envs", "envs", "{:d}"),
    ("num_assets", "N", "{:d}"),
    ("jax_steps_per_s", "JAX M/s", "{:.2f}"),
    ("jax_cpu_ns", "JAX cpu ns", "{:.0f}"),
    ("jax_xla_default_steps_per_s", "XLAdef M/s", "{:.2f}"),
    ("ynn_off_speedup", "ynn/def", "{:.2f}"),
    ("cartpole_steps_per_s", "CartPole M/s", "{:.2f}"),
    ("vs_cartpole", "xCartPole", "{:.2f}"),
    ("cartpole_ynn_off_steps_per_s", "CP ynn M/s", "{:.2f}"),
    ("ynn_off_vs_cartpole_ynn_off", "xCP ynn", "{:.2f}"),
    ("torch_eager_steps_per_s", "T.eager M/s", "{:.3f}"),
    ("vs_torch_eager", "xEager", "{:.1f}"),
    ("torch_compile_steps_per_s", "T.compile M/s", "{:.3f}"),
    ("vs_torch_compile", "xCompile", "{:.2f}"),
    ("cpu_vs_torch_compile", "xCompile(cpu)", "{:.2f}"),
    ("torch_threads", "thr", "{:d}"),
    ("gym_loop_steps_per_s", "GymLoop/s", "{:.0f}"),
    ("vs_gym_loop", "xGymLoop", "{:.0f}"),
    ("gym_vector_steps_per_s", "SyncVec/s", "{:.0f}"),
    ("vs_gym_vector", "xSyncVec", "{:.0f}"),
    ("peak_rss_mb", "peakRSS MiB", "{:.0f}"),
]


def report(result: dict) -> str:
    rows = [
        {
            k: (v / 1e6 if k.endswith("_steps_per_s") and not k.startswith("gym") else v)
            for k, v in r.items()
        }
        for r in result["rows"]
    ]
    lines = [format_rows(rows, COLUMNS)]
    for s in result["skipped"]:
        lines.append(f"skipped {s['num_envs']} envs x {s['num_assets']} assets: {s['reason']}")
    for t in result["targets"]:
        lines.append(
            f"target 4096x2 JAX >= {t['need']:g}x {t['reference']}: {t['ratio']:.2f}x wall"
            f" ({t['cpu_ratio']:.2f}x by CPU time) -> {'MET' if t['met'] else 'MISSED'}"
        )
    for lin in result["linearity"]:
        lines.append(
            f"cost/env-step {lin['num_envs']} envs:"
            f" {lin['from_assets']} -> {lin['to_assets']} assets"
            f" x{lin['cost_growth']:.2f} (assets x{lin['asset_ratio']:.0f})"
        )
    m = result["machine"]
    lines.append(
        f"machine: {m['cpu_count']} cpus, load {m['load_avg_1_5_15']}, backend {m['jax_backend']},"
        f" XLA_FLAGS='{m['xla_flags']}', headline jax = XLA {result['jax_xla']},"
        f" torch {result['torch']}"
    )
    return "\n".join(lines)


def main():
    args = parse_args()
    result = run(args)
    print()
    print(report(result))
    path = write_results("env_throughput", result, args.out)
    if os.path.exists(RESULTS_PARTIAL):
        os.remove(RESULTS_PARTIAL)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
