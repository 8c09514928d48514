"""Standard allocators as policies in the portfolio env (same costs, financing and leverage cap).

Each allocator is a target-weights rule estimated causally from trailing close-to-close returns and
rebalanced on a fixed schedule:

- ``equal_weight``: 1/N.
- ``inverse_volatility``: w_i proportional to 1 / sigma_i.
- ``minimum_variance``: argmin w' S w over the long-only simplex (sum w = 1, w >= 0), S the sample
  covariance shrunk toward its diagonal (``(1 - s) C + s diag(C)``); exact (enumerates the supports)
  for up to ``EXACT_MAX_ASSETS`` assets, accelerated projected gradient beyond.
- ``risk_parity``: equal risk contribution, w_i (S w)_i equal for all i, long-only, sum w = 1.
- ``volatility_timing``: w_i proportional to sigma_i^(-2 eta) (Kirby & Ostdiek 2012; eta = 1 by
  default, eta = 0.5 is inverse volatility, eta = 0 is 1/N).
- ``vol_managed_equal_weight``: 1/N scaled by ``min(max_gross, sigma_long / sigma_short)`` of the
  1/N book (252- vs 60-day volatility; Moreira & Muir 2017 scale by the inverse recent variance,
  this scales to the book's own trailing one-year volatility, capped at 1x: it only reduces risk);
  the rest is cash.
- ``equal_minimum_variance``: ``mix`` x 1/N + (1 - mix) x minimum variance (the 1/N / minimum-
  variance combination of Tu & Zhou 2011 and Kan, Wang & Zhou, with a fixed mix of 1/2 rather than
  their estimated one).
- ``buy_and_hold`` (one asset, bought on the first step and held) and ``cash`` (flat).

Causality: the weights for the step from day ``t`` to ``t + 1`` use the ``lookback`` simple returns
``p[s] / p[s - 1] - 1`` for ``s = t - lookback + 1 .. t`` (prices up to day ``t``'s close, never
``t + 1``). Days before the first row are masked out; with fewer than 2 returns every estimator
falls back to 1/N.

Schedule: on episode steps ``k`` with ``k % rebalance_every == 0`` (step 0 always) the action is the
allocator's target; on the other steps it is the env's current drifted weights ``state.weights``, so
nothing trades (zero turnover). ``rebalance_every=0`` means "only on the first step" (buy and hold).
(Exception: with ``leverage_cap`` below the drifted gross exposure, the env scales the held weights
down to the cap, which trades a little on those steps too.)

Weights are fractions of equity (1x gross, long-only); the env still applies its own sanitising and
``leverage_cap``. Volatilities and covariances are per-step (daily), never annualised; the weights
do not depend on the scale.
"""

from __future__ import annotations

import dataclasses
import itertools
from functools import partial
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxport.allocator_kinds import ALLOCATOR_KINDS
from jaxport.data import DataError
from jaxport.env import EnvParams, EnvState, PortfolioEnv
from jaxport.eval.episode import _episode_report, evaluation_steps
from jaxport.features.risk import (
    DEFAULT_LONG_LOOKBACK,
    DEFAULT_LOOKBACK,
    book_volatility_ratio,
    normalised_covariance,
    relative_log_volatility,
    trailing_covariance,
)
from jaxport.rl.codec import PolicySpec

#: The allocators from the out-of-sample literature (module docstring), in the gate and tables.
LITERATURE_KINDS = ("volatility_timing", "vol_managed_equal_weight", "equal_minimum_variance")
DEFAULT_ETA = 1.0  # volatility timing: w_i proportional to sigma_i^(-2 eta) (Kirby & Ostdiek)
DEFAULT_MIX = 0.5  # weight of 1/N in the 1/N / minimum-variance combination
DEFAULT_MAX_GROSS = 1.0  # cap of the volatility-managed exposure (multiples of equity)
DEFAULT_REBALANCE_EVERY = 21  # env steps (trading days) between rebalances
DEFAULT_SHRINKAGE = 0.1  # weight of diag(C) in the minimum-variance covariance
EXACT_MAX_ASSETS = 10  # minimum variance enumerates the 2^N - 1 supports up to this N
_TINY = 1e-12


