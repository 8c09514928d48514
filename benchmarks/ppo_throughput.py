"""End-to-end PPO throughput: portfolio env (jaxport.rl.ppo) vs a PureJaxRL CartPole-v1 reference.

Both runs use the same PPO settings (envs, steps per rollout, epochs, minibatches, 64x64 tanh MLPs)
and are timed in the same process, after compilation, with ``block_until_ready``, round-robin
(reference rep 1, portfolio rep 1, reference rep 2, ...; best of ``--repeats``), so drifting load
on a shared machine hits both alike. Env steps/s = ``num_updates * num_envs * num_steps / wall
seconds`` of one full ``train(key)`` call (all seeds counted under ``--num-seeds``). Portfolio
market: synthetic random walk from :func:`jaxport.bench.synthetic_arrays` (``--num-features``
N(0,1) features per asset).

    python benchmarks/ppo_throughput.py --num-envs 2048 --num-steps 64 --total-steps 2000000
    python benchmarks/ppo_throughput.py --num-seeds 4            # also vmap(train) over 4 seeds
    python benchmarks/ppo_throughput.py --sweep-envs 256,1024,4096
    python benchmarks/ppo_throughput.py --breakdown              # env-only step costs

Prints a table; the LAST line is JSON with at least ``env_steps_per_s``,
``reference_env_steps_per_s`` and ``ratio``; the same JSON goes to
``benchmarks/results/ppo_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cartpole_ppo_reference as ref  # noqa: E402
from common import interleaved_best, write_results  # noqa: E402
from jaxport import xla_options  # noqa: E402
from jaxport.bench import DEFAULT_NUM_FEATURES, machine_info, synthetic_arrays  # noqa: E402
from jaxport.env import EnvParams, PortfolioEnv  # noqa: E402
from jaxport.rl.ppo import PPOConfig, make_train  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "ppo_throughput.json"


def portfolio_setup(args):
    prices, feats = synthetic_arrays(args.num_assets, args.num_days, args.num_features)
    params = EnvParams.from_arrays(
        prices, feats, episode_length=args.episode_length, fee_rate=0.0005
    )
    env = PortfolioEnv(args.num_assets, args.num_features)
    return env, params


def ppo_config(args, num_envs: int) -> PPOConfig:
    return PPOConfig(
        num_envs=num_envs,
        num_steps=args.num_steps,
        total_timesteps=args.total_steps,
        update_epochs=args.update_epochs,
        num_minibatches=args.num_minibatches,
        hidden_sizes=(64, 64),
        activation="tanh",
        lr=2.5e-4,
        ent_coef=0.01,
    )


def ref_config(args, num_envs: int) -> dict:
    cfg = dict(ref.DEFAULT_CONFIG)
    cfg.update(
        NUM_ENVS=num_envs,
        NUM_STEPS=args.num_steps,
        TOTAL_TIMESTEPS=args.total_steps,
        UPDATE_EPOCHS=args.update_epochs,
        NUM_MINIBATCHES=args.num_minibatches,
    )
    return cfg


def log(msg: str) -> None:
    """Progress on stderr (stdout stays: table, then the JSON line)."""
    print(f"[ppo_throughput {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def compile_fn(fn, args_, compiler_options=None):
    """``(compiled, compile_s)`` with exactly ``compiler_options`` (per compile; ``None``/``{}``:
    XLA defaults); one warm-up call is made so the first timed rep is steady."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args_).compile(compiler_options or None)
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(*args_))
    return compiled, compile_s


def time_fn(fn, args_, repeats: int):
    """Compile, warm up, run ``repeats`` times: ``(compile_s, best_wall_s, best_cpu_s)``."""
    compiled, compile_s = compile_fn(fn, args_)
    t = interleaved_best({"f": lambda i: jax.block_until_ready(compiled(*args_))}, repeats)["f"]
    return compile_s, t["best_s"], t["cpu_best_s"]


