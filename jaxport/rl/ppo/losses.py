"""PPO's pure pieces: the rollout record, the shaped reward, GAE and the clipped PPO loss.

Every function here is a pure top-level function of arrays (time-major ``[S, B]`` for rollouts,
flat ``[M]`` for a minibatch), so each can be tested against a hand computation on its own;
:func:`jaxport.rl.ppo.train.make_train` composes them inside one jitted program.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxport.rl.networks import gaussian_entropy, gaussian_log_prob


class Transition(NamedTuple):
    """One rollout step of ``B`` envs (``[S, B, ...]`` once stacked over a rollout)."""

    obs: jnp.ndarray  # [B, D] normalised observation the action was taken on
    u: jnp.ndarray  # [B, N] pre-squash action
    log_prob: jnp.ndarray  # [B] Gaussian log-density of u under the acting policy
    value: jnp.ndarray  # [B] critic value of obs (reward units)
    reward: jnp.ndarray  # [B] env reward (per-step log growth for reward="log_return"), unscaled
    terminated: jnp.ndarray  # [B] bool
    done: jnp.ndarray  # [B] bool, terminated | truncated
    bootstrap: jnp.ndarray  # [B] V(final obs) where truncated & not terminated, else 0
    info: dict  # per-step scalars for metrics (and the shaping inputs)


def step_transition(
    obs, u, log_prob, value, reward, terminated, truncated, final_value, info
) -> Transition:
    """One env step as a :class:`Transition`: ``done = terminated | truncated`` and ``bootstrap``
    = ``final_value`` (``V`` of the final observation) where the episode was truncated but not
    terminated, else 0."""
    bootstrap = jnp.where(truncated & ~terminated, final_value, 0.0)
    done = terminated | truncated
    return Transition(obs, u, log_prob, value, reward, terminated, done, bootstrap, info)


def shaped_reward(
    reward: jnp.ndarray,
    portfolio_return: jnp.ndarray,
    turnover: jnp.ndarray,
    risk_penalty: float | jnp.ndarray = 0.0,
    turnover_penalty: float | jnp.ndarray = 0.0,
) -> jnp.ndarray:
    """Per-step reward carrying the gradient trainer's objective, time-major ``[S, B]``.

    ``r~_t = reward_t - risk_penalty * (ret_t - mean_s ret_s)^2 - turnover_penalty * turnover_t``

    with ``reward_t`` the env's per-step log growth net of fees and financing, ``ret_t`` the
    per-step simple portfolio return ``E_{t+1}/E_t - 1`` (a fraction), ``mean_s`` the mean over the
    rollout's ``S`` steps of the same env, and ``turnover_t = sum |dw|`` (fraction of equity).
    Averaged over a rollout, ``mean_t r~_t = mean log growth - risk_penalty * Var_t(ret) -
    turnover_penalty * mean turnover``: the objective :mod:`jaxport.rl.gradient` ascends over a BPTT
    chunk (per step, not annualised; the variance is the population variance over the window, which
    here may span an episode boundary).
    """
    ret_mean = jnp.mean(portfolio_return, axis=0, keepdims=True)
    return (
        reward
        - risk_penalty * jnp.square(portfolio_return - ret_mean)
        - turnover_penalty * turnover
    )


def compute_gae(
    reward: jnp.ndarray,
    value: jnp.ndarray,
    done: jnp.ndarray,
    bootstrap: jnp.ndarray,
    last_value: jnp.ndarray,
    gamma: float,
    gae_lambda: float,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """GAE over time-major ``[S, B]`` arrays; returns ``(advantages, value targets)`` (``[S, B]``).

    ``done[t]`` ends the episode after step ``t`` (terminated or truncated): the next state's value
    is then replaced by ``bootstrap[t]`` (``V(final obs)`` for truncation, 0 for termination), and
    the trace is cut. ``last_value`` [B] is ``V`` of the observation after the last step. So
    ``delta_t = r_t + gamma * (V_{t+1} * (1 - done_t) + bootstrap_t) - V_t`` and
    ``A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}``; targets are ``A_t + V_t``.
    """

    def body(carry, xs):
        adv, next_value = carry
        r, v, d, b = xs
        not_done = 1.0 - d.astype(jnp.float32)
        delta = r + gamma * (next_value * not_done + b) - v
        adv = delta + gamma * gae_lambda * not_done * adv
        return (adv, v), adv

    _, adv = jax.lax.scan(
        body,
        (jnp.zeros_like(last_value), last_value),
        (reward, value, done, bootstrap),
        reverse=True,
        unroll=16,
    )
    return adv, adv + value


def ppo_loss(
    params,
    apply_fn: Callable,
    batch: Transition,
    advantages: jnp.ndarray,
    targets: jnp.ndarray,
    *,
    clip_eps: float,
    vf_clip: float,
    vf_coef: float,
    ent_coef: float,
    normalize_advantages: bool = True,
) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
    """Clipped PPO loss of one minibatch; returns ``(total, aux)``.

    ``apply_fn(params, obs) -> (mean, log_std, value)`` is the actor-critic; ``batch`` holds the
    minibatch's ``obs [M, D]``, pre-squash actions ``u [M, N]``, the acting policy's ``log_prob
    [M]`` and ``value [M]``; ``advantages`` and ``targets`` are ``[M]``. With ``ratio = exp(log
    pi(u) - log_prob)`` and ``A`` the advantages (standardised over the minibatch when
    ``normalize_advantages``)::

        policy_loss = -mean(min(ratio * A, clip(ratio, 1 - clip_eps, 1 + clip_eps) * A))
        value_loss  = 0.5 * mean(max((V - target)^2, (V_clipped - target)^2)),
                      V_clipped = value + clip(V - value, -vf_clip, vf_clip)   (vf_clip > 0)
                      0.5 * mean((V - target)^2)                                (vf_clip <= 0)
        entropy     = mean Gaussian entropy of the pre-squash policy (nats)
        total       = policy_loss + vf_coef * value_loss - ent_coef * entropy

    ``aux`` holds ``policy_loss``, ``value_loss``, ``entropy``, ``approx_kl`` (mean of
    ``(ratio - 1) - log ratio``) and ``clip_frac`` (fraction with ``|ratio - 1| > clip_eps``).
    """
    mean, log_std, value = apply_fn(params, batch.obs)
    log_prob = gaussian_log_prob(batch.u, mean, log_std)
    if vf_clip > 0:
        v_clipped = batch.value + jnp.clip(value - batch.value, -vf_clip, vf_clip)
        v_loss = 0.5 * jnp.mean(
            jnp.maximum(jnp.square(value - targets), jnp.square(v_clipped - targets))
        )
    else:
        v_loss = 0.5 * jnp.mean(jnp.square(value - targets))
    log_ratio = log_prob - batch.log_prob
    ratio = jnp.exp(log_ratio)
    adv = advantages
    if normalize_advantages:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg1 = ratio * adv
    pg2 = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv
    pg_loss = -jnp.mean(jnp.minimum(pg1, pg2))
    entropy = jnp.mean(gaussian_entropy(log_std))
    total = pg_loss + vf_coef * v_loss - ent_coef * entropy
    aux = {
        "policy_loss": pg_loss,
        "value_loss": v_loss,
        "entropy": entropy,
        "approx_kl": jnp.mean((ratio - 1.0) - log_ratio),
        "clip_frac": jnp.mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32)),
    }
    return total, aux


def ppo_loss_grad(apply_fn: Callable, **coefficients) -> Callable:
    """``grad_fn(params, batch, advantages, targets) -> ((total, aux), grads)``: the
    ``value_and_grad`` of :func:`ppo_loss` with ``apply_fn`` and its keyword ``coefficients``
    (``clip_eps``, ``vf_clip``, ``vf_coef``, ``ent_coef``, ``normalize_advantages``; Python
    floats or traced scalars), the form :func:`jaxport.rl.ppo.rollout.ppo_update` takes."""

    def loss(params, batch, advantages, targets):
        return ppo_loss(params, apply_fn, batch, advantages, targets, **coefficients)

    return jax.value_and_grad(loss, has_aux=True)
