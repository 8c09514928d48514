"""The PPO update both PPO trainers share (the pair trainer :mod:`jaxport.rl.ppo.train` and the
universe trainer :mod:`jaxport.rl.universe.ppo`): GAE over a time-major rollout, then
``update_epochs`` passes of ``num_minibatches`` optimiser steps of the clipped PPO loss over the
shuffled transitions. Each trainer keeps its own env step (observation normalisation, action
distribution); everything after the rollout is here.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from jaxport.rl.ppo.losses import Transition, compute_gae


def learning_batch(traj: Transition) -> Transition:
    """Only what the loss reads (obs, actions, log-probs, values): the rest is not shuffled."""
    return traj._replace(info={}, reward=None, terminated=None, done=None, bootstrap=None)


def shuffled_minibatches(key: jax.Array, data, num_minibatches: int, batch_ndim: int):
    """Flatten the ``batch_ndim`` leading (time, env...) axes of every leaf of ``data``, permute
    them with ``key`` and split them into ``[num_minibatches, batch / num_minibatches, ...]``."""
    lead = jax.tree_util.tree_leaves(data)[0].shape[:batch_ndim]
    batch_size = math.prod(lead)
    perm = jax.random.permutation(key, batch_size)

    def one(x):
        flat = x.reshape((batch_size,) + x.shape[batch_ndim:])
        shuffled = jnp.take(flat, perm, axis=0)
        return shuffled.reshape((num_minibatches, batch_size // num_minibatches) + flat.shape[1:])

    return jax.tree_util.tree_map(one, data)


def chained_keys(key: jax.Array, num: int) -> tuple[jax.Array, jax.Array]:
    """``(key', keys [num])`` with ``key, k_i = split(key)`` repeated ``num`` times (the keys a
    loop that splits its carried key once per pass would draw)."""

    def body(k, _):
        k, sub = jax.random.split(k)
        return k, sub

    return jax.lax.scan(body, key, None, num)


def explained_variance(targets: jnp.ndarray, values: jnp.ndarray) -> jnp.ndarray:
    """``1 - Var(targets - values) / Var(targets)`` over the whole rollout."""
    return 1.0 - jnp.var(targets - values) / jnp.maximum(jnp.var(targets), 1e-12)


def ppo_update(
    grad_fn: Callable,
    tx: optax.GradientTransformation,
    params,
    opt_state,
    traj: Transition,
    learn_reward: jnp.ndarray,
    last_value: jnp.ndarray,
    gamma,
    gae_lambda,
    epoch_keys: jax.Array,
    num_minibatches: int,
):
    """One PPO update after a rollout ``traj`` (time-major ``[S, ...]``).

    ``grad_fn(params, transitions, advantages, targets) -> ((total, aux), grads)`` is the loss's
    ``value_and_grad``; ``learn_reward`` ``[S, ...]`` the (shaped, scaled) reward learnt from;
    ``last_value`` ``V`` of the observation after the last step; ``epoch_keys [update_epochs]``
    shuffle each epoch. Returns ``(params, opt_state, advantages, targets, losses)`` with
    ``losses`` the loss aux plus ``total_loss`` and ``grad_norm`` (before clipping), each
    averaged over every minibatch step.
    """
    adv, targets = compute_gae(
        learn_reward, traj.value, traj.done, traj.bootstrap, last_value, gamma, gae_lambda
    )
    data = (learning_batch(traj), adv, targets)

    def minibatch(carry, batch):
        p, opt_state = carry
        tr, mb_adv, mb_targets = batch
        (total, aux), grads = grad_fn(p, tr, mb_adv, mb_targets)
        updates, opt_state = tx.update(grads, opt_state, p)
        p = optax.apply_updates(p, updates)
        return (p, opt_state), dict(aux, total_loss=total, grad_norm=optax.tree.norm(grads))

    def epoch(carry, k):
        mbs = shuffled_minibatches(k, data, num_minibatches, adv.ndim)
        return jax.lax.scan(minibatch, carry, mbs)

    (params, opt_state), losses = jax.lax.scan(epoch, (params, opt_state), epoch_keys)
    losses = {k: jnp.mean(v) for k, v in losses.items()}
    return params, opt_state, adv, targets, losses


__all__ = [
    "chained_keys",
    "explained_variance",
    "learning_batch",
    "ppo_update",
    "shuffled_minibatches",
]
