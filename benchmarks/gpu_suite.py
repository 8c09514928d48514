"""One-shot accelerator suite: env, PPO, Torch DLPack and torch.compile throughput + device memory.

    bash benchmarks/gpu_suite.sh                 # on a GPU: <= 8 minutes, JSON + markdown table
    python benchmarks/gpu_suite.py --smoke       # every part end to end on CPU, tiny sizes (< 60 s)
    python benchmarks/gpu_suite.py --markdown benchmarks/results/gpu_suite-nvidia-h200.json

Sections, in this order (each one is wrapped: a failure records ``{"status": "error", "error",
"traceback"}`` and the suite goes on; the JSON is rewritten atomically after every item, so a kill
keeps everything measured so far):

``memory_model``   compile-only XLA memory analysis of the env harness at two batch sizes per asset
                   count -> ``bytes_per_env`` + ``fixed_bytes`` (no allocation). Used to skip the
                   env sizes that would not fit (recorded in ``env.skipped``).
``env``            ``PortfolioEnv`` env-steps/s (jit + vmap + scan harness of ``jaxport.bench``,
                   random actions, auto-reset) at 4k / 64k / 1M / 4M envs x 2 / 8 / 64 assets, each
                   next to gymnax CartPole-v1 at the same num_envs, timed round-robin in this
                   process; the compiled program's memory analysis per row.
``torch_compile``  ``benchmarks/torch_reference.py`` (the same step as batched Torch, checked number
                   for number in tests/test_bench_reference.py) under ``torch.compile`` and eager on
                   the Torch device, next to the JAX harness at the same size, round-robin.
``torch_dlpack``   ``torch_compat.TorchPortfolioVectorEnv`` stepped with Torch tensors on CUDA:
                   steps/s, and zero-copy checks (observation tensor ``data_ptr`` == JAX output
                   buffer's ``unsafe_buffer_pointer``; the action array aliases the Torch tensor).
``ppo``            ``jaxport.rl.ppo`` env-steps/s at 2,048 and 65,536 envs next to the PureJaxRL
                   CartPole PPO (``benchmarks/cartpole_ppo_reference.py``), same settings.
``stress``         ``jaxport stress``'s rollout (``benchmarks/stress_throughput.py``): path-steps/s
                   of 1/N and of an untrained universe policy over 64k and 1M bootstrapped paths
                   x 252 days (synthetic 2-asset basket, 65 features), next to the bare env.
``torch_compile_cudagraphs``  as ``torch_compile`` with ``mode="reduce-overhead"`` (CUDA graphs), at
                   the largest size only, if time is left.
``device_memory``  ``jax.devices()[0].memory_stats()`` (``peak_bytes_in_use``, ``bytes_limit``) and
                   ``torch.cuda.max_memory_allocated``.

Time: every section has a deadline (a fraction of ``--budget-s``); an item not started before it is
recorded as skipped ("time budget"). Output: ``benchmarks/results/gpu_suite-<device>.json`` (smoke:
``gpu_suite-<device>-smoke.json``) and a markdown table on stdout (also ``--markdown FILE``).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SECTIONS = (
    "memory_model",
    "env",
    "torch_compile",
    "torch_dlpack",
    "ppo",
    "stress",
    "torch_compile_cudagraphs",
    "device_memory",
)
#: cumulative fraction of the budget by which each section's LAST item must have started
DEADLINES = {
    "memory_model": 0.05,
    "env": 0.40,
    "torch_compile": 0.55,
    "torch_dlpack": 0.60,
    "ppo": 0.80,
    "stress": 0.90,
    "torch_compile_cudagraphs": 0.94,
    "device_memory": 1.0,
}
TARGETS = {  # the goals: JAX / reference
    "env_vs_cartpole_at_1m_envs": 0.5,
    "env_vs_torch_compile": 2.0,
    "ppo_vs_cartpole_ppo": 0.8,
}

FULL = dict(
    num_envs=(4096, 65536, 1 << 20, 1 << 22),
    num_assets=(2, 8, 64),
    model_envs=(4096, 65536),
    torch_envs=(65536, 1 << 20),
    dlpack_envs=(4096, 65536),
    dlpack_steps=200,
    ppo_envs=(2048, 65536),
    ppo_num_steps=64,
    ppo_updates={2048: 16, 65536: 4},
    ppo_epochs=4,
    ppo_minibatches=4,
    target_env_steps=1 << 28,  # env-steps per timed call (clipped by min/max scan length)
    min_scan=10,
    max_scan=1000,
    repeats=5,
    ppo_repeats=2,
    stress_paths=(65536, 1 << 20),
    stress_horizon=252,
    stress_env_batch=65536,
    budget_s=420.0,
    torch_backend="inductor",
)
SMOKE = dict(
    num_envs=(64,),
    num_assets=(2,),
    model_assets=(2,),
    model_envs=(64, 256),
    torch_envs=(64,),
    dlpack_envs=(64,),
    dlpack_steps=20,
    ppo_envs=(16,),
    ppo_num_steps=8,
    ppo_updates={16: 2},
    ppo_epochs=1,
    ppo_minibatches=2,
    target_env_steps=4096,
    min_scan=5,
    max_scan=20,
    repeats=2,
    ppo_repeats=1,
    stress_paths=(64,),
    stress_horizon=20,
    stress_env_batch=64,
    budget_s=300.0,
    torch_backend="eager",  # the code path, not inductor's C++ build (minutes on a loaded CPU)
)


class Budget:
    """Wall-clock budget of the suite; ``ok(section)`` = may an item of ``section`` start now."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def ok(self, section: str) -> bool:
        return self.elapsed() < DEADLINES[section] * self.seconds


