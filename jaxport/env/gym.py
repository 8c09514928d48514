"""Gymnasium envs over :class:`~jaxport.env.PortfolioEnv` that return JAX arrays (no torch).

Modelled on gymnax's ``wrappers/gym.py``: the JAX ``EnvState`` lives on a Python object, and each
``reset``/``step`` is ONE jitted JAX call.

* :class:`JaxPortfolioGymEnv` (``gymnasium.Env``): one env, no auto-reset (call ``reset`` after
  ``terminated or truncated``, else ``ResetNeeded``).
* :class:`JaxPortfolioVectorGymEnv` (``gymnasium.vector.VectorEnv``): ``num_envs`` envs stepped by
  one vmapped call, auto-reset ``NEXT_STEP`` (Gymnasium's default).
* :func:`build_jax_env` / :func:`load_csv_arrays` / :func:`env_args_from_csv`: ``(PortfolioEnv,
  EnvParams)`` from arrays or from a folder of OHLCV CSVs.

``torch_compat.env`` puts Gymnasium's ``JaxToTorch`` wrappers on top of these for PyTorch users.
gymnasium is a core dependency (gymnax, which the env builds on, already requires and imports it).

Seeds: ``reset(seed=s)`` starts exactly where ``PortfolioEnv.reset(jax.random.PRNGKey(s), params)``
does. Later resets without a seed (and the vector env's auto-resets) draw keys from a per-env chain
``k_{n+1}, reset_key = split(k_n)`` starting at ``k_0 = fold_in(PRNGKey(s), 1)``. The vector env
seeds env ``i`` with ``s + i`` (Gymnasium's ``SyncVectorEnv`` convention), so env ``i`` of a vector
env reset with seed ``s`` replays a single env reset with seed ``s + i``, across auto-resets too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from jaxport.data import DataError, load_market
from jaxport.env.params import EnvParams
from jaxport.env.portfolio_env import PortfolioEnv
from jaxport.env.state import EnvState
from jaxport.errors import ConfigError
from jaxport.xla_options import tuned_jit

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
#: info keys of a step (and of a reset, with zero flows)
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
def resolve_jax_env(
    owner: str, prices, features, jax_env, params, options: dict, *, build=None
) -> tuple[PortfolioEnv, EnvParams]:
    """The ``(PortfolioEnv, EnvParams)`` of an env wrapper built either from arrays + ``options``
    (``build``, default :func:`build_jax_env`) or from a ready ``jax_env=`` and ``params=``;
    one-line ``ConfigError`` naming ``owner`` when both or neither are given."""
    if jax_env is None or params is None:
        if prices is None:
            raise ConfigError(f"{owner}: pass prices (and features) or jax_env= and params=")
        return (build or build_jax_env)(prices, features, **options)
    if prices is not None or options:
        raise ConfigError(f"{owner}: pass either arrays and options, or jax_env= and params=")
    return jax_env, params


def build_jax_env(prices, features=None, **options) -> tuple[PortfolioEnv, EnvParams]:
    """``(PortfolioEnv, EnvParams)`` from the same arguments as the JAX env.

    ``prices`` [T, N] closes; ``features`` [T, N, F] (``None`` -> no features, F = 0); ``options``:
    ``PortfolioEnv`` kwargs (``window``, ``long_only``, ``reward``, ``return_mode``) and
    ``EnvParams.from_arrays`` kwargs (``leverage_cap``, ``fee_rate``, ... ``start_min``).
    Arrays are NumPy or JAX (anything ``np.asarray`` takes). Bad input raises ``DataError``.
    """
    unknown = sorted(set(options) - set(ENV_KWARGS) - set(PARAM_KWARGS))
    if unknown:
        expected = list(ENV_KWARGS + PARAM_KWARGS)
        raise DataError(f"unknown env option(s) {unknown}; expected {expected}")
    prices = None if prices is None else np.asarray(prices)
    if prices is None or prices.ndim != 2:
        shape = None if prices is None else prices.shape
        raise DataError(f"prices must be a [T, N] array, got {shape}")
    T, N = prices.shape
    features = np.zeros((T, N, 0), np.float32) if features is None else np.asarray(features)
    if features.ndim == 2:
        features = features[:, :, None]
    env_kw = {k: options[k] for k in ENV_KWARGS if k in options}
    param_kw = {k: options[k] for k in PARAM_KWARGS if k in options}
    if param_kw.get("open_prices") is not None:
        param_kw["open_prices"] = np.asarray(param_kw["open_prices"])
    try:
        num_features = features.shape[-1] if features.ndim == 3 else 1
        env = PortfolioEnv(N, num_features, **env_kw)
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
    Returns ``dict(prices, open_prices, features, symbols, dates, feature_names, start_min,
    columns)``; ``open_prices`` is None on close-only data (``columns`` lacks ``open``).
    """
    market = load_market(data_dir, symbols)
    T, N = market.close.shape
    start_min = 0
    if isinstance(features, str) or features is None:
        mode = "none" if features is None else features
        if mode not in FEATURE_MODES:
            raise DataError(f"features={features!r}: expected one of {FEATURE_MODES} or an array")
        if mode == "stat":
            from jaxport.features import market_stat_features, warmup_days

            feats, names = market_stat_features(market)
            feats = np.asarray(feats, np.float32)
            start_min = int(warmup_days())
        else:
            feats, names = np.zeros((T, N, 0), np.float32), ()
    else:
        feats = np.asarray(features).astype(np.float32)
        if feats.ndim == 2:
            feats = feats[:, :, None]
        if feats.shape[:2] != (T, N):
            raise DataError(
                f"features: shape {feats.shape} does not match the loaded data [T={T}, N={N}]"
            )
        names = tuple(f"f{i}" for i in range(feats.shape[-1]))
    return dict(
        prices=market.close,
        open_prices=market.open if market.has_ohlc else None,
        features=feats,
        symbols=tuple(market.symbols),
        dates=market.dates,
        feature_names=tuple(names),
        start_min=min(start_min, T - 2),
        columns=tuple(market.columns),
    )


