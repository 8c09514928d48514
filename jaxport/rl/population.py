"""The population trainer every RL algorithm plugs into, per-pair and universe scope alike
(Brax-shaped: the algorithm gives ``init`` / ``update`` / ``validate``, this module owns the loop).

Members are the cartesian ``grid`` of traced hyperparameters x ``num_seeds`` seeds; each member is
one :func:`train_member` run, all of them vmapped in ONE jitted program (hyperparameters are
traced arrays ``{field: [M]}``, so members differing only in them share the program). Every
``eval_every`` updates (and at update 0, the untrained start) a member's current parameters are
validated and its best ones by the mean validation objective are kept (checkpoint selection inside
the jit). With a 1-D ``mesh`` of several devices the member axis is split over it
(``shard_map``; members are independent, so no communication).

The per-pair trainers (:mod:`jaxport.rl.gradient.train`, :mod:`jaxport.rl.ppo.train`) are one
member each, without validation (``validate=None``: :func:`train_member` runs the updates and
returns the final state); their seeds are ``jax.vmap(train)(keys)`` and their device sharding
splits the env batch instead of the members. The two scopes differ only in the env batch (one
market vs stacked baskets) and the network; the update loop is this module's.

An algorithm is a :class:`MemberAlgorithm` of pure functions built per member (they may close over
the static config, the env and the traced ``hp``):

- ``init(*init_keys) -> state``: the training state; ``state[0]`` is the policy's params when
  the member is validated;
- ``update(state, x) -> (state, metrics)``: one update (a rollout and its optimiser steps);
  ``x`` is the update's entry of the per-update inputs (by default its PRNG key);
- ``validate(params) -> stats``: per-basket validation numbers, ``stats["objective"] [B]`` scored
  (``None``: no validation, no checkpoint selection);
- ``split_key(key, num_updates) -> (init_keys, xs)``: how the member's key becomes ``init``'s
  keys and the ``[num_updates, ...]`` per-update inputs (default :func:`split_member_key`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from functools import partial
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxport.errors import ConfigError
from jaxport.xla_options import tuned_jit


def split_member_key(key: jax.Array, num_updates: int) -> tuple[tuple, jax.Array]:
    """The default :attr:`MemberAlgorithm.split_key`: ``k_init, k_env, k_loop = split(key, 3)``;
    ``init(k_init, k_env)`` and update ``i`` gets ``split(k_loop, num_updates)[i]``."""
    k_init, k_env, k_loop = jax.random.split(key, 3)
    return (k_init, k_env), jax.random.split(k_loop, num_updates)


@dataclasses.dataclass(frozen=True)
class MemberAlgorithm:
    """One member's training, as pure functions (module docstring)."""

    init: Callable[..., tuple]
    update: Callable[[tuple, Any], tuple[tuple, dict]]
    validate: Callable[[Any], dict] | None = None
    #: mark every carry per member up front (see :func:`train_member`): fewer re-traces of the
    #: nested scans under the population vmap; it may move the last float bits of the numbers
    mark_members: bool = True
    split_key: Callable[[jax.Array, int], tuple[tuple, Any]] = split_member_key


# ----------------------------------------------------------------------------------------- members
def grid_hparams(
    base: Mapping[str, float], grid: Sequence[tuple[str, Sequence[float]]]
) -> list[dict[str, float]]:
    """The ``grid``'s combinations over ``base`` (``[base]`` when the grid is empty)."""
    names = [k for k, _ in grid]
    combos = itertools.product(*[vs for _, vs in grid]) if names else [()]
    return [{**base, **dict(zip(names, combo))} for combo in combos]


def member_inputs(hparams: Sequence[Mapping[str, float]], num_seeds: int, key, fields):
    """``(members [(hyperparams, seed)], hp {field: [M] float32}, keys [M])``: every hyperparameter
    set x ``num_seeds`` seeds; seed ``s`` gets the same key in every set."""
    members = [(dict(h), s) for h in hparams for s in range(num_seeds)]
    hp = {k: jnp.asarray([h[k] for h, _ in members], jnp.float32) for k in fields}
    base_keys = jax.random.split(key, num_seeds)
    keys = jnp.stack([base_keys[s] for _, s in members])
    return members, hp, keys


