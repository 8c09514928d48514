"""Deterministic evaluation of an allocation policy on the chronological test split, plus baselines.

One episode runs from ``params.eval_start`` to the end of the data (or ``params.episode_length``
steps, whichever is shorter) as one jitted ``lax.scan``. Metrics are computed on the host in float64
from the equity curve and the env's own trade accounting, so policies and baselines run in the SAME
env share fees, financing and per-trade bookkeeping.

Units: every return, rate, drawdown and volatility is a FRACTION (0.05 = 5 %), annualised with
``periods_per_year`` where the name says so (``cagr``, ``ann_volatility``, ``sharpe``, ``sortino``,
``calmar``). Money amounts (``fees``, ``financing``, ``gross_pnl``, trade profits) are in units of
the initial equity E0 (so 0.01 = 1 % of the starting capital). Equity curves are ``E_t / E0`` and
start at 1.0. Ratios whose denominator is zero (no volatility, no downside, no drawdown) are
reported as 0.0 so every output is finite and JSON-ready.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxport.data import DataError
from jaxport.env import EnvParams, PortfolioEnv
from jaxport.rl.codec import Policy

PolicyFn = Callable[[jax.Array, jnp.ndarray], jnp.ndarray]  # (key, obs[obs_dim]) -> action[N]

EQUITY_METRIC_KEYS = (
    "total_return",
    "cagr",
    "ann_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "num_periods",
    "years",
)
POLICY_METRIC_KEYS = EQUITY_METRIC_KEYS + (
    "final_equity",
    "turnover_mean",
    "turnover_total",
    "fees",
    "financing",
    "gross_pnl",
    "num_trades",
    "num_closed_trades",
    "num_open_trades",
    "win_rate",
    "avg_trade_net_profit",
    "trade_pnl_total",
    "mean_leverage",
    "max_leverage",
    "bankrupt",
)


_NEGLIGIBLE = 1e-12  # per-period std / downside / drawdown below this is float noise: treated as 0


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > _NEGLIGIBLE else 0.0


def metrics_from_equity(
    equity_curve: Sequence[float], periods_per_year: float = 252.0
) -> dict[str, float]:
    """Return/risk metrics of an equity curve ``[E_0, ..., E_n]`` (n periods; pure, float64).

    - ``total_return`` = E_n / E_0 - 1; ``cagr`` = (E_n / E_0) ** (periods_per_year / n) - 1.
    - per-period returns r_t = E_t / E_{t-1} - 1; ``ann_volatility`` = std(r, ddof=1) * sqrt(ppy).
    - ``sharpe`` = mean(r) / std(r, ddof=1) * sqrt(ppy) (risk-free rate 0).
    - ``sortino`` = mean(r) / sqrt(mean(min(r, 0) ** 2)) * sqrt(ppy) (target 0, all periods).
    - ``max_drawdown`` = max_t (1 - E_t / max_{s<=t} E_s) (a positive fraction).
    - ``calmar`` = cagr / max_drawdown.
    """
    eq = np.asarray(equity_curve, dtype=np.float64).reshape(-1)
    if eq.size < 1 or not np.all(np.isfinite(eq)) or np.any(eq <= 0):
        raise DataError("equity_curve must be a non-empty sequence of finite positive values")
    if not periods_per_year > 0:
        raise DataError(f"periods_per_year must be > 0, got {periods_per_year}")
    ppy = float(periods_per_year)
    n = eq.size - 1
    growth = eq[-1] / eq[0]
    years = n / ppy
    out = dict.fromkeys(EQUITY_METRIC_KEYS, 0.0)
    out["total_return"] = float(growth - 1.0)
    out["num_periods"] = int(n)
    out["years"] = float(years)
    peak = np.maximum.accumulate(eq)
    drawdown = float(np.max(1.0 - eq / peak))
    out["max_drawdown"] = drawdown if drawdown > _NEGLIGIBLE else 0.0
    if n == 0:
        return out
    out["cagr"] = float(np.expm1(min(np.log(growth) / years, 700.0)))
    r = eq[1:] / eq[:-1] - 1.0
    mean = float(np.mean(r))
    std = float(np.std(r, ddof=1)) if n > 1 else 0.0
    std = std if std > _NEGLIGIBLE else 0.0
    downside = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)))
    out["ann_volatility"] = std * np.sqrt(ppy)
    out["sharpe"] = _ratio(mean, std) * np.sqrt(ppy)
    out["sortino"] = _ratio(mean, downside) * np.sqrt(ppy)
    out["calmar"] = _ratio(out["cagr"], out["max_drawdown"])
    return {k: (v if isinstance(v, int) else float(v)) for k, v in out.items()}


def evaluation_steps(params: EnvParams) -> int:
    """Steps of the evaluation episode: from ``eval_start`` to the end of data, capped by
    ``episode_length`` (host-side; ``params`` must be concrete)."""
    start = int(params.eval_start)
    if start < 0:
        raise DataError(
            f"evaluation needs params with eval_start >= 0 (a fixed test start day), got {start}"
        )
    num_days = int(params.prices.shape[-2])
    steps = min(int(params.episode_length), num_days - 1 - start)
    if steps < 1:
        raise DataError(f"eval_start={start} leaves no step in {num_days} days")
    return steps


def _scan_episode(
    env: PortfolioEnv,
    params: EnvParams,
    act: PolicyFn,
    key: jax.Array,
    num_steps: int,
    stateful: bool = False,
):
    """One deterministic episode from ``params.eval_start``; steps after bankruptcy are frozen.
    ``stateful``: ``act(key, obs, state, params)`` (policies that read the env state)."""
    obs, state = env.reset_env(key, params)

    def body(carry, step_key):
        obs, state, done = carry
        action = act(step_key, obs, state, params) if stateful else act(step_key, obs)
        n_obs, n_state, _, terminated, info = env.step_env(step_key, state, action, params)
        keep = lambda new, old: jnp.where(done, old, new)  # noqa: E731
        out = dict(
            equity=jnp.where(done, state.equity, info["equity"]),
            leverage=jnp.where(done, 0.0, info["leverage"]),
            turnover=jnp.where(done, 0.0, info["turnover"]),
            weights=jnp.where(done, 0.0, env.target_weights(action, params)),
            closed_pnl=jnp.sum(jnp.where(done, 0.0, info["closed_trade_pnl"])),
        )
        obs = keep(n_obs, obs)
        state = jax.tree_util.tree_map(keep, n_state, state)
        return (obs, state, done | terminated), out

    (_, state, done), traj = jax.lax.scan(
        body, (obs, state, jnp.zeros((), bool)), jax.random.split(key, num_steps)
    )
    return state, done, traj


@partial(jax.jit, static_argnums=(0, 2, 5, 6))
def run_policy_episode(env, params, act, policy_params, key, num_steps, stateful=False):
    """The jitted episode behind :func:`evaluate_policy`: ``(final state, done, trajectory)`` of
    ``num_steps`` steps of ``act`` (``act(policy_params, key, obs)``, or ``act(key, obs)`` when
    ``policy_params`` is None) from ``params.eval_start``. ``env``, ``act``, ``num_steps`` and
    ``stateful`` are static: one compilation per (env, policy function, length); its
    ``_cache_size()`` counts them."""
    fn = act if policy_params is None else partial(act, policy_params)
    return _scan_episode(env, params, fn, key, num_steps, stateful)


def _baseline_act(env: PortfolioEnv, target: jnp.ndarray, hold: jnp.ndarray, key, obs):
    """``target`` on the first step; afterwards the current drifted weights if ``hold`` (shares are
    held, no rebalancing, no turnover), else ``target`` again (daily rebalance)."""
    del key
    n_feat = env.window * env.num_assets * env.num_features
    w = obs[n_feat : n_feat + env.num_assets]
    invested = jnp.sum(jnp.abs(w)) > 0
    return jnp.where(hold & invested, w, target)


@partial(jax.jit, static_argnums=(0, 4))
def _run_baselines(env, params, targets, holds, num_steps):
    def one(target, hold):
        return _scan_episode(
            env, params, partial(_baseline_act, env, target, hold), jax.random.PRNGKey(0), num_steps
        )

    return jax.vmap(one)(targets, holds)


def _episode_report(state, done, traj, params: EnvParams) -> dict[str, Any]:
    """Host-side metrics + curves from one (unbatched) scanned episode."""
    e0 = float(params.initial_equity)
    equity = np.concatenate([[e0], np.asarray(traj["equity"], np.float64)]) / e0
    metrics = metrics_from_equity(equity, float(params.periods_per_year))
    leverage = np.asarray(traj["leverage"], np.float64)
    turnover = np.asarray(traj["turnover"], np.float64)
    weights = np.asarray(state.weights, np.float64)
    open_pnl = np.asarray(state.open_trade_pnl, np.float64)
    open_mask = (weights != 0) | (open_pnl != 0)
    num_closed = int(state.num_trades)
    num_open = int(np.sum(open_mask))
    num_trades = num_closed + num_open
    wins = int(state.winning_trades) + int(np.sum(open_mask & (open_pnl > 0)))
    trade_pnl = float(
        np.sum(np.asarray(traj["closed_pnl"], np.float64)) + np.sum(open_pnl[open_mask])
    )
    steps = max(int(metrics["num_periods"]), 1)
    metrics.update(
        final_equity=float(equity[-1]),
        turnover_mean=float(np.sum(turnover) / steps),
        turnover_total=float(np.sum(turnover)),
        fees=float(state.fees) / e0,
        financing=float(state.financing) / e0,
        gross_pnl=float(state.gross_pnl) / e0,
        num_trades=num_trades,
        num_closed_trades=num_closed,
        num_open_trades=num_open,
        win_rate=_ratio(wins, num_trades),
        avg_trade_net_profit=_ratio(trade_pnl / e0, num_trades),
        trade_pnl_total=trade_pnl / e0,
        mean_leverage=float(np.sum(leverage) / steps),
        max_leverage=float(np.max(leverage)) if leverage.size else 0.0,
        bankrupt=bool(done),
    )
    return {
        "metrics": metrics,
        "equity_curve": equity.tolist(),
        "leverage": leverage.tolist(),
        "turnover": turnover.tolist(),
        "weights": np.asarray(traj["weights"], np.float64).tolist(),
    }


def _as_traced(policy_fn, policy_params):
    """A :class:`~jaxport.rl.codec.Policy` -> its shared act function with the tree as traced
    params."""
    if isinstance(policy_fn, Policy):
        if policy_params is not None:
            raise DataError("evaluate_policy: pass either a Policy or policy_params, not both")
        return policy_fn.eval_fn, policy_fn.tree, policy_fn.needs_env_state
    if isinstance(policy_fn, jax.tree_util.Partial) and policy_params is None:
        return _call_partial, policy_fn, False  # e.g. rl make_policy_fn: arrays are traced leaves
    return policy_fn, policy_params, False


def _call_partial(partial_fn, key, obs):
    return partial_fn(key, obs)


def evaluate_policy(
    env: PortfolioEnv,
    params: EnvParams,
    policy_fn: PolicyFn | Policy,
    *,
    key: jax.Array | None = None,
    policy_params: Any = None,
) -> dict[str, Any]:
    """Run ``policy_fn`` for ONE episode from ``params.eval_start`` to the end of the data (one
    jitted scan).

    ``params`` is the test env (``eval_start >= 0``, e.g. ``episode_length=None``); ``policy_fn(key,
    obs) -> action`` should be deterministic (the per-step keys are fixed by ``key``, default
    ``PRNGKey(0)``). With ``policy_params`` (a pytree), ``policy_fn(policy_params, key, obs)`` is
    called instead and the parameters are traced, so evaluating many parameter sets with the same
    function object compiles once. A :class:`jaxport.rl.codec.Policy` may be passed as
    ``policy_fn``: its tree is then traced (one compilation per policy architecture). Returns a
    JSON-ready dict: ``metrics`` (``POLICY_METRIC_KEYS``: the equity metrics of
    :func:`metrics_from_equity` plus turnover (``turnover_mean`` per step, ``turnover_total``, sums
    of |dw|), ``fees``/``financing``/``gross_pnl`` (E0 units), trade stats (closed trades plus the
    positions still open at the end counted as final trades with their ``open_trade_pnl``;
    ``trade_pnl_total`` == final equity - 1), ``mean_leverage``/``max_leverage`` (gross exposure)
    and ``bankrupt``), ``equity_curve`` (``[n + 1]``, E/E0), ``leverage``/``turnover`` (``[n]``),
    ``weights`` (``[n][N]`` target exposures), ``start_index`` (day of ``equity_curve[0]``) and
    ``num_steps``.
    """
    num_steps = evaluation_steps(params)
    key = jax.random.PRNGKey(0) if key is None else key
    policy_fn, policy_params, stateful = _as_traced(policy_fn, policy_params)
    state, done, traj = run_policy_episode(
        env, params, policy_fn, policy_params, key, num_steps, stateful
    )
    report = _episode_report(state, done, traj, params)
    report.update(start_index=int(params.eval_start), num_steps=num_steps)
    return report


def baseline_specs(num_assets: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Targets ``[N + 2, N]``, hold flags and names of the baselines: buy-and-hold of each asset,
    ``equal_weight`` (1/N each, rebalanced every step) and ``cash`` (flat)."""
    eye = np.eye(num_assets, dtype=np.float32)
    equal = np.full((1, num_assets), 1.0 / num_assets, np.float32)
    targets = np.concatenate([eye, equal, np.zeros((1, num_assets), np.float32)])
    holds = np.array([True] * num_assets + [False, False])
    names = [f"buy_and_hold:{i}" for i in range(num_assets)] + ["equal_weight", "cash"]
    return targets, holds, names


