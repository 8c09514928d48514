"""Rollouts and PPO sharded over devices (and hosts) along the env batch axis, with jax.sharding.

One mesh axis, ``"envs"``, over all devices (``jax.devices()``: every local device, and every
device of every process after :func:`initialize_distributed`). The env batch axis of observations,
env states and trajectories is split over it with ``NamedSharding(mesh, P("envs"))``; market data,
network parameters and keys are replicated. The programs are the SAME jitted programs as the
single-device ones (``jaxport.env.rollout``, ``jaxport.rl.ppo.make_train``) with input/output
shardings and sharding constraints; XLA's GSPMD partitioner splits the work and inserts the
collectives (e.g. the all-reduce of PPO's minibatch gradients). Random keys are split with JAX's
partitionable threefry, so a sharded run gives the same numbers as the unsharded one for the same
key (bit-for-bit for rollouts; up to float reduction order for PPO's cross-device means).

Multi-host: call :func:`initialize_distributed` first in every process (the standard
``jax.distributed.initialize`` path: one coordinator address, a process count and an id per
process; or the cluster's auto-detection under SLURM / Open MPI / Kubernetes), then build the mesh
and call the same functions in every process. Outputs are global ``jax.Array``s; use
:func:`to_host` to fetch them whole on every process.

``num_envs`` must be a multiple of the number of devices in the mesh.

The pipeline's trainers (``jaxport train --devices N``): :func:`rl_mesh` picks the devices,
:func:`check_batch` names the setting whose batch does not divide over them, and
:func:`compile_sharded` compiles a trainer with the mesh as JAX's context mesh, where
:func:`jaxport.rl.common.constrain_batch` (called by the gradient trainer on its env batch) splits
the batch; PPO is pinned by :func:`ppo_out_shardings`. The universe trainer splits its population
members instead (``jaxport.rl.universe.train_universe(..., mesh=rl_mesh(n))``).
"""

from __future__ import annotations

import os
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxport.errors import ConfigError

# jaxport.env (through gymnax) initialises the XLA backend on import, which must not happen before
# jax.distributed.initialize: env imports stay inside the functions below.
if TYPE_CHECKING:  # pragma: no cover
    from jaxport.env import EnvParams, PortfolioEnv, RolloutResult
    from jaxport.env.rollout import PolicyFn

ENV_AXIS = "envs"

#: environment variables read by :func:`initialize_distributed` when its arguments are omitted
ENV_COORDINATOR = "JAXPORT_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAXPORT_NUM_PROCESSES"
ENV_PROCESS_ID = "JAXPORT_PROCESS_ID"


def multi_process_cluster(environ=None) -> bool:
    """Whether the environment describes a job of SEVERAL processes that JAX's cluster detection
    can join: SLURM with ``SLURM_NTASKS`` (or ``SLURM_STEP_NUM_TASKS``) > 1, Open MPI with
    ``OMPI_COMM_WORLD_SIZE`` > 1, a Kubernetes JobSet (``JOBSET_NAME``) or a TPU pod slice of more
    than one worker (``TPU_WORKER_HOSTNAMES``). A single-task SLURM allocation is not one."""
    env = os.environ if environ is None else environ

    def count(*names: str) -> int:
        for name in names:
            try:
                return int(env.get(name, ""))
            except ValueError:
                continue
        return 1

    return (
        ("SLURM_JOB_ID" in env and count("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS") > 1)
        or count("OMPI_COMM_WORLD_SIZE") > 1
        or bool(env.get("JOBSET_NAME"))
        or len([h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h.strip()]) > 1
    )


