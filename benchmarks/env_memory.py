"""Device memory per env, from XLA's compiled memory analysis (no allocation: shapes only).

    python benchmarks/env_memory.py                    # 2 / 8 / 64 assets, the default kinds
    python benchmarks/env_memory.py --num-assets 2,8,64,512 --kinds step,scan,rollout,ppo

For each program kind, ``jax.jit(...).lower(<abstract shapes>).compile().memory_analysis()`` is
read at two or more ``num_envs``; its footprint (arguments + outputs + temporaries - aliased) is
fitted as ``fixed + bytes_per_env * num_envs`` (least squares; ``fixed`` is the market tables and
code constants, ``bytes_per_env`` what each extra env costs). Kinds:

* ``step``     one batched ``vmap(env.step)``: state in, state/obs/reward/info out, temporaries;
* ``scan``     the throughput harness (``jaxport.bench.make_scan_runner``, ``--scan-steps``
               steps): the footprint of a pure simulation loop (no trajectory kept);
* ``rollout``  ``jaxport.env.rollout`` of ``--rollout-steps`` steps, trajectory kept (obs, action,
               reward, flags, info per step): grows with the rollout length;
* ``ppo``      a whole ``jaxport.rl.ppo`` training call (``--rollout-steps`` steps per rollout,
               64x64 MLP, 4 minibatches): the number to size ``num_envs`` for ``jaxport train``.

Numbers come from the backend the script runs on (CPU here; a GPU's fusion choices differ a
little, and ``benchmarks/gpu_suite.py`` records the same analysis on the device). Writes
``benchmarks/results/env_memory.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, int_list, machine_info, write_results
from jaxport import bench
from jaxport.env import PortfolioEnv

KINDS = ("step", "scan", "rollout", "ppo")
RESULTS = RESULTS_DIR / "env_memory.json"


def compiled_memory(compiled) -> dict[str, int] | None:
    """``compiled.memory_analysis()`` as a dict of bytes; ``None`` if the backend gives none.

    ``peak_bytes`` = the larger of arguments + outputs + temporaries - aliased (XLA's buffer
    assignment: the temporaries of every nested loop body are in ``temp_bytes``) and XLA's own
    ``peak_memory_in_bytes`` (kept as ``xla_peak_bytes``; it counts constants such as market
    tables closed over by the program, but on CPU it leaves out loop-body temporaries: a PPO call
    with a 250 MB trajectory reports ~1 MB)."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return None
    if m is None:
        return None
    out = {
        "argument_bytes": int(m.argument_size_in_bytes),
        "output_bytes": int(m.output_size_in_bytes),
        "temp_bytes": int(m.temp_size_in_bytes),
        "alias_bytes": int(m.alias_size_in_bytes),
    }
    out["peak_bytes"] = (
        out["argument_bytes"] + out["output_bytes"] + out["temp_bytes"] - out["alias_bytes"]
    )
    xla_peak = getattr(m, "peak_memory_in_bytes", None)
    if xla_peak is not None:
        out["xla_peak_bytes"] = int(xla_peak)
        out["peak_bytes"] = max(out["peak_bytes"], out["xla_peak_bytes"])
    return out


def _abstract(tree):
    return jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)


def _key_spec(n: int | None = None):
    k = jax.random.PRNGKey(0)
    shape = k.shape if n is None else (n, *k.shape)
    return jax.ShapeDtypeStruct(shape, k.dtype)


def _half_policy_factory(num_assets: int):
    def policy(key, obs):
        del obs
        return jax.random.uniform(key, (num_assets,), minval=-1.0, maxval=1.0)

    return policy


def lower_kind(
    kind: str,
    num_envs: int,
    num_assets: int,
    num_features: int = 4,
    scan_steps: int = 100,
    rollout_steps: int = 64,
):
    """The lowered program of ``kind`` at ``num_envs`` x ``num_assets`` (abstract inputs)."""
    env, params = bench.portfolio_setup(num_assets, num_features)
    keys = _key_spec(num_envs)
    state_shape = jax.eval_shape(lambda k: jax.vmap(env.reset, in_axes=(0, None))(k, params), keys)
    obs_spec, state_spec = state_shape
    if kind == "step":
        act = jax.ShapeDtypeStruct((num_envs, num_assets), jnp.float32)
        fn = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
        return fn.lower(keys, state_spec, act, params)
    if kind == "scan":
        run, _ = _scan_runner_abstract(env, params, num_envs, num_assets, scan_steps)
        return run.lower(_key_spec(), obs_spec, state_spec)
    if kind == "rollout":
        from jaxport.env.rollout import scan_steps as roll

        policy = _half_policy_factory(num_assets)
        fn = jax.jit(lambda k, o, s: roll(env, params, policy, k, o, s, rollout_steps))
        return fn.lower(_key_spec(), obs_spec, state_spec)
    if kind == "ppo":
        from jaxport.rl.ppo import PPOConfig, build_train_fn

        cfg = PPOConfig(
            num_envs=num_envs,
            num_steps=rollout_steps,
            total_timesteps=num_envs * rollout_steps,
            update_epochs=1,
            num_minibatches=4,
            hidden_sizes=(64, 64),
        )
        return jax.jit(build_train_fn(cfg, env)).lower(_key_spec(), params)
    raise ValueError(f"unknown kind {kind!r}; choose from {KINDS}")