def evaluate_baselines(
    env: PortfolioEnv, params: EnvParams, symbols: Sequence[str] | None = None
) -> dict[str, Any]:
    """Baselines in the same env and episode as :func:`evaluate_policy` (one vmapped jitted scan).

    - ``buy_and_hold[SYM]``: 1x long SYM bought on the first step, then the shares are held: the
      policy returns the current drifted weights (read from the observation), so there is no
      rebalancing and no turnover after entry (the entry fee is financed, leaving the exposure a
      hair above 1x when fees > 0). With zero fees it equals ``price[t] / price[eval_start]``
      (:func:`buy_and_hold_curve`).
    - ``equal_weight``: 1/N of equity in each asset, rebalanced back to 1/N every step (pays fees).
    - ``cash``: no position; equity stays at 1.

    Returns ``{"metrics": {"buy_and_hold": {SYM: m}, "equal_weight": m, "cash": m}, "curves": {same
    layout, equity curves as lists}}``.
    """
    n = env.num_assets
    symbols = [f"asset{i}" for i in range(n)] if symbols is None else [str(s) for s in symbols]
    if len(symbols) != n:
        raise DataError(f"symbols has {len(symbols)} names for {n} assets")
    num_steps = evaluation_steps(params)
    targets, holds, _ = baseline_specs(n)
    states, dones, trajs = _run_baselines(
        env, params, jnp.asarray(targets), jnp.asarray(holds), num_steps
    )
    reports = [
        _episode_report(
            jax.tree_util.tree_map(lambda x: x[i], states),
            dones[i],
            jax.tree_util.tree_map(lambda x: x[i], trajs),
            params,
        )
        for i in range(n + 2)
    ]
    metrics = {
        "buy_and_hold": {sym: reports[i]["metrics"] for i, sym in enumerate(symbols)},
        "equal_weight": reports[n]["metrics"],
        "cash": reports[n + 1]["metrics"],
    }
    curves = {
        "buy_and_hold": {sym: reports[i]["equity_curve"] for i, sym in enumerate(symbols)},
        "equal_weight": reports[n]["equity_curve"],
        "cash": reports[n + 1]["equity_curve"],
    }
    return {"metrics": metrics, "curves": curves}


def buy_and_hold_curve(prices, start: int, num_steps: int) -> np.ndarray:
    """Analytic buy-and-hold equity ``prices[start + k] / prices[start]``, ``[num_steps + 1, N]``
    (no costs; equals the env's ``buy_and_hold`` baseline when fees are zero)."""
    p = np.asarray(prices, np.float64)
    return p[start : start + num_steps + 1] / p[start]
