"""Gymnasium environments over the JAX :class:`jaxport.env.PortfolioEnv`, for PyTorch users.

Two layers, both plain Gymnasium objects:

* :class:`JaxPortfolioGymEnv` (``gymnasium.Env``) and :class:`JaxPortfolioVectorGymEnv`
  (``gymnasium.vector.VectorEnv``) call ONE jitted JAX function per ``step``/``reset`` and return
  JAX arrays; the JAX ``EnvState`` lives on the Python object.
* :class:`TorchPortfolioEnv` / :class:`TorchPortfolioVectorEnv` are Gymnasium's own
  ``gymnasium.wrappers.JaxToTorch`` / ``gymnasium.wrappers.vector.JaxToTorch`` (DLPack) around them:
  actions go in and observations, rewards (vector env) and info come out as ``torch.Tensor``.

Seeds: ``reset(seed=s)`` starts exactly where ``PortfolioEnv.reset(jax.random.PRNGKey(s), params)``
does. Later resets without a seed (and the vector env's auto-resets) draw keys from a per-env chain
``k_{n+1}, reset_key = split(k_n)`` starting at ``k_0 = fold_in(PRNGKey(s), 1)``. The vector env seeds
env ``i`` with ``s + i`` (Gymnasium's ``SyncVectorEnv`` convention), so env ``i`` of a vector env reset
with seed ``s`` replays a single env reset with seed ``s + i``, across auto-resets too.

Copies (checked in tests/test_torch_compat.py with ``data_ptr`` / ``unsafe_buffer_pointer``):

* JAX -> Torch (observations, rewards, flags, info): Gymnasium's ``array_conversion`` =
  ``torch.from_dlpack`` on the JAX buffer, no copy when the Torch ``device`` is where JAX runs
  (CPU: always, XLA CPU buffers are 64-byte aligned). A copy when they differ (e.g. JAX on CPU,
  ``device="cuda"``). The tensors are fresh outputs of the jitted step (never the env state), so
  editing them in place cannot corrupt the env.
* Torch -> JAX (actions), ``action_transfer``: ``"dlpack"`` = Gymnasium's DLPack conversion, no copy
  for a contiguous tensor on the JAX device (on CPU only if 64-byte aligned: fresh allocations
  are, a view at an offset such as ``x[1:]`` is copied by JAX). ``"copy"`` = a NumPy view of the
  tensor handed to the jitted call, which copies the ``B x N`` floats at dispatch. ``"auto"``
  (default) = ``"copy"`` when tensor and JAX are both on CPU, else ``"dlpack"``: on CPU a DLPack
  import plus the jitted call costs ~120-330 us per step versus ~9-120 us for the NumPy view copied
  at dispatch (actions [B, 7], B = 1..8192, measured on the shared 2-core dev box).
  Tensors that require grad are detached.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.error import ResetNeeded
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from gymnasium.wrappers import JaxToTorch
from gymnasium.wrappers.array_conversion import array_conversion
from gymnasium.wrappers.vector import JaxToTorch as VectorJaxToTorch

from jaxport.data import DataError, load_market
from jaxport.env import EnvParams, EnvState, PortfolioEnv
from torch_compat import ENV_ID  # "jaxport/Portfolio-v0" (defined in the package so registration is cheap)

FEATURE_MODES = ("stat", "none")

#: keyword arguments of ``PortfolioEnv`` (``window`` also goes to ``EnvParams.from_arrays``)
ENV_KWARGS = ("window", "long_only", "reward", "return_mode")
#: keyword arguments of ``EnvParams.from_arrays``
PARAM_KWARGS = (
    "open_prices",
    "leverage_cap",
    "annual_financing_rate",
    "periods_per_year",
    "fee_rate",
    "slippage_rate",
    "short_borrow_rate",
    "bankruptcy_fraction",
    "initial_equity",
    "episode_length",
    "eval_start",
    "start_min",
)
STEP_INFO_KEYS = (
    "equity",
    "leverage",
    "turnover",
    "fees",
    "financing",
    "gross_pnl",
    "portfolio_return",
    "closed_trade_pnl",
    "num_closed",
    "t",
)


# ---------------------------------------------------------------------------------- building
def _host(x) -> np.ndarray | None:
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def build_jax_env(prices, features=None, **options) -> tuple[PortfolioEnv, EnvParams]:
    """``(PortfolioEnv, EnvParams)`` from the same arguments as the JAX env.

    ``prices`` [T, N] closes; ``features`` [T, N, F] (``None`` -> no features, F = 0); ``options``:
    ``PortfolioEnv`` kwargs (``window``, ``long_only``, ``reward``, ``return_mode``) and
    ``EnvParams.from_arrays`` kwargs (``leverage_cap``, ``fee_rate``, ... ``start_min``).
    Arrays may be NumPy, JAX or Torch. Bad input raises ``DataError``.
    """
    unknown = sorted(set(options) - set(ENV_KWARGS) - set(PARAM_KWARGS))
    if unknown:
        raise DataError(f"unknown env option(s) {unknown}; expected {list(ENV_KWARGS + PARAM_KWARGS)}")
    prices = _host(prices)
    if prices is None or prices.ndim != 2:
        raise DataError(f"prices must be a [T, N] array, got {None if prices is None else prices.shape}")
    T, N = prices.shape
    features = np.zeros((T, N, 0), np.float32) if features is None else _host(features)
    if features.ndim == 2:
        features = features[:, :, None]
    env_kw = {k: options[k] for k in ENV_KWARGS if k in options}
    param_kw = {k: options[k] for k in PARAM_KWARGS if k in options}
    if "open_prices" in param_kw:
        param_kw["open_prices"] = _host(param_kw["open_prices"])
    try:
        env = PortfolioEnv(N, features.shape[-1] if features.ndim == 3 else 1, **env_kw)
        params = EnvParams.from_arrays(prices, features, window=env.window, **param_kw)
    except ValueError as err:  # from_arrays / PortfolioEnv validation
        raise DataError(f"env options: {err}") from err
    return env, params


def load_csv_arrays(
    data_dir: str | Path,
    symbols: Sequence[str] | None = None,
    *,
    features: str | np.ndarray | None = "stat",
) -> dict[str, Any]:
    """Load ``symbols`` from ``data_dir`` (``jaxport.data.load_market``) and build env arrays.

    ``features``: ``"stat"`` -> ``jaxport.features.market_stat_features`` (its warm-up rows are
    excluded from episode starts via ``start_min``); ``"none"``/``None`` -> no features; an array
    ``[T, N, F]`` (or ``[T, N]``) aligned to the loaded dates.
    Returns ``dict(prices, open_prices, features, symbols, dates, feature_names, start_min)``.
    """
    market = load_market(data_dir, symbols)
    T, N = market.close.shape
    start_min = 0
    if isinstance(features, str) or features is None:
        mode = "none" if features is None else features
        if mode not in FEATURE_MODES:
            raise DataError(f"features={features!r}: expected one of {FEATURE_MODES} or an array")
        if mode == "stat":
            try:
                from jaxport.features import market_stat_features, warmup_days
            except ImportError as err:  # pragma: no cover - the features layer ships with jaxport
                raise DataError(f"features='stat': jaxport.features is unavailable ({err})") from err
            feats, names = market_stat_features(market)
            feats = np.asarray(feats, np.float32)
            start_min = int(warmup_days())
        else:
            feats, names = np.zeros((T, N, 0), np.float32), ()
    else:
        feats = _host(features).astype(np.float32)
        if feats.ndim == 2:
            feats = feats[:, :, None]
        if feats.shape[:2] != (T, N):
            raise DataError(f"features: shape {feats.shape} does not match the loaded data [T={T}, N={N}]")
        names = tuple(f"f{i}" for i in range(feats.shape[-1]))
    return dict(
        prices=market.close,
        open_prices=market.open,
        features=feats,
        symbols=tuple(market.symbols),
        dates=market.dates,
        feature_names=tuple(names),
        start_min=min(start_min, T - 2),
    )


def _csv_env_args(data_dir, symbols, features, options: dict) -> tuple[dict, dict]:
    """(arrays for ``build_jax_env``, metadata) from a CSV directory."""
    if "open_prices" in options:
        raise DataError("open_prices: not accepted with a data directory (opens come from the CSVs)")
    arrays = load_csv_arrays(data_dir, symbols, features=features)
    window = int(options.get("window", 1))
    opts = dict(options)
    opts.setdefault("start_min", max(arrays["start_min"], window - 1))
    kwargs = dict(prices=arrays["prices"], features=arrays["features"], open_prices=arrays["open_prices"], **opts)
    meta = dict(symbols=arrays["symbols"], dates=arrays["dates"], feature_names=arrays["feature_names"])
    return kwargs, meta


# ---------------------------------------------------------------------------------- jitted kernels
@jax.jit
def _keys_from_seeds(seeds: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(reset_keys, chain_keys)`` for uint32 seeds ``[B]``: ``PRNGKey(s)`` and ``fold_in(PRNGKey(s), 1)``."""
    keys = jax.vmap(jax.random.PRNGKey)(seeds)
    return keys, jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, 1)


