"""Plain NumPy (float64) reference of one PortfolioEnv step, literal to README "The environment".

Independent of ``jaxport.env`` on purpose: the tests compare the JAX env against this file.

Units: rates are fractions; ``annual_financing_rate`` and ``short_borrow_rate`` are annual and are
charged per step as ``rate / periods_per_year``. Equity is in units of ``initial_equity`` (E0).

``state`` is a dict with keys ``t``, ``time``, ``equity``, ``weights`` [N], ``open_trade_pnl`` [N],
``gross_pnl``, ``fees``, ``financing``, ``num_trades``, ``winning_trades``.
``params`` is a dict with the EnvParams scalar fields (see ``DEFAULT_PARAMS``).
``mode`` is a dict with keys ``reward`` ("log_return" | "net_profit"), ``return_mode``
("close_to_close" | "open_to_close"), ``long_only`` (bool) and ``window`` (int K).
"""

from __future__ import annotations

import numpy as np

from helpers import ENV_STATE_FIELDS

DEFAULT_PARAMS = dict(
    leverage_cap=2.0,
    annual_financing_rate=0.0675,
    periods_per_year=252,
    fee_rate=0.0005,
    slippage_rate=0.0,
    short_borrow_rate=0.0,
    bankruptcy_fraction=0.0,
    episode_length=252,
    eval_start=-1,
    start_min=None,
    initial_equity=1.0,
)

DEFAULT_MODE = dict(reward="log_return", return_mode="close_to_close", long_only=False, window=1)

STATE_KEYS = ENV_STATE_FIELDS


def full_params(params: dict | None) -> dict:
    out = dict(DEFAULT_PARAMS)
    out.update(params or {})
    return out


def full_mode(mode: dict | None) -> dict:
    out = dict(DEFAULT_MODE)
    out.update(mode or {})
    return out


def reference_reset_state(t: int, num_assets: int, params: dict | None = None) -> dict:
    """State right after reset at day ``t``: E = E0, w = 0, everything else 0."""
    p = full_params(params)
    return dict(
        t=int(t),
        time=0,
        equity=float(p["initial_equity"]),
        weights=np.zeros(num_assets),
        open_trade_pnl=np.zeros(num_assets),
        gross_pnl=0.0,
        fees=0.0,
        financing=0.0,
        num_trades=0,
        winning_trades=0,
    )


