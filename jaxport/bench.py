"""Env throughput benchmark core: ``PortfolioEnv`` steps/s under jit + vmap + scan, with gymnax
CartPole-v1 in the same harness as a yardstick, plus timing and memory helpers.

``jaxport bench`` calls :func:`run_default_bench` (a small default set) and prints
:func:`format_table`; ``benchmarks/env_throughput.py`` builds the full sweep and the Torch
references on top of the same harness. No torch import here.

Harness (identical for every JAX env, compiled once per shape, timed after a warm-up call with
``block_until_ready``): ``lax.scan`` over ``num_steps`` of { split the step key; draw a batch of
random actions with ONE key; ``vmap(env.step)`` (gymnax auto-reset step) with ``num_envs`` keys from
one ``split``; accumulate rewards }. The final obs, state and return sums are outputs, so XLA cannot
drop any part of the step. Throughput = ``num_envs * num_steps / best wall time`` (env-steps/s).
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxport.xla_options import tuned_jit

#: env-steps per timed call are ~``TARGET_ENV_STEPS`` (``num_steps`` clipped to [50, 2000]).
TARGET_ENV_STEPS = 2_000_000
DEFAULT_NUM_FEATURES = 4
DEFAULT_NUM_DAYS = 2768  # the shipped daily data: 2013-2023


def steps_for(num_envs: int, target: int = TARGET_ENV_STEPS, lo: int = 50, hi: int = 2000) -> int:
    """Scan length so one timed call does about ``target`` env-steps (small batches: more steps)."""
    return int(min(hi, max(lo, target // max(1, num_envs))))


# ------------------------------------------------------------------------------------ timing
def best_of(fn: Callable[[int], Any], repeats: int = 5, warmup: int = 1) -> dict[str, Any]:
    """Time ``fn(i)`` (which must block until its work is done) ``repeats`` times after ``warmup``
    calls. Returns best/median wall seconds and best process CPU seconds (all threads)."""
    for i in range(warmup):
        fn(-1 - i)
    walls, cpus = [], []
    for i in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn(i)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return {
        "best_s": min(walls),
        "median_s": statistics.median(walls),
        "cpu_best_s": min(cpus),
        "times_s": walls,
    }


# ------------------------------------------------------------------------------------ memory
def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB (``ru_maxrss``: KiB on Linux, B on
    macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if platform.system() == "Darwin" else rss / 1024.0


def current_rss_mb() -> float | None:
    """Current RSS in MiB via psutil (``None`` if psutil is not installed)."""
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss / (1024.0 * 1024.0)


def device_memory_stats() -> dict[str, Any] | None:
    """``jax.devices()[0].memory_stats()`` (bytes in use / peak on GPU/TPU; ``None`` on CPU)."""
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return None
    if not stats:
        return None
    keep = ("bytes_in_use", "peak_bytes_in_use", "bytes_limit", "largest_alloc_size")
    return {k: int(stats[k]) for k in keep if k in stats}


def machine_info() -> dict[str, Any]:
    """Where the numbers come from: CPU count, load, backend, versions, XLA flags, and when
    (``measured_at``, UTC) on which commit (``git_commit``)."""
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_avg_1_5_15": load,
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "jax": jax.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": _source_commit(),
    }


def _source_commit() -> str | None:
    """The git commit of the jaxport source tree measured (None outside a git checkout)."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