# ----------------------------------------------------------------------------- estimators
def shrink_covariance(cov: jnp.ndarray, shrinkage: float) -> jnp.ndarray:
    """``(1 - s) C + s diag(C)``: the fixed-intensity shrinkage toward the diagonal."""
    return (1.0 - shrinkage) * cov + shrinkage * jnp.diag(jnp.diag(cov))


def _equal(n: int, dtype=jnp.float32) -> jnp.ndarray:
    return jnp.full((n,), 1.0 / n, dtype)


@jax.jit
def inverse_volatility_from_cov(cov: jnp.ndarray) -> jnp.ndarray:
    """``w_i = (1 / sigma_i) / sum_j (1 / sigma_j)`` with ``sigma = sqrt(diag C)``."""
    sigma = jnp.sqrt(jnp.diag(normalised_covariance(cov)))
    inv = 1.0 / sigma
    return inv / jnp.sum(inv)


def _support_masks(n: int) -> np.ndarray:
    """Every non-empty subset of ``range(n)`` as a ``[2^n - 1, n]`` bool table (static)."""
    rows = [m for m in itertools.product((False, True), repeat=n) if any(m)]
    return np.asarray(rows, dtype=bool)


def _project_simplex(v: jnp.ndarray) -> jnp.ndarray:
    """Euclidean projection onto ``{w >= 0, sum w = 1}`` (sort-based, Duchi et al. 2008)."""
    n = v.shape[-1]
    u = jnp.sort(v)[::-1]
    css = jnp.cumsum(u) - 1.0
    k = jnp.arange(1, n + 1, dtype=v.dtype)
    rho = jnp.sum(u - css / k > 0)
    theta = css[rho - 1] / rho.astype(v.dtype)
    return jnp.maximum(v - theta, 0.0)


@partial(jax.jit, static_argnames=("exact_max_assets", "iterations"))
def minimum_variance_from_cov(
    cov: jnp.ndarray, *, exact_max_assets: int = EXACT_MAX_ASSETS, iterations: int = 500
) -> jnp.ndarray:
    """Long-only minimum-variance weights: ``argmin w' C w`` s.t. ``sum w = 1, w >= 0``.

    Up to ``exact_max_assets`` assets the solution is exact: for every support S the equality-
    constrained optimum on S (``C_S^-1 1 / (1' C_S^-1 1)``, solved as its KKT system) is computed,
    the feasible ones (all weights >= 0) are kept and the one with the least variance wins (the
    long-only optimum is among them).
    Beyond that, ``iterations`` steps of accelerated projected gradient on the simplex.
    For N = 2 this is ``w_1 = clip((s2^2 - c) / (s1^2 + s2^2 - 2c), 0, 1)``.
    """
    n = cov.shape[-1]
    if n == 1:
        return jnp.ones((1,), cov.dtype)
    c = normalised_covariance(cov)
    if n <= exact_max_assets:
        masks = jnp.asarray(_support_masks(n))
        eye = jnp.eye(n + 1, dtype=c.dtype)

        def on_support(m):
            # KKT system of min w' C w s.t. 1'w = 1 on the support, w = 0 off it (bordered, so a
            # singular C_S is fine as long as C is definite on {1'w = 0}, e.g. rho = +-1 for N = 2)
            ones = m.astype(c.dtype)
            kkt = jnp.block([[c, ones[:, None]], [ones[None, :], jnp.zeros((1, 1), c.dtype)]])
            keep = jnp.concatenate([m, jnp.ones((1,), bool)])
            kkt = jnp.where(keep[:, None] & keep[None, :], kkt, eye)
            rhs = jnp.zeros((n + 1,), c.dtype).at[n].set(1.0)
            w = jnp.linalg.solve(kkt, rhs)[:n]
            feasible = jnp.all(jnp.isfinite(w)) & jnp.all(w >= -1e-6)
            return w, jnp.where(feasible, w @ c @ w, jnp.inf)

        ws, variances = jax.vmap(on_support)(masks)
        w = jnp.maximum(ws[jnp.argmin(variances)], 0.0)
        return w / jnp.sum(w)
    lipschitz = 2.0 * jnp.max(jnp.sum(jnp.abs(c), axis=1))  # >= 2 * lambda_max(C)
    step = 1.0 / lipschitz

    def body(k, carry):
        w, z = carry
        w_next = _project_simplex(z - step * 2.0 * (c @ z))
        z_next = w_next + (k / (k + 3.0)) * (w_next - w)
        return w_next, z_next

    w0 = _equal(n, c.dtype)
    w, _ = jax.lax.fori_loop(0, iterations, body, (w0, w0))
    return w