# ------------------------------------------------------------------------------------ helpers
def device_info() -> dict[str, Any]:
    import jax

    d = jax.devices()[0]
    kind = getattr(d, "device_kind", d.platform)
    return {
        "platform": d.platform,
        "device_kind": kind,
        "num_devices": jax.device_count(),
        "name": slug(kind if d.platform != "cpu" else "cpu"),
    }


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


def scan_steps(num_envs: int, num_assets: int, cfg: dict) -> int:
    """Scan length of one timed call: ~``target_env_steps`` env-steps, fewer for many assets."""
    target = cfg["target_env_steps"] // max(1, num_assets // 4)
    return int(min(cfg["max_scan"], max(cfg["min_scan"], target // max(1, num_envs))))


def _err(err: BaseException) -> dict[str, str]:
    return {
        "error": f"{type(err).__name__}: {err}"[:500],
        "traceback": traceback.format_exc()[-3000:],
    }


def mem_stats() -> dict[str, int] | None:
    from jaxport.bench import device_memory_stats

    return device_memory_stats()


def free_device_bytes(fallback_gb: float) -> float:
    """Bytes a new program may use: ``bytes_limit - bytes_in_use`` of the JAX device, or
    ``fallback_gb`` (CPU, where JAX reports no limit)."""
    s = mem_stats()
    if s and s.get("bytes_limit"):
        return float(s["bytes_limit"] - s.get("bytes_in_use", 0))
    return fallback_gb * 2**30


def compiled_memory(compiled) -> dict | None:
    from env_memory import compiled_memory as cm

    return cm(compiled)


#: env-section programs kept for the Torch comparison at the same size (no second compile)
_JAX_RUNNERS: dict[tuple[int, int, int], tuple] = {}


def jax_env_runner(num_envs: int, num_assets: int, num_steps: int, num_features: int = 4):
    """``(timed_call, compiled, compile_s)`` of the ``jaxport.bench`` scan harness."""
    key = (num_envs, num_assets, num_steps)
    if key in _JAX_RUNNERS:
        return _JAX_RUNNERS.pop(key)
    import jax

    from jaxport import bench

    env, params = bench.portfolio_setup(num_assets, num_features)

    def sample_action(key, n):
        return jax.random.uniform(key, (n, num_assets), minval=-2.0, maxval=2.0)

    run, (obs, state) = bench.make_scan_runner(env, params, sample_action, num_envs, num_steps)
    return _compiled_call(run, obs, state)


def cartpole_runner(num_envs: int, num_steps: int):
    import gymnax
    import jax

    from jaxport import bench

    env, params = gymnax.make("CartPole-v1")

    def sample_action(key, n):
        return jax.random.randint(key, (n,), 0, env.num_actions)

    run, (obs, state) = bench.make_scan_runner(env, params, sample_action, num_envs, num_steps)
    return _compiled_call(run, obs, state)


def _compiled_call(run, obs, state):
    import jax

    keys = [jax.random.key(i) for i in range(64)]  # made up front: no host transfer per call
    t0 = time.perf_counter()
    compiled = run.lower(keys[0], obs, state).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(keys[0], obs, state))  # warm-up

    def call(i):
        jax.block_until_ready(compiled(keys[(i + 1) % len(keys)], obs, state))

    return call, compiled, compile_s


def interleaved(fns: dict[str, Callable[[int], Any]], repeats: int) -> dict[str, dict]:
    from common import interleaved_best

    return interleaved_best(fns, repeats)


# ------------------------------------------------------------------------------------ sections
def section_memory_model(cfg, budget, out, save):
    from env_memory import fit_per_env, lower_kind

    points, fits = [], {}
    out.update(points=points, fits=fits, kind="scan", note="compile-only analysis, see env_memory")
    for n in cfg.get("model_assets", cfg["num_assets"]):
        group = []
        for b in cfg["model_envs"]:
            if not budget.ok("memory_model"):
                out.setdefault("skipped", []).append(
                    {"num_envs": b, "num_assets": n, "reason": "time budget"}
                )
                continue
            steps = scan_steps(b, n, cfg)
            mem = compiled_memory(lower_kind("scan", b, n, scan_steps=steps).compile())
            p = {"num_envs": b, "num_assets": n, **(mem or {})}
            group.append(p)
            points.append(p)
            save()
        fit = fit_per_env(group)
        if fit:
            fits[str(n)] = fit


def section_env(cfg, budget, out, save, model: dict):
    rows, skipped = [], []
    out.update(rows=rows, skipped=skipped)
    fits = (model or {}).get("fits", {})
    for b in cfg["num_envs"]:
        cart = None  # one CartPole program per num_envs (its scan length: that of 2 assets)
        for n in cfg["num_assets"]:
            base = {"num_envs": b, "num_assets": n}
            if not budget.ok("env"):
                skipped.append({**base, "reason": "time budget"})
                save()
                continue
            fit = fits.get(str(n))
            if fit:
                # the harness plus the batched reset that builds its input state (x1.5 on the
                # per-env part) and CartPole next to it
                need = fit["fixed_bytes"] + 1.5 * fit["bytes_per_env"] * b
                free = 0.85 * free_device_bytes(cfg["cpu_memory_gb"])
                base["est_bytes"] = int(need)
                if need > free:
                    skipped.append(
                        {
                            **base,
                            "reason": f"estimated {need / 2**30:.1f} GiB > "
                            f"{free / 2**30:.1f} GiB free",
                        }
                    )
                    save()
                    continue
            row = dict(base)
            try:
                steps = scan_steps(b, n, cfg)
                row["num_steps"] = steps
                call, compiled, row["compile_s"] = jax_env_runner(b, n, steps)
                row["memory"] = compiled_memory(compiled)
                if n == 2 and b in cfg["torch_envs"]:
                    _JAX_RUNNERS[(b, n, steps)] = (call, compiled, row["compile_s"])
                if cart is None:
                    c_steps = scan_steps(b, 2, cfg)
                    c_call, _, c_compile = cartpole_runner(b, c_steps)
                    cart = (c_call, c_steps)
                row["cartpole_num_steps"] = cart[1]
                fns = {"jax": call, "cartpole": cart[0]}
                t = interleaved(fns, cfg["repeats"])
                for name, tt in t.items():
                    k = b * (steps if name == "jax" else cart[1])
                    row[f"{name}_steps_per_s"] = k / tt["best_s"]
                    row[f"{name}_median_steps_per_s"] = k / tt["median_s"]
                row["vs_cartpole"] = row["jax_steps_per_s"] / row["cartpole_steps_per_s"]
                if row["memory"]:
                    row["bytes_per_env"] = row["memory"]["peak_bytes"] / b
                row["device_memory"] = mem_stats()
                del fns, call, compiled
            except Exception as err:  # noqa: BLE001 - one size failing must not stop the rest
                row.update(_err(err))
            rows.append(row)
            _log(_env_line(row))
            save()
        del cart


def _torch_device(smoke: bool):
    """``(device, reason)``: CUDA when both Torch and JAX are on a GPU; CPU in smoke mode."""
    import jax
    import torch

    if torch.cuda.is_available() and jax.default_backend() == "gpu":
        return "cuda", None
    if smoke:
        return "cpu", None
    return None, (
        f"torch.cuda.is_available()={torch.cuda.is_available()}, "
        f"jax backend {jax.default_backend()}"
    )


def torch_reference_runner(num_envs, num_assets, num_steps, device, mode, backend):
    """Timed call of the batched Torch step (``benchmarks/torch_reference.py``): ``num_steps``
    calls of ``body`` (action draw + step + return sum) on ``device``; ``mode=None`` = eager."""
    import torch

    from jaxport.bench import synthetic_arrays
    from torch_reference import TorchPortfolioReference, portfolio_step

    prices, feats = synthetic_arrays(num_assets)
    ref = TorchPortfolioReference(prices, feats, num_envs=num_envs, device=device)
    consts = ref.consts

    def body(state, ret):
        action = torch.rand(num_envs, num_assets, device=device) * 4.0 - 2.0
        obs, state, reward, _, _ = portfolio_step(state, action, consts)
        return obs, state, ret + reward

    if mode is not None:
        torch._dynamo.reset()
        kwargs = {"backend": backend, "fullgraph": True, "dynamic": False}
        if mode != "default" and backend == "inductor":
            kwargs["mode"] = mode
        fn = torch.compile(body, **kwargs)
    else:
        fn = body
    ref.reset()
    state0 = ref.state
    ret0 = torch.zeros(num_envs, device=device)
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    graphs = mode == "reduce-overhead" and backend == "inductor"

    def run(i):
        state, ret = state0, ret0
        with torch.no_grad():
            for _ in range(num_steps):
                if graphs:  # each call's outputs feed the next: a new CUDA-graph step each time
                    torch.compiler.cudagraph_mark_step_begin()
                obs, state, ret = fn(state, ret)
        sync()
        return obs

    t0 = time.perf_counter()
    run(-1)  # compile + warm-up
    run(-2)
    return run, time.perf_counter() - t0


def section_torch_compile(
    cfg, budget, out, save, smoke, sizes=None, modes=("default",), section="torch_compile"
):
    try:
        import torch
    except ImportError as err:
        out.update(status="skipped", reason=f"torch not installed ({err})")
        return
    device, why = _torch_device(smoke)
    if device is None:
        out.update(status="skipped", reason=f"no CUDA for Torch and JAX: {why}")
        return
    rows = []
    out.update(rows=rows, device=device, backend=cfg["torch_backend"], torch=torch.__version__)
    n = 2
    for b in sizes or cfg["torch_envs"]:
        for mode in modes:
            row = {"num_envs": b, "num_assets": n, "mode": mode}
            if not budget.ok(section):
                row["skipped"] = "time budget"
                rows.append(row)
                save()
                continue
            try:
                steps = scan_steps(b, n, cfg)
                row["num_steps"] = steps
                jax_call, _, _ = jax_env_runner(b, n, steps)
                t_run, row["torch_compile_s"] = torch_reference_runner(
                    b, n, steps, device, mode, cfg["torch_backend"]
                )
                fns = {"jax": jax_call, "torch_compile": t_run}
                if mode == "default":
                    fns["torch_eager"], _ = torch_reference_runner(b, n, steps, device, None, None)
                t = interleaved(fns, cfg["repeats"])
                for name, tt in t.items():
                    row[f"{name}_steps_per_s"] = b * steps / tt["best_s"]
                for ref in ("torch_compile", "torch_eager"):
                    if f"{ref}_steps_per_s" in row:
                        row[f"vs_{ref}"] = row["jax_steps_per_s"] / row[f"{ref}_steps_per_s"]
                del fns, jax_call, t_run
            except Exception as err:  # noqa: BLE001
                row.update(_err(err))
            rows.append(row)
            _log(f"torch_compile {row}")
            save()


def section_torch_dlpack(cfg, budget, out, save, smoke):
    try:
        import torch
    except ImportError as err:
        out.update(status="skipped", reason=f"torch not installed ({err})")
        return
    device, why = _torch_device(smoke)
    if device is None:
        out.update(status="skipped", reason=f"no CUDA for Torch and JAX: {why}")
        return
    import jax

    from jaxport.bench import synthetic_arrays
    from torch_compat.env import TorchPortfolioVectorEnv

    rows = []
    out.update(rows=rows, device=device)
    n = 2
    prices, feats = synthetic_arrays(n)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for b in cfg["dlpack_envs"]:
        row = {"num_envs": b, "num_assets": n}
        if not budget.ok("torch_dlpack"):
            row["skipped"] = "time budget"
            rows.append(row)
            save()
            continue
        try:
            venv = TorchPortfolioVectorEnv(prices, feats, num_envs=b, device=device)
            venv.reset(seed=0)
            actions = torch.full((b, n), 0.25, device=device)
            raw = venv.unwrapped
            obs, reward, *_ = venv.step(actions)
            row["obs_device"] = str(obs.device)
            row["obs_zero_copy"] = obs.data_ptr() == raw.last_obs.unsafe_buffer_pointer()
            last_action = raw.last_action
            row["action_transfer"] = venv.action_transfer
            row["action_zero_copy"] = bool(
                hasattr(last_action, "unsafe_buffer_pointer")
                and last_action.unsafe_buffer_pointer() == actions.data_ptr()
            )
            steps = cfg["dlpack_steps"]

            def run(i, venv=venv, actions=actions, raw=raw, steps=steps):
                for _ in range(steps):
                    venv.step(actions)
                jax.block_until_ready(raw.last_obs)
                sync()

            run(-1)
            t = interleaved({"dlpack": run}, cfg["repeats"])["dlpack"]
            row["num_steps"] = steps
            row["steps_per_s"] = b * steps / t["best_s"]
            row["us_per_step_call"] = 1e6 * t["best_s"] / steps
            venv.close()
            del venv
        except Exception as err:  # noqa: BLE001
            row.update(_err(err))
        rows.append(row)
        _log(f"torch_dlpack {row}")
        save()


def section_ppo(cfg, budget, out, save):
    import jax

    import ppo_throughput as pt

    rows = []
    out.update(
        rows=rows, settings={k: cfg[k] for k in ("ppo_num_steps", "ppo_epochs", "ppo_minibatches")}
    )
    for b in cfg["ppo_envs"]:
        row = {"num_envs": b}
        if not budget.ok("ppo"):
            row["skipped"] = "time budget"
            rows.append(row)
            save()
            continue
        try:
            updates = cfg["ppo_updates"][b]
            args = argparse.Namespace(
                num_assets=2,
                num_features=4,
                num_days=2768,
                episode_length=252,
                num_steps=cfg["ppo_num_steps"],
                total_steps=b * cfg["ppo_num_steps"] * updates,
                update_epochs=cfg["ppo_epochs"],
                num_minibatches=cfg["ppo_minibatches"],
            )
            env, params = pt.portfolio_setup(args)
            pcfg = pt.ppo_config(args, b)
            train = pt.make_train(pcfg, env, params)
            ref_train = pt.ref.make_train(pt.ref_config(args, b))
            key = jax.random.PRNGKey(0)
            port_c, row["compile_s"] = pt.compile_fn(lambda k, p: train(k, p), (key, params))
            ref_c, row["reference_compile_s"] = pt.compile_fn(ref_train, (key,))
            row["memory"] = compiled_memory(port_c)
            row["reference_memory"] = compiled_memory(ref_c)
            steps = pcfg.num_updates * pcfg.batch_size
            row.update(num_updates=pcfg.num_updates, env_steps=steps)
            t = interleaved(
                {
                    "reference": lambda i: jax.block_until_ready(ref_c(key)),
                    "portfolio": lambda i: jax.block_until_ready(port_c(key, params)),
                },
                cfg["ppo_repeats"],
            )
            row["env_steps_per_s"] = steps / t["portfolio"]["best_s"]
            row["reference_env_steps_per_s"] = steps / t["reference"]["best_s"]
            row["ratio"] = row["env_steps_per_s"] / row["reference_env_steps_per_s"]
            row["device_memory"] = mem_stats()
        except Exception as err:  # noqa: BLE001
            row.update(_err(err))
        rows.append(row)
        _log(
            f"ppo {row.get('num_envs')} envs: {row.get('env_steps_per_s', float('nan')):,.0f}"
            f" vs {row.get('reference_env_steps_per_s', float('nan')):,.0f} steps/s"
            f" {row.get('error', '')}"
        )
        save()


def section_stress(cfg, budget, out, save):
    """``jaxport stress``'s rollout (benchmarks/stress_throughput.py) at >= 1M bootstrapped paths:
    path-steps/s of 1/N and of a (synthetic, untrained) universe policy, next to the bare env."""
    import stress_throughput as st
    from jaxport.bench import portfolio_throughput

    basket, policies = st.synthetic_basket()
    env = basket.pair.env
    bare = portfolio_throughput(
        cfg["stress_env_batch"], env.num_assets, repeats=2, num_features=env.num_features
    )
    rows = []
    out.update(rows=rows, env_steps_per_s=bare["steps_per_s"], num_features=env.num_features)
    for paths in cfg["stress_paths"]:
        for name, policy in policies.items():
            row = {"policy": name, "paths": paths}
            if not budget.ok("stress"):
                row["skipped"] = "time budget"
            else:
                try:
                    row.update(
                        st.time_policy(basket, policy, paths, cfg["stress_horizon"], None, 1)
                    )
                    row["vs_env"] = row["path_steps_per_s"] / bare["steps_per_s"]
                except Exception as err:  # noqa: BLE001
                    row.update(_err(err))
            rows.append(row)
            _log(
                f"stress {name} {paths} paths: "
                f"{row.get('path_steps_per_s', float('nan')):,.0f} path-steps/s"
            )
            save()


def section_device_memory(out):
    out["jax"] = mem_stats()
    try:
        import torch

        if torch.cuda.is_available():
            out["torch_cuda_max_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
    except ImportError:
        pass


def targets(result: dict) -> list[dict]:
    """The issue's goals, checked on the measured rows (``met`` None when not measured)."""
    s = result["sections"]
    out = []
    env_rows = [r for r in s.get("env", {}).get("rows", []) if "vs_cartpole" in r]
    big = [r for r in env_rows if r["num_envs"] >= (1 << 20)]
    need = TARGETS["env_vs_cartpole_at_1m_envs"]
    out.append(
        {
            "goal": f"env >= {need}x CartPole at >= 1M envs",
            "ratios": {f"{r['num_envs']}x{r['num_assets']}": r["vs_cartpole"] for r in big},
            "met": (
                all(r["vs_cartpole"] >= need for r in big if r["num_assets"] == 2) if big else None
            ),
        }
    )
    tc = [r for r in s.get("torch_compile", {}).get("rows", []) if "vs_torch_compile" in r]
    need = TARGETS["env_vs_torch_compile"]
    out.append(
        {
            "goal": f"env >= {need}x batched torch.compile",
            "ratios": {str(r["num_envs"]): r["vs_torch_compile"] for r in tc},
            "met": all(r["vs_torch_compile"] >= need for r in tc) if tc else None,
        }
    )
    pp = [r for r in s.get("ppo", {}).get("rows", []) if "ratio" in r]
    need = TARGETS["ppo_vs_cartpole_ppo"]
    out.append(
        {
            "goal": f"PPO >= {need}x CartPole PPO",
            "ratios": {str(r["num_envs"]): r["ratio"] for r in pp},
            "met": all(r["ratio"] >= need for r in pp) if pp else None,
        }
    )
    return out


# ------------------------------------------------------------------------------------ report
def _m(x, scale=1e6, fmt="{:.2f}"):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x / scale)


def _x(x):
    return "-" if x is None else f"{x:.2f}x"


def _envs(b: int) -> str:
    for div, suffix in ((1 << 20, "M"), (1024, "k")):
        if b >= div and b % div == 0:
            return f"{b // div}{suffix}"
    return f"{b:,}"


def markdown(result: dict) -> str:
    """Markdown tables of a suite result (the README's GPU block is generated from this)."""
    s = result["sections"]
    dev = result.get("device", {})
    lines = [
        f"Device: {dev.get('device_kind', '?')} ({dev.get('platform', '?')}), JAX "
        f"{result.get('machine', {}).get('jax', '?')}, suite wall {result.get('wall_s', 0):.0f}"
        f" s{' (SMOKE: tiny sizes, not a measurement)' if result.get('smoke') else ''}.",
        "",
    ]
    env = s.get("env", {})
    lines += [
        "| envs | assets | jaxport M steps/s | CartPole M steps/s | ratio | bytes/env |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in env.get("rows", []):
        if "error" in r:
            lines.append(
                f"| {_envs(r['num_envs'])} | {r['num_assets']} | error: {r['error'][:60]} | | | |"
            )
            continue
        lines.append(
            f"| {_envs(r['num_envs'])} | {r['num_assets']} | "
            f"{_m(r.get('jax_steps_per_s'))} | {_m(r.get('cartpole_steps_per_s'))} | "
            f"{_x(r.get('vs_cartpole'))} | {_m(r.get('bytes_per_env'), 1, '{:,.0f}')} |"
        )
    for r in env.get("skipped", []):
        lines.append(
            f"| {_envs(r['num_envs'])} | {r['num_assets']} | skipped: {r['reason']} | | | |"
        )
    if env.get("status") not in (None, "ok"):
        lines.append(
            f"\nenv section: {env.get('status')} {env.get('error', env.get('reason', ''))}"
        )
    lines.append("")
    lines += [
        "| Torch comparison (2 assets) | envs | jaxport M/s | Torch M/s | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("torch_compile", "torch_compile_cudagraphs"):
        sec = s.get(name, {})
        if sec.get("status") != "ok" or not sec.get("rows"):
            lines.append(
                f"| {name} | | | {sec.get('status', 'not run')}: "
                f"{sec.get('reason', sec.get('error', ''))[:60]} | |"
            )
            continue
        for r in sec["rows"]:
            for ref in ("torch_compile", "torch_eager"):
                if f"{ref}_steps_per_s" in r:
                    label = (
                        f"{ref.replace('_', '.')} ({r['mode']})"
                        if ref == "torch_compile"
                        else "Torch eager"
                    )
                    lines.append(
                        f"| {label} | {_envs(r['num_envs'])} | "
                        f"{_m(r.get('jax_steps_per_s'))} | "
                        f"{_m(r.get(f'{ref}_steps_per_s'))} | {_x(r.get(f'vs_{ref}'))} |"
                    )
            if "error" in r or "skipped" in r:
                lines.append(
                    f"| {name} | {_envs(r['num_envs'])} | | "
                    f"{r.get('error', r.get('skipped', ''))[:60]} | |"
                )
    dl = s.get("torch_dlpack", {})
    lines.append("")
    if dl.get("status") == "ok" and dl.get("rows"):
        lines += [
            "| DLPack Torch env (TorchPortfolioVectorEnv) | envs | M steps/s | µs per step() "
            "| obs zero-copy | action zero-copy |",
            "|---|---:|---:|---:|---|---|",
        ]
        for r in dl["rows"]:
            lines.append(
                f"| {dl.get('device')} | {_envs(r['num_envs'])} | "
                f"{_m(r.get('steps_per_s'))} | {_m(r.get('us_per_step_call'), 1, '{:.0f}')}"
                f" | {r.get('obs_zero_copy', '-')} | {r.get('action_zero_copy', '-')} |"
            )
    else:
        lines.append(
            f"DLPack Torch env: {dl.get('status', 'not run')} "
            f"{dl.get('reason', dl.get('error', ''))}"
        )
    pp = s.get("ppo", {})
    lines += [
        "",
        "| PPO envs | jaxport env-steps/s | CartPole PPO env-steps/s | ratio |",
        "|---:|---:|---:|---:|",
    ]
    for r in pp.get("rows", []):
        if "env_steps_per_s" in r:
            lines.append(
                f"| {r['num_envs']:,} | {_m(r['env_steps_per_s'], 1e6, '{:.2f} M')} | "
                f"{_m(r['reference_env_steps_per_s'], 1e6, '{:.2f} M')} | "
                f"{_x(r['ratio'])} |"
            )
        else:
            lines.append(f"| {r['num_envs']:,} | {r.get('error', r.get('skipped', ''))[:60]} | | |")
    st = s.get("stress", {})
    lines += [
        "",
        f"| stress policy | paths | path-steps/s | vs bare env "
        f"({_m(st.get('env_steps_per_s'), 1e6, '{:.1f} M')} steps/s) | first call s |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in st.get("rows", []):
        if "path_steps_per_s" in r:
            lines.append(
                f"| {r['policy']} | {_envs(r['paths'])} | "
                f"{_m(r['path_steps_per_s'], 1e6, '{:.2f} M')} | {_x(r.get('vs_env'))} | "
                f"{r['first_call_s']:.1f} |"
            )
        else:
            lines.append(
                f"| {r['policy']} | {_envs(r['paths'])} | "
                f"{r.get('error', r.get('skipped', ''))[:60]} | | |"
            )
    mem = (s.get("device_memory", {}) or {}).get("jax") or {}
    if mem.get("peak_bytes_in_use"):
        lines.append(
            f"\nPeak device memory (JAX): {mem['peak_bytes_in_use'] / 2**30:.2f} GiB of "
            f"{mem.get('bytes_limit', 0) / 2**30:.1f} GiB."
        )
    for t in result.get("targets", []):
        met = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        ratios = ", ".join(f"{k}: {v:.2f}x" for k, v in t["ratios"].items())
        lines.append(f"- goal {t['goal']}: {met} ({ratios})")
    return "\n".join(lines)


def _env_line(r: dict) -> str:
    if "error" in r:
        return f"env {r['num_envs']} x {r['num_assets']}: ERROR {r['error']}"
    return (
        f"env {r['num_envs']:>8} x {r['num_assets']:>2}: jax {r['jax_steps_per_s'] / 1e6:9.2f} "
        f"M/s, CartPole {r['cartpole_steps_per_s'] / 1e6:9.2f} M/s ({r['vs_cartpole']:.2f}x)"
    )


def _log(msg: str) -> None:
    print(f"[gpu_suite {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------------ driver
def run_suite(args) -> dict:
    cfg = dict(SMOKE if args.smoke else FULL)
    cfg["cpu_memory_gb"] = args.cpu_memory_gb
    if args.budget_s:
        cfg["budget_s"] = args.budget_s
    from common import machine_info, write_results

    dev = device_info()
    if dev["platform"] == "cpu" and not (args.smoke or args.allow_cpu):
        print(
            "error: gpu_suite: JAX sees no accelerator (backend cpu); use --smoke, or "
            "--allow-cpu to run the full sizes on CPU (hours)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    out_path = (
        Path(args.out)
        if args.out
        else (HERE / "results" / f"gpu_suite-{dev['name']}{'-smoke' if args.smoke else ''}.json")
    )
    budget = Budget(cfg["budget_s"])
    wanted = [s.strip() for s in args.sections.split(",")] if args.sections else list(SECTIONS)
    result: dict[str, Any] = {
        "suite": "gpu_suite",
        "schema": 1,
        "smoke": bool(args.smoke),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": dev,
        "machine": machine_info(),
        "budget_s": cfg["budget_s"],
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
        "sections": {name: {"status": "pending"} for name in SECTIONS},
    }

    def save():
        result["wall_s"] = budget.elapsed()
        result["targets"] = targets(result)
        write_results("gpu_suite", result, out_path)

    save()
    _log(f"device {dev}; writing {out_path}")
    for name in SECTIONS:
        sec = result["sections"][name]
        if name not in wanted:
            sec.update(status="skipped", reason="not in --sections")
            continue
        if name == "torch_compile_cudagraphs" and (args.smoke or not _cuda()):
            sec.update(status="skipped", reason="CUDA graphs need CUDA (not run in smoke mode)")
            continue
        _log(f"section {name} (elapsed {budget.elapsed():.0f} s of {cfg['budget_s']:.0f})")
        sec["status"] = "running"
        t0 = time.perf_counter()
        try:
            if name == "memory_model":
                section_memory_model(cfg, budget, sec, save)
            elif name == "env":
                section_env(cfg, budget, sec, save, result["sections"]["memory_model"])
            elif name == "torch_compile":
                section_torch_compile(cfg, budget, sec, save, args.smoke)
            elif name == "torch_dlpack":
                section_torch_dlpack(cfg, budget, sec, save, args.smoke)
            elif name == "ppo":
                section_ppo(cfg, budget, sec, save)
            elif name == "stress":
                section_stress(cfg, budget, sec, save)
            elif name == "torch_compile_cudagraphs":
                section_torch_compile(
                    cfg,
                    budget,
                    sec,
                    save,
                    args.smoke,
                    sizes=cfg["torch_envs"][-1:],
                    modes=("reduce-overhead",),
                    section=name,
                )
            elif name == "device_memory":
                section_device_memory(sec)
            if sec["status"] == "running":
                sec["status"] = "ok"
        except KeyboardInterrupt:
            sec.update(status="interrupted")
            sec["wall_s"] = time.perf_counter() - t0
            save()
            raise
        except BaseException as err:  # noqa: BLE001 - ONE shot on a GPU: record, go on
            sec.update(status="error", **_err(err))
        sec["wall_s"] = time.perf_counter() - t0
        save()
    result["finished"] = True
    save()
    result["out"] = str(out_path)
    return result


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def _sigterm(signum, frame):  # timeout(1) / a job manager: finish like Ctrl-C (JSON is written)
    raise KeyboardInterrupt


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes on any backend (CPU: < 60 s)")
    p.add_argument(
        "--out", default=None, help="JSON path (default results/gpu_suite-<device>.json)"
    )
    p.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="wall budget of the sections (default 420; smoke 300)",
    )
    p.add_argument("--sections", default=None, help=f"comma subset of {','.join(SECTIONS)}")
    p.add_argument("--allow-cpu", action="store_true", help="full sizes even without a GPU")
    p.add_argument(
        "--cpu-memory-gb",
        type=float,
        default=8.0,
        help="memory budget for size skipping where JAX reports no device limit",
    )
    p.add_argument(
        "--markdown",
        default=None,
        metavar="JSON",
        help="only print the markdown tables of an existing result file",
    )
    args = p.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    if args.sections:
        bad = sorted(set(s.strip() for s in args.sections.split(",")) - set(SECTIONS))
        if bad:
            p.error(f"--sections: unknown {bad}; choose from {','.join(SECTIONS)}")
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        result = run_suite(args)
    except KeyboardInterrupt:
        print("interrupted: partial results are in the JSON", file=sys.stderr)
        return 130
    print()
    print(markdown(result))
    print(f"\nwrote {result['out']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