def reference_observation(features, t, weights, equity, initial_equity, window) -> np.ndarray:
    """concat(features[t-K+1 .. t].ravel(), w, 1 - sum(w), sum|w|, E/E0 - 1) -> K*N*F + N + 3."""
    features = np.asarray(features, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    feats = features[t - window + 1 : t + 1].ravel()
    assert feats.size == window * features.shape[1] * features.shape[2], "window out of range"
    return np.concatenate(
        [feats, w, [1.0 - w.sum(), np.abs(w).sum(), equity / initial_equity - 1.0]]
    )


def reference_step(state, action, t, prices, open_prices, params, mode, features=None):
    """One step from day ``t`` to ``t + 1`` (README "The environment", items 1-10).

    Returns ``(new_state, obs, reward, terminated, truncated, info)``; ``obs`` is None when
    ``features`` is None. ``t`` overrides ``state["t"]``. All arithmetic is float64.
    """
    p = full_params(params)
    m = full_mode(mode)
    prices = np.asarray(prices, dtype=np.float64)
    T = prices.shape[0]
    E0 = float(p["initial_equity"])
    E = float(state["equity"])
    w = np.asarray(state["weights"], dtype=np.float64)
    otp = np.asarray(state["open_trade_pnl"], dtype=np.float64)
    c = float(p["fee_rate"]) + float(p["slippage_rate"])
    ppy = float(p["periods_per_year"])

    # 1. sanitise
    a = np.asarray(action, dtype=np.float64)
    a = np.where(np.isfinite(a), a, 0.0)
    if m["long_only"]:
        a = np.maximum(a, 0.0)
    # 2. leverage cap
    G = np.abs(a).sum()
    w_new = a * min(1.0, float(p["leverage_cap"]) / max(G, 1e-12))
    # 3. asset returns (0 from the last day on: there is no next bar)
    if t + 1 >= T:
        r = np.zeros(prices.shape[1])
    elif m["return_mode"] == "close_to_close":
        r = prices[t + 1] / prices[t] - 1.0
    elif m["return_mode"] == "open_to_close":
        r = prices[t + 1] / np.asarray(open_prices, dtype=np.float64)[t + 1] - 1.0
    else:
        raise ValueError(m["return_mode"])
    # 4. costs
    turnover_i = np.abs(w_new - w)
    cost_i = E * c * turnover_i
    # 5. financing and short borrow
    gross_new = np.abs(w_new).sum()
    financing = E * max(0.0, gross_new - 1.0) * float(p["annual_financing_rate"]) / ppy
    if gross_new > 0:
        financing_i = financing * np.abs(w_new) / gross_new
    else:
        financing_i = np.zeros_like(w_new)
    borrow_i = E * np.maximum(0.0, -w_new) * float(p["short_borrow_rate"]) / ppy
    # 6. pnl and new equity
    pnl_i = E * w_new * r
    step_i = pnl_i - cost_i - financing_i - borrow_i
    E_step = E + pnl_i.sum() - cost_i.sum() - financing - borrow_i.sum()
    # 11a. per-trade accounting of the action: a trade closes when its sign changes
    s_old = np.sign(w)
    s_new = np.sign(w_new)
    closes = (s_old != 0) & (s_new != s_old)
    closed_old = otp - E * c * np.abs(w)
    reopened = np.where(s_new != 0, -E * c * np.abs(w_new) + pnl_i - financing_i - borrow_i, 0.0)
    otp_new = np.where(closes, reopened, otp + step_i)
    # 7. bankruptcy: terminated iff E' <= floor = max(bf, 1e-6) * E0 (one floor, also for
    # is_terminated). Then every open trade is liquidated at day t+1's close: notional
    # E * w_new * (1 + r), exit cost c * |notional|; equity = max(E' - exit costs, 1e-6 * E0).
    # A write-off (the part of 1e-6 * E0 above the liquidation value) is credited to the assets
    # that lost money on the step (their step change including the exit cost), pro rata to that
    # loss, and counted in gross_pnl, so that sum(trade pnl) == E_T - E0 still holds.
    bf = float(p["bankruptcy_fraction"])
    floor = max(bf, 1e-6) * E0
    terminated = bool(E_step <= floor)
    notional_i = E * w_new * (1.0 + r)
    liq_cost_i = c * np.abs(notional_i)
    written_off = 0.0
    liquidated = np.zeros(w.shape, dtype=bool)
    closed_i = np.where(closes, closed_old, 0.0)
    wins = closes & (closed_old > 0)
    extra_turnover = 0.0
    extra_fees = 0.0
    if terminated:
        E_liq = E_step - liq_cost_i.sum()
        E_new = max(E_liq, 1e-6 * E0)
        written_off = E_new - E_liq
        loss_i = np.maximum(0.0, -(step_i - liq_cost_i))
        share_i = written_off * loss_i / loss_i.sum() if loss_i.sum() > 0 else np.zeros_like(loss_i)
        liquidated = s_new != 0
        pnl_a = closed_old + np.where(liquidated, 0.0, share_i)
        pnl_b = otp_new - liq_cost_i + share_i
        closed_i = np.where(closes, pnl_a, 0.0) + np.where(liquidated, pnl_b, 0.0)
        wins = (closes & (pnl_a > 0)).astype(int) + (liquidated & (pnl_b > 0)).astype(int)
        otp_new = np.zeros_like(otp_new)
        w_next = np.zeros_like(w_new)
        extra_turnover = np.abs(notional_i).sum() / E
        extra_fees = liq_cost_i.sum()
    else:
        E_new = E_step
        # 8. drift
        w_next = w_new * (1.0 + r) * E / E_new
    # 9. reward
    if m["reward"] == "log_return":
        reward = float(np.log(E_new / E))
    elif m["reward"] == "net_profit":
        reward = float((E_new - E) / E0)
    else:
        raise ValueError(m["reward"])
    # 10. truncation
    truncated = bool(state["time"] + 1 >= p["episode_length"] or t + 1 >= T - 1)
    # 11b. counters
    num_closed = int(closes.sum() + liquidated.sum())
    num_wins = int(np.sum(wins))

    step_fin = financing + borrow_i.sum()
    new_state = dict(
        t=int(t + 1),
        time=int(state["time"] + 1),
        equity=E_new,
        weights=w_next,
        open_trade_pnl=otp_new,
        gross_pnl=float(state["gross_pnl"]) + pnl_i.sum() + written_off,
        fees=float(state["fees"]) + cost_i.sum() + extra_fees,
        financing=float(state["financing"]) + step_fin,
        num_trades=int(state["num_trades"]) + num_closed,
        winning_trades=int(state["winning_trades"]) + num_wins,
    )
    info = dict(
        equity=E_new,
        leverage=gross_new,
        turnover=turnover_i.sum() + extra_turnover,
        fees=cost_i.sum() + extra_fees,
        financing=step_fin,
        portfolio_return=E_new / E - 1.0,
        closed_trade_pnl=closed_i,
        num_closed=num_closed,
        gross_pnl=pnl_i.sum() + written_off,
        # extras (not in the env's info; used by tests)
        w_new=w_new,
        cost_i=cost_i,
        financing_i=financing_i,
        borrow_i=borrow_i,
        pnl_i=pnl_i,
        returns=r,
        written_off=written_off,
        liquidation_cost_i=liq_cost_i if terminated else np.zeros_like(liq_cost_i),
    )
    obs = None
    if features is not None:
        # past the last day the env's window slice is clamped to the last full window
        obs = reference_observation(
            features, min(t + 1, T - 1), w_next, E_new, E0, int(m["window"])
        )
    return new_state, obs, reward, terminated, truncated, info


class ReferencePortfolio:
    """Free-running NumPy env (no auto-reset) around ``reference_step``."""

    def __init__(self, prices, features, *, open_prices=None, params=None, mode=None):
        self.prices = np.asarray(prices, dtype=np.float64)
        self.open_prices = None if open_prices is None else np.asarray(open_prices, np.float64)
        self.features = np.asarray(features, dtype=np.float64)
        self.params = full_params(params)
        self.mode = full_mode(mode)
        self.state: dict | None = None

    @property
    def num_assets(self) -> int:
        return self.prices.shape[1]

    def reset(self, t: int) -> np.ndarray:
        self.state = reference_reset_state(t, self.num_assets, self.params)
        return reference_observation(
            self.features,
            t,
            self.state["weights"],
            self.state["equity"],
            self.params["initial_equity"],
            int(self.mode["window"]),
        )

    def step(self, action):
        assert self.state is not None, "call reset first"
        out = reference_step(
            self.state,
            action,
            self.state["t"],
            self.prices,
            self.open_prices,
            self.params,
            self.mode,
            features=self.features,
        )
        self.state = out[0]
        return out[1:]
