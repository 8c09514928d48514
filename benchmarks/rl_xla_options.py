"""jaxport's RL training programs compiled with XLA defaults vs jaxport's tuned per-compile options.

    python benchmarks/rl_xla_options.py                      # ppo, gradient, universe; ~5 min
    python benchmarks/rl_xla_options.py --programs gradient --repeats 3

Each program (small CPU-sized settings, 2 synthetic assets) is lowered ONCE and compiled twice,
``lowered.compile({})`` (XLA defaults) and ``lowered.compile(options)`` with
:func:`jaxport.xla_options.compiler_options` (per compile, never XLA_FLAGS); the two are timed
round-robin (benchmarks/common.py, best of ``--repeats``) and ``tuned_speedup`` = tuned / default
steps/s (and by process CPU time). Programs: ``ppo`` (``jaxport.rl.ppo.make_train``),
``gradient`` (``jaxport.rl.gradient.make_train``), ``universe`` (the population program of
``jaxport.rl.universe.train_universe``, captured at its jitted ``_train_population``). The rl/
code is not changed here: this measures what ``tuned_jit`` at those jit sites would give.
Writes JSON under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import os
import sys

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import interleaved_best, machine_info, synthetic_arrays, write_results  # noqa: E402
from jaxport import xla_options  # noqa: E402
from jaxport.env import EnvParams, PortfolioEnv  # noqa: E402


class _Captured(Exception):
    """Raised by the capture stub once it holds the jitted call's lowered program."""


def _market(num_days=1200, num_assets=2, num_features=4):
    prices, feats = synthetic_arrays(num_assets, num_days, num_features)
    return PortfolioEnv(num_assets, num_features), prices, feats


def lower_ppo():
    from jaxport.rl.ppo import PPOConfig, make_train

    env, prices, feats = _market()
    params = EnvParams.from_arrays(prices, feats, episode_length=252)
    cfg = PPOConfig(
        num_envs=512,
        num_steps=64,
        total_timesteps=512 * 64 * 10,
        update_epochs=4,
        num_minibatches=4,
        hidden_sizes=(64, 64),
    )
    train = make_train(cfg, env, params)
    args = (jax.random.PRNGKey(0), params)
    return jax.jit(lambda k, p: train(k, p)).lower(*args), args, cfg.num_updates * cfg.batch_size


def lower_gradient():
    from jaxport.rl.gradient import GradientConfig, make_train

    env, prices, feats = _market()
    params = EnvParams.from_arrays(prices, feats)
    cfg = GradientConfig(num_envs=256, bptt_length=16, episode_length=128, num_updates=40)
    train = make_train(cfg, env, params)
    args = (jax.random.PRNGKey(0),)
    steps = cfg.num_updates * cfg.num_envs * cfg.bptt_length
    return jax.jit(lambda k: train(k)).lower(*args), args, steps


def lower_universe():
    import jaxport.rl.universe as uni

    env, prices, feats = _market(num_features=1)
    env = PortfolioEnv(2, 1, long_only=True)
    split = 900
    tr = uni.stack_env_params([EnvParams.from_arrays(prices[: split + 1], feats[: split + 1])] * 2)
    va = uni.stack_env_params(
        [EnvParams.from_arrays(prices, feats, eval_start=split, episode_length=None)] * 2
    )
    cfg = uni.UniverseConfig(
        hidden_sizes=(32,),
        head_size=16,
        num_envs=64,
        bptt_length=16,
        episode_length=64,
        num_updates=60,
        eval_every=20,
        num_seeds=2,
        grid=(("lr", (1e-3, 1e-2)),),
    )
    original = uni._train_population
    box = {}

    def capture(config, env, val_steps, train_params, val_params, sel, hp, keys, mesh=None):
        dynamic = (train_params, val_params, sel, hp, keys)  # the compiled program's arguments
        box["lowered"] = original.lower(config, env, val_steps, *dynamic, mesh)
        box["args"] = dynamic
        raise _Captured

    uni._train_population = capture
    try:
        uni.train_universe(cfg, env, tr, va, jax.random.PRNGKey(0))
    except _Captured:
        pass
    finally:
        uni._train_population = original
    members = 2 * cfg.num_seeds
    steps = members * 2 * cfg.num_updates * cfg.num_envs * cfg.bptt_length  # 2 baskets
    return box["lowered"], box["args"], steps


PROGRAMS = {"ppo": lower_ppo, "gradient": lower_gradient, "universe": lower_universe}


def measure(name: str, tuned: dict, repeats: int) -> dict:
    lowered, args, steps = PROGRAMS[name]()
    runs = {}
    for tag, opts in (("default", {}), ("tuned", tuned)):
        compiled = lowered.compile(opts)
        runs[tag] = (lambda c: lambda i: jax.block_until_ready(c(*args)))(compiled)
    for r in runs.values():
        r(-1)  # warm-up
    t = interleaved_best(runs, repeats)
    row = {"program": name, "env_steps": steps}
    for tag in runs:
        row[f"{tag}_steps_per_s"] = steps / t[tag]["best_s"]
        row[f"{tag}_cpu_s"] = t[tag]["cpu_best_s"]
    row["tuned_speedup"] = row["tuned_steps_per_s"] / row["default_steps_per_s"]
    row["tuned_cpu_speedup"] = row["default_cpu_s"] / row["tuned_cpu_s"]
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--programs", default="ppo,gradient,universe", help="comma list")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per variant (best kept)")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/...)")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.programs.split(",") if n.strip()]
    unknown = sorted(set(names) - set(PROGRAMS))
    if unknown:
        raise SystemExit(f"--programs: unknown {unknown}; choose from {sorted(PROGRAMS)}")
    tuned = xla_options.compiler_options(jax.default_backend(), ignore_env=True)
    load_before = os.getloadavg()
    rows = []
    for name in names:
        rows.append(measure(name, tuned, args.repeats))
        r = rows[-1]
        print(
            f"{name:>9}: default {r['default_steps_per_s']:,.0f} steps/s, tuned"
            f" {r['tuned_steps_per_s']:,.0f} -> {r['tuned_speedup']:.2f}x wall,"
            f" {r['tuned_cpu_speedup']:.2f}x CPU time",
            flush=True,
        )
    payload = {
        "benchmark": "rl_xla_options",
        "machine": machine_info(),
        "load_avg_before": load_before,
        "tuned_options": tuned,
        "args": vars(args),
        "rows": rows,
    }
    print(f"wrote {write_results('rl_xla_options', payload, args.out)}")


if __name__ == "__main__":
    main()