@partial(jax.jit, static_argnames=("sweeps",))
def risk_parity_from_cov(cov: jnp.ndarray, *, sweeps: int = 100) -> jnp.ndarray:
    """Equal-risk-contribution weights (long-only, sum 1): ``w_i (C w)_i = w' C w / N`` for all i.

    Cyclical coordinate descent on ``min_y 0.5 y' C y - (1/N) sum log y`` (Griveau-Billion,
    Richard & Roncalli 2013), whose minimiser satisfies ``y_i (C y)_i = 1/N``; ``w = y / sum y``.
    Starts from inverse volatility (the exact answer for N = 2 and for uncorrelated assets), and
    falls back to it when C admits a zero-variance long-only portfolio (e.g. rho = -1), where the
    problem has no solution.
    """
    n = cov.shape[-1]
    if n == 1:
        return jnp.ones((1,), cov.dtype)
    c = normalised_covariance(cov)
    diag = jnp.diag(c)
    b = 1.0 / n
    inv_vol = 1.0 / jnp.sqrt(diag)
    inv_vol = inv_vol / jnp.sum(inv_vol)
    # start at inverse volatility scaled so that y' C y = sum b = 1 (as at the optimum)
    y0 = inv_vol / jnp.sqrt(jnp.maximum(inv_vol @ c @ inv_vol, _TINY))

    def sweep(_, y):
        for i in range(n):
            s = c[i] @ y - c[i, i] * y[i]
            y = y.at[i].set((-s + jnp.sqrt(s * s + 4.0 * c[i, i] * b)) / (2.0 * c[i, i]))
        return y

    y = jax.lax.fori_loop(0, sweeps, sweep, y0)
    w = y / jnp.sum(y)
    return jnp.where(jnp.all(jnp.isfinite(w)) & jnp.all(w >= 0), w, inv_vol)


def _with_history(w: jnp.ndarray, count: jnp.ndarray) -> jnp.ndarray:
    """``w`` when at least 2 trailing returns exist, else 1/N."""
    return jnp.where(count >= 2, w, _equal(w.shape[-1], w.dtype))


@partial(jax.jit, static_argnames=("lookback",))
def equal_weight(prices: jnp.ndarray, t: jnp.ndarray, lookback: int = DEFAULT_LOOKBACK):
    """1/N for every asset (``prices`` only gives N; ``t`` and ``lookback`` are unused)."""
    del t, lookback
    return _equal(prices.shape[-1], prices.dtype)


def _trailing_estimator(rule):
    """A jitted allocator ``(prices [T, N], t, lookback=DEFAULT_LOOKBACK, *params) -> [N]`` from
    ``rule(cov, *params) -> [N]``: the rule reads the covariance of the ``lookback`` (static)
    trailing daily returns before day ``t``, and 1/N stands in until 2 returns exist. The rule's
    own parameters (after ``cov``) stay traced; the docstring and name are the rule's."""

    def estimator(prices, t, lookback: int = DEFAULT_LOOKBACK, *params, **named_params):
        cov, count = trailing_covariance(prices, t, lookback)
        return _with_history(rule(cov, *params, **named_params), count)

    estimator.__name__ = estimator.__qualname__ = rule.__name__
    estimator.__doc__ = rule.__doc__
    return partial(jax.jit, static_argnames=("lookback",))(estimator)


