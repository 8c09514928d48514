"""PortfolioEnv: a pure functional multi-asset trading step (gymnax API).

One step from day ``t`` to ``t + 1`` (see README "Environment semantics"): the action is the target
exposure per asset as a fraction of equity; gross exposure is scaled down to ``leverage_cap``;
trading costs are charged on turnover; exposure beyond 1x equity pays ``annual_financing_rate /
periods_per_year``; shorts optionally pay ``short_borrow_rate``; weights drift with prices; every
trade's net profit is tracked per asset. All of it is differentiable in the action.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from gymnax.environments import environment, spaces

from jaxport.env.params import EnvParams
from jaxport.env.state import EnvState

REWARD_MODES = ("log_return", "net_profit")
RETURN_MODES = ("close_to_close", "open_to_close")
_TINY = 1e-12
_MIN_EQUITY_FRACTION = 1e-6


def _fmix32(h: jnp.ndarray) -> jnp.ndarray:
    """murmur3's 32-bit finaliser (a bijection with full avalanche) on uint32."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def _key_hash(key: jax.Array) -> jnp.ndarray:
    """A uint32 hash of one PRNG key's raw words (typed key or legacy ``uint32[2]``)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    words = jnp.asarray(key).astype(jnp.uint32).reshape(-1)
    h = jnp.uint32(0x9E3779B9)
    for i in range(words.shape[0]):
        h = _fmix32(h ^ words[i])
    return h


def _mulhi_u32(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """``floor(a * b / 2**32)`` for uint32 ``a, b`` without 64-bit ints (16-bit limbs)."""
    lo = jnp.uint32(0xFFFF)
    a0, a1 = a & lo, a >> 16
    b0, b1 = b & lo, b >> 16
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> 16) + (p01 & lo) + (p10 & lo)
    return p11 + (p01 >> 16) + (p10 >> 16) + (mid >> 16)


class PortfolioEnv(environment.Environment[EnvState, EnvParams]):
    """Gymnax environment over ``num_assets`` assets with ``num_features`` features each.

    Static configuration (changes the compiled program): shapes, observation ``window`` (days of
    features in the observation), ``long_only``, ``reward`` mode and ``return_mode``. Everything
    numeric is in :class:`EnvParams`.
    """

    def __init__(
        self,
        num_assets: int,
        num_features: int,
        *,
        window: int = 1,
        long_only: bool = False,
        reward: str = "log_return",
        return_mode: str = "close_to_close",
    ):
        super().__init__()
        if num_assets < 1 or num_features < 0 or window < 1:
            raise ValueError(
                f"need num_assets >= 1, num_features >= 0, window >= 1; got {num_assets}, {num_features}, {window}"
            )
        if reward not in REWARD_MODES:
            raise ValueError(f"reward must be one of {REWARD_MODES}, got {reward!r}")
        if return_mode not in RETURN_MODES:
            raise ValueError(f"return_mode must be one of {RETURN_MODES}, got {return_mode!r}")
        self.num_assets = int(num_assets)
        self.num_features = int(num_features)
        self.window = int(window)
        self.long_only = bool(long_only)
        self.reward_mode = reward
        self.return_mode = return_mode

    # The env object is a static jit argument: hash/eq on its configuration so equal configs share
    # compiled code.
    def _key(self):
        return (self.num_assets, self.num_features, self.window, self.long_only, self.reward_mode, self.return_mode)

    def __hash__(self):
        return hash(self._key())

    def __eq__(self, other):
        return type(other) is type(self) and other._key() == self._key()

    @property
    def name(self) -> str:
        return "jaxport/Portfolio-v0"

    @property
    def obs_dim(self) -> int:
        return self.window * self.num_assets * self.num_features + self.num_assets + 3

    @property
    def num_actions(self) -> int:
        return self.num_assets

    @property
    def default_params(self) -> EnvParams:
        raise ValueError("PortfolioEnv has no default data: build params with EnvParams.from_arrays(...)")

    def action_space(self, params: EnvParams | None = None) -> spaces.Box:
        cap = 2.0 if params is None else params.leverage_cap
        low = 0.0 if self.long_only else -cap
        return spaces.Box(low, cap, (self.num_assets,), jnp.float32)

    def observation_space(self, params: EnvParams | None = None) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self.obs_dim,), jnp.float32)

    # ------------------------------------------------------------------ core transition
    def target_weights(self, action: jnp.ndarray, params: EnvParams) -> jnp.ndarray:
        """Sanitised target exposures: NaN/inf -> 0, long-only clip, gross scaled to the cap."""
        a = jnp.asarray(action, jnp.float32).reshape(self.num_assets)
        a = jnp.where(jnp.isfinite(a), a, 0.0)
        if self.long_only:
            a = jnp.maximum(a, 0.0)
        gross = jnp.sum(jnp.abs(a))
        scale = jnp.minimum(1.0, params.leverage_cap / jnp.maximum(gross, _TINY))
        return a * scale

    def asset_returns(self, t: jnp.ndarray, params: EnvParams) -> jnp.ndarray:
        """Simple return of each asset over the step from day ``t`` to ``t + 1`` (fraction)."""
        nxt = params.prices[t + 1]
        base = params.open_prices[t + 1] if self.return_mode == "open_to_close" else params.prices[t]
        return nxt / base - 1.0

    def step_env(
        self, key: jax.Array, state: EnvState, action: jnp.ndarray, params: EnvParams
    ) -> tuple[jnp.ndarray, EnvState, jnp.ndarray, jnp.ndarray, dict[str, Any]]:
        del key
        E = state.equity
        w_old = state.weights
        w_new = self.target_weights(action, params)
        r = self.asset_returns(state.t, params)

        cost_rate = params.fee_rate + params.slippage_rate
        turnover = jnp.abs(w_new - w_old)
        cost = E * cost_rate * turnover  # [N]
        abs_new = jnp.abs(w_new)
        gross = jnp.sum(abs_new)
        financing = E * jnp.maximum(0.0, gross - 1.0) * params.annual_financing_rate / params.periods_per_year
        financing_i = financing * abs_new / jnp.maximum(gross, _TINY)
        borrow = E * jnp.maximum(0.0, -w_new) * params.short_borrow_rate / params.periods_per_year
        pnl = E * w_new * r  # [N]
        step_net = pnl - cost - financing_i - borrow  # [N], sums to E' - E
        new_equity = E + jnp.sum(step_net)

        floor = jnp.maximum(params.bankruptcy_fraction, _MIN_EQUITY_FRACTION) * params.initial_equity
        terminated = new_equity <= params.bankruptcy_fraction * params.initial_equity
        safe_equity = jnp.maximum(new_equity, floor)
        drifted = w_new * (1.0 + r) * E / safe_equity
        w_next = jnp.where(terminated, jnp.zeros_like(drifted), drifted)

        # Per-trade accounting: a trade closes when its sign changes (to zero or across zero).
        s_old = jnp.sign(w_old)
        s_new = jnp.sign(w_new)
        closing = (s_old != 0) & (s_new != s_old)
        exit_cost = E * cost_rate * jnp.abs(w_old)
        closed_pnl = jnp.where(closing, state.open_trade_pnl - exit_cost, 0.0)
        reopened = -E * cost_rate * abs_new + pnl - financing_i - borrow
        open_pnl = jnp.where(closing, reopened, state.open_trade_pnl + step_net)

        if self.reward_mode == "log_return":
            reward = jnp.log(safe_equity / E)
        else:
            reward = (safe_equity - E) / params.initial_equity

        num_closed = jnp.sum(closing.astype(jnp.int32)).astype(jnp.int32)
        new_state = EnvState(
            t=state.t + 1,
            time=state.time + 1,
            equity=safe_equity,
            weights=w_next,
            open_trade_pnl=open_pnl,
            gross_pnl=state.gross_pnl + jnp.sum(pnl),
            fees=state.fees + jnp.sum(cost),
            financing=state.financing + financing + jnp.sum(borrow),
            num_trades=state.num_trades + num_closed,
            winning_trades=state.winning_trades + jnp.sum((closing & (closed_pnl > 0)).astype(jnp.int32)).astype(jnp.int32),
            last_reward=reward,
        )
        info = {
            "equity": safe_equity,
            "leverage": gross,
            "turnover": jnp.sum(turnover),
            "fees": jnp.sum(cost),
            "financing": financing + jnp.sum(borrow),
            "gross_pnl": jnp.sum(pnl),
            "portfolio_return": safe_equity / E - 1.0,
            "closed_trade_pnl": closed_pnl,
            "num_closed": num_closed,
        }
        return self.get_obs(new_state, params), new_state, reward, terminated, info

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jnp.ndarray, EnvState]:
        state = self.initial_state(self.start_day(key, params), params)
        return self.get_obs(state, params), state

    def start_day(self, key: jax.Array, params: EnvParams) -> jnp.ndarray:
        """First day of an episode: ``eval_start`` if >= 0, else uniform in ``[start_min, T-1-L]``.

        The random day is ``start_min + floor(h * span / 2**32)`` with ``h`` a 32-bit hash
        (murmur3 finaliser) of the key's raw words: a few integer ops per env instead of the
        ``split`` + ``randint`` threefry rounds, which cost more than the whole transition on CPU.
        Keys from ``jax.random.split``/``fold_in`` (typed or raw ``uint32[2]``) give independent
        uniform draws; the bias from the 32-bit range reduction is below ``span / 2**32``.
        """
        num_days = params.prices.shape[-2]
        last_start = jnp.maximum(num_days - 1 - params.episode_length, params.start_min)
        span = (last_start - params.start_min + 1).astype(jnp.uint32)
        offset = _mulhi_u32(_key_hash(key), span).astype(jnp.int32)
        return jnp.where(params.eval_start >= 0, params.eval_start, params.start_min + offset).astype(jnp.int32)

    def initial_state(self, t0: jnp.ndarray, params: EnvParams) -> EnvState:
        """State of a fresh episode on day ``t0``: E = E0, w = 0, totals 0."""
        zeros = jnp.zeros((self.num_assets,), jnp.float32)
        zero = jnp.zeros((), jnp.float32)
        return EnvState(
            t=jnp.asarray(t0, jnp.int32),
            time=jnp.zeros((), jnp.int32),
            equity=params.initial_equity.astype(jnp.float32),
            weights=zeros,
            open_trade_pnl=zeros,
            gross_pnl=zero,
            fees=zero,
            financing=zero,
            num_trades=jnp.zeros((), jnp.int32),
            winning_trades=jnp.zeros((), jnp.int32),
            last_reward=zero,
        )

    @partial(jax.jit, static_argnames=("self",))
    def step(
        self,
        key: jax.Array,
        state: EnvState,
        action: jnp.ndarray,
        params: EnvParams | None = None,
    ) -> tuple[jnp.ndarray, EnvState, jnp.ndarray, jnp.ndarray, jnp.ndarray, dict[str, Any]]:
        """gymnax's auto-reset step (same signature, outputs and semantics), made cheaper.

        ``(obs, state, reward, terminated, truncated, info)``: reward/flags/info are the step's;
        where ``terminated | truncated`` the returned state and obs are a fresh episode starting on
        :meth:`start_day` ``(key)`` (so ``reset(key)`` and an auto-reset with ``key`` agree).
        Unlike gymnax's generic step it does not split the key (``step_env`` ignores it), draws the
        start day with a hash instead of threefry, and builds ONE observation from the selected
        state instead of a step and a reset observation plus a select. ``info["final_observation"]``
        is the pre-reset observation (only computed when used).
        """
        if params is None:
            params = self.default_params
        obs_st, state_st, reward, terminated, info = self.step_env(key, state, action, params)
        truncated = self.is_truncated(state_st, params)
        done = jnp.logical_or(terminated, truncated)
        state_re = self.initial_state(self.start_day(key, params), params)
        state = jax.tree.map(lambda r, s: jnp.where(done, r, s), state_re, state_st)
        obs = self.get_obs(state, params)
        info = {**info, "terminated": terminated, "truncated": truncated, "final_observation": obs_st}
        return obs, state, reward, terminated, truncated, info

    def get_obs(self, state: EnvState, params: EnvParams, key: jax.Array | None = None) -> jnp.ndarray:
        """``concat(features[t-K+1..t].ravel(), w, 1 - sum w, sum |w|, E/E0 - 1)`` as float32."""
        del key
        start = state.t - (self.window - 1)
        window = jax.lax.dynamic_slice_in_dim(params.features, start, self.window, axis=0)
        w = state.weights
        # one reduction for both sums, and [1]-pieces instead of a stacked tail: under vmap a stack
        # becomes a [3, B] -> [B, 3] transpose inside the concat fusion (slower on CPU)
        sums = jnp.sum(jnp.stack([w, jnp.abs(w)]), axis=-1)
        tail = [1.0 - sums[0:1], sums[1:2], (state.equity / params.initial_equity - 1.0)[None]]
        return jnp.concatenate([window.reshape(-1), w] + tail).astype(jnp.float32)

    def is_terminated(self, state: EnvState, params: EnvParams) -> jnp.ndarray:
        floor = jnp.maximum(params.bankruptcy_fraction, _MIN_EQUITY_FRACTION) * params.initial_equity
        return state.equity <= floor

    def is_truncated(self, state: EnvState, params: EnvParams) -> jnp.ndarray:
        num_days = params.prices.shape[-2]
        return (state.time >= params.episode_length) | (state.t >= num_days - 1)