def measure_pair(args, num_envs: int, num_seeds: int = 1) -> dict:
    """Portfolio PPO and CartPole reference at ``num_envs``, timed round-robin; steps/s over all
    seeds.

    CPU seconds are the process's user+system time over a run (all threads): a steadier measure of
    work on a shared machine (``cpu_time_ratio`` = reference CPU s / portfolio CPU s).
    """
    env, params = portfolio_setup(args)
    cfg = ppo_config(args, num_envs)
    steps = cfg.num_updates * cfg.batch_size * num_seeds
    key = jax.random.PRNGKey(0)
    train = make_train(cfg, env, params)
    ref_train = ref.make_train(ref_config(args, num_envs))
    if num_seeds > 1:
        keys = jax.random.split(key, num_seeds)
        port_fn, port_args = jax.vmap(lambda k, p: train(k, p), in_axes=(0, None)), (keys, params)
        ref_fn, ref_args = jax.vmap(ref_train), (keys,)
    else:
        port_fn, port_args = (lambda k, p: train(k, p)), (key, params)
        ref_fn, ref_args = ref_train, (key,)
    out = {
        "num_envs": num_envs,
        "num_seeds": num_seeds,
        "env_steps": steps,
        "num_updates": cfg.num_updates,
    }
    fns = {}
    # headline: jaxport's per-compile options for both programs (ynn-off on CPU); with
    # --xla both, the same two programs at XLA defaults too (suffix _xla_default)
    tuned = xla_options.compiler_options(jax.default_backend(), ignore_env=True)
    variants = {"": {} if args.xla == "default" else tuned}
    if args.xla == "both" and tuned:
        variants["_xla_default"] = {}
    out["compiler_options"] = variants[""]
    for sfx, opts in variants.items():
        log(f"compiling portfolio PPO{sfx}: {num_envs} envs x {num_seeds} seed(s)")
        port_c, out[f"compile_s{sfx}"] = compile_fn(port_fn, port_args, opts)
        fns[f"portfolio{sfx}"] = (lambda c: lambda i: jax.block_until_ready(c(*port_args)))(port_c)
        if not args.skip_reference:
            log(f"compiling CartPole reference{sfx}")
            ref_c, out[f"reference_compile_s{sfx}"] = compile_fn(ref_fn, ref_args, opts)
            fns[f"reference{sfx}"] = (lambda c: lambda i: jax.block_until_ready(c(*ref_args)))(
                ref_c
            )
    log(f"timing {list(fns)} round-robin x {args.repeats}")
    t = interleaved_best(fns, args.repeats)
    if "portfolio_xla_default" in t:
        d = t["portfolio_xla_default"]
        out["xla_default_env_steps_per_s"] = steps / d["best_s"]
        out["ynn_off_speedup"] = d["best_s"] / t["portfolio"]["best_s"]
        if "reference_xla_default" in t:
            rd = t["reference_xla_default"]
            out["reference_xla_default_env_steps_per_s"] = steps / rd["best_s"]
            out["ratio_xla_default"] = rd["best_s"] / d["best_s"]
            out["reference_ynn_off_speedup"] = rd["best_s"] / t["reference"]["best_s"]
    out.update(
        run_s=t["portfolio"]["best_s"],
        cpu_s=t["portfolio"]["cpu_best_s"],
        env_steps_per_s=steps / t["portfolio"]["best_s"],
    )
    if "reference" in t:
        out.update(
            reference_run_s=t["reference"]["best_s"],
            reference_cpu_s=t["reference"]["cpu_best_s"],
            reference_env_steps_per_s=steps / t["reference"]["best_s"],
        )
        out["ratio"] = out["env_steps_per_s"] / out["reference_env_steps_per_s"]
        out["cpu_time_ratio"] = (
            out["reference_cpu_s"] / out["cpu_s"]
        )  # > 1: portfolio does less work
    return out


