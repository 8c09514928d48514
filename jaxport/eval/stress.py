"""Policies rolled out over bootstrapped market paths: the compiled program behind ``jaxport stress``.

A path is an index array ``days [W + H]`` of source days (rows of the basket's :class:`EnvParams`);
the step from path day ``k`` uses row ``days[k]``: its features in the observation and its next-day
return ``prices[days[k] + 1] / prices[days[k]] - 1`` (open-to-close in that env mode). So the env
steps on the SHARED source params with ``state.t = days[k]`` set before each step: a path costs one
gather per step, never a copy of the market. The first ``W`` (warm-up) days are history only; the
episode is the last ``H`` days, starting with equity ``E0`` and no position.

Price history (a choice, documented in the README): the standard allocators estimate volatilities
and covariances from trailing prices, so each path gets its own price series by compounding its
gathered close-to-close returns (``P_0 = 1``, ``P_{k+1} = P_k (1 + r[days[k]])``, ``[W + H + 1,
N]``); an allocator at path day ``W + k`` reads ``P[W + k - lookback .. W + k]``, i.e. the
resampled returns of the path's own warm-up and episode, never the unresampled history. Learned
policies with an observation window read the path's own last ``window`` feature rows.

Every path of a chunk runs in one ``lax.scan`` over the H steps, vmapped over paths; allocators
rebalance on a step counter shared by all paths (a real ``lax.cond``, so estimators only run on
rebalance days). A path is frozen after its bankruptcy, as in :func:`jaxport.eval.evaluate_policy`.
Per-path results (fractions; ``sharpe`` annualised with ``periods_per_year``, risk-free 0):
``total_return``, ``log_growth`` (total log return), ``sharpe``, ``max_drawdown``, ``ruin``
(equity reached the env's bankruptcy floor), ``trade_pnl_error`` (closed + open trade profit minus
``E_H - E0``, in E0 units: 0 up to float error) and the first ``fan`` equity curves ``E/E0``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxport.env import EnvParams, PortfolioEnv
from jaxport.eval.allocators import ALLOCATOR_KINDS, Allocator
from jaxport.eval.bootstrap import _one_path
from jaxport.rl.codec import Policy
from jaxport.xla_options import tuned_jit

PATH_METRICS = ("total_return", "log_growth", "sharpe", "max_drawdown")
QUANTILES = (0.01, 0.05, 0.25, 0.50, 0.75, 0.95, 0.99)
_NEGLIGIBLE = 1e-12  # per-step std below this is float noise: Sharpe 0 (as metrics_from_equity)


def warmup_days(env: PortfolioEnv, policies) -> int:
    """History days ``W`` before the episode: the longest allocator lookback (the long window of
    ``vol_managed_equal_weight``) and the observation
    window (at least 1, so the first step has a price history)."""
    looks = [
        max(p.config.lookback, p.config.long_lookback)
        if p.config.kind == "vol_managed_equal_weight"
        else p.config.lookback
        for p in policies
        if isinstance(p.config, Allocator)
    ]
    return max([1, env.window - 1] + looks)


def path_days(key: jax.Array, path_ids, rows, block_length, length: int) -> jnp.ndarray:
    """Source days ``[len(path_ids), length]`` of the given paths (path ``i`` from
    ``fold_in(key, i)``, so a path does not depend on the chunking): stationary-bootstrap
    positions into ``rows`` (``[n]`` int32 source days), then the gather ``rows[positions]``."""
    return _path_days(key, jnp.asarray(path_ids, jnp.int32), rows, block_length, length)


@tuned_jit(static_argnums=(4,))
def _path_days(key, path_ids, rows, block_length, length):
    keys = jax.vmap(jax.random.fold_in, (None, 0))(key, path_ids)
    n = rows.shape[0]
    pos = jax.vmap(lambda k: _one_path(k, n, block_length, length))(keys)
    return rows[pos]


def path_prices(params: EnvParams, days: jnp.ndarray) -> jnp.ndarray:
    """``[len(days) + 1, N]`` closes of one path from compounded close-to-close returns (start 1)."""
    growth = params.prices[days + 1] / params.prices[days]
    ones = jnp.ones((1, growth.shape[-1]), growth.dtype)
    return jnp.concatenate([ones, jnp.cumprod(growth, axis=0)])


# ------------------------------------------------------------------------------- actions
# act(trees, states [K, C], k, prices [C, W + H + 1, N] | None) -> actions [K, C, N]
ActionFn = Callable[..., jnp.ndarray]
#: Allocator kinds that estimate from the trailing prices (every kind but the fixed rules).
ESTIMATORS = tuple(k for k in ALLOCATOR_KINDS if k not in ("equal_weight", "buy_and_hold", "cash"))


def _allocator_actions(allocators: tuple, warmup: int) -> ActionFn:
    """Every allocator's action for its own row of the ``[K, C]`` states: its target on its
    rebalance steps, else the drifted weights. The step counter ``k`` is shared by all paths, so
    each estimator runs only on its rebalance days (a real ``lax.cond``)."""

    def act(trees, states, k, prices, params):
        del trees
        out = []
        for i, alloc in enumerate(allocators):
            weights = states.weights[i]

            def target(alloc=alloc, weights=weights):
                if alloc.kind not in ESTIMATORS:  # no estimate: one target for every path
                    return jnp.broadcast_to(alloc.target(params.prices, k), weights.shape)
                return jax.vmap(lambda p: alloc.target(p, warmup + k))(prices)

            out.append(
                jax.lax.cond(
                    alloc.is_rebalance_step(k),
                    lambda target=target, w=weights: target().astype(w.dtype),
                    lambda w=weights: w,
                )
            )
        return jnp.stack(out)

    return act


def _policy_actions(env: PortfolioEnv, policy: Policy, warmup: int, days) -> ActionFn:
    """A learned policy's action (``K = 1``) on the observations of its paths."""
    act, stateful = policy.act_fn, policy.needs_env_state

    def actions(trees, states, k, prices, params):
        del prices
        st = jax.tree_util.tree_map(lambda x: x[0], states)
        obs = _observations(env, params, st, days, k, warmup)
        st = st.replace(t=days[:, warmup + k])  # the source day this step trades on
        if stateful:
            return jax.vmap(lambda o, s: act(trees, o, s, params))(obs, st)[None]
        return jax.vmap(lambda o: act(trees, o))(obs)[None]

    return actions