@_trailing_estimator
def inverse_volatility(cov: jnp.ndarray):
    """Inverse-volatility weights ``[N]`` at day ``t`` from the trailing ``lookback`` returns."""
    return inverse_volatility_from_cov(cov)


@_trailing_estimator
def minimum_variance(cov: jnp.ndarray, shrinkage: float | jnp.ndarray = DEFAULT_SHRINKAGE):
    """Long-only minimum-variance weights ``[N]`` at day ``t`` (covariance shrunk by
    ``shrinkage`` (traced) toward its diagonal; see :func:`minimum_variance_from_cov`)."""
    return minimum_variance_from_cov(shrink_covariance(cov, shrinkage))


@_trailing_estimator
def risk_parity(cov: jnp.ndarray):
    """Equal-risk-contribution weights ``[N]`` at day ``t`` from the trailing returns."""
    return risk_parity_from_cov(cov)


@_trailing_estimator
def volatility_timing(cov: jnp.ndarray, eta: float | jnp.ndarray = DEFAULT_ETA):
    """Volatility-timing weights ``w_i = sigma_i^(-2 eta) / sum_j sigma_j^(-2 eta)`` ``[N]``
    (``eta`` traced; 1/N before 2 trailing returns)."""
    return jax.nn.softmax(-2.0 * eta * relative_log_volatility(cov))


@partial(jax.jit, static_argnames=("lookback", "long_lookback"))
def vol_managed_equal_weight(
    prices: jnp.ndarray,
    t: jnp.ndarray,
    lookback: int = DEFAULT_LOOKBACK,
    long_lookback: int = DEFAULT_LONG_LOOKBACK,
    max_gross: float | jnp.ndarray = DEFAULT_MAX_GROSS,
):
    """1/N scaled by ``min(max_gross, sigma_long / sigma_short)`` of the 1/N book ``[N]`` (gross
    exposure in multiples of equity; the rest in cash)."""
    n = prices.shape[-1]
    gross = jnp.minimum(max_gross, book_volatility_ratio(prices, t, lookback, long_lookback))
    return gross * _equal(n, prices.dtype)


@partial(jax.jit, static_argnames=("lookback",))
def equal_minimum_variance(
    prices: jnp.ndarray,
    t: jnp.ndarray,
    lookback: int = DEFAULT_LOOKBACK,
    shrinkage: float | jnp.ndarray = DEFAULT_SHRINKAGE,
    mix: float | jnp.ndarray = DEFAULT_MIX,
):
    """``mix`` x 1/N + (1 - mix) x :func:`minimum_variance` ``[N]`` (long-only, sum 1)."""
    n = prices.shape[-1]
    mv = minimum_variance(prices, t, lookback, shrinkage)
    return mix * _equal(n, prices.dtype) + (1.0 - mix) * mv