def env_breakdown(args) -> dict:
    """Env-only costs (no network): steps/s of vmapped ``env.step`` (auto-reset), ``step_env``
    alone, ``reset_env`` alone and CartPole's ``env.step``, each over ``num_steps`` x ``num_envs``
    in a scan."""
    import gymnax

    env, params = portfolio_setup(args)
    n, s = args.num_envs, args.num_steps
    reps = max(1, args.total_steps // (n * s))
    key = jax.random.PRNGKey(0)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, n), params)
    action = jnp.full((n, args.num_assets), 0.5, jnp.float32)

    def scan_of(step_one):
        def run(key, state):
            def body(carry, k):
                st, acc = carry
                st, r = step_one(jax.random.split(k, n), st)
                return (st, acc + jnp.sum(r)), None

            def outer(carry, k):
                return jax.lax.scan(body, carry, jax.random.split(k, s))[0], None

            return jax.lax.scan(outer, (state, 0.0), jax.random.split(key, reps))[0]

        return run

    def auto(keys, st):
        o, st, r, te, tr, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            keys, st, action, params
        )
        return st, r + jnp.sum(o, -1) * 0.0

    def raw(keys, st):
        o, st2, r, te, info = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))(
            keys, st, action, params
        )
        # keep time from running past the data: rewind t (a cheap select, not a reset)
        st2 = st2.replace(t=st.t, time=st.time)
        return st2, r + jnp.sum(o, -1) * 0.0

    def reset_only(keys, st):
        o, st2 = jax.vmap(env.reset_env, in_axes=(0, None))(keys, params)
        return st, jnp.sum(o, -1) + st2.equity

    cp_env, cp_params = gymnax.make("CartPole-v1")
    _, cp_state = jax.vmap(cp_env.reset, in_axes=(0, None))(jax.random.split(key, n), cp_params)
    cp_action = jnp.zeros((n,), jnp.int32)

    def cartpole(keys, st):
        o, st, r, te, tr, info = jax.vmap(cp_env.step, in_axes=(0, 0, 0, None))(
            keys, st, cp_action, cp_params
        )
        return st, r + jnp.sum(o, -1) * 0.0

    def split_only(keys, st):
        return st, jax.random.bits(keys[0], (n,)).astype(jnp.float32) * 0.0

    out = {}
    total = reps * n * s
    for name, fn, st in [
        ("portfolio_step_autoreset", auto, state),
        ("portfolio_step_env_only", raw, state),
        ("portfolio_reset_env_only", reset_only, state),
        ("cartpole_step_autoreset", cartpole, cp_state),
        ("key_split_only", split_only, state),
    ]:
        log(f"env breakdown: {name}")
        _, best, cpu = time_fn(scan_of(fn), (key, st), args.repeats)
        out[name + "_steps_per_s"] = total / best
        out[name + "_steps_per_cpu_s"] = total / cpu
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--num-envs", type=int, default=2048)
    p.add_argument("--num-steps", type=int, default=64)
    p.add_argument("--total-steps", type=int, default=2_000_000)
    p.add_argument("--update-epochs", type=int, default=4)
    p.add_argument("--num-minibatches", type=int, default=4)
    p.add_argument("--num-assets", type=int, default=2)
    p.add_argument("--num-features", type=int, default=DEFAULT_NUM_FEATURES)
    p.add_argument("--num-days", type=int, default=2768)
    p.add_argument("--episode-length", type=int, default=252)
    p.add_argument(
        "--num-seeds", type=int, default=1, help="also measure jax.vmap(train) over K seeds"
    )
    p.add_argument(
        "--sweep-envs", type=str, default="", help="comma list of num_envs for a steps/s sweep"
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="timed runs per measurement, round-robin (best is kept)",
    )
    p.add_argument("--breakdown", action="store_true", help="also time env-only step costs")
    p.add_argument("--skip-reference", action="store_true")
    p.add_argument(
        "--xla",
        choices=("tuned", "default", "both"),
        default="both",
        help="XLA options of BOTH programs: jaxport's per-compile options (tuned, the headline),"
        " XLA defaults, or both (tuned headline + a like-for-like defaults pair)",
    )
    p.add_argument("--output", type=str, default=str(RESULTS))
    args = p.parse_args(argv)

    rows = []
    main_row = measure_pair(args, args.num_envs)
    rows.append(main_row)
    if args.num_seeds > 1:
        rows.append(measure_pair(args, args.num_envs, args.num_seeds))
    if args.sweep_envs:
        for n in [int(x) for x in args.sweep_envs.split(",") if x.strip()]:
            rows.append(measure_pair(args, n))
    breakdown = env_breakdown(args) if args.breakdown else None

    nan = float("nan")
    print(
        f"{'envs':>6} {'seeds':>5} {'updates':>7} {'portfolio steps/s':>18}"
        f" {'cartpole steps/s':>17} "
        f"{'ratio':>6} {'cpu ratio':>9} {'compile s':>9} {'ref compile s':>13}"
    )
    for r in rows:
        print(
            f"{r['num_envs']:>6} {r['num_seeds']:>5} {r['num_updates']:>7}"
            f" {r['env_steps_per_s']:>18,.0f} "
            f"{r.get('reference_env_steps_per_s', nan):>17,.0f} {r.get('ratio', nan):>6.3f} "
            f"{r.get('cpu_time_ratio', nan):>9.3f} {r['compile_s']:>9.1f}"
            f" {r.get('reference_compile_s', nan):>13.1f}"
        )
    if breakdown:
        print("env-only (no network): steps/s (wall) and steps per CPU-second:")
        names = sorted({k.rsplit("_steps_per", 1)[0] for k in breakdown})
        for k in names:
            print(
                f"  {k:<32} {breakdown[k + '_steps_per_s']:>14,.0f}"
                f" {breakdown[k + '_steps_per_cpu_s']:>14,.0f}"
            )

    result = {
        "env_steps_per_s": main_row["env_steps_per_s"],
        "reference_env_steps_per_s": main_row.get("reference_env_steps_per_s"),
        "ratio": main_row.get("ratio"),
        "cpu_time_ratio": main_row.get("cpu_time_ratio"),
        "compiler_options": main_row.get("compiler_options"),
        "ratio_xla_default": main_row.get("ratio_xla_default"),
        "ynn_off_speedup": main_row.get("ynn_off_speedup"),
        "settings": {k: v for k, v in vars(args).items() if k != "output"},
        "rows": rows,
        "env_breakdown": breakdown,
        "machine": machine_info(),
    }
    write_results("ppo_throughput", result, out=args.output)
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "env_steps_per_s",
                    "reference_env_steps_per_s",
                    "ratio",
                    "cpu_time_ratio",
                    "ratio_xla_default",
                    "ynn_off_speedup",
                )
            }
            | {"num_envs": args.num_envs, "device": result["machine"]["devices"][0]}
        )
    )
    return result


if __name__ == "__main__":
    main()