@jax.jit
def _split_chain(keys: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(reset_keys, next_chain_keys)`` from chain keys ``[B, 2]``."""
    pairs = jax.vmap(jax.random.split)(keys)
    return pairs[:, 1], pairs[:, 0]


def _with_start(params: EnvParams, start: jnp.ndarray) -> EnvParams:
    return params.replace(eval_start=jnp.where(start >= 0, start, params.eval_start).astype(jnp.int32))


def _reset_info(state: EnvState, num_assets: int) -> dict[str, jnp.ndarray]:
    """Info of a fresh episode: the step-info keys, with equity E0, day index t and zero flows."""
    zero = jnp.zeros((), jnp.float32)
    return {
        "equity": state.equity,
        "leverage": zero,
        "turnover": zero,
        "fees": zero,
        "financing": zero,
        "gross_pnl": zero,
        "portfolio_return": zero,
        "closed_trade_pnl": jnp.zeros((num_assets,), jnp.float32),
        "num_closed": jnp.zeros((), jnp.int32),
        "t": state.t,
    }


def _reset_core(env: PortfolioEnv, key, params: EnvParams, start):
    obs, state = env.reset_env(key, _with_start(params, start))
    return obs, state, _reset_info(state, env.num_assets)


def _step_core(env: PortfolioEnv, state: EnvState, action, params: EnvParams):
    """Non-autoreset step: ``(obs, state, reward, terminated, truncated, info)``."""
    action = jnp.asarray(action, jnp.float32).reshape(env.num_assets)
    obs, state, reward, terminated, info = env.step_env(jax.random.PRNGKey(0), state, action, params)
    truncated = env.is_truncated(state, params)
    info = {k: info[k] for k in STEP_INFO_KEYS if k in info}
    info["t"] = state.t
    return obs, state, reward, terminated, truncated, info


_reset_one = jax.jit(_reset_core, static_argnums=0)
_step_one = jax.jit(_step_core, static_argnums=0)


@partial(jax.jit, static_argnums=0)
def _reset_batch(env: PortfolioEnv, keys, params: EnvParams, starts):
    return jax.vmap(_reset_core, in_axes=(None, 0, None, 0))(env, keys, params, starts)


@partial(jax.jit, static_argnums=0)
def _step_batch(env: PortfolioEnv, state: EnvState, chain_keys, autoreset, actions, params: EnvParams):
    """One NEXT_STEP auto-reset vector step of all envs (one XLA program).

    Envs flagged in ``autoreset`` (their previous step ended the episode) ignore their action and
    reset instead: reset observation, reward 0, terminated = truncated = False, reset info.
    """
    actions = jnp.asarray(actions, jnp.float32).reshape(autoreset.shape[0], env.num_assets)
    obs_s, state_s, reward, term, trunc, info_s = jax.vmap(_step_core, in_axes=(None, 0, 0, None))(
        env, state, actions, params
    )
    reset_keys, next_keys = _split_chain(chain_keys)
    no_start = jnp.full(autoreset.shape, -1, jnp.int32)
    obs_r, state_r, info_r = jax.vmap(_reset_core, in_axes=(None, 0, None, 0))(env, reset_keys, params, no_start)

    def pick(reset_leaf, step_leaf):
        mask = autoreset.reshape(autoreset.shape + (1,) * (step_leaf.ndim - 1))
        return jnp.where(mask, reset_leaf, step_leaf)

    new_state = jax.tree.map(pick, state_r, state_s)
    obs = pick(obs_r, obs_s)
    info = {k: pick(info_r[k], info_s[k]) for k in STEP_INFO_KEYS}
    stepped = ~autoreset
    reward = jnp.where(autoreset, 0.0, reward)
    term = term & stepped
    trunc = trunc & stepped
    chain = jnp.where(autoreset[:, None], next_keys, chain_keys)
    return obs, new_state, chain, term | trunc, reward, term, trunc, info


# ---------------------------------------------------------------------------------- JAX-array Gymnasium envs
def _box_spaces(env: PortfolioEnv, params: EnvParams) -> tuple[spaces.Box, spaces.Box]:
    cap = float(params.leverage_cap)
    obs_space = spaces.Box(-np.inf, np.inf, (env.obs_dim,), np.float32)
    act_space = spaces.Box(0.0 if env.long_only else -cap, cap, (env.num_assets,), np.float32)
    return obs_space, act_space


def _seed_array(seeds) -> jnp.ndarray:
    seeds = np.asarray(seeds, dtype=np.int64)
    if np.any(seeds < 0):
        raise DataError(f"seed must be >= 0, got {seeds.tolist()}")
    return jnp.asarray((seeds % 2**32).astype(np.uint32))


def _as_action(action, shape: tuple[int, ...]):
    """Host-checked action for the jitted step: a JAX array, or a float32 NumPy array/view.

    NumPy input goes straight into the jitted call (XLA copies it at dispatch: ~10 us on CPU, far
    cheaper than a DLPack import, see the module docstring); the float32 cast and reshape happen in
    the jitted step.
    """
    if not isinstance(action, jax.Array):
        action = np.asarray(action, dtype=np.float32)
    if action.size != int(np.prod(shape)):
        raise DataError(f"action: expected {int(np.prod(shape))} values for shape {shape}, got shape {action.shape}")
    return action


def _start_option(options: dict | None, params: EnvParams, window: int, batch: int | None):
    """``options["start"]`` (day index, or one per env) -> int32 array; -1 = use the params' rule."""
    start = None if not options else options.get("start")
    shape = () if batch is None else (batch,)
    if start is None:
        return jnp.full(shape, -1, jnp.int32)
    start = np.broadcast_to(np.asarray(start, dtype=np.int64), shape)
    last = params.num_days - 2
    if np.any(start < window - 1) or np.any(start > last):
        raise DataError(f"options['start']={start.tolist()}: must be in [{window - 1}, {last}]")
    return jnp.asarray(start.astype(np.int32))


class JaxPortfolioGymEnv(gym.Env):
    """One portfolio env as a Gymnasium env over JAX arrays (no auto-reset).

    ``step(action)`` -> ``(obs jax [D], float reward, bool terminated, bool truncated, info of JAX
    arrays)``; after ``terminated or truncated`` the caller must ``reset()``. ``reset`` accepts
    ``options={"start": day_index}`` to start at a given day (evaluation).
    """

    metadata = {"render_modes": [], "jax": True}

    def __init__(self, env: PortfolioEnv, params: EnvParams, *, symbols=None, dates=None, feature_names=None):
        self.jax_env = env
        self.params = params
        self.symbols = tuple(symbols) if symbols is not None else tuple(f"asset{i}" for i in range(env.num_assets))
        self.dates = dates
        self.feature_names = tuple(feature_names or ())
        self.observation_space, self.action_space = _box_spaces(env, params)
        self.state: EnvState | None = None
        self._chain_key = None
        self._done = True
        self.last_obs = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None and self._chain_key is None:
            seed = int(self.np_random.integers(0, 2**31 - 1))
        if seed is not None:
            keys, chain = _keys_from_seeds(_seed_array([seed]))
            key, self._chain_key = keys[0], chain
        else:
            keys, self._chain_key = _split_chain(self._chain_key)
            key = keys[0]
        start = _start_option(options, self.params, self.jax_env.window, None)
        obs, self.state, info = _reset_one(self.jax_env, key, self.params, start)
        self._done = False
        self.last_obs = obs
        return obs, info

    def step(self, action):
        if self.state is None or self._done:
            raise ResetNeeded("call reset() before step() (and after terminated or truncated)")
        action = _as_action(action, (self.jax_env.num_assets,))
        obs, self.state, reward, terminated, truncated, info = _step_one(self.jax_env, self.state, action, self.params)
        terminated, truncated = bool(terminated), bool(truncated)
        self._done = terminated or truncated
        self.last_obs = obs
        return obs, float(reward), terminated, truncated, info


class JaxPortfolioVectorGymEnv(VectorEnv):
    """``num_envs`` portfolio envs stepped by ONE jitted, vmapped call; JAX arrays in and out.

    Auto-reset: ``AutoresetMode.NEXT_STEP`` (Gymnasium's default): the step that ends an episode
    returns its final observation; the NEXT ``step`` of that env ignores its action and returns the
    reset observation with reward 0, ``terminated = truncated = False`` and reset info.
    Info: every key is an array ``[num_envs]`` (``closed_trade_pnl``: ``[num_envs, N]``) holding a
    value for EVERY env (an auto-reset env reports its reset info: equity E0, its start day ``t``
    and zero flows), so there are no Gymnasium ``"_" + key`` masks (they would all be True and
    would cost one DLPack conversion each per step).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": [], "jax": True}

    def __init__(self, env: PortfolioEnv, params: EnvParams, num_envs: int, *, symbols=None, dates=None,
                 feature_names=None):
        if int(num_envs) < 1:
            raise DataError(f"num_envs must be >= 1, got {num_envs}")
        self.jax_env = env
        self.params = params
        self.num_envs = int(num_envs)
        self.symbols = tuple(symbols) if symbols is not None else tuple(f"asset{i}" for i in range(env.num_assets))
        self.dates = dates
        self.feature_names = tuple(feature_names or ())
        self.single_observation_space, self.single_action_space = _box_spaces(env, params)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.state: EnvState | None = None
        self._chain_keys = None
        self._autoreset = None
        self.last_obs = None  # last JAX outputs / input, kept for inspection (zero-copy checks)
        self.last_info = None
        self.last_action = None

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict | None = None):
        B = self.num_envs
        if isinstance(seed, (int, np.integer)):
            seed = [int(seed) + i for i in range(B)]
        if seed is not None:
            seed = list(seed)
            if len(seed) != B:
                raise DataError(f"seed: expected {B} seeds, got {len(seed)}")
            super().reset(seed=seed[0])
        else:
            super().reset(seed=None)
        if seed is None and self._chain_keys is None:
            seed = [None] * B
        if seed is not None:
            seed = [int(self.np_random.integers(0, 2**31 - 1)) if s is None else s for s in seed]
            keys, self._chain_keys = _keys_from_seeds(_seed_array(seed))
        else:
            keys, self._chain_keys = _split_chain(self._chain_keys)
        starts = _start_option(options, self.params, self.jax_env.window, B)
        obs, self.state, info = _reset_batch(self.jax_env, keys, self.params, starts)
        self._autoreset = jnp.zeros((B,), bool)
        self.last_obs = obs
        return obs, info

    def step(self, actions):
        if self.state is None:
            raise ResetNeeded("call reset() before step()")
        actions = _as_action(actions, (self.num_envs, self.jax_env.num_assets))
        self.last_action = actions
        obs, self.state, self._chain_keys, self._autoreset, reward, term, trunc, info = _step_batch(
            self.jax_env, self.state, self._chain_keys, self._autoreset, actions, self.params
        )
        self.last_obs, self.last_info = obs, info
        return obs, reward, term, trunc, info


# ---------------------------------------------------------------------------------- Torch envs
ACTION_TRANSFERS = ("auto", "dlpack", "copy")


def _torch_device(device) -> torch.device | None:
    return None if device is None else torch.device(device)


def _check_transfer(action_transfer: str) -> str:
    if action_transfer not in ACTION_TRANSFERS:
        raise DataError(f"action_transfer={action_transfer!r}: expected one of {ACTION_TRANSFERS}")
    return action_transfer


def _env_action(action, transfer: str, env_xp, env_device):
    """Torch action -> what the JAX-array env takes (module docstring, "Copies").

    ``"copy"`` (and ``"auto"`` when the tensor and JAX are both on CPU): a NumPy view of the tensor,
    copied by XLA when the jitted step is dispatched. ``"dlpack"`` (``"auto"`` otherwise):
    Gymnasium's DLPack conversion, zero-copy on a shared device. Other inputs pass through.
    """
    if not isinstance(action, torch.Tensor):
        return action
    action = action.detach()
    on_cpu = action.device.type == "cpu" and jax.default_backend() == "cpu"
    if transfer == "copy" or (transfer == "auto" and on_cpu):
        return action.cpu().numpy()
    return array_conversion(action.contiguous(), xp=env_xp, device=env_device)


def _convert_step(wrapper, action, single: bool):
    """``ArrayConversion.step`` with :func:`_env_action` for the action."""
    action = _env_action(action, wrapper.action_transfer, wrapper._env_xp, wrapper._env_device)
    obs, reward, terminated, truncated, info = wrapper.env.step(action)
    to_torch = partial(array_conversion, xp=wrapper._target_xp, device=wrapper._target_device)
    if single:
        return to_torch(obs), float(reward), bool(terminated), bool(truncated), to_torch(info)
    return to_torch(obs), to_torch(reward), to_torch(terminated), to_torch(truncated), to_torch(info)


class _UnwrappedAccess:
    """Conveniences shared by the Torch envs (Gymnasium wrappers do not forward attributes)."""

    @property
    def jax_env(self) -> PortfolioEnv:
        return self.env.unwrapped.jax_env

    @property
    def params(self) -> EnvParams:
        return self.env.unwrapped.params

    @property
    def jax_state(self) -> EnvState | None:
        """The current JAX ``EnvState`` (batched for the vector env; see ``torch_compat.autograd``)."""
        return self.env.unwrapped.state

    @property
    def symbols(self) -> tuple[str, ...]:
        return self.env.unwrapped.symbols

    @property
    def dates(self):
        return self.env.unwrapped.dates


class TorchPortfolioEnv(_UnwrappedAccess, JaxToTorch):
    """One portfolio env with a PyTorch interface (a Gymnasium ``JaxToTorch`` over the JAX step).

    ``TorchPortfolioEnv(prices [T,N], features [T,N,F] | None, device=..., **options)`` with the JAX
    env's options (see :func:`build_jax_env`), or :meth:`from_csv_dir`, or :meth:`from_jax`.
    ``reset(seed=, options={"start": day})`` -> ``(obs, info)``; ``step(action)`` ->
    ``(obs, reward, terminated, truncated, info)``: ``obs`` float32 ``torch.Tensor [D]`` on
    ``device``, ``reward`` a Python float and the flags Python bools (Gymnasium's ``Env`` contract, as
    ``JaxToTorch`` returns them), ``info`` a dict of 0-d/1-d tensors: equity (units of E0's currency),
    leverage (sum|w|), turnover, fees and financing of the step, gross_pnl, portfolio_return
    (fraction), closed_trade_pnl [N], num_closed, t (day index).
    Not auto-resetting: call ``reset()`` after ``terminated or truncated`` (else ``ResetNeeded``).
    """

    def __init__(self, prices=None, features=None, *, device=None, action_transfer: str = "auto",
                 jax_env: PortfolioEnv | None = None, params: EnvParams | None = None, symbols=None, dates=None,
                 feature_names=None, **options):
        if jax_env is None or params is None:
            if prices is None:
                raise DataError("TorchPortfolioEnv: pass prices (and features) or jax_env= and params=")
            jax_env, params = build_jax_env(prices, features, **options)
        elif prices is not None or options:
            raise DataError("TorchPortfolioEnv: pass either arrays and options, or jax_env= and params=")
        inner = JaxPortfolioGymEnv(jax_env, params, symbols=symbols, dates=dates, feature_names=feature_names)
        super().__init__(inner, device=_torch_device(device))
        self.action_transfer = _check_transfer(action_transfer)

    @classmethod
    def from_jax(cls, jax_env: PortfolioEnv, params: EnvParams, *, device=None, **meta) -> "TorchPortfolioEnv":
        """Wrap an existing ``(PortfolioEnv, EnvParams)``."""
        return cls(jax_env=jax_env, params=params, device=device, **meta)

    @classmethod
    def from_csv_dir(cls, data_dir, symbols: Sequence[str] | None = None, *, features="stat", device=None,
                     **options) -> "TorchPortfolioEnv":
        """Env over the CSVs in ``data_dir`` (``jaxport.data.load_market``): closes, opens, and
        ``features="stat"|"none"|array``; ``options`` as the JAX env's (``start_min`` defaults to the
        end of the feature warm-up)."""
        kwargs, meta = _csv_env_args(data_dir, symbols, features, options)
        return cls(device=device, **meta, **kwargs)

    def step(self, action):
        return _convert_step(self, action, single=True)



class TorchPortfolioVectorEnv(_UnwrappedAccess, VectorJaxToTorch):
    """``num_envs`` portfolio envs, one jitted vmapped JAX call per step, PyTorch interface.

    A Gymnasium ``vector.JaxToTorch`` over :class:`JaxPortfolioVectorGymEnv` (auto-reset
    ``NEXT_STEP``, declared in ``metadata["autoreset_mode"]``). ``step(actions [B, N])`` ->
    ``(obs [B, D] float32, reward [B] float32, terminated [B] bool, truncated [B] bool, info)``, all
    ``torch.Tensor`` on ``device``; zero-copy DLPack where the devices allow (module docstring).
    """

    def __init__(self, prices=None, features=None, *, num_envs: int = 1, device=None, action_transfer: str = "auto",
                 jax_env: PortfolioEnv | None = None, params: EnvParams | None = None, symbols=None, dates=None,
                 feature_names=None, **options):
        if jax_env is None or params is None:
            if prices is None:
                raise DataError("TorchPortfolioVectorEnv: pass prices (and features) or jax_env= and params=")
            jax_env, params = build_jax_env(prices, features, **options)
        elif prices is not None or options:
            raise DataError("TorchPortfolioVectorEnv: pass either arrays and options, or jax_env= and params=")
        inner = JaxPortfolioVectorGymEnv(jax_env, params, num_envs, symbols=symbols, dates=dates,
                                         feature_names=feature_names)
        super().__init__(inner, device=_torch_device(device))
        self.action_transfer = _check_transfer(action_transfer)

    @classmethod
    def from_jax(cls, jax_env: PortfolioEnv, params: EnvParams, *, num_envs: int = 1, device=None,
                 **meta) -> "TorchPortfolioVectorEnv":
        return cls(jax_env=jax_env, params=params, num_envs=num_envs, device=device, **meta)

    @classmethod
    def from_csv_dir(cls, data_dir, symbols: Sequence[str] | None = None, *, num_envs: int = 1, features="stat",
                     device=None, **options) -> "TorchPortfolioVectorEnv":
        """As :meth:`TorchPortfolioEnv.from_csv_dir`, with ``num_envs`` envs."""
        kwargs, meta = _csv_env_args(data_dir, symbols, features, options)
        return cls(num_envs=num_envs, device=device, **meta, **kwargs)

    def step(self, actions):
        return _convert_step(self, actions, single=False)



# ---------------------------------------------------------------------------------- registration
def make_portfolio_env(prices=None, features=None, *, data_dir=None, symbols=None, device=None, **options):
    """Entry point of ``gymnasium.make("jaxport/Portfolio-v0", ...)``: a :class:`TorchPortfolioEnv`.

    Either ``prices=``/``features=`` arrays or ``data_dir=`` (+ ``symbols=``, ``features="stat"|
    "none"|array``), plus the JAX env's options.
    """
    if data_dir is not None:
        if prices is not None:
            raise DataError("pass either data_dir= or prices=, not both")
        return TorchPortfolioEnv.from_csv_dir(data_dir, symbols, features="stat" if features is None else features,
                                              device=device, **options)
    return TorchPortfolioEnv(prices, features, device=device, symbols=symbols, **options)


def make_portfolio_vector_env(num_envs: int = 1, prices=None, features=None, *, data_dir=None, symbols=None,
                              device=None, **options):
    """Vector entry point (``gymnasium.make_vec("jaxport/Portfolio-v0", num_envs=B, ...)``)."""
    if data_dir is not None:
        if prices is not None:
            raise DataError("pass either data_dir= or prices=, not both")
        return TorchPortfolioVectorEnv.from_csv_dir(data_dir, symbols, num_envs=num_envs,
                                                    features="stat" if features is None else features,
                                                    device=device, **options)
    return TorchPortfolioVectorEnv(prices, features, num_envs=num_envs, device=device, symbols=symbols, **options)


def register_envs() -> None:
    """Register ``jaxport/Portfolio-v0`` with Gymnasium (see ``torch_compat.register_envs``)."""
    from torch_compat import register_envs as _register

    _register()