def env_args_from_csv(data_dir, symbols, features, options: dict) -> tuple[dict, dict]:
    """``(kwargs for build_jax_env, metadata)`` from a CSV folder: prices, opens, features and
    ``options`` (``start_min`` defaults to the end of the feature warm-up or ``window - 1``);
    metadata = ``symbols``, ``dates``, ``feature_names``."""
    if "open_prices" in options:
        raise DataError(
            "open_prices: not accepted with a data directory (opens come from the CSVs)"
        )
    arrays = load_csv_arrays(data_dir, symbols, features=features)
    if options.get("return_mode") == "open_to_close" and arrays["open_prices"] is None:
        raise DataError(
            f"return_mode open_to_close needs opens, but {data_dir} has close-only data "
            "(use return_mode close_to_close)"
        )
    window = int(options.get("window", 1))
    opts = dict(options)
    opts.setdefault("start_min", max(arrays["start_min"], window - 1))
    kwargs = dict(
        prices=arrays["prices"],
        features=arrays["features"],
        open_prices=arrays["open_prices"],
        **opts,
    )
    meta = dict(
        symbols=arrays["symbols"], dates=arrays["dates"], feature_names=arrays["feature_names"]
    )
    return kwargs, meta


def box_spaces(env: PortfolioEnv, params: EnvParams) -> tuple[spaces.Box, spaces.Box]:
    """Gymnasium ``(observation_space, action_space)`` of one env: obs ``[D]`` unbounded float32,
    action ``[N]`` exposures (fractions of equity) in ``[-leverage_cap, leverage_cap]`` (``[0,
    leverage_cap]`` when ``long_only``)."""
    cap = float(params.leverage_cap)
    obs_space = spaces.Box(-np.inf, np.inf, (env.obs_dim,), np.float32)
    act_space = spaces.Box(0.0 if env.long_only else -cap, cap, (env.num_assets,), np.float32)
    return obs_space, act_space