# ----------------------------------------------------------------------------------------- progress
#: Host progress hooks ``fn(updates_done, num_updates)``, called after each evaluation period of a
#: training run (``jax.debug.callback``; the compiled program never depends on them).
_PROGRESS_HOOKS: list = []


@contextlib.contextmanager
def progress_hook(fn):
    """Call ``fn(updates_done, num_updates)`` as population training advances (inside the block)."""
    _PROGRESS_HOOKS.append(fn)
    try:
        yield fn
    finally:
        _PROGRESS_HOOKS.remove(fn)


def _report_progress(done, total: int) -> None:
    for fn in list(_PROGRESS_HOOKS):
        fn(int(np.max(np.asarray(done))), total)


# ----------------------------------------------------------------------------------------- one member
def keep_best(best: tuple, params, stats: dict, j):
    """``(best_params, best_score, best_eval)`` after evaluation ``j`` (score: the mean of
    ``stats["objective"]``; evaluation 0 always replaces the placeholder)."""
    best_p, best_obj, best_idx = best
    score = jnp.mean(stats["objective"])
    better = (j == 0) | (score > best_obj)
    best_p = jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b), params, best_p)
    return best_p, jnp.where(better, score, best_obj), jnp.where(better, j, best_idx)


def _mark_member(carry, member_marker):
    """``carry`` with every leaf marked as varying per member (``where(m == m, a, a)``)."""
    member = member_marker == member_marker
    return jax.tree_util.tree_map(lambda a: jnp.where(member, a, a), carry)


def train_member(
    algo: MemberAlgorithm, num_updates: int, eval_every, member_marker, key: jax.Array
) -> dict:
    """One member: ``num_updates`` updates with validation every ``eval_every`` (and at 0).

    ``member_marker``: any traced per-member scalar (e.g. ``hp["lr"]``); with
    ``algo.mark_members`` every carry is marked per member with it so each nested scan's batching
    rule settles in one pass under the population vmap (compile time). Returns ``{params (best), final_params, best_eval,
    best_objective, val_curve {stat: [num_evals + 1, B]}, metrics {name: [num_updates]}}``.
    Without validation (``algo.validate is None``; ``eval_every`` is then unused) the updates run
    in one scan and it returns ``{final_state, metrics {name: [num_updates]}}``.
    """
    init_keys, xs = algo.split_key(key, num_updates)
    state = algo.init(*init_keys)
    marked = algo.mark_members and member_marker is not None
    if algo.validate is None:
        state = _mark_member(state, member_marker) if marked else state
        state, metrics = jax.lax.scan(algo.update, state, xs)
        return dict(final_state=state, metrics=metrics)
    num_evals = num_updates // eval_every

    def period(carry, xs):
        # evaluation j validates the params after j * eval_every updates (j = 0: the untrained
        # start), then runs the next eval_every updates; the last evaluation follows the scan
        state, best = carry
        update_xs, j = xs
        stats = algo.validate(state[0])
        best = keep_best(best, state[0], stats, j)
        state, metrics = jax.lax.scan(algo.update, state, update_xs)
        jax.debug.callback(partial(_report_progress, total=num_updates), (j + 1) * eval_every)
        return (state, best), (metrics, stats)

    periods = jax.tree_util.tree_map(lambda x: x.reshape((num_evals, eval_every) + x.shape[1:]), xs)
    carry = (state, (state[0], jnp.float32(-jnp.inf), jnp.zeros((), jnp.int32)))
    carry = _mark_member(carry, member_marker) if marked else carry
    (state, best), (metrics, curve) = jax.lax.scan(
        period, carry, (periods, jnp.arange(num_evals, dtype=jnp.int32))
    )
    last = algo.validate(state[0])
    best_p, best_obj, best_idx = keep_best(best, state[0], last, jnp.int32(num_evals))
    curve = jax.tree_util.tree_map(lambda c, x: jnp.concatenate([c, x[None]], 0), curve, last)
    return dict(
        params=best_p,
        final_params=state[0],
        best_eval=best_idx,
        best_objective=best_obj,
        val_curve=curve,
        metrics={k: v.reshape(-1) for k, v in metrics.items()},
    )