# ----------------------------------------------------------------------------- allocator spec
@dataclasses.dataclass(frozen=True)
class Allocator:
    """One allocator: a target-weights rule plus its rebalance schedule (hashable: a static arg).

    - ``kind``: one of ``ALLOCATOR_KINDS``.
    - ``lookback``: trailing returns used by the estimators (trading days, >= 2).
    - ``rebalance_every``: env steps between rebalances (1 = daily); 0 = only the first step.
    - ``asset``: the asset index of ``buy_and_hold``.
    - ``shrinkage``: diagonal shrinkage of ``minimum_variance``, in [0, 1].
    - ``eta``: the exponent of ``volatility_timing`` (>= 0).
    - ``long_lookback``: the long window of ``vol_managed_equal_weight`` (trading days).
    - ``max_gross``: the exposure cap of ``vol_managed_equal_weight`` (multiples of equity, > 0).
    - ``mix``: the 1/N weight of ``equal_minimum_variance``, in [0, 1].
    - ``name``: the report key (default: ``kind``, or ``buy_and_hold:<asset>``).
    """

    kind: str
    lookback: int = DEFAULT_LOOKBACK
    rebalance_every: int = DEFAULT_REBALANCE_EVERY
    asset: int = -1
    shrinkage: float = DEFAULT_SHRINKAGE
    eta: float = DEFAULT_ETA
    long_lookback: int = DEFAULT_LONG_LOOKBACK
    max_gross: float = DEFAULT_MAX_GROSS
    mix: float = DEFAULT_MIX
    name: str = ""

    def __post_init__(self):
        if self.kind not in ALLOCATOR_KINDS:
            raise ValueError(f"allocator kind must be one of {ALLOCATOR_KINDS}, got {self.kind!r}")
        if int(self.lookback) < 2:
            raise ValueError(f"allocator lookback must be >= 2 days, got {self.lookback}")
        if int(self.rebalance_every) < 0:
            raise ValueError(f"rebalance_every must be >= 0, got {self.rebalance_every}")
        if not 0.0 <= float(self.shrinkage) <= 1.0:
            raise ValueError(f"shrinkage must be in [0, 1], got {self.shrinkage}")
        if float(self.eta) < 0.0:
            raise ValueError(f"eta must be >= 0, got {self.eta}")
        if int(self.long_lookback) < 2:
            raise ValueError(f"long_lookback must be >= 2 days, got {self.long_lookback}")
        if not float(self.max_gross) > 0.0:
            raise ValueError(f"max_gross must be > 0, got {self.max_gross}")
        if not 0.0 <= float(self.mix) <= 1.0:
            raise ValueError(f"mix must be in [0, 1], got {self.mix}")
        if self.kind == "buy_and_hold" and int(self.asset) < 0:
            raise ValueError("buy_and_hold needs asset >= 0")
        if not self.name:
            label = f"buy_and_hold:{self.asset}" if self.kind == "buy_and_hold" else self.kind
            object.__setattr__(self, "name", label)

    def target(self, prices: jnp.ndarray, t: jnp.ndarray) -> jnp.ndarray:
        """Target weights ``[N]`` (fractions of equity) for the step from day ``t``."""
        n = prices.shape[-1]
        if self.kind == "equal_weight":
            return _equal(n, prices.dtype)
        if self.kind == "cash":
            return jnp.zeros((n,), prices.dtype)
        if self.kind == "buy_and_hold":
            if self.asset >= n:
                raise ValueError(f"buy_and_hold asset {self.asset} out of range for {n} assets")
            return jnp.zeros((n,), prices.dtype).at[self.asset].set(1.0)
        if self.kind == "inverse_volatility":
            return inverse_volatility(prices, t, self.lookback)
        if self.kind == "minimum_variance":
            return minimum_variance(prices, t, self.lookback, float(self.shrinkage))
        if self.kind == "volatility_timing":
            return volatility_timing(prices, t, self.lookback, float(self.eta))
        if self.kind == "vol_managed_equal_weight":
            return vol_managed_equal_weight(
                prices, t, self.lookback, self.long_lookback, float(self.max_gross)
            )
        if self.kind == "equal_minimum_variance":
            est = (self.lookback, float(self.shrinkage), float(self.mix))
            return equal_minimum_variance(prices, t, *est)
        return risk_parity(prices, t, self.lookback)

    def is_rebalance_step(self, step: jnp.ndarray) -> jnp.ndarray:
        """Whether episode step ``step`` (steps since reset) trades to the target."""
        if self.rebalance_every == 0:
            return step == 0
        return step % self.rebalance_every == 0


def allocator_action(allocator: Allocator, params: EnvParams, state: EnvState) -> jnp.ndarray:
    """The allocator's env action for the step from ``state.t``: its target on rebalance steps
    (``state.time`` = steps since reset), else the drifted weights ``state.weights`` (no trade).

    The estimate is only computed on rebalance steps (``lax.cond``; a select under ``vmap``).
    """
    return jax.lax.cond(
        allocator.is_rebalance_step(state.time),
        lambda: allocator.target(params.prices, state.t).astype(state.weights.dtype),
        lambda: state.weights,
    )


