"""A batched PyTorch implementation of ``PortfolioEnv.step`` (auto-reset): the benchmark reference.

Same semantics as ``jaxport.env.PortfolioEnv`` (notes/env_spec.md), vectorised over a batch of
``B`` envs on ``[B, N]`` tensors: action sanitising and the leverage cap, fees and slippage on
turnover, financing beyond 1x equity, short borrow, bankruptcy floor and liquidation, weight drift,
per-trade accounting, truncation, and auto-reset with a uniformly random start day. It is written
the way a careful Torch engineer would write it (float32, no Python loop over envs, returns
precomputed once as a ``[T-1, N]`` table, one ``randint`` per step for the whole batch), so the
JAX-vs-Torch ratio in ``env_throughput.py`` measures the frameworks, not a strawman.
``tests/test_bench_reference.py`` checks it against the JAX step number for number.

Units: rates are fractions; ``annual_financing_rate`` and ``short_borrow_rate`` are annual, charged
per step as ``rate / periods_per_year``; equity is in units of ``initial_equity`` (E0).

Usage::

    ref = TorchPortfolioReference(prices, features, num_envs=4096)       # same kwargs as EnvParams
    obs = ref.reset()                                                    # [B, D]
    obs, reward, terminated, truncated = ref.step(action)               # action [B, N]
    ref.compile()                                                        # torch.compile the step

The pure step function :func:`portfolio_step` takes the state as a tuple of tensors and the reset
start days as an argument (``None`` -> drawn inside with ``torch.randint``), so it can be
``torch.compile``'d and tested with deterministic resets.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

_TINY = 1e-12
_MIN_EQUITY_FRACTION = 1e-6

REWARD_MODES = ("log_return", "net_profit")
RETURN_MODES = ("close_to_close", "open_to_close")


class TorchState(NamedTuple):
    """Batched env state, the fields of ``jaxport.env.EnvState`` (``last_reward`` omitted)."""

    t: torch.Tensor  # [B] int64 day index
    time: torch.Tensor  # [B] int64 steps since reset
    equity: torch.Tensor  # [B] float32
    weights: torch.Tensor  # [B, N] float32, after drift
    open_trade_pnl: torch.Tensor  # [B, N]
    gross_pnl: torch.Tensor  # [B]
    fees: torch.Tensor  # [B]
    financing: torch.Tensor  # [B]
    num_trades: torch.Tensor  # [B] int64
    winning_trades: torch.Tensor  # [B] int64


class TorchConsts(NamedTuple):
    """Everything the step reads besides the state; built once by
    :class:`TorchPortfolioReference`."""

    returns: torch.Tensor  # [T-1, N] float32, return of the step from day t to t + 1 (row t)
    features: torch.Tensor  # [T, N*F] float32
    window_offsets: torch.Tensor  # [K] int64, -(K-1) .. 0
    leverage_cap: float
    cost_rate: float  # fee_rate + slippage_rate
    financing_per_step: float  # annual_financing_rate / periods_per_year
    borrow_per_step: float  # short_borrow_rate / periods_per_year
    bankruptcy_fraction: float
    initial_equity: float
    episode_length: int
    eval_start: int
    start_min: int
    last_start: int  # inclusive upper bound of random starts
    last_day: int  # T - 1
    long_only: bool
    log_reward: bool


def observation(state: TorchState, c: TorchConsts) -> torch.Tensor:
    """``concat(features[t-K+1..t].ravel(), w, 1 - sum w, sum|w|, E/E0 - 1)``
    -> ``[B, K*N*F + N + 3]``."""
    w = state.weights
    rows = state.t[:, None] + c.window_offsets[None, :]  # [B, K]
    feats = c.features[rows].reshape(w.shape[0], -1)
    tail = torch.stack(
        [1.0 - w.sum(-1), w.abs().sum(-1), state.equity / c.initial_equity - 1.0], dim=-1
    )
    return torch.cat([feats, w, tail], dim=-1)


def reset_state(starts: torch.Tensor, num_assets: int, c: TorchConsts) -> TorchState:
    """Fresh episodes starting on days ``starts [B]``: E = E0, w = 0, totals 0."""
    B, dev = starts.shape[0], starts.device

    def zf():  # distinct tensors: aliased state fields would make torch.compile recompile
        return torch.zeros(B, dtype=torch.float32, device=dev)

    def zi():
        return torch.zeros(B, dtype=torch.int64, device=dev)

    def zw():
        return torch.zeros(B, num_assets, dtype=torch.float32, device=dev)

    return TorchState(
        starts, zi(), zf() + c.initial_equity, zw(), zw(), zf(), zf(), zf(), zi(), zi()
    )


def draw_starts(batch: int, c: TorchConsts, device) -> torch.Tensor:
    """Reset days: ``eval_start`` when >= 0, else uniform in ``[start_min, last_start]``."""
    if c.eval_start >= 0:
        return torch.full((batch,), c.eval_start, dtype=torch.int64, device=device)
    return torch.randint(c.start_min, c.last_start + 1, (batch,), device=device)


def portfolio_step(
    state: TorchState,
    action: torch.Tensor,
    c: TorchConsts,
    reset_starts: torch.Tensor | None = None,
    with_info: bool = False,
):
    """One auto-reset step of every env: ``(obs, state, reward, terminated, truncated[, info])``.

    ``reward``/``terminated``/``truncated`` (and ``info``) belong to the step taken; ``obs`` and
    ``state`` are the reset ones where the episode ended (gymnax's ``step`` convention).
    ``reset_starts`` [B]: start days for envs that reset this step (``None``: drawn here).
    """
    E = state.equity
    w_old = state.weights
    a = torch.where(torch.isfinite(action), action, torch.zeros_like(action))
    if c.long_only:
        a = a.clamp_min(0.0)
    abs_a = a.abs()
    scale = torch.clamp(c.leverage_cap / abs_a.sum(-1).clamp_min(_TINY), max=1.0)  # [B]
    w_new = a * scale[:, None]
    abs_new = abs_a * scale[:, None]
    gross = abs_new.sum(-1)
    r = c.returns[state.t]  # [B, N]

    E_col = E[:, None]
    turnover = (w_new - w_old).abs()
    cost = E_col * c.cost_rate * turnover
    financing = E * (gross - 1.0).clamp_min(0.0) * c.financing_per_step  # [B]
    financing_i = (financing / gross.clamp_min(_TINY))[:, None] * abs_new
    borrow = E_col * (-w_new).clamp_min(0.0) * c.borrow_per_step
    pnl = E_col * w_new * r
    step_net = pnl - cost - financing_i - borrow
    new_equity = E + step_net.sum(-1)
    held = w_new * (1.0 + r)  # notional at day t+1's close, in units of E
    abs_held = held.abs()
    loss_if_liquidated = (E_col * c.cost_rate * abs_held - step_net).clamp_min(0.0)

    # bankruptcy (README "The environment" item 8): terminated iff E' <= floor; every open trade is
    # liquidated (exit cost on its notional); equity = max(liquidation value, 1e-6 E0), the
    # write-off credited to the assets that lost on the step and counted in gross PnL
    floor = max(c.bankruptcy_fraction, _MIN_EQUITY_FRACTION) * c.initial_equity
    terminated = new_equity <= floor
    liquidation_cost = E * c.cost_rate * abs_held.sum(-1)
    liquidated_equity = new_equity - liquidation_cost
    safe_equity = torch.where(
        terminated, liquidated_equity.clamp_min(_MIN_EQUITY_FRACTION * c.initial_equity), new_equity
    )
    written_off = torch.where(terminated, safe_equity - liquidated_equity, torch.zeros_like(E))
    drifted = held * (E / new_equity.clamp_min(floor))[:, None]
    w_next = torch.where(terminated[:, None], torch.zeros_like(drifted), drifted)

    s_old = torch.sign(w_old)
    has_new = w_new != 0
    closing = (s_old != 0) & (torch.sign(w_new) != s_old)
    exit_cost = E_col * c.cost_rate * w_old.abs()
    reopened = -E_col * c.cost_rate * abs_new + pnl - financing_i - borrow
    open_pnl = torch.where(closing, reopened, state.open_trade_pnl + step_net)
    total_loss = loss_if_liquidated.sum(-1, keepdim=True).clamp_min(_TINY)
    share = written_off[:, None] * loss_if_liquidated / total_loss  # 0 unless bankrupt
    zw_ = torch.zeros_like(share)
    pnl_old = state.open_trade_pnl - exit_cost + torch.where(has_new, zw_, share)
    liquidated = terminated[:, None] & has_new
    pnl_liq = open_pnl - E_col * c.cost_rate * abs_held + share
    closed_pnl = torch.where(closing, pnl_old, zw_) + torch.where(liquidated, pnl_liq, zw_)
    open_pnl = torch.where(terminated[:, None], zw_, open_pnl)
    step_fees = cost.sum(-1) + torch.where(terminated, liquidation_cost, torch.zeros_like(E))
    step_gross = pnl.sum(-1) + written_off

    if c.log_reward:
        reward = torch.log(safe_equity / E)
    else:
        reward = (safe_equity - E) / c.initial_equity  # the equity after liquidation on bankruptcy

    num_closed = closing.sum(-1) + liquidated.sum(-1)
    num_won = (closing & (pnl_old > 0)).sum(-1) + (liquidated & (pnl_liq > 0)).sum(-1)
    t_next = state.t + 1
    time_next = state.time + 1
    truncated = (time_next >= c.episode_length) | (t_next >= c.last_day)
    done = terminated | truncated

    B = E.shape[0]
    if reset_starts is None:
        if c.eval_start >= 0:
            reset_starts = torch.full_like(t_next, c.eval_start)
        else:
            reset_starts = torch.randint(c.start_min, c.last_start + 1, (B,), device=E.device)
    zf = torch.zeros_like(E)
    zi = torch.zeros_like(t_next)
    zw = torch.zeros_like(w_next)
    done_col = done[:, None]
    new_state = TorchState(
        t=torch.where(done, reset_starts, t_next),
        time=torch.where(done, zi, time_next),
        equity=torch.where(done, zf + c.initial_equity, safe_equity),
        weights=torch.where(done_col, zw, w_next),
        open_trade_pnl=torch.where(done_col, zw, open_pnl),
        gross_pnl=torch.where(done, zf, state.gross_pnl + step_gross),
        fees=torch.where(done, zf, state.fees + step_fees),
        financing=torch.where(done, zf, state.financing + financing + borrow.sum(-1)),
        num_trades=torch.where(done, zi, state.num_trades + num_closed),
        winning_trades=torch.where(done, zi, state.winning_trades + num_won),
    )
    obs = observation(new_state, c)
    if not with_info:
        return obs, new_state, reward, terminated, truncated
    info = {
        "equity": safe_equity,
        "leverage": gross,
        "turnover": turnover.sum(-1) + torch.where(terminated, abs_held.sum(-1), zf),
        "fees": step_fees,
        "financing": financing + borrow.sum(-1),
        "gross_pnl": step_gross,
        "portfolio_return": safe_equity / E - 1.0,
        "closed_trade_pnl": closed_pnl,
        "num_closed": num_closed,
    }
    return obs, new_state, reward, terminated, truncated, info


class TorchPortfolioReference:
    """``num_envs`` portfolio envs as batched Torch tensors; arguments as ``EnvParams.from_arrays``
    plus ``PortfolioEnv``'s ``window``, ``long_only``, ``reward`` and ``return_mode``."""

    def __init__(
        self,
        prices,
        features,
        *,
        num_envs: int,
        open_prices=None,
        window: int = 1,
        long_only: bool = False,
        reward: str = "log_return",
        return_mode: str = "close_to_close",
        leverage_cap: float = 2.0,
        annual_financing_rate: float = 0.0675,
        periods_per_year: float = 252.0,
        fee_rate: float = 0.0005,
        slippage_rate: float = 0.0,
        short_borrow_rate: float = 0.0,
        bankruptcy_fraction: float = 0.0,
        initial_equity: float = 1.0,
        episode_length: int = 252,
        eval_start: int = -1,
        start_min: int | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ):
        if reward not in REWARD_MODES or return_mode not in RETURN_MODES:
            raise ValueError(f"reward in {REWARD_MODES}, return_mode in {RETURN_MODES}")
        prices = np.asarray(prices, np.float32)
        features = np.asarray(features, np.float32)
        if features.ndim == 2:
            features = features[:, :, None]
        T, N = prices.shape
        opens = prices if open_prices is None else np.asarray(open_prices, np.float32)
        dev = torch.device(device)
        p = torch.as_tensor(prices, device=dev)
        if return_mode == "open_to_close":
            returns = p[1:] / torch.as_tensor(opens, device=dev)[1:] - 1.0
        else:
            returns = p[1:] / p[:-1] - 1.0
        start_min = window - 1 if start_min is None else int(start_min)
        self.num_envs = int(num_envs)
        self.num_assets = N
        self.device = dev
        self.consts = TorchConsts(
            returns=returns.contiguous(),
            features=torch.as_tensor(features.reshape(T, -1), device=dev).contiguous(),
            window_offsets=torch.arange(-(window - 1), 1, device=dev),
            leverage_cap=float(leverage_cap),
            cost_rate=float(np.float32(fee_rate) + np.float32(slippage_rate)),
            financing_per_step=float(
                np.float32(annual_financing_rate) / np.float32(periods_per_year)
            ),
            borrow_per_step=float(np.float32(short_borrow_rate) / np.float32(periods_per_year)),
            bankruptcy_fraction=float(bankruptcy_fraction),
            initial_equity=float(initial_equity),
            episode_length=int(episode_length),
            eval_start=int(eval_start),
            start_min=start_min,
            last_start=max(T - 1 - int(episode_length), start_min),
            last_day=T - 1,
            long_only=bool(long_only),
            log_reward=reward == "log_return",
        )
        self.obs_dim = window * features.shape[1] * features.shape[2] + N + 3
        self._step = portfolio_step
        self.compiled = False
        torch.manual_seed(seed)
        self.state: TorchState | None = None

    def reset(self, starts: torch.Tensor | None = None) -> torch.Tensor:
        """Reset every env (random starts unless ``starts`` [B] is given); returns
        ``obs [B, D]``."""
        if starts is None:
            starts = draw_starts(self.num_envs, self.consts, self.device)
        self.state = reset_state(starts.to(self.device, torch.int64), self.num_assets, self.consts)
        return observation(self.state, self.consts)

    def step(
        self,
        action: torch.Tensor,
        reset_starts: torch.Tensor | None = None,
        with_info: bool = False,
    ):
        """``(obs, reward, terminated, truncated[, info])`` for actions ``[B, N]`` (auto-reset)."""
        out = self._step(self.state, action, self.consts, reset_starts, with_info)
        self.state = out[1]
        return (out[0],) + tuple(out[2:])

    def compile(self, **kwargs) -> "TorchPortfolioReference":
        """Use ``torch.compile`` (inductor by default) for the step; constants are baked in."""
        consts = self.consts

        def step_fn(state, action, reset_starts=None, with_info=False):
            return portfolio_step(state, action, consts, reset_starts, with_info)

        compiled = torch.compile(step_fn, dynamic=False, fullgraph=True, **kwargs)
        self._step = lambda state, action, c, reset_starts, with_info: compiled(
            state, action, reset_starts, with_info
        )
        self.compiled = True
        return self