# ----------------------------------------------------------------------------------------- population
def vmap_members(member_fn: Callable, shared: tuple, hp: dict, keys: jax.Array, mesh=None):
    """``member_fn(*shared, hp, key)`` for every member (``hp`` leaves and ``keys`` carry the member
    axis, ``shared`` is broadcast); with a ``mesh`` the member axis of inputs and outputs is split
    over its one axis (call inside jit)."""
    population = jax.vmap(member_fn, in_axes=(None,) * len(shared) + (0, 0))
    if mesh is None:
        return population(*shared, hp, keys)
    from jax.sharding import PartitionSpec as P

    axis = P(mesh.axis_names[0])
    sharded = jax.shard_map(  # no collectives inside: the varying-axis check is not needed
        population,
        mesh=mesh,
        in_specs=(P(),) * len(shared) + (axis, axis),
        out_specs=axis,
        check_vma=False,
    )
    return sharded(*shared, hp, keys)


@partial(tuned_jit, static_argnums=(0, 1, 2, 3, 7))
def train_population(make_algorithm, config, env, static_aux, shared: tuple, hp, keys, mesh=None):
    """Every member of a population in ONE jitted program (compiled once per ``make_algorithm``,
    static ``config``, ``env``, ``static_aux`` and shapes): member ``m`` runs :func:`train_member`
    of ``make_algorithm(config, env, static_aux, *shared, hp_m)`` for ``config.num_updates``
    updates, validating every ``config.eval_every``. ``shared`` (traced, e.g. the market) is seen
    by every member; ``hp`` and ``keys`` carry the member axis; ``mesh``: :func:`vmap_members`."""

    def member(*args):
        *member_shared, hp, key = args
        algo = make_algorithm(config, env, static_aux, *member_shared, hp)
        return train_member(algo, config.num_updates, config.eval_every, hp["lr"], key)

    return vmap_members(member, shared, hp, keys, mesh)


def member_mesh(mesh, num_members: int, num_seeds: int, who: str):
    """``mesh`` to shard ``num_members`` over, ``None`` for one device; ``ConfigError`` when the
    mesh is not 1-D or the members do not split evenly over its devices."""
    if mesh is None or mesh.devices.size == 1:
        return None
    n = mesh.devices.size
    if len(mesh.axis_names) != 1:
        raise ConfigError(f"{who}: expected a 1-D mesh, got axes {mesh.axis_names}")
    if num_members % n:
        raise ConfigError(
            f"rl.seeds {num_seeds}: the universe population of {num_members} members "
            f"= {num_members // num_seeds} hyperparameter set(s) x {num_seeds} seeds must be a "
            f"multiple of the {n} devices it is sharded over, see rl.devices"
        )
    return mesh


def gather_members(out, mesh):
    """A sharded population's output gathered whole onto the default device of every process."""
    if mesh is None:
        return out
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        out = multihost_utils.process_allgather(out, tiled=True)
    return jax.device_put(jax.device_get(out))


def population_result(eval_every: int, members: Sequence[tuple], out: dict) -> dict:
    """The host-side summary of a population run: per member ``{hyperparams, seed, best_update,
    val_score, val_objective [B], val_sharpe [B]}``, ``best_member`` (argmax of the validation
    score), ``metrics``, ``val_curve``, ``eval_updates``. ``members``: ``(hyperparams, seed)`` per
    member; ``out``: the jitted program's output (:func:`train_member`, member-stacked)."""
    curve = {k: np.asarray(v) for k, v in out["val_curve"].items()}
    best_eval = np.asarray(out["best_eval"])
    scores = np.asarray(out["best_objective"])
    rows = []
    for m, (h, s) in enumerate(members):
        e = int(best_eval[m])
        rows.append(
            dict(
                hyperparams=dict(h),
                seed=int(s),
                best_update=e * eval_every,
                val_score=float(scores[m]),
                val_objective=curve["objective"][m, e].tolist(),
                val_sharpe=curve["sharpe"][m, e].tolist(),
            )
        )
    return dict(
        members=rows,
        best_member=int(np.argmax(scores)),
        metrics={k: np.asarray(v) for k, v in out["metrics"].items()},
        val_curve=curve,
        eval_updates=[i * eval_every for i in range(curve["objective"].shape[1])],
    )


__all__ = [
    "MemberAlgorithm",
    "gather_members",
    "grid_hparams",
    "keep_best",
    "member_inputs",
    "member_mesh",
    "population_result",
    "progress_hook",
    "split_member_key",
    "train_member",
    "train_population",
    "vmap_members",
]