# ------------------------------------------------------------------------------------ data
def synthetic_arrays(
    num_assets: int,
    num_days: int = DEFAULT_NUM_DAYS,
    num_features: int = DEFAULT_NUM_FEATURES,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Geometric-random-walk closes ``[T, N]`` (2 %/day vol, float32) and N(0,1) features
    ``[T, N, F]``."""
    rng = np.random.default_rng(seed)
    log_ret = rng.normal(0.0003, 0.02, size=(num_days, num_assets))
    prices = (100.0 * np.exp(np.cumsum(log_ret, axis=0))).astype(np.float32)
    features = rng.standard_normal((num_days, num_assets, num_features)).astype(np.float32)
    return prices, features


def portfolio_setup(
    num_assets: int,
    num_features: int = DEFAULT_NUM_FEATURES,
    num_days: int = DEFAULT_NUM_DAYS,
    seed: int = 0,
    **env_kwargs,
):
    """``(PortfolioEnv, EnvParams)`` on :func:`synthetic_arrays` with the default trading terms."""
    from jaxport.env import EnvParams, PortfolioEnv

    prices, features = synthetic_arrays(num_assets, num_days, num_features, seed)
    env = PortfolioEnv(num_assets=num_assets, num_features=num_features, **env_kwargs)
    params = EnvParams.from_arrays(prices, features, window=env.window)
    return env, params


# ------------------------------------------------------------------------------------ harness
def make_scan_runner(
    env,
    params,
    sample_action: Callable,
    num_envs: int,
    num_steps: int,
    compiler_options: dict[str, Any] | None = None,
):
    """``(run, init)``: ``run(key, obs, state) -> (obs, state, return_sums)`` jitted, and ``init``
    = a batched ``(obs, state)`` from ``vmap(env.reset)``. See the module docstring.

    ``run`` is compiled with jaxport's per-compile XLA options (:mod:`jaxport.xla_options`), or
    exactly with ``compiler_options`` when given (``{}``: XLA's defaults, for A/B timings)."""
    vstep = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    vreset = tuned_jit(jax.vmap(env.reset, in_axes=(0, None)))
    jit = (
        tuned_jit
        if compiler_options is None
        else partial(jax.jit, compiler_options=compiler_options or None)
    )

    @jit
    def run(key, obs, state):
        def body(carry, k):
            obs, state, ret = carry
            k_act, k_step = jax.random.split(k)
            action = sample_action(k_act, num_envs)
            obs, state, reward, _, _, _ = vstep(
                jax.random.split(k_step, num_envs), state, action, params
            )
            return (obs, state, ret + reward), None

        ret0 = jnp.zeros((num_envs,), jnp.float32)
        (obs, state, ret), _ = jax.lax.scan(
            body, (obs, state, ret0), jax.random.split(key, num_steps)
        )
        return obs, state, ret

    init = vreset(jax.random.split(jax.random.key(12345), num_envs), params)
    return run, init


def time_scan_runner(run, init, num_envs: int, num_steps: int, repeats: int = 5) -> dict[str, Any]:
    """Compile (timed separately), then :func:`best_of` over calls with fresh keys."""
    obs, state = init
    t0 = time.perf_counter()
    jax.block_until_ready(run(jax.random.key(0), obs, state))
    compile_s = time.perf_counter() - t0
    timing = best_of(
        lambda i: jax.block_until_ready(run(jax.random.key(i + 7), obs, state)), repeats, warmup=1
    )
    steps = num_envs * num_steps
    return {
        "steps_per_s": steps / timing["best_s"],
        "median_steps_per_s": steps / timing["median_s"],
        "cpu_us_per_env_step": 1e6 * timing["cpu_best_s"] / steps,
        "num_steps": num_steps,
        "compile_s": compile_s,
        "best_s": timing["best_s"],
    }


def portfolio_throughput(
    num_envs: int,
    num_assets: int,
    num_steps: int | None = None,
    repeats: int = 5,
    num_features: int = DEFAULT_NUM_FEATURES,
    **env_kwargs,
) -> dict[str, Any]:
    """env-steps/s of ``PortfolioEnv`` (random exposures in [-2, 2] per asset; the env caps
    leverage)."""
    env, params = portfolio_setup(num_assets, num_features, **env_kwargs)
    num_steps = num_steps or steps_for(num_envs)
    low = 0.0 if env.long_only else -2.0

    def sample_action(key, n):
        return jax.random.uniform(key, (n, num_assets), minval=low, maxval=2.0)

    run, init = make_scan_runner(env, params, sample_action, num_envs, num_steps)
    out = time_scan_runner(run, init, num_envs, num_steps, repeats)
    out.update(impl="jax", num_envs=num_envs, num_assets=num_assets, num_features=num_features)
    return out


def gymnax_throughput(
    num_envs: int, env_name: str = "CartPole-v1", num_steps: int | None = None, repeats: int = 5
) -> dict[str, Any]:
    """env-steps/s of a gymnax env (random discrete actions) in the same harness."""
    import gymnax

    env, params = gymnax.make(env_name)
    num_steps = num_steps or steps_for(num_envs)
    n_actions = env.num_actions

    def sample_action(key, n):
        return jax.random.randint(key, (n,), 0, n_actions)

    run, init = make_scan_runner(env, params, sample_action, num_envs, num_steps)
    out = time_scan_runner(run, init, num_envs, num_steps, repeats)
    out.update(impl=f"gymnax {env_name}", num_envs=num_envs)
    return out


# ------------------------------------------------------------------------------------ default set
def run_default_bench(
    num_envs=(64, 1024, 4096),
    num_assets=(2, 8),
    repeats: int = 5,
    cartpole: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """What ``jaxport bench`` runs: PortfolioEnv steps/s over a small grid and CartPole-v1 at the
    same batch sizes (ratio ``vs_cartpole`` = portfolio / CartPole). About a minute on 2 CPU
    cores."""
    rows = []
    cart = {}
    if cartpole:
        for b in num_envs:
            cart[b] = gymnax_throughput(b, repeats=repeats)
            rows.append(cart[b])
            if log:
                log(table_row(cart[b]))
    for n in num_assets:
        for b in num_envs:
            r = portfolio_throughput(b, n, repeats=repeats)
            if b in cart:
                r["vs_cartpole"] = r["steps_per_s"] / cart[b]["steps_per_s"]
            rows.append(r)
            if log:
                log(table_row(r))
    return {
        "machine": machine_info(),
        "rows": rows,
        "peak_rss_mb": peak_rss_mb(),
        "device_memory": device_memory_stats(),
    }


def table_header() -> list[str]:
    """The header lines of :func:`format_table` (``jaxport bench`` prints them first)."""
    head = (
        f"{'impl':<22} {'envs':>7} {'assets':>6} {'M steps/s':>10} {'cpu ns/step':>11}"
        f" {'vs CartPole':>11}"
    )
    return [head, "-" * len(head)]


def table_row(r: dict) -> str:
    """One row of :func:`format_table` (``jaxport bench`` prints it as soon as it is measured)."""
    ratio = f"{r['vs_cartpole']:.2f}x" if "vs_cartpole" in r else ""
    return (
        f"{r['impl']:<22} {r['num_envs']:>7} {r.get('num_assets', '-')!s:>6}"
        f" {r['steps_per_s'] / 1e6:>10.2f}"
        f" {1e3 * r['cpu_us_per_env_step']:>11.1f} {ratio:>11}"
    )


def table_footer(result: dict[str, Any]) -> str:
    """The machine line under the table."""
    m = result["machine"]
    return (
        f"backend={m['jax_backend']} cpus={m['cpu_count']} load={m['load_avg_1_5_15']} "
        f"peak RSS {result['peak_rss_mb']:.0f} MiB"
    )


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table of :func:`run_default_bench` rows (each row once)."""
    lines = table_header() + [table_row(r) for r in result["rows"]]
    return "\n".join(lines + [table_footer(result)])