# ------------------------------------------------------------------------------------ multi-host
def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: int | list[int] | None = None,
    auto_detect: bool = False,
) -> bool:
    """Join a multi-process JAX run via ``jax.distributed.initialize``; returns whether it did.

    Arguments win; missing ones come from ``JAXPORT_COORDINATOR_ADDRESS`` (``host:port`` of process
    0), ``JAXPORT_NUM_PROCESSES`` and ``JAXPORT_PROCESS_ID``. With none of them set it does nothing
    and returns ``False`` (a single-process run), unless ``auto_detect=True`` and a multi-process
    cluster job (SLURM, Open MPI, Kubernetes JobSet, TPU pod; see :func:`multi_process_cluster`)
    is present, in which case JAX's own cluster detection fills everything in. Safe to call twice (the second call is a no-op).
    Must run before anything touches a JAX device (importing ``jaxport.env`` or gymnax does:
    import this module and call it first). Bad values raise ``ConfigError``.
    """
    if jax.distributed.is_initialized():
        return True
    coordinator_address = coordinator_address or os.environ.get(ENV_COORDINATOR) or None
    num_processes = _int_or_none(num_processes, ENV_NUM_PROCESSES)
    process_id = _int_or_none(process_id, ENV_PROCESS_ID)
    given = (coordinator_address, num_processes, process_id)
    if all(v is None for v in given):
        if auto_detect and multi_process_cluster():
            jax.distributed.initialize(local_device_ids=local_device_ids)
            return True
        return False
    if any(v is None for v in given):
        raise ConfigError(
            "initialize_distributed: need coordinator_address, num_processes and process_id together "
            f"(or {ENV_COORDINATOR}, {ENV_NUM_PROCESSES}, {ENV_PROCESS_ID}); got {given}"
        )
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ConfigError(
            f"initialize_distributed: process_id={process_id} not in [0, num_processes={num_processes})"
        )
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
        local_device_ids=local_device_ids,
    )
    return True


