"""TorchRL environment over the JAX :class:`jaxport.env.PortfolioEnv` (``EnvBase``, TensorDict I/O).

:class:`TorchRLPortfolioEnv` runs ``num_envs`` portfolio envs as one TorchRL env with
``batch_size=[num_envs]``; every ``step`` is ONE jitted, vmapped JAX call for the whole batch, and
every (partial) ``reset`` another one.

TensorDict entries (``B = num_envs``, ``N`` assets, ``D = PortfolioEnv.obs_dim``):

* ``"observation"`` float32 ``[B, D]`` (the JAX env's observation) and ``"equity"`` float32
  ``[B, 1]`` (E, units of E0's currency);
* ``"action"`` float32 ``[B, N]``: target exposure per asset (fraction of equity), a ``Bounded``
  spec in ``[-leverage_cap, leverage_cap]`` (``[0, leverage_cap]`` when ``long_only``); the env
  also scales the gross exposure down to the cap;
* ``"reward"`` float32 ``[B, 1]`` (per-step log return, or net profit / E0 with
  ``reward="profit"``); ``"done"``, ``"terminated"`` (bankruptcy), ``"truncated"``
  (``episode_length`` steps or the end of the data): bool ``[B, 1]``.

Resets follow TorchRL: ``reset()`` resets every env; ``reset(td)`` with a ``"_reset"`` mask
``[B, 1]`` (what ``step_and_maybe_reset`` and the collectors pass) draws new episodes for the
masked envs only and returns the current observation of the others (recomputed from their state;
TorchRL then keeps its own copy for those). The env is stateful like TorchRL's Gym wrappers: the
JAX ``EnvState`` lives on the object (``env.jax_state``). Stepping an env whose episode ended
without resetting it is the caller's mistake (TorchRL's rollouts and collectors always reset).

Seeds: ``set_seed(s)`` makes the next reset of env ``i`` start where
``PortfolioEnv.reset_env(jax.random.PRNGKey(s + i), params)`` does; later resets of env ``i``
draw from its own key chain (the Gymnasium vector env's scheme, see :mod:`torch_compat.env`), so
env ``i`` replays a ``TorchPortfolioVectorEnv`` env ``i`` reset with seed ``s``, whatever the other
envs do. Without ``set_seed`` the first reset draws a base seed from Torch's global generator.

Copies: JAX outputs reach Torch by ``torch.from_dlpack`` (zero-copy when the env ``device`` is
where JAX runs; a copy otherwise). They are fresh outputs of the jitted call, never the env state,
so TorchRL may write into them in place. Actions go to JAX as in :mod:`torch_compat.env`
(``action_transfer="auto"``: a NumPy view copied at dispatch when Torch and JAX are both on CPU,
cheaper there than a DLPack import; zero-copy DLPack otherwise).

``requires_grad=True``: differentiable rollouts. The state is then kept as Torch tensors and each
step is :class:`torch_compat.autograd.JaxVJPFunction` (forward = jitted JAX, backward =
``jax.vjp``), so rewards, observations and equity carry gradients to the actions and through the
state to earlier actions, as TorchRL's Brax wrapper does. Resets start fresh (gradient-free) state.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

from jaxport.env import EnvParams, EnvState, PortfolioEnv
from jaxport.errors import ConfigError, DataError
from torch_compat.env import (
    ACTION_TRANSFERS,
    TorchEnvArgs,
    TorchEnvConstructors,
    with_shared_keywords,
)


# ---------------------------------------------------------------------------------- JAX kernels
@partial(jax.jit, static_argnums=0)
def _reset_kernel(env: PortfolioEnv, params: EnvParams, state, chain, mask, seeded, seeds):
    """Reset the envs in ``mask`` ``[B]``; keep the others' ``state``.

    Env ``i`` starts from ``PRNGKey(seeds[i])`` where ``seeded[i]`` (its key chain restarts at
    ``fold_in(PRNGKey(seeds[i]), 1)``), else from ``split(chain[i])[1]`` (chain -> ``[0]``).
    Returns ``(obs [B, D], state, chain [B, 2], equity [B])``.
    """
    seed_keys = jax.vmap(jax.random.PRNGKey)(seeds)
    seed_chain = jax.vmap(jax.random.fold_in, in_axes=(0, None))(seed_keys, 1)
    pairs = jax.vmap(jax.random.split)(chain)
    keys = jnp.where(seeded[:, None], seed_keys, pairs[:, 1])
    next_chain = jnp.where(seeded[:, None], seed_chain, pairs[:, 0])
    _, fresh = jax.vmap(env.reset_env, in_axes=(0, None))(keys, params)

    def pick(new, old):
        return jnp.where(mask.reshape(mask.shape + (1,) * (new.ndim - 1)), new, old)

    new_state = jax.tree.map(pick, fresh, state)
    new_chain = jnp.where(mask[:, None], next_chain, chain)
    obs = jax.vmap(env.get_obs, in_axes=(0, None))(new_state, params)
    return obs, new_state, new_chain, new_state.equity


@partial(jax.jit, static_argnums=0)
def _step_kernel(env: PortfolioEnv, params: EnvParams, state: EnvState, action):
    """One non-resetting step of every env: ``(obs [B, D], state, [reward, E] [B, 2], flags)``.

    ``flags`` ``[B, 3]`` bool columns: terminated, truncated, done.
    """
    action = jnp.asarray(action, jnp.float32).reshape(state.equity.shape[0], env.num_assets)
    step = jax.vmap(env.step_env, in_axes=(None, 0, 0, None))
    obs, new, reward, term, _ = step(jax.random.PRNGKey(0), state, action, params)
    trunc = jax.vmap(env.is_truncated, in_axes=(0, None))(new, params)
    floats = jnp.stack([reward, new.equity], axis=-1).astype(jnp.float32)
    flags = jnp.stack([term, trunc, term | trunc], axis=-1)
    return obs, new, floats, flags


# ---------------------------------------------------------------------------------- the env
def _jax_platform() -> str:
    return jax.default_backend()


class TorchRLPortfolioEnv(TorchEnvConstructors, EnvBase):
    """``num_envs`` portfolio envs as one TorchRL ``EnvBase`` (``batch_size=[num_envs]``).

    ``TorchRLPortfolioEnv(prices [T, N], features [T, N, F] | None, num_envs=B, device=...,
    requires_grad=False, **options)`` with the JAX env's options (``window``, ``long_only``,
    ``reward``, ``return_mode``, ``leverage_cap``, ``fee_rate``, ... see
    :func:`torch_compat.env.build_jax_env`), or :meth:`from_csv_dir`, or :meth:`from_jax`.
    ``device``: the Torch device of the TensorDicts (default: CPU, or CUDA when JAX runs on a GPU
    and Torch sees one). See the module docstring for the entries, resets, seeds and copies.
    """

    _supports_set_state = False
    CONSTRUCTOR_KEYWORDS = ("device", "num_envs", "requires_grad", "action_transfer")

    @with_shared_keywords
    def __init__(
        self,
        prices=None,
        features=None,
        *,
        num_envs: int = 1,
        requires_grad: bool = False,
        **keywords,
    ):
        args = TorchEnvArgs.resolve("TorchRLPortfolioEnv", prices, features, keywords)
        jax_env, params, labels = args.jax_env, args.params, args.labels
        device, action_transfer = args.device, args.action_transfer
        if int(num_envs) < 1:
            raise ConfigError(f"num_envs must be >= 1, got {num_envs}")
        if action_transfer not in ACTION_TRANSFERS:
            raise ConfigError(
                f"action_transfer={action_transfer!r}: expected one of {ACTION_TRANSFERS}"
            )
        if device is None:
            device = "cuda" if _jax_platform() == "gpu" and torch.cuda.is_available() else "cpu"
        super().__init__(device=torch.device(device), batch_size=torch.Size([int(num_envs)]))
        self.jax_env = jax_env
        self.params = params
        self.num_envs = int(num_envs)
        self.requires_grad = bool(requires_grad)
        self.action_transfer = action_transfer
        symbols = labels["symbols"]
        self.symbols = (
            tuple(symbols)
            if symbols is not None
            else tuple(f"asset{i}" for i in range(jax_env.num_assets))
        )
        self.dates = labels["dates"]
        self.feature_names = tuple(labels["feature_names"] or ())
        self._make_specs()
        B = self.num_envs
        self._state: EnvState | None = None  # JAX state (requires_grad=False)
        self._tstate = None  # TorchEnvState with autograd history (requires_grad=True)
        self._obs_t: torch.Tensor | None = None  # last observation handed out (requires_grad=True)
        self._chain = jnp.zeros((B, 2), jnp.uint32)
        self._seeds = np.zeros(B, np.uint32)
        self._seeded = np.zeros(B, bool)
        self._ever_seeded = False
        self._blank: EnvState | None = None

    # ------------------------------------------------------------------ construction helpers
    def _make_specs(self) -> None:
        B, N, D = self.num_envs, self.jax_env.num_assets, self.jax_env.obs_dim
        dev = self.device
        cap = float(self.params.leverage_cap)
        low = 0.0 if self.jax_env.long_only else -cap
        self.observation_spec = Composite(
            observation=Unbounded(shape=(B, D), dtype=torch.float32, device=dev),
            equity=Unbounded(shape=(B, 1), dtype=torch.float32, device=dev),
            shape=(B,),
            device=dev,
        )
        self.action_spec = Bounded(low=low, high=cap, shape=(B, N), dtype=torch.float32, device=dev)
        self.reward_spec = Unbounded(shape=(B, 1), dtype=torch.float32, device=dev)
        done = Categorical(2, shape=(B, 1), dtype=torch.bool, device=dev)
        self.done_spec = Composite(
            done=done, terminated=done.clone(), truncated=done.clone(), shape=(B,), device=dev
        )

    # ------------------------------------------------------------------ conversions
    def _to_torch(self, x: jax.Array) -> torch.Tensor:
        t = torch.from_dlpack(x)
        return t if t.device == self.device else t.to(self.device)

    def _to_jax(self, t: torch.Tensor, dtype: torch.dtype):
        """Torch -> what the jitted kernels take (module docstring, "Copies")."""
        t = t.detach()
        if t.dtype != dtype:
            t = t.to(dtype)
        on_cpu = t.device.type == "cpu"
        if self.action_transfer == "copy" or (
            on_cpu and _jax_platform() == "cpu" and self.action_transfer == "auto"
        ):
            return t.cpu().numpy()
        jax_gpu = _jax_platform() == "gpu"
        if (on_cpu and _jax_platform() == "cpu") or (t.device.type == "cuda" and jax_gpu):
            return jax.dlpack.from_dlpack(t.contiguous())
        return t.cpu().numpy()

    def _blank_state(self) -> EnvState:
        """Zeros shaped like the batched ``EnvState`` (host arrays; traced, not compiled): the
        "kept" state of a reset of every env, so the first and later resets share one program."""
        if self._blank is None:
            B, env = self.num_envs, self.jax_env
            shapes = jax.eval_shape(
                lambda: jax.vmap(env.initial_state, in_axes=(0, None))(
                    jnp.zeros((B,), jnp.int32), self.params
                )
            )
            self._blank = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
        return self._blank

    @property
    def jax_state(self) -> EnvState | None:
        """The current batched JAX ``EnvState`` (with ``requires_grad``: converted, detached)."""
        if self._tstate is not None:
            from torch_compat.autograd import state_from_torch

            return state_from_torch(self._tstate)
        return self._state

    # ------------------------------------------------------------------ EnvBase API
    def _set_seed(self, seed: int | None) -> None:
        """The next reset of env ``i`` starts from ``PRNGKey(seed + i)`` (``None``: random seed)."""
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
        if int(seed) < 0:
            raise ConfigError(f"seed must be >= 0, got {seed}")
        self._seeds = ((int(seed) + np.arange(self.num_envs, dtype=np.int64)) % 2**32).astype(
            np.uint32
        )
        self._seeded = np.ones(self.num_envs, bool)
        self._ever_seeded = True

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        B = self.num_envs
        if not self._ever_seeded:
            self._set_seed(None)
        mask = None if tensordict is None else tensordict.get("_reset", None)
        first = self._state is None and self._tstate is None
        if mask is None or first:
            mask_np = np.ones(B, bool)
        else:
            mask_np = mask.detach().reshape(B).cpu().numpy().astype(bool)
        keep_state = self._blank_state() if (first or self.requires_grad) else self._state
        obs, state, self._chain, equity = _reset_kernel(
            self.jax_env,
            self.params,
            keep_state,
            self._chain,
            jnp.asarray(mask_np),
            jnp.asarray(self._seeded),
            jnp.asarray(self._seeds),
        )
        self._seeded = self._seeded & ~mask_np
        obs_t, equity_t = self._to_torch(obs), self._to_torch(equity)
        if self.requires_grad:
            obs_t, equity_t = self._merge_grad_reset(state, obs_t, mask_np, first)
        else:
            self._state = state
        false = torch.zeros((B, 1), dtype=torch.bool, device=self.device)
        return TensorDict(
            {
                "observation": obs_t,
                "equity": equity_t.reshape(B, 1),
                "done": false,
                "terminated": false.clone(),
                "truncated": false.clone(),
            },
            batch_size=self.batch_size,
            device=self.device,
        )

    def _merge_grad_reset(self, fresh: EnvState, obs_t, mask_np, first: bool):
        """Differentiable mode: fresh Torch state for masked envs; the others keep their history."""
        from torch_compat.autograd import TorchEnvState, state_to_torch

        new = state_to_torch(fresh, device=self.device)
        if first or bool(mask_np.all()):
            self._tstate, self._obs_t = new, obs_t
        else:
            m = torch.as_tensor(mask_np, device=self.device)

            def pick(a, b):
                return torch.where(m.reshape(m.shape + (1,) * (a.dim() - 1)), a, b)

            self._tstate = TorchEnvState(*(pick(a, b) for a, b in zip(new, self._tstate)))
            self._obs_t = pick(obs_t, self._obs_t)
        return self._obs_t, self._tstate.equity

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        if self._state is None and self._tstate is None:
            raise RuntimeError("TorchRLPortfolioEnv: call reset() before step()")
        action = tensordict.get("action")
        B = self.num_envs
        if self.requires_grad:
            return self._step_with_grad(action)
        obs, self._state, floats, flags = _step_kernel(
            self.jax_env, self.params, self._state, self._to_jax(action, torch.float32)
        )
        floats, flags = self._to_torch(floats), self._to_torch(flags)
        return TensorDict(
            {
                "observation": self._to_torch(obs),
                "equity": floats[:, 1:2],
                "reward": floats[:, 0:1],
                "terminated": flags[:, 0:1],
                "truncated": flags[:, 1:2],
                "done": flags[:, 2:3],
            },
            batch_size=torch.Size([B]),
            device=self.device,
        )

    def _step_with_grad(self, action: torch.Tensor) -> TensorDictBase:
        from torch_compat.autograd import differentiable_reward

        B = self.num_envs
        if not action.is_floating_point():
            raise DataError(f"action: expected a floating-point tensor, got {action.dtype}")
        out = differentiable_reward(
            (self.jax_env, self.params), action.to(torch.float32), self._tstate
        )
        self._tstate, self._obs_t = out.state, out.obs
        term = out.terminated.to(self.device).bool().reshape(B, 1)
        trunc = out.truncated.to(self.device).bool().reshape(B, 1)
        return TensorDict(
            {
                "observation": out.obs,
                "equity": out.state.equity.reshape(B, 1),
                "reward": out.reward.reshape(B, 1),
                "terminated": term,
                "truncated": trunc,
                "done": term | trunc,
            },
            batch_size=torch.Size([B]),
            device=self.device,
        )

    def __repr__(self) -> str:
        env = self.jax_env
        return (
            f"{type(self).__name__}(num_envs={self.num_envs}, num_assets={env.num_assets}, "
            f"obs_dim={env.obs_dim}, device={self.device}, requires_grad={self.requires_grad})"
        )


__all__ = ["TorchRLPortfolioEnv"]