# ------------------------------------------------------------------------------- rollout
def _observations(env: PortfolioEnv, params: EnvParams, states, days, k, warmup: int):
    """Observations ``[C, D]`` at path day ``warmup + k``: the env's own ``get_obs`` on the path's
    last ``window`` feature rows (gathered) and each path's state."""
    w = env.window
    cols = warmup + k - (w - 1) + jnp.arange(w)

    def one(state, d):
        feats = params.features[d[cols]]  # [window, N, F]
        return env.get_obs(state.replace(t=jnp.int32(w - 1)), params.replace(features=feats))

    return jax.vmap(one)(states, days)


def _scan_paths(env, act, trees, params, days, num: int, horizon: int, warmup: int, prices):
    """One scan over ``horizon`` steps of ``num`` policies on every path of ``days [C, W + H]``:
    equity and closed trade profit per step ``[H, K, C]``, final states and bankruptcy flags."""
    shape = (num, days.shape[0])
    _, state0 = env.reset_env(jax.random.PRNGKey(0), params)
    states = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, shape + x.shape), state0)
    step = jax.vmap(jax.vmap(env.step_env, in_axes=(None, 0, 0, None)), in_axes=(None, 0, 0, None))
    key = jax.random.PRNGKey(0)  # step_env ignores its key

    def body(carry, k):
        states, done = carry
        actions = act(trees, states, k, prices, params)
        at = states.replace(t=jnp.broadcast_to(days[:, warmup + k], shape))
        _, new, _, terminated, info = step(key, at, actions, params)

        def keep(n, o):
            return jnp.where(done.reshape(done.shape + (1,) * (n.ndim - 2)), o, n)

        out = (
            jnp.where(done, states.equity, info["equity"]),
            jnp.sum(jnp.where(done[..., None], 0.0, info["closed_trade_pnl"]), axis=-1),
        )
        return (jax.tree_util.tree_map(keep, new, states), done | terminated), out

    init = (states, jnp.zeros(shape, bool))
    (states, done), (equity, closed) = jax.lax.scan(body, init, jnp.arange(horizon))
    return states, done, equity, closed


def path_metrics(equity: jnp.ndarray, periods_per_year) -> dict[str, jnp.ndarray]:
    """Per-path metrics from equity curves ``[..., H + 1]`` (E/E0, starting at 1; see module
    docstring): the definitions of :func:`jaxport.eval.metrics_from_equity`, vectorised."""
    r = equity[..., 1:] / equity[..., :-1] - 1.0
    mean = jnp.mean(r, axis=-1)
    std = jnp.std(r, axis=-1, ddof=1)
    sharpe = jnp.where(std > _NEGLIGIBLE, mean / jnp.maximum(std, _NEGLIGIBLE), 0.0)
    peak = jax.lax.cummax(equity, axis=equity.ndim - 1)
    return {
        "total_return": equity[..., -1] - 1.0,
        "log_growth": jnp.log(equity[..., -1]),
        "sharpe": sharpe * jnp.sqrt(periods_per_year),
        "max_drawdown": jnp.max(1.0 - equity / peak, axis=-1),
    }