def _int_or_none(value, env_name: str) -> int | None:
    if value is not None:
        return int(value)
    raw = os.environ.get(env_name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{env_name}={raw!r} is not an integer") from None


# ------------------------------------------------------------------------------------ mesh
def make_env_mesh(devices=None, axis_name: str = ENV_AXIS) -> Mesh:
    """A 1-D mesh over ``devices`` (default: all devices of all processes) named ``axis_name``."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (axis_name,))


def _axis(mesh: Mesh) -> str:
    if len(mesh.axis_names) != 1:
        raise ConfigError(f"expected a 1-D env mesh, got axes {mesh.axis_names}")
    return mesh.axis_names[0]


def env_sharding(mesh: Mesh, batch_dim: int = 0, ndim: int | None = None) -> NamedSharding:
    """Sharding that splits dimension ``batch_dim`` over the mesh axis (rest replicated)."""
    spec = [None] * (batch_dim + 1 if ndim is None else ndim)
    spec[batch_dim] = _axis(mesh)
    return NamedSharding(mesh, P(*spec))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def _check_divisible(num_envs: int, mesh: Mesh) -> None:
    n = mesh.devices.size
    if num_envs % n:
        raise ConfigError(f"num_envs={num_envs} must be a multiple of the {n} devices of the mesh")


def shard_env_batch(tree, mesh: Mesh, batch_dim: int = 0):
    """``with_sharding_constraint`` splitting ``batch_dim`` of every array leaf (inside jit)."""
    return jax.tree.map(
        lambda x: (
            jax.lax.with_sharding_constraint(x, env_sharding(mesh, batch_dim, x.ndim))
            if x.ndim > batch_dim
            else x
        ),
        tree,
    )


def to_host(tree) -> Any:
    """NumPy copy of a (possibly multi-process) sharded pytree, whole on every process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


# ------------------------------------------------------------------------------------ rollouts
@lru_cache(maxsize=32)
def _rollout_program(
    env: PortfolioEnv, policy_fn: PolicyFn, num_envs: int, num_steps: int, mesh: Mesh
):
    from jaxport.env.rollout import RolloutResult, rollout

    place = partial(shard_env_batch, mesh=mesh)  # one object per cached program: a stable static

    def run(params: EnvParams, key: jax.Array) -> RolloutResult:
        # jaxport.env.rollout (nested in this program), with the env batch sharded over the mesh
        return rollout(env, params, policy_fn, key, num_envs, num_steps, place_batch=place)

    traj_sh = lambda x: env_sharding(mesh, 1, len(x.shape))  # noqa: E731  [S, B, ...]
    batch_sh = lambda x: env_sharding(mesh, 0, len(x.shape))  # noqa: E731  [B, ...]

    def shardings(result_shape: RolloutResult):
        return RolloutResult(
            trajectory=jax.tree.map(traj_sh, result_shape.trajectory),
            final_obs=batch_sh(result_shape.final_obs),
            final_state=jax.tree.map(batch_sh, result_shape.final_state),
        )

    return run, shardings


def sharded_rollout(
    env: PortfolioEnv,
    params: EnvParams,
    policy_fn: PolicyFn,
    key: jax.Array,
    num_envs: int,
    num_steps: int,
    mesh: Mesh | None = None,
) -> RolloutResult:
    """:func:`jaxport.env.rollout` with the env batch split over ``mesh`` (default: all devices).

    Same arguments and result as ``rollout`` (trajectory leaves ``[num_steps, num_envs, ...]``,
    sharded on axis 1; final obs/state sharded on axis 0) and, for the same key, the same numbers.
    """
    mesh = make_env_mesh() if mesh is None else mesh
    _check_divisible(num_envs, mesh)
    run, shardings = _rollout_program(env, policy_fn, int(num_envs), int(num_steps), mesh)
    jitted = _jit_with_out_shardings(run, shardings, mesh, (params, key))
    return jitted(params, key)


_JIT_CACHE: dict = {}


def _jit_with_out_shardings(fn: Callable, shardings_of: Callable, mesh: Mesh, args: tuple):
    """``jax.jit(fn, in_shardings=replicated, out_shardings=shardings_of(eval_shape(fn)))``, cached
    per (fn, argument shapes)."""
    sig = (
        fn,
        mesh,
        jax.tree.structure(args),
        tuple(
            (getattr(a, "shape", None), str(getattr(a, "dtype", type(a))))
            for a in jax.tree.leaves(args)
        ),
    )
    if sig not in _JIT_CACHE:
        out_shape = jax.eval_shape(fn, *args)
        rep = replicated(mesh)
        _JIT_CACHE[sig] = jax.jit(
            fn,
            in_shardings=jax.tree.map(lambda _: rep, args),
            out_shardings=shardings_of(out_shape),
        )
    return _JIT_CACHE[sig]


# ------------------------------------------------------------------------------------ trainers
#: positions of the env-batch leaves in ``make_train``'s runner state
#: ``(train_state, obs_stats, env_state, obs, ep_ret, ep_len, rng)``
_RUNNER_ENV_SLOTS = (2, 3, 4, 5)


def rl_mesh(devices: int | None = None, batch: int | None = None) -> Mesh:
    """The 1-D env mesh the RL trainers shard over: the first ``devices`` of ``jax.devices()``
    (every device of every process after :func:`initialize_distributed`). ``None``: all of them,
    or with ``batch`` (the size of the sharded axis) the most that divide it, so the default never
    fails (e.g. 4 seeds on 8 devices use 4). More than are available: ``ConfigError`` naming
    ``rl.devices``."""
    available = jax.devices()
    if devices is None:
        n = len(available)
        if batch is not None:
            n = max(d for d in range(1, n + 1) if int(batch) % d == 0)
        return make_env_mesh(available[:n])
    if not 1 <= int(devices) <= len(available):
        raise ConfigError(
            f"rl.devices {devices}: must be between 1 and the {len(available)} "
            f"{available[0].platform} device(s) available"
        )
    return make_env_mesh(available[: int(devices)])


def check_batch(size: int, mesh: Mesh | None, setting: str) -> None:
    """One-line ``ConfigError`` naming ``setting`` unless ``size`` (a batch axis sharded over
    ``mesh``) is a multiple of the mesh's device count."""
    n = 1 if mesh is None else mesh.devices.size
    if size % n:
        raise ConfigError(
            f"{setting} {size}: must be a multiple of the {n} devices the RL batch is sharded "
            "over, see rl.devices"
        )


def ppo_out_shardings(mesh: Mesh, out_shape: dict) -> dict:
    """Output shardings of PPO's ``train``: everything replicated but the runner state's env
    batch (env state, observations, episode accumulators), split over ``mesh``."""
    rep = replicated(mesh)
    sh = jax.tree.map(lambda _: rep, out_shape)
    runner = list(sh["runner_state"])
    for slot in _RUNNER_ENV_SLOTS:
        runner[slot] = jax.tree.map(
            lambda x: env_sharding(mesh, 0, len(x.shape)), out_shape["runner_state"][slot]
        )
    sh["runner_state"] = tuple(runner)
    return sh


def compile_sharded(
    train: Callable, mesh: Mesh, *args, out_shardings: Callable[[Any], Any] | None = None
):
    """Ahead-of-time compile ``train(*args)`` for ``mesh``: inputs replicated, traced with ``mesh``
    as JAX's context mesh so the trainers' :func:`jaxport.rl.common.constrain_batch` calls split
    their env batch over it (GSPMD inserts the cross-device means). ``out_shardings``: maps
    ``jax.eval_shape(train, *args)`` to output shardings (default: left to the partitioner).
    Returns ``(compiled, place)``: call ``compiled(*place(*args))`` (``place`` puts the
    arguments on the mesh, replicated)."""
    rep = replicated(mesh)
    in_sh = tuple(jax.tree.map(lambda _: rep, a) for a in args)
    with jax.set_mesh(mesh):
        kw = {}
        if out_shardings is not None:
            kw["out_shardings"] = out_shardings(jax.eval_shape(train, *args))
        compiled = jax.jit(train, in_shardings=in_sh, **kw).lower(*args).compile()

    def place(*a):
        return tuple(jax.device_put(x, s) for x, s in zip(a, in_sh))

    return compiled, place


def make_sharded_train(
    config, env: PortfolioEnv, env_params: EnvParams, mesh: Mesh | None = None
) -> Callable:
    """PPO (:func:`jaxport.rl.ppo.make_train`) with the env batch split over ``mesh``.

    Returns a jitted ``train(key, env_params=env_params) -> dict`` (same outputs as
    ``make_train``'s ``train``). Parameters, optimiser state and keys are replicated; the runner
    state's env batch (env state, observations, episode accumulators) is sharded over the mesh and
    GSPMD shards the rollouts, the network forward passes on them and the loss over minibatch rows,
    all-reducing gradients. ``config.num_envs`` and the minibatch size must be multiples of the
    device count.
    """
    from jaxport.rl.ppo import make_train

    mesh = make_env_mesh() if mesh is None else mesh
    _check_divisible(config.num_envs, mesh)
    if config.minibatch_size % mesh.devices.size:
        raise ConfigError(
            f"PPO minibatch size {config.minibatch_size} must be a multiple of the {mesh.devices.size} devices"
        )
    train = make_train(config, env, env_params)
    rep = replicated(mesh)
    out_shape = jax.eval_shape(train, jax.random.key(0), env_params)
    jitted = jax.jit(
        train,
        in_shardings=(rep, jax.tree.map(lambda _: rep, env_params)),
        out_shardings=ppo_out_shardings(mesh, out_shape),
    )

    def sharded_train(key: jax.Array, env_params_: EnvParams | None = None) -> dict:
        return jitted(key, env_params if env_params_ is None else env_params_)

    sharded_train.mesh = mesh
    sharded_train.jitted = jitted
    return sharded_train


def sharded_env_steps_per_second(
    env: PortfolioEnv,
    params: EnvParams,
    num_envs: int,
    num_steps: int,
    mesh: Mesh | None = None,
    repeats: int = 3,
) -> float:
    """Throughput (env-steps/s) of :func:`sharded_rollout` with a random policy, after a warm-up."""
    import time

    policy = _cached_random_policy(env)
    jax.block_until_ready(
        sharded_rollout(env, params, policy, jax.random.key(0), num_envs, num_steps, mesh)
    )
    best = float("inf")
    for i in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(
            sharded_rollout(env, params, policy, jax.random.key(i + 1), num_envs, num_steps, mesh)
        )
        best = min(best, time.perf_counter() - t0)
    return num_envs * num_steps / best


@lru_cache(maxsize=16)
def _cached_random_policy(env: PortfolioEnv) -> PolicyFn:
    from jaxport.env.rollout import random_policy

    return random_policy(env)


__all__ = [
    "ENV_AXIS",
    "check_batch",
    "compile_sharded",
    "env_sharding",
    "initialize_distributed",
    "make_env_mesh",
    "make_sharded_train",
    "multi_process_cluster",
    "ppo_out_shardings",
    "replicated",
    "rl_mesh",
    "shard_env_batch",
    "sharded_env_steps_per_second",
    "sharded_rollout",
    "to_host",
]
