"""Differentiable portfolio rewards for PyTorch: ``torch.autograd.Function`` over ``jax.vjp``.

The JAX step is differentiable in the action and in the float parts of the state (equity,
weights, open-trade PnL, ...). :class:`JaxVJPFunction` runs a jitted JAX forward on the Torch
inputs (DLPack, float32) and, in ``backward``, a jitted ``jax.vjp`` of the same function (the
forward is recomputed there; nothing JAX-side is kept between the two passes). So a Torch policy
receives gradients through the reward:

* :func:`differentiable_reward` (alias :func:`differentiable_step`): one step from a state given
  as tensors (:class:`TorchEnvState`) or the env's current (opaque) state; returns reward, next
  observation and next state, all differentiable, so steps chain in Torch.
* :func:`differentiable_episode_reward`: an open-loop episode of actions ``[T, N]`` (or
  ``[B, T, N]`` for a vector env's batched state) as one ``lax.scan``; steps after the episode ends
  (bankruptcy, ``episode_length`` or end of data) add 0 reward and keep the state.

Precision: JAX computes in float32 whatever the Torch dtype; outputs and gradients are cast back to
the action's dtype (float64 in -> float64 out, with float32 accuracy). Kinks of the step (``|w|`` in
turnover, the leverage cap, ``max(0, gross - 1)`` financing) get JAX's subgradients.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import torch
from gymnasium.error import ResetNeeded
from gymnasium.wrappers.jax_to_torch import jax_to_torch, torch_to_jax

from jaxport.data import DataError
from jaxport.env import EnvParams, EnvState, PortfolioEnv
from torch_compat import PACKAGE_EXPORTS

FLOAT_FIELDS = (
    "equity",
    "weights",
    "open_trade_pnl",
    "gross_pnl",
    "fees",
    "financing",
    "last_reward",
)
INT_FIELDS = ("t", "time", "num_trades", "winning_trades")


class TorchEnvState(NamedTuple):
    """``EnvState`` as tensors (same fields; float fields are differentiable, int fields int32)."""

    t: torch.Tensor
    time: torch.Tensor
    equity: torch.Tensor
    weights: torch.Tensor
    open_trade_pnl: torch.Tensor
    gross_pnl: torch.Tensor
    fees: torch.Tensor
    financing: torch.Tensor
    num_trades: torch.Tensor
    winning_trades: torch.Tensor
    last_reward: torch.Tensor


class StepOutput(NamedTuple):
    reward: torch.Tensor  # [] or [B], per-step reward (log return or net profit / E0)
    obs: torch.Tensor  # [D] or [B, D], next observation
    state: TorchEnvState  # next state
    terminated: torch.Tensor  # bool
    truncated: torch.Tensor  # bool


class EpisodeOutput(NamedTuple):
    total_reward: torch.Tensor  # [] or [B], sum of rewards
    rewards: torch.Tensor  # [T] or [B, T] (0 after the episode ended)
    equity: torch.Tensor  # [T] or [B, T], equity after each step (units of E0's currency)
    state: TorchEnvState  # state after the last step
    done: torch.Tensor  # bool, [] or [B]: the episode ended within the T steps


# ---------------------------------------------------------------------------------- state conversion
def state_to_torch(
    state: EnvState, *, device=None, dtype: torch.dtype = torch.float32
) -> TorchEnvState:
    """JAX ``EnvState`` -> :class:`TorchEnvState` (float fields as ``dtype``, int fields int32)."""
    out = {}
    for name in TorchEnvState._fields:
        value = jax_to_torch(getattr(state, name), device=device)
        out[name] = value.to(dtype) if name in FLOAT_FIELDS else value
    return TorchEnvState(**out)


def _to_jax_f32(t: torch.Tensor) -> jax.Array:
    t = t.detach()
    if t.dtype != torch.float32:
        t = t.to(torch.float32)
    return torch_to_jax(t.contiguous())


def _to_jax_int(t) -> jax.Array:
    if isinstance(t, torch.Tensor):
        return torch_to_jax(t.detach().to(torch.int32).contiguous())
    return jnp.asarray(t, jnp.int32)


def state_from_torch(state: TorchEnvState) -> EnvState:
    """:class:`TorchEnvState` -> JAX ``EnvState`` (float32 / int32)."""
    kw = {
        n: (_to_jax_f32(getattr(state, n)) if n in FLOAT_FIELDS else _to_jax_int(getattr(state, n)))
        for n in TorchEnvState._fields
    }
    return EnvState(**kw)


def _split_state(state: EnvState) -> tuple[tuple, tuple]:
    return tuple(getattr(state, n) for n in FLOAT_FIELDS), tuple(
        getattr(state, n) for n in INT_FIELDS
    )


def _join_state(fstate: tuple, istate: tuple) -> EnvState:
    return EnvState(**dict(zip(FLOAT_FIELDS, fstate)), **dict(zip(INT_FIELDS, istate)))


# ---------------------------------------------------------------------------------- JAX kernels
def _step_fn(env: PortfolioEnv, action, fstate, istate, params: EnvParams):
    """``(differentiable outputs, aux)`` of one non-resetting step."""
    obs, new, reward, terminated, _ = env.step_env(
        jax.random.PRNGKey(0), _join_state(fstate, istate), action, params
    )
    truncated = env.is_truncated(new, params)
    new_f, new_i = _split_state(new)
    return (reward, obs, *new_f), (*new_i, terminated, truncated)


def _episode_fn(env: PortfolioEnv, actions, fstate, istate, params: EnvParams):
    """Open-loop episode over ``actions [T, N]``; frozen (0 reward) after the episode ends."""

    def body(carry, action):
        fs, is_, done = carry
        (reward, _, *fs2), (*is2, term, trunc) = _step_fn(env, action, fs, is_, params)
        keep = lambda old, new: jnp.where(done, old, new)  # noqa: E731
        fs_next = tuple(keep(o, n) for o, n in zip(fs, fs2))
        is_next = tuple(keep(o, n) for o, n in zip(is_, is2))
        reward = jnp.where(done, 0.0, reward)
        return (fs_next, is_next, done | term | trunc), (reward, fs_next[0])

    init = (tuple(fstate), tuple(istate), jnp.zeros((), bool))
    (fs, is_, done), (rewards, equity) = jax.lax.scan(body, init, actions)
    return (jnp.sum(rewards), rewards, equity, *fs), (*is_, done)


_KERNELS = {"step": _step_fn, "episode": _episode_fn}


def _kernel(name: str, batched: bool):
    fn = _KERNELS[name]
    if batched:
        fn = jax.vmap(fn, in_axes=(None, 0, 0, 0, None))
    return fn


@partial(jax.jit, static_argnums=(0, 1, 2))
def _forward(name: str, batched: bool, env: PortfolioEnv, action, fstate, istate, params):
    return _kernel(name, batched)(env, action, fstate, istate, params)


@partial(jax.jit, static_argnums=(0, 1, 2))
def _backward(
    name: str, batched: bool, env: PortfolioEnv, action, fstate, istate, params, cotangents
):
    fn = _kernel(name, batched)
    _, vjp = jax.vjp(lambda a, fs: fn(env, a, fs, istate, params)[0], action, fstate)
    g_action, g_fstate = vjp(tuple(cotangents))
    return g_action, g_fstate


# ---------------------------------------------------------------------------------- autograd bridge
def _kernel_args(spec, action, fstate) -> tuple:
    """The positional arguments of ``_forward`` / ``_backward`` (before the cotangents):
    ``(kernel_name, batched, env, action, float_state, int_state, params)``, the tensors as float32
    JAX arrays."""
    name, batched, env, params, istate = spec
    f32 = tuple(_to_jax_f32(t) for t in fstate)
    return name, batched, env, _to_jax_f32(action), f32, istate, params


class JaxVJPFunction(torch.autograd.Function):
    """``torch.autograd.Function`` of a jaxport kernel: forward = jitted JAX, backward = ``jax.vjp``.

    ``apply(spec, action, *float_state)`` with ``spec = (kernel_name, batched, env, params,
    int_state)``; returns the kernel's differentiable outputs then its aux outputs (ints/bools,
    marked non-differentiable), as tensors of the action's float dtype on its device.
    """

    @staticmethod
    def forward(ctx, spec, action, *fstate):
        ctx.spec = spec
        ctx.save_for_backward(action, *fstate)
        ctx.float_dtypes = [t.dtype for t in (action, *fstate)]
        diff, aux = _forward(*_kernel_args(spec, action, fstate))
        ctx.num_diff = len(diff)
        dev = action.device
        diff_t = [jax_to_torch(x, device=dev).to(action.dtype) for x in diff]
        aux_t = [jax_to_torch(x, device=dev) for x in aux]
        ctx.mark_non_differentiable(*aux_t)
        return (*diff_t, *aux_t)

    @staticmethod
    def backward(ctx, *grads):
        action, *fstate = ctx.saved_tensors
        cts = tuple(_to_jax_f32(g) for g in grads[: ctx.num_diff])
        g_action, g_fstate = _backward(*_kernel_args(ctx.spec, action, fstate), cts)
        dev = action.device
        out = [
            jax_to_torch(g, device=dev).to(dt)
            for g, dt in zip((g_action, *g_fstate), ctx.float_dtypes)
        ]
        return (None, *out)


# ---------------------------------------------------------------------------------- public API
def _resolve_env(env) -> tuple[PortfolioEnv, EnvParams, EnvState | None]:
    """``(PortfolioEnv, EnvParams, current state)`` of a Torch/JAX Gymnasium env or a ``(env, params)`` pair."""
    if isinstance(env, tuple) and len(env) == 2:
        return env[0], env[1], None
    base = env.unwrapped if hasattr(env, "unwrapped") else env
    if not (hasattr(base, "jax_env") and hasattr(base, "params")):
        raise DataError(
            f"env: expected a TorchPortfolioEnv/TorchPortfolioVectorEnv or (PortfolioEnv, EnvParams), "
            f"got {type(env).__name__}"
        )
    return base.jax_env, base.params, getattr(base, "state", None)


def _prepare(env, action: torch.Tensor, state, action_ndim: int):
    jax_env, params, current = _resolve_env(env)
    if not isinstance(action, torch.Tensor) or not action.is_floating_point():
        raise DataError("action: expected a floating-point torch.Tensor")
    if state is None:
        if current is None:
            raise ResetNeeded("no state: reset the env first or pass state=")
        state = state_to_torch(current, device=action.device, dtype=action.dtype)
    elif isinstance(state, EnvState):
        state = state_to_torch(state, device=action.device, dtype=action.dtype)
    batched = state.equity.dim() == 1
    want = action_ndim + int(batched)
    if action.dim() != want or action.shape[-1] != jax_env.num_assets:
        raise DataError(
            f"action: expected {want} dims ending in N={jax_env.num_assets} "
            f"({'batched' if batched else 'single'} state), got shape {tuple(action.shape)}"
        )
    if batched and action.shape[0] != state.equity.shape[0]:
        raise DataError(f"action: batch {action.shape[0]} != state batch {state.equity.shape[0]}")
    istate = tuple(_to_jax_int(getattr(state, n)) for n in INT_FIELDS)
    fstate = [getattr(state, n) for n in FLOAT_FIELDS]
    fstate = [t if t.is_floating_point() else t.to(action.dtype) for t in fstate]
    return jax_env, params, batched, istate, fstate


def _torch_state(fstate, istate) -> TorchEnvState:
    return TorchEnvState(**dict(zip(FLOAT_FIELDS, fstate)), **dict(zip(INT_FIELDS, istate)))


def differentiable_reward(
    env, action: torch.Tensor, state: TorchEnvState | EnvState | None = None
) -> StepOutput:
    """One differentiable step: gradients flow to ``action`` and to ``state``'s float tensors.

    ``env``: a ``TorchPortfolioEnv`` / ``TorchPortfolioVectorEnv`` (or ``(PortfolioEnv, EnvParams)``);
    ``state``: a :class:`TorchEnvState` (e.g. the previous call's ``.state``), a JAX ``EnvState``, or
    ``None`` for the env's current state (the env itself is not advanced). ``action``: ``[N]``, or
    ``[B, N]`` with a batched state. Returns :class:`StepOutput` (reward, obs, state, flags).
    """
    jax_env, params, batched, istate, fstate = _prepare(env, action, state, 1)
    if bool(jnp.any(istate[0] >= params.num_days - 1)):
        raise ResetNeeded("state is at the end of the data: reset before stepping")
    out = JaxVJPFunction.apply(("step", batched, jax_env, params, istate), action, *fstate)
    n = len(FLOAT_FIELDS)
    reward, obs, new_f = out[0], out[1], out[2 : 2 + n]
    new_i, term, trunc = out[2 + n : 2 + n + len(INT_FIELDS)], out[-2], out[-1]
    return StepOutput(reward, obs, _torch_state(new_f, new_i), term, trunc)


differentiable_step = differentiable_reward


def differentiable_episode_reward(
    env, actions: torch.Tensor, state: TorchEnvState | EnvState | None = None
) -> EpisodeOutput:
    """Differentiable open-loop episode: ``actions [T, N]`` (``[B, T, N]`` with a batched state).

    Starts from ``state`` (default: the env's current state, e.g. right after ``reset``) without
    advancing the env. ``total_reward`` is the sum of per-step rewards; steps after the episode
    ends contribute 0. One jitted ``lax.scan`` forward, one jitted ``jax.vjp`` backward.
    """
    jax_env, params, batched, istate, fstate = _prepare(env, actions, state, 2)
    out = JaxVJPFunction.apply(("episode", batched, jax_env, params, istate), actions, *fstate)
    n = len(FLOAT_FIELDS)
    total, rewards, equity, new_f = out[0], out[1], out[2], out[3 : 3 + n]
    new_i, done = out[3 + n : 3 + n + len(INT_FIELDS)], out[-1]
    return EpisodeOutput(total, rewards, equity, _torch_state(new_f, new_i), done)


__all__ = list(PACKAGE_EXPORTS["autograd"])