@tuned_jit(static_argnums=(0, 1, 5, 6, 7, 8))
def _rollout_chunk(env, policies, trees, params, days, horizon, warmup, needs_prices, fan):
    """``policies``: a tuple of Allocators, or one learned (kind, config) pair."""
    if isinstance(policies[0], Allocator):
        act, num = _allocator_actions(policies, warmup), len(policies)
    else:
        policy = Policy(policies[0], policies[1], {}, env)
        act, num = _policy_actions(env, policy, warmup, days), 1
    prices = jax.vmap(partial(path_prices, params))(days) if needs_prices else None
    states, done, equity, closed = _scan_paths(
        env, act, trees, params, days, num, horizon, warmup, prices
    )
    e0 = params.initial_equity
    ones = jnp.ones((num, days.shape[0], 1))
    curves = jnp.concatenate([ones, jnp.moveaxis(equity, 0, -1) / e0], axis=-1)  # [K, C, H+1]
    out = path_metrics(curves, params.periods_per_year)
    trade_pnl = jnp.sum(closed, axis=0) + jnp.sum(states.open_trade_pnl, axis=-1)
    out["ruin"] = done
    out["trade_pnl_error"] = (trade_pnl - (states.equity - e0)) / e0
    out["fan"] = curves[:, :fan]
    return out


def rollout_paths(
    policies,
    params: EnvParams,
    days: jnp.ndarray,
    *,
    horizon: int,
    warmup: int,
    fan: int = 0,
) -> list[dict[str, jnp.ndarray]]:
    """Roll ``policies`` (a list of :class:`Policy`: allocators, which share one program, or ONE
    learned policy) over every path ``days [C, warmup + horizon]`` (source rows of ``params``) in
    one jitted scan. Returns per policy the per-path results of the module docstring (``[C]``
    each) and ``fan`` (``[min(fan, C), H + 1]`` equity curves). One compilation per (env, policy
    kinds and configs, shapes): every basket of the same shape and every chunk reuse it; ``days``
    may be sharded over devices along the path axis."""
    policies = list(policies)
    env = policies[0].env
    configs = [p.config for p in policies]
    if all(isinstance(c, Allocator) for c in configs):
        static, trees = tuple(configs), None
        needs_prices = any(c.kind in ESTIMATORS for c in configs)
    elif len(policies) == 1:
        static, trees, needs_prices = (policies[0].kind, configs[0]), policies[0].tree, False
    else:
        raise ValueError("rollout_paths: pass allocators only, or one learned policy")
    out = _rollout_chunk(
        env, static, trees, params, days, int(horizon), int(warmup), needs_prices, int(fan)
    )
    return [jax.tree_util.tree_map(lambda x, i=i: x[i], out) for i in range(len(policies))]


# ------------------------------------------------------------------------------- statistics
def distribution(values: np.ndarray) -> dict[str, float]:
    """``{"mean", "q01", "q05", "q25", "q50", "q75", "q95", "q99"}`` of a sample (float64)."""
    v = np.asarray(values, np.float64)
    qs = np.quantile(v, QUANTILES)
    out = {"mean": float(np.mean(v))}
    out.update({f"q{round(q * 100):02d}": float(x) for q, x in zip(QUANTILES, qs)})
    return out


def policy_statistics(paths: dict[str, np.ndarray], reference: dict[str, np.ndarray] | None):
    """The stress statistics of one policy from its per-path results (``reference``: 1/N's on the
    same paths, for ``prob_beats_equal_weight``, path by path: a strictly higher total return).

    Probabilities are fractions of paths; ``prob_drawdown_gt_20`` means max drawdown > 0.20;
    ``cvar05_total_return`` is the mean total return of the worst 5 % of paths."""
    tr = np.asarray(paths["total_return"], np.float64)
    dd = np.asarray(paths["max_drawdown"], np.float64)
    out: dict[str, Any] = {m: distribution(paths[m]) for m in PATH_METRICS}
    worst = tr[tr <= np.quantile(tr, 0.05)]
    out.update(
        prob_loss=float(np.mean(tr < 0)),
        prob_drawdown_gt_20=float(np.mean(dd > 0.20)),
        prob_drawdown_gt_50=float(np.mean(dd > 0.50)),
        prob_ruin=float(np.mean(np.asarray(paths["ruin"], bool))),
        cvar05_total_return=float(np.mean(worst)),
        trade_pnl_max_abs_error=float(np.max(np.abs(paths["trade_pnl_error"]))),
    )
    if reference is not None:
        ref = np.asarray(reference["total_return"], np.float64)
        out["prob_beats_equal_weight"] = float(np.mean(tr > ref))
    return out


__all__ = [
    "PATH_METRICS",
    "QUANTILES",
    "distribution",
    "path_days",
    "path_metrics",
    "path_prices",
    "policy_statistics",
    "rollout_paths",
    "warmup_days",
]