# ---------------------------------------------------------------------------------- jitted kernels
@tuned_jit
def _keys_from_seeds(seeds: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(reset_keys, chain_keys)`` for uint32 seeds ``[B]``: ``PRNGKey(s)``, ``fold_in(., 1)``."""
    keys = jax.vmap(jax.random.PRNGKey)(seeds)
    return keys, jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, 1)


@tuned_jit
def _split_chain(keys: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(reset_keys, next_chain_keys)`` from chain keys ``[B, 2]``."""
    pairs = jax.vmap(jax.random.split)(keys)
    return pairs[:, 1], pairs[:, 0]


def _with_start(params: EnvParams, start: jnp.ndarray) -> EnvParams:
    start = jnp.where(start >= 0, start, params.eval_start).astype(jnp.int32)
    return params.replace(eval_start=start)


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
    key = jax.random.PRNGKey(0)  # the step is deterministic
    obs, state, reward, terminated, info = env.step_env(key, state, action, params)
    truncated = env.is_truncated(state, params)
    info = {k: info[k] for k in STEP_INFO_KEYS if k in info}
    info["t"] = state.t
    return obs, state, reward, terminated, truncated, info


_reset_one = tuned_jit(_reset_core, static_argnums=0)
_step_one = tuned_jit(_step_core, static_argnums=0)


@tuned_jit(static_argnums=0)
def _reset_batch(env: PortfolioEnv, keys, params: EnvParams, starts):
    return jax.vmap(_reset_core, in_axes=(None, 0, None, 0))(env, keys, params, starts)


@tuned_jit(static_argnums=0)
def _step_batch(
    env: PortfolioEnv, state: EnvState, chain_keys, autoreset, actions, params: EnvParams
):
    """One NEXT_STEP auto-reset vector step of all envs (one XLA program).

    Envs flagged in ``autoreset`` (their previous step ended the episode) ignore their action and
    reset instead: reset observation, reward 0, terminated = truncated = False, reset info.
    Returns ``(obs, state, chain_keys, next_autoreset, reward, terminated, truncated, info)``.
    """
    actions = jnp.asarray(actions, jnp.float32).reshape(autoreset.shape[0], env.num_assets)
    step = jax.vmap(_step_core, in_axes=(None, 0, 0, None))
    obs_s, state_s, reward, term, trunc, info_s = step(env, state, actions, params)
    reset_keys, next_keys = _split_chain(chain_keys)
    no_start = jnp.full(autoreset.shape, -1, jnp.int32)
    reset = jax.vmap(_reset_core, in_axes=(None, 0, None, 0))
    obs_r, state_r, info_r = reset(env, reset_keys, params, no_start)

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


# ---------------------------------------------------------------------------------- host checks
def _seed_array(seeds) -> jnp.ndarray:
    seeds = np.asarray(seeds, dtype=np.int64)
    if np.any(seeds < 0):
        raise DataError(f"seed must be >= 0, got {seeds.tolist()}")
    return jnp.asarray((seeds % 2**32).astype(np.uint32))


def _as_action(action, shape: tuple[int, ...]):
    """Host-checked action for the jitted step: a JAX array, or a float32 NumPy array/view.

    NumPy input goes straight into the jitted call (XLA copies it at dispatch: ~10 us on CPU); the
    float32 cast and reshape happen in the jitted step.
    """
    if not isinstance(action, jax.Array):
        action = np.asarray(action, dtype=np.float32)
    size = int(np.prod(shape))
    if action.size != size:
        raise DataError(
            f"action: expected {size} values for shape {shape}, got shape {action.shape}"
        )
    return action


def _start_option(options: dict | None, params: EnvParams, window: int, batch: int | None):
    """``options["start"]`` (day index, or one per env) -> int32 array; -1: the params' rule."""
    start = None if not options else options.get("start")
    shape = () if batch is None else (batch,)
    if start is None:
        return jnp.full(shape, -1, jnp.int32)
    start = np.broadcast_to(np.asarray(start, dtype=np.int64), shape)
    last = params.num_days - 2
    if np.any(start < window - 1) or np.any(start > last):
        raise DataError(f"options['start']={start.tolist()}: must be in [{window - 1}, {last}]")
    return jnp.asarray(start.astype(np.int32))


def _names(symbols, num_assets: int) -> tuple[str, ...]:
    if symbols is not None:
        return tuple(symbols)
    return tuple(f"asset{i}" for i in range(num_assets))


# ---------------------------------------------------------------------------------- Gymnasium envs
class JaxPortfolioGymEnv(gymnasium.Env):
    """One portfolio env as a Gymnasium env over JAX arrays (no auto-reset).

    ``step(action [N])`` -> ``(obs jax [D], float reward, bool terminated, bool truncated, info of
    JAX arrays)``; after ``terminated or truncated`` the caller must ``reset()``. ``reset`` accepts
    ``options={"start": day_index}`` to start at a given day (evaluation). Info: equity (units of
    E0), leverage (sum|w|), turnover, fees and financing of the step, gross_pnl, portfolio_return
    (fraction), closed_trade_pnl [N], num_closed, t (day index).
    """

    metadata = {"render_modes": [], "jax": True}

    def __init__(
        self,
        env: PortfolioEnv,
        params: EnvParams,
        *,
        symbols=None,
        dates=None,
        feature_names=None,
    ):
        self.jax_env = env
        self.params = params
        self.symbols = _names(symbols, env.num_assets)
        self.dates = dates
        self.feature_names = tuple(feature_names or ())
        self.observation_space, self.action_space = box_spaces(env, params)
        self.state: EnvState | None = None
        self._chain_key = None
        self._done = True
        self.last_obs = None

    @classmethod
    def from_arrays(cls, prices, features=None, **options) -> JaxPortfolioGymEnv:
        """Env over ``prices`` [T, N] and ``features`` [T, N, F] (:func:`build_jax_env`)."""
        return cls(*build_jax_env(prices, features, **options))

    @classmethod
    def from_csv_dir(
        cls, data_dir, symbols: Sequence[str] | None = None, *, features="stat", **options
    ) -> JaxPortfolioGymEnv:
        """Env over the CSVs in ``data_dir`` (:func:`env_args_from_csv`)."""
        kwargs, meta = env_args_from_csv(data_dir, symbols, features, options)
        return cls(*build_jax_env(**kwargs), **meta)

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
        obs, self.state, reward, terminated, truncated, info = _step_one(
            self.jax_env, self.state, action, self.params
        )
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
    would cost one DLPack conversion each per step in the Torch wrapper).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": [], "jax": True}

    def __init__(
        self,
        env: PortfolioEnv,
        params: EnvParams,
        num_envs: int,
        *,
        symbols=None,
        dates=None,
        feature_names=None,
    ):
        if int(num_envs) < 1:
            raise DataError(f"num_envs must be >= 1, got {num_envs}")
        self.jax_env = env
        self.params = params
        self.num_envs = int(num_envs)
        self.symbols = _names(symbols, env.num_assets)
        self.dates = dates
        self.feature_names = tuple(feature_names or ())
        self.single_observation_space, self.single_action_space = box_spaces(env, params)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.state: EnvState | None = None
        self._chain_keys = None
        self._autoreset = None
        self.last_obs = None  # last JAX outputs / input, kept for inspection (zero-copy checks)
        self.last_info = None
        self.last_action = None

    @classmethod
    def from_arrays(
        cls, prices, features=None, *, num_envs: int = 1, **options
    ) -> JaxPortfolioVectorGymEnv:
        """``num_envs`` envs over ``prices`` and ``features`` (:func:`build_jax_env`)."""
        return cls(*build_jax_env(prices, features, **options), num_envs)

    @classmethod
    def from_csv_dir(
        cls,
        data_dir,
        symbols: Sequence[str] | None = None,
        *,
        num_envs: int = 1,
        features="stat",
        **options,
    ) -> JaxPortfolioVectorGymEnv:
        """``num_envs`` envs over the CSVs in ``data_dir`` (:func:`env_args_from_csv`)."""
        kwargs, meta = env_args_from_csv(data_dir, symbols, features, options)
        return cls(*build_jax_env(**kwargs), num_envs, **meta)

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
        out = _step_batch(
            self.jax_env, self.state, self._chain_keys, self._autoreset, actions, self.params
        )
        obs, self.state, self._chain_keys, self._autoreset, reward, term, trunc, info = out
        self.last_obs, self.last_info = obs, info
        return obs, reward, term, trunc, info


__all__ = [
    "ENV_KWARGS",
    "FEATURE_MODES",
    "PARAM_KWARGS",
    "STEP_INFO_KEYS",
    "JaxPortfolioGymEnv",
    "JaxPortfolioVectorGymEnv",
    "box_spaces",
    "build_jax_env",
    "env_args_from_csv",
    "load_csv_arrays",
]