def _scan_runner_abstract(env: PortfolioEnv, params, num_envs, num_assets, num_steps):
    """``bench.make_scan_runner`` without its eager batched reset (nothing allocated)."""
    vstep = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def sample_action(key, n):
        return jax.random.uniform(key, (n, num_assets), minval=-2.0, maxval=2.0)

    @jax.jit
    def run(key, obs, state):
        def body(carry, k):
            obs, state, ret = carry
            k_act, k_step = jax.random.split(k)
            action = sample_action(k_act, num_envs)
            keys = jax.random.split(k_step, num_envs)
            obs, state, reward, _, _, _ = vstep(keys, state, action, params)
            return (obs, state, ret + reward), None

        ret0 = jnp.zeros((num_envs,), jnp.float32)
        init = (obs, state, ret0)
        return jax.lax.scan(body, init, jax.random.split(key, num_steps))[0]

    return run, None


def memory_point(kind: str, num_envs: int, num_assets: int, **kw) -> dict:
    t0 = time.perf_counter()
    mem = compiled_memory(lower_kind(kind, num_envs, num_assets, **kw).compile())
    return {
        "kind": kind,
        "num_envs": num_envs,
        "num_assets": num_assets,
        "compile_s": time.perf_counter() - t0,
        **(mem or {}),
    }


def fit_per_env(points: list[dict]) -> dict | None:
    """Least-squares ``peak = fixed + bytes_per_env * num_envs`` over ``points`` of one kind/N."""
    pts = [(p["num_envs"], p["peak_bytes"]) for p in points if "peak_bytes" in p]
    if len({b for b, _ in pts}) < 2:
        return None
    b = np.array([p[0] for p in pts], float)
    y = np.array([p[1] for p in pts], float)
    slope, intercept = np.polyfit(b, y, 1)
    return {"bytes_per_env": float(slope), "fixed_bytes": float(max(0.0, intercept))}


def max_envs(fit: dict, budget_bytes: float) -> int:
    """Largest ``num_envs`` whose fitted peak stays within ``budget_bytes``."""
    return int(max(0.0, budget_bytes - fit["fixed_bytes"]) // max(1.0, fit["bytes_per_env"]))


def measure(kinds, num_assets_list, num_envs_list, log=print, **kw) -> dict:
    points, fits = [], []
    for kind in kinds:
        for n in num_assets_list:
            group = []
            envs = num_envs_list if kind != "ppo" else num_envs_list[:2]  # PPO compiles slowly
            for b in envs:
                try:
                    p = memory_point(kind, b, n, **kw)
                except Exception as err:  # noqa: BLE001 - record and go on
                    p = {
                        "kind": kind,
                        "num_envs": b,
                        "num_assets": n,
                        "error": f"{type(err).__name__}: {err}"[:300],
                    }
                group.append(p)
                log(_point_line(p))
            points.extend(group)
            fit = fit_per_env(group)
            if fit:
                fits.append({"kind": kind, "num_assets": n, **fit})
                log(
                    f"  {kind} x {n} assets: {fit['bytes_per_env']:.0f} B/env "
                    f"+ {fit['fixed_bytes'] / 2**20:.2f} MiB fixed"
                )
    return {"points": points, "fits": fits}


def _point_line(p: dict) -> str:
    if "error" in p:
        return f"{p['kind']:>8} {p['num_envs']:>8} envs x {p['num_assets']:>3}: {p['error']}"
    peak = p.get("peak_bytes")
    txt = "no analysis" if peak is None else f"peak {peak / 2**20:10.2f} MiB"
    return f"{p['kind']:>8} {p['num_envs']:>8} envs x {p['num_assets']:>3}: {txt}"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kinds", default="step,scan,rollout,ppo", help=f"comma list of {KINDS}")
    p.add_argument("--num-assets", default="2,8,64")
    p.add_argument("--num-envs", default="1k,8k,64k", help="at least two (k = 1024); ppo: first 2")
    p.add_argument("--num-features", type=int, default=4)
    p.add_argument("--scan-steps", type=int, default=100)
    p.add_argument("--rollout-steps", type=int, default=64)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if set(kinds) - set(KINDS):
        p.error(f"--kinds: unknown {sorted(set(kinds) - set(KINDS))}; choose from {KINDS}")
    t0 = time.perf_counter()
    res = measure(
        kinds,
        int_list(args.num_assets),
        int_list(args.num_envs),
        num_features=args.num_features,
        scan_steps=args.scan_steps,
        rollout_steps=args.rollout_steps,
    )
    payload = {
        "benchmark": "env_memory",
        "machine": machine_info(),
        "args": vars(args),
        "wall_s": time.perf_counter() - t0,
        **res,
    }
    path = write_results("env_memory", payload, args.out)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