def default_allocators(
    num_assets: int,
    *,
    lookback: int = DEFAULT_LOOKBACK,
    rebalance_every: int = DEFAULT_REBALANCE_EVERY,
    shrinkage: float = DEFAULT_SHRINKAGE,
) -> tuple[Allocator, ...]:
    """Buy-and-hold of each asset, ``equal_weight`` (rebalanced daily, as the existing baseline),
    ``inverse_volatility``, ``minimum_variance``, ``risk_parity`` and the literature rules
    (:data:`LITERATURE_KINDS`; every ``rebalance_every`` steps from ``lookback`` days) and
    ``cash``."""
    est = dict(lookback=lookback, rebalance_every=rebalance_every)
    return (
        *(Allocator("buy_and_hold", asset=i, rebalance_every=0) for i in range(num_assets)),
        Allocator("equal_weight", rebalance_every=1),
        Allocator("inverse_volatility", **est),
        Allocator("minimum_variance", shrinkage=shrinkage, **est),
        Allocator("risk_parity", **est),
        Allocator("volatility_timing", **est),
        Allocator("vol_managed_equal_weight", **est),
        Allocator("equal_minimum_variance", shrinkage=shrinkage, **est),
        Allocator("cash", rebalance_every=1),
    )


# ----------------------------------------------------------------------------- evaluation
def _take(tree, k: int):
    return jax.tree_util.tree_map(lambda x: x[k], tree)


@partial(jax.jit, static_argnums=(0, 2, 3))
def _run_allocators(env: PortfolioEnv, params: EnvParams, allocators: tuple, num_steps: int):
    """All ``allocators`` in ONE scan over the same episode from ``params.eval_start``, the env
    step vmapped over them; an allocator's steps after its bankruptcy are frozen (as in
    ``evaluate_policy``). Returns batched ``(state [K], done [K], traj {[T, K, ...]})``."""
    num = len(allocators)
    key = jax.random.PRNGKey(0)
    _, state0 = env.reset_env(key, params)
    states = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (num,) + x.shape), state0)
    step_env = jax.vmap(env.step_env, in_axes=(None, 0, 0, None))
    target_weights = jax.vmap(env.target_weights, in_axes=(0, None))

    def body(carry, _):
        states, done = carry
        actions = jnp.stack(
            [allocator_action(a, params, _take(states, k)) for k, a in enumerate(allocators)]
        )
        _, new, _, terminated, info = step_env(key, states, actions, params)

        def keep(n, o):
            return jnp.where(done.reshape(done.shape + (1,) * (n.ndim - 1)), o, n)

        out = dict(
            equity=jnp.where(done, states.equity, info["equity"]),
            leverage=jnp.where(done, 0.0, info["leverage"]),
            turnover=jnp.where(done, 0.0, info["turnover"]),
            weights=jnp.where(done[:, None], 0.0, target_weights(actions, params)),
            closed_pnl=jnp.sum(jnp.where(done[:, None], 0.0, info["closed_trade_pnl"]), axis=-1),
        )
        states = jax.tree_util.tree_map(keep, new, states)
        return (states, done | terminated), out

    (states, done), traj = jax.lax.scan(
        body, (states, jnp.zeros((num,), bool)), None, length=num_steps
    )
    traj = jax.tree_util.tree_map(lambda x: jnp.moveaxis(x, 1, 0), traj)  # [K, T, ...]
    return states, done, traj


