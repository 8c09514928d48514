"""PortfolioEnv: a pure functional multi-asset trading step (gymnax API).

One step from day ``t`` to ``t + 1`` (see README "Environment semantics"): the action is the target
exposure per asset as a fraction of equity; gross exposure is scaled down to ``leverage_cap``;
trading costs are charged on turnover; exposure beyond 1x equity pays ``annual_financing_rate /
periods_per_year``; shorts optionally pay ``short_borrow_rate``; weights drift with prices; every
trade's net profit is tracked per asset. All of it is differentiable in the action.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from gymnax.environments import environment, spaces

from jaxport.env.params import EnvParams
from jaxport.env.state import EnvState
from jaxport.xla_options import tuned_jit

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


#: up to this many assets, sums over the asset axis are unrolled adds (see :func:`_sum_assets`);
#: measured (benchmarks/README.md, CPU, 1k-4k envs): faster at 2 assets, slower at 4 and 8
UNROLL_MAX_ASSETS = 2


def _sum_assets(x: jnp.ndarray) -> jnp.ndarray:
    """Sum over the last (asset) axis. Up to ``UNROLL_MAX_ASSETS`` assets it is a chain of adds
    (left to right): under ``vmap`` XLA CPU fuses them into the step's elementwise loops, where a
    reduce over a 2-wide axis is its own kernel (a YNNPACK call at XLA's defaults)."""
    n = x.shape[-1]
    if n > UNROLL_MAX_ASSETS or n == 0:
        return jnp.sum(x, axis=-1)
    out = x[..., 0]
    for i in range(1, n):
        out = out + x[..., i]
    return out


class _Flows(NamedTuple):
    """Money flows of one step in currency (``[N]`` per asset, ``sum_*`` their totals)."""

    cost_rate: jnp.ndarray  # fee + slippage, fraction of traded notional
    financing: jnp.ndarray  # total financing of the step
    financing_i: jnp.ndarray  # [N] its share per asset (pro rata to |w_new|)
    borrow: jnp.ndarray  # [N] short borrow
    pnl: jnp.ndarray  # [N] E * w_new * r, before costs
    step_net: jnp.ndarray  # [N] pnl - costs; sums to E' - E
    held: jnp.ndarray  # [N] notional at day t+1's close, in units of E
    loss_if_liquidated: jnp.ndarray  # [N] loss of the step if liquidated (exit cost included)
    sum_net: jnp.ndarray
    sum_pnl: jnp.ndarray
    sum_cost: jnp.ndarray
    sum_borrow: jnp.ndarray
    sum_turnover: jnp.ndarray  # fraction of E
    sum_held: jnp.ndarray  # sum |held|, fraction of E
    sum_loss: jnp.ndarray


def _step_flows(E, w_old, w_new, abs_new, gross, r, params: EnvParams) -> _Flows:
    """Per-asset flows of the step from ``w_old`` to ``w_new`` and all their totals in ONE
    reduction (fewer passes over ``[B, N]`` under vmap)."""
    cost_rate = params.fee_rate + params.slippage_rate
    turnover = jnp.abs(w_new - w_old)
    cost = E * cost_rate * turnover
    financing = (
        E * jnp.maximum(0.0, gross - 1.0) * params.annual_financing_rate / params.periods_per_year
    )
    financing_i = financing * abs_new / jnp.maximum(gross, _TINY)
    borrow = E * jnp.maximum(0.0, -w_new) * params.short_borrow_rate / params.periods_per_year
    pnl = E * w_new * r
    step_net = pnl - cost - financing_i - borrow
    held = w_new * (1.0 + r)
    abs_held = jnp.abs(held)
    loss = jnp.maximum(0.0, E * cost_rate * abs_held - step_net)
    totals = _sum_assets(jnp.stack([step_net, pnl, cost, borrow, turnover, abs_held, loss]))
    return _Flows(cost_rate, financing, financing_i, borrow, pnl, step_net, held, loss, *totals)


def _liquidate(E, new_equity, terminated, flows: _Flows, params: EnvParams):
    """``(equity, written_off, liquidation_cost)`` of the step (per-env scalars): at a
    bankruptcy the equity after the exit costs, floored at ``1e-6 * E0`` (the write-off)."""
    liquidation_cost = E * flows.cost_rate * flows.sum_held
    liquidated_equity = new_equity - liquidation_cost
    min_equity = _MIN_EQUITY_FRACTION * params.initial_equity
    equity = jnp.where(terminated, jnp.maximum(liquidated_equity, min_equity), new_equity)
    written_off = jnp.where(terminated, equity - liquidated_equity, 0.0)  # > 0 below 1e-6 E0
    return equity, written_off, liquidation_cost


class _Trades(NamedTuple):
    """Per-trade bookings of one step."""

    open_pnl: jnp.ndarray  # [N] net profit of each open trade (before a bankruptcy close)
    closed_pnl: jnp.ndarray  # [N] net profit booked by trades closed on the step
    num_closed: jnp.ndarray  # int32
    num_won: jnp.ndarray  # int32, closed with net profit > 0


def _close_trades(state: EnvState, w_new, terminated, written_off, flows: _Flows) -> _Trades:
    """A trade closes when its sign changes (to zero or across zero), and every open trade
    closes at a bankruptcy, sharing the write-off pro rata to its loss on the step.

    An asset can close two trades in one step (the old one by the action, the new one by the
    bankruptcy): both are counted with ONE int row per count (closing + liquidated).
    """
    E, w_old = state.equity, state.weights
    exit_rate = E * flows.cost_rate
    s_old = jnp.sign(w_old)
    has_new = w_new != 0
    closing = (s_old != 0) & (jnp.sign(w_new) != s_old)
    reopened = -exit_rate * jnp.abs(w_new) + flows.pnl - flows.financing_i - flows.borrow
    open_pnl = jnp.where(closing, reopened, state.open_trade_pnl + flows.step_net)
    # 0 unless bankrupt: one per-env factor, then one multiply per asset
    share = (written_off / jnp.maximum(flows.sum_loss, _TINY)) * flows.loss_if_liquidated
    pnl_old = state.open_trade_pnl - exit_rate * jnp.abs(w_old) + jnp.where(has_new, 0.0, share)
    liquidated = terminated & has_new
    pnl_liq = open_pnl - exit_rate * jnp.abs(flows.held) + share
    closed_pnl = jnp.where(closing, pnl_old, 0.0) + jnp.where(liquidated, pnl_liq, 0.0)
    closes = closing.astype(jnp.int32) + liquidated.astype(jnp.int32)
    wins = (closing & (pnl_old > 0)).astype(jnp.int32) + (liquidated & (pnl_liq > 0)).astype(
        jnp.int32
    )
    counts = _sum_assets(jnp.stack([closes, wins]))
    return _Trades(open_pnl, closed_pnl, counts[0], counts[1])


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
                "need num_assets >= 1, num_features >= 0, window >= 1; "
                f"got {num_assets}, {num_features}, {window}"
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
        return (
            self.num_assets,
            self.num_features,
            self.window,
            self.long_only,
            self.reward_mode,
            self.return_mode,
        )

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
        raise ValueError(
            "PortfolioEnv has no default data: build params with EnvParams.from_arrays(...)"
        )

    def action_space(self, params: EnvParams | None = None) -> spaces.Box:
        cap = 2.0 if params is None else params.leverage_cap
        low = 0.0 if self.long_only else -cap
        return spaces.Box(low, cap, (self.num_assets,), jnp.float32)

    def observation_space(self, params: EnvParams | None = None) -> spaces.Box:
        return spaces.Box(-jnp.inf, jnp.inf, (self.obs_dim,), jnp.float32)

    # ------------------------------------------------------------------ core transition
    def target_weights(self, action: jnp.ndarray, params: EnvParams) -> jnp.ndarray:
        """Sanitised target exposures: NaN/inf -> 0, long-only clip, gross scaled to the cap."""
        return self._capped(action, params)[0]

    def _capped(self, action: jnp.ndarray, params: EnvParams):
        """``(w_new, |w_new|, sum|w_new|)`` from one reduction: ``sum|w_new| = scale * sum|a|``
        (0 when ``sum|a|`` overflows to inf: then ``scale`` and every weight are 0)."""
        a = jnp.asarray(action, jnp.float32).reshape(self.num_assets)
        a = jnp.where(jnp.isfinite(a), a, 0.0)
        if self.long_only:
            a = jnp.maximum(a, 0.0)
        abs_a = jnp.abs(a)
        gross = _sum_assets(abs_a)
        scale = jnp.minimum(1.0, params.leverage_cap / jnp.maximum(gross, _TINY))
        return a * scale, abs_a * scale, jnp.where(scale > 0, gross * scale, 0.0)

    def asset_returns(self, t: jnp.ndarray, params: EnvParams) -> jnp.ndarray:
        """Simple return of each asset over the step from day ``t`` to ``t + 1`` (fraction).

        0 from the last day on (``t >= T - 1``): there is no next bar, so nothing moves (the
        episode is truncated there; only ``step_env`` can step past it).
        """
        num_days = params.prices.shape[-2]
        nxt = params.prices[t + 1]
        base = (
            params.open_prices[t + 1] if self.return_mode == "open_to_close" else params.prices[t]
        )
        return jnp.where(t + 1 < num_days, nxt / base - 1.0, 0.0)

    def bankruptcy_floor(self, params: EnvParams) -> jnp.ndarray:
        """Equity at or below which an episode ends: ``max(bankruptcy_fraction, 1e-6) * E0``."""
        return jnp.maximum(params.bankruptcy_fraction, _MIN_EQUITY_FRACTION) * params.initial_equity

    def step_env(
        self, key: jax.Array, state: EnvState, action: jnp.ndarray, params: EnvParams
    ) -> tuple[jnp.ndarray, EnvState, jnp.ndarray, jnp.ndarray, dict[str, Any]]:
        """One step without auto-reset: ``(obs, state, reward, terminated, info)``.

        Bankruptcy (README "The environment" item 8): the step terminates iff the equity after
        the step ``E' <= floor`` (:meth:`bankruptcy_floor`, the same test as
        :meth:`is_terminated`). Every open trade is then liquidated at day t+1's close: it is
        booked as a closed trade and pays the exit cost ``(fee_rate + slippage_rate) * |notional|``,
        and the equity becomes ``max(E' - exit costs, 1e-6 * E0)`` (never raised above the
        liquidation value except to keep it positive; the written-off shortfall is credited to
        the trades that lost money on the step, pro rata to that loss, and counted in
        ``gross_pnl``), so the sum of all closed and open trade profits stays ``E_T - E_0``.
        The liquidation is ``jnp.where`` selects on per-env scalars plus one per-asset select
        (no ``lax.cond``: under ``vmap`` a cond on a batched flag runs both branches anyway).
        """
        del key
        E = state.equity
        w_new, abs_new, gross = self._capped(action, params)
        r = self.asset_returns(state.t, params)
        flows = _step_flows(E, state.weights, w_new, abs_new, gross, r, params)
        new_equity = E + flows.sum_net
        floor = self.bankruptcy_floor(params)
        terminated = new_equity <= floor
        equity, written_off, liquidation_cost = _liquidate(E, new_equity, terminated, flows, params)
        drifted = flows.held * (E / jnp.maximum(new_equity, floor))
        trades = _close_trades(state, w_new, terminated, written_off, flows)

        if self.reward_mode == "log_return":
            reward = jnp.log(equity / E)
        else:
            reward = (equity - E) / params.initial_equity

        fees = flows.sum_cost + jnp.where(terminated, liquidation_cost, 0.0)
        step_gross = flows.sum_pnl + written_off
        financing = flows.financing + flows.sum_borrow
        new_state = EnvState(
            t=state.t + 1,
            time=state.time + 1,
            equity=equity,
            weights=jnp.where(terminated, 0.0, drifted),
            open_trade_pnl=jnp.where(terminated, 0.0, trades.open_pnl),
            gross_pnl=state.gross_pnl + step_gross,
            fees=state.fees + fees,
            financing=state.financing + financing,
            num_trades=state.num_trades + trades.num_closed,
            winning_trades=state.winning_trades + trades.num_won,
            last_reward=reward,
        )
        info = {
            "equity": equity,
            "leverage": gross,
            "turnover": flows.sum_turnover + jnp.where(terminated, flows.sum_held, 0.0),
            "fees": fees,
            "financing": financing,
            "gross_pnl": step_gross,
            "portfolio_return": equity / E - 1.0,
            "closed_trade_pnl": trades.closed_pnl,
            "num_closed": trades.num_closed,
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
        return jnp.where(
            params.eval_start >= 0, params.eval_start, params.start_min + offset
        ).astype(jnp.int32)

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

    @tuned_jit(static_argnames=("self",))
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
        info = {
            **info,
            "terminated": terminated,
            "truncated": truncated,
            "final_observation": obs_st,
        }
        return obs, state, reward, terminated, truncated, info

    def get_obs(
        self, state: EnvState, params: EnvParams, key: jax.Array | None = None
    ) -> jnp.ndarray:
        """``concat(features[t-K+1..t].ravel(), w, 1 - sum w, sum |w|, E/E0 - 1)`` as float32."""
        del key
        start = state.t - (self.window - 1)
        window = jax.lax.dynamic_slice_in_dim(params.features, start, self.window, axis=0)
        w = state.weights
        # one reduction for both sums, and [1]-pieces instead of a stacked tail: under vmap a stack
        # becomes a [3, B] -> [B, 3] transpose inside the concat fusion (slower on CPU)
        sums = _sum_assets(jnp.stack([w, jnp.abs(w)]))
        tail = [1.0 - sums[0:1], sums[1:2], (state.equity / params.initial_equity - 1.0)[None]]
        return jnp.concatenate([window.reshape(-1), w] + tail).astype(jnp.float32)

    def is_terminated(self, state: EnvState, params: EnvParams) -> jnp.ndarray:
        """``E <= max(bankruptcy_fraction, 1e-6) * E0`` (the floor that ``step_env`` applies)."""
        return state.equity <= self.bankruptcy_floor(params)

    def is_truncated(self, state: EnvState, params: EnvParams) -> jnp.ndarray:
        num_days = params.prices.shape[-2]
        return (state.time >= params.episode_length) | (state.t >= num_days - 1)