def run_allocators(
    env: PortfolioEnv, params: EnvParams, allocators: Sequence[Allocator]
) -> list[dict[str, Any]]:
    """Evaluate ``allocators`` on the test episode of ``params`` (``eval_start >= 0``) in one
    jitted, vmapped scan. Returns one report per allocator, in order, with the layout of
    :func:`jaxport.eval.evaluate_policy` (``metrics``, ``equity_curve`` [n + 1] E/E0,
    ``leverage``/``turnover`` [n], ``weights`` [n][N], ``start_index``, ``num_steps``) plus
    ``name``."""
    allocators = tuple(allocators)
    if not allocators:
        raise DataError("run_allocators needs at least one allocator")
    for a in allocators:
        if a.kind == "buy_and_hold" and a.asset >= env.num_assets:
            raise DataError(f"{a.name}: asset {a.asset} out of range for {env.num_assets} assets")
    names = [a.name for a in allocators]
    if len(set(names)) != len(names):
        raise DataError(f"allocator names must be unique, got {names}")
    num_steps = evaluation_steps(params)
    states, dones, trajs = _run_allocators(env, params, allocators, num_steps)
    reports = []
    for k, a in enumerate(allocators):
        report = _episode_report(_take(states, k), dones[k], _take(trajs, k), params)
        report.update(name=a.name, start_index=int(params.eval_start), num_steps=num_steps)
        reports.append(report)
    return reports


def evaluate_allocators(
    env: PortfolioEnv,
    params: EnvParams,
    allocators: Sequence[Allocator] | None = None,
    symbols: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Allocators as baselines, in the layout of :func:`jaxport.eval.evaluate_baselines`.

    ``allocators`` defaults to :func:`default_allocators`. Returns ``{"metrics": {"buy_and_hold":
    {SYM: m}, "equal_weight": m, "inverse_volatility": m, "minimum_variance": m, "risk_parity": m,
    "cash": m}, "curves": {same layout, equity curves E/E0 as lists}}``: ``buy_and_hold``
    allocators are grouped by the symbol of their asset, every other one is keyed by its ``name``.
    With the defaults, ``buy_and_hold``, ``equal_weight`` and ``cash`` equal
    ``evaluate_baselines``'s.
    """
    n = env.num_assets
    symbols = [f"asset{i}" for i in range(n)] if symbols is None else [str(s) for s in symbols]
    if len(symbols) != n:
        raise DataError(f"symbols has {len(symbols)} names for {n} assets")
    allocators = default_allocators(n) if allocators is None else tuple(allocators)
    reports = run_allocators(env, params, allocators)
    metrics: dict[str, Any] = {}
    curves: dict[str, Any] = {}
    for a, rep in zip(allocators, reports):
        if a.kind == "buy_and_hold":
            metrics.setdefault("buy_and_hold", {})[symbols[a.asset]] = rep["metrics"]
            curves.setdefault("buy_and_hold", {})[symbols[a.asset]] = rep["equity_curve"]
        else:
            metrics[a.name] = rep["metrics"]
            curves[a.name] = rep["equity_curve"]
    return {"metrics": metrics, "curves": curves}


# ----------------------------------------------------------------------------- as a policy kind
def _allocator_from_dict(d) -> Allocator:
    names = {f.name for f in dataclasses.fields(Allocator)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"Allocator: unknown field(s) {unknown}")
    return Allocator(**dict(d))


def _allocator_make_act(config: Allocator, env: PortfolioEnv):
    """``act(tree, obs, state, params)``: the allocator's action (its tree is empty)."""
    del env

    def act(tree, obs, state, params):
        del tree, obs
        return allocator_action(config, params, state)

    return act


#: The codec spec of every ``"baseline:<name>"`` kind (listed in
#: :data:`jaxport.registry.POLICY_KINDS`).
BASELINE_POLICY = PolicySpec(
    kind="baseline:",
    config_from_dict=_allocator_from_dict,
    config_to_dict=dataclasses.asdict,
    make_act=_allocator_make_act,
    to_tree=lambda config: {},
    check_tree=lambda tree, config: dict(tree or {}),
    torch_twin="AllocatorPolicy",
    description="a standard allocator (Allocator fields as config; no arrays): "
    "baseline:<name>, e.g. baseline:equal_weight",
    needs_env_state=True,
)
