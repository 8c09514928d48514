"""Out-of-sample ("cross-fitted") forecast features for the rows that RL trains and selects on.

A forecaster fitted on the train rows and then asked to featurise those same rows produces
features that were fitted to the returns after each row. Here every pre-test row is featurised by a
model that never trained on that row's targets:

* ``scheme="blocked"`` (purged K-fold over time): the pre-test rows ``[0, test_start)`` are cut into
  ``K`` contiguous blocks. Block ``b = [s, e)`` is featurised by a model fitted on the pre-test rows
  outside the held-out days ``[s - embargo, e + embargo)``.
* ``scheme="expanding"``: block ``b`` is featurised by a model fitted only on days before
  ``s - embargo``; the first block has no model (``first_block="invalid"``: zero rows,
  ``valid_from`` moves past it; ``"fallback"``: statistical features).
* Rows from ``test_start`` on are featurised by the model fitted on all pre-test rows (today's
  model).

Days and windows: a training window with origin ``u`` reads inputs of days ``u-context+1 .. u`` and
targets of days ``u+1 .. u+horizon`` (see :mod:`jaxport.forecast.windows`). A model for a block may
use origin ``u`` only when none of the days ``u - input_purge .. u + horizon`` is held out. With
``embargo >= horizon - 1`` no training target then overlaps a target (``t+1 .. t+horizon``) of any
featurised row ``t``; the default ``embargo = horizon`` keeps a day to spare. ``input_purge = 0``
(standard purged CV) still lets windows after a block read the block's returns as *inputs*; pass
the model's context to forbid that too. Every model's fit also respects ``test_start``: no target
reaches a test row.

API::

    plan = plan_crossfit(T, bounds, horizon=8, num_blocks=5)         # CrossFitPlan (bookkeeping)
    fit = forecaster_fit_fn(fcfg, tcfg, symbols=base, es_rows=(train_end, val_end))
    res = crossfit_features(market, plan, fit, final_model=generic)  # CrossFitResult
    res.values [T, N, F], res.names, res.valid_from, res.row_model [T], res.summary()
    spec_fit = specialist_fit_fn(res.models, "AAPL", spec_tcfg)      # same plan, per symbol
    fitted = fit_crossfit(market, plan, fit, final_model=generic)    # FittedCrossFit (no features)
    fitted.featurise(market.select(["AAPL"]), feature_fn(moments="std"))  # -> CrossFitResult

``fit_fn(market, spec: FitSpec) -> model`` is generic: it receives the allowed-origin mask in
``spec`` and returns anything ``featurise_fn(model, market) -> ForecastFeatures`` accepts.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from jaxport.data.market import MarketData
from jaxport.data.split import SplitBounds
from jaxport.errors import ConfigError, DataError
from jaxport.forecast.config import ForecasterConfig, TrainConfig
from jaxport.forecast.toto_features import ForecastFeatures, compute_features
from jaxport.forecast.windows import symbol_indices

#: The keyword-only settings of ``compute_features`` that :func:`feature_fn` accepts.
_FEATURE_SETTINGS = frozenset(
    name
    for name, p in inspect.signature(compute_features).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY
)

SCHEMES = ("blocked", "expanding")
FIRST_BLOCK = ("invalid", "fallback")
FitFn = Callable[[MarketData, "FitSpec"], Any]
FeaturiseFn = Callable[[Any, MarketData], ForecastFeatures]


def _ranges(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open ``[a, b)`` runs of True in a 1-D boolean mask."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]]).astype(np.int8)
    d = np.flatnonzero(np.diff(m))
    return [(int(a), int(b)) for a, b in zip(d[0::2], d[1::2], strict=True)]


@dataclasses.dataclass(frozen=True)
class FitSpec:
    """One model of a cross-fit plan.

    model_id: index into ``CrossFitPlan.specs``.  name: ``block<b>`` or ``final``.
    rows: featurised rows ``[a, b)``.  held_out: days ``[a, b)`` that no training window of this
    model may touch (the block widened by the embargo; ``None`` for ``final``).
    origin_mask: ``[T]`` bool, window origins ``u`` this model may train or early-stop on (all
    their target days ``u+1 .. u+horizon`` lie before ``test_start`` and outside ``held_out``).
    kind: ``fitted`` | ``statistical`` (fallback features, nothing fitted) | ``none`` (invalid).
    """

    model_id: int
    name: str
    rows: tuple[int, int]
    held_out: tuple[int, int] | None
    origin_mask: np.ndarray
    kind: str = "fitted"

    def origin_ranges(self) -> list[tuple[int, int]]:
        """Allowed window origins as half-open ranges."""
        return _ranges(self.origin_mask)

    def target_ranges(self, horizon: int) -> list[tuple[int, int]]:
        """Days whose returns may be this model's targets (``u+1 .. u+horizon``), half-open."""
        return [(a + 1, b + horizon) for a, b in self.origin_ranges()]


@dataclasses.dataclass(frozen=True)
class CrossFitPlan:
    """Which model featurises which rows, and which window origins each model may fit on.

    specs: the blocks in time order, then ``final`` (rows ``[test_start, T)``).
    row_model: ``[T]`` int, the ``model_id`` that featurises each row (each row exactly once).
    """

    num_days: int
    test_start: int
    horizon: int
    embargo: int
    input_purge: int
    scheme: str
    first_block: str
    specs: tuple[FitSpec, ...]
    row_model: np.ndarray

    @property
    def final(self) -> FitSpec:
        return self.specs[-1]

    @property
    def blocks(self) -> tuple[FitSpec, ...]:
        return self.specs[:-1]

    def summary(self) -> dict:
        """JSON-ready plan: per model its featurised rows, held-out days, fit ranges (half-open)."""
        return {
            "scheme": self.scheme,
            "num_blocks": len(self.blocks),
            "horizon": self.horizon,
            "embargo": self.embargo,
            "input_purge": self.input_purge,
            "first_block": self.first_block,
            "test_start": self.test_start,
            "models": [
                {
                    "model_id": s.model_id,
                    "name": s.name,
                    "kind": s.kind,
                    "rows": list(s.rows),
                    "held_out": None if s.held_out is None else list(s.held_out),
                    "fit_origin_ranges": [list(r) for r in s.origin_ranges()],
                    "fit_target_ranges": [list(r) for r in s.target_ranges(self.horizon)],
                }
                for s in self.specs
            ],
        }


def _test_start(split: SplitBounds | int) -> int:
    return int(split.val_end) if isinstance(split, SplitBounds) else int(split)


def plan_crossfit(
    num_days: int,
    split: SplitBounds | int,
    *,
    horizon: int,
    num_blocks: int = 5,
    embargo: int | None = None,
    scheme: str = "blocked",
    first_block: str = "invalid",
    input_purge: int = 0,
) -> CrossFitPlan:
    """Cut rows ``[0, test_start)`` into ``num_blocks`` equal contiguous blocks and build each
    model's allowed-origin mask (see the module doc).  ``split``: SplitBounds (test starts at
    ``val_end``) or the first test row.  ``embargo`` defaults to ``horizon``; both it and
    ``input_purge`` are in days (rows)."""
    T, test_start, H = int(num_days), _test_start(split), int(horizon)
    E = H if embargo is None else int(embargo)
    P = int(input_purge)
    if scheme not in SCHEMES:
        raise ConfigError(f"cross-fit: scheme {scheme!r} unknown; expected one of {SCHEMES}")
    if first_block not in FIRST_BLOCK:
        raise ConfigError(
            f"cross-fit: first_block {first_block!r} unknown; expected one of {FIRST_BLOCK}"
        )
    if H < 1 or E < 0 or P < 0:
        raise ConfigError(
            f"cross-fit: horizon={H} must be >= 1, embargo={E} and input_purge={P} >= 0"
        )
    if not 0 < test_start <= T:
        raise ConfigError(f"cross-fit: test start row {test_start} must lie in (0, {T}]")
    if not 2 <= int(num_blocks) <= test_start // max(2 * E + 2, 2):
        raise ConfigError(
            f"cross-fit: num_blocks={num_blocks} must be >= 2 and leave blocks longer than the "
            f"embargo on both sides ({test_start} pre-test rows, embargo {E})"
        )
    edges = np.linspace(0, test_start, int(num_blocks) + 1).round().astype(int)
    u = np.arange(T)
    in_pretest = u + H <= test_start - 1  # every target day before the first test row
    specs, row_model = [], np.full(T, -1, np.int64)
    for b in range(int(num_blocks)):
        s, e = int(edges[b]), int(edges[b + 1])
        lo, hi = max(s - E, 0), min(e + E, test_start)
        # the whole window (origin .. last target day) ends before the held-out days
        before = u + H < lo
        kind = "fitted"
        if scheme == "blocked":
            mask = in_pretest & (before | (u - P >= hi))
        else:
            mask = in_pretest & before
            if b == 0:
                kind = "statistical" if first_block == "fallback" else "none"
                mask = np.zeros(T, bool)
        specs.append(FitSpec(b, f"block{b}", (s, e), (lo, hi), mask, kind))
        row_model[s:e] = b
    final = FitSpec(int(num_blocks), "final", (test_start, T), None, in_pretest.copy(), "fitted")
    specs.append(final)
    row_model[test_start:] = final.model_id
    for spec in specs:
        if spec.kind == "fitted" and not spec.origin_mask.any():
            raise DataError(
                f"cross-fit: model {spec.name} (rows {spec.rows[0]}..{spec.rows[1] - 1}) has no "
                "window to fit on; use fewer blocks or a smaller embargo"
            )
    return CrossFitPlan(T, test_start, H, E, P, scheme, first_block, tuple(specs), row_model)


# ------------------------------------------------------------------------ training on given windows
def train_on_windows(
    market: MarketData,
    train_index: np.ndarray,
    val_index: np.ndarray,
    config: ForecasterConfig,
    train_config: TrainConfig,
    *,
    params: dict | None = None,
    log_fn=None,
    log_prefix: str = "forecaster/",
):
    """:func:`~jaxport.forecast.train.train_forecaster` on explicit windows ``[M, 2]`` =
    (symbol, origin) for training and for early stopping; returns its ``TrainResult``."""
    from jaxport.forecast.train import train_forecaster

    train_index = np.asarray(train_index, np.int32).reshape(-1, 2)
    val_index = np.asarray(val_index, np.int32).reshape(-1, 2)
    if train_index.shape[0] == 0 or val_index.shape[0] == 0:
        raise DataError(
            f"cross-fit: no complete train/early-stopping window (train={train_index.shape[0]}, "
            f"early-stopping={val_index.shape[0]})"
        )
    return train_forecaster(
        market,
        None,
        config,
        train_config,
        params=params,
        log_fn=log_fn,
        log_prefix=log_prefix,
        train_index=train_index,
        val_index=val_index,
    )


def _symbol_ids(market: MarketData, symbols: Sequence | None) -> np.ndarray:
    if symbols is None:
        return np.arange(market.num_symbols)
    return np.asarray(symbol_indices(market, symbols, "cross-fit"), np.int64)


def _grid(symbol_ids: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """(symbol, origin) pairs, symbol-major (as :func:`jaxport.forecast.windows.window_index`)."""
    if symbol_ids.size == 0 or origins.size == 0:
        return np.zeros((0, 2), np.int32)
    grid = np.stack(np.meshgrid(symbol_ids, origins, indexing="ij"), axis=-1).reshape(-1, 2)
    return grid.astype(np.int32)


def select_origins(
    spec: FitSpec,
    *,
    context: int,
    horizon: int,
    es_rows: tuple[int, int] | None = None,
    es_fraction: float = 0.15,
) -> tuple[np.ndarray, np.ndarray]:
    """(train origins, early-stopping origins) inside ``spec.origin_mask`` (and ``>= context``).

    Early stopping uses the allowed windows whose targets lie in ``es_rows`` (the validation split,
    as today) when at least half of that split's windows are allowed; otherwise the last
    ``es_fraction`` of the allowed origins.  Train windows never share a target day with
    early-stopping windows.
    """
    allowed = np.flatnonzero(spec.origin_mask)
    allowed = allowed[allowed >= context]
    if allowed.size == 0:
        return allowed, allowed
    if es_rows is not None:
        a, b = int(es_rows[0]), int(es_rows[1])
        es = allowed[(allowed + 1 >= a) & (allowed + horizon <= b - 1)]
        full = max(0, (b - 1 - horizon) - max(context, a - 1) + 1)
        if es.size > 0 and es.size * 2 >= full:
            train = allowed[(allowed + horizon < a) | (allowed + 1 >= b)]
            return train, es
    n_es = max(1, round(es_fraction * allowed.size))
    es = allowed[-n_es:]
    train = allowed[allowed + horizon <= es[0]]
    return train, es


def forecaster_fit_fn(
    config: ForecasterConfig,
    train_config: TrainConfig,
    *,
    symbols: Sequence | None = None,
    es_rows: tuple[int, int] | None = None,
    es_fraction: float = 0.15,
    log_fn=None,
) -> FitFn:
    """``fit_fn`` that trains a fresh generic forecaster on the allowed windows of ``symbols``.

    es_rows: rows ``[a, b)`` preferred for early stopping (pass the validation split so that the
    ``final`` model is exactly today's ``train_forecaster(market, bounds)``).  The returned
    :class:`~jaxport.forecast.forecaster.Forecaster` records in ``extra["crossfit"]`` the origin
    ranges it trained and early-stopped on and its training summary.
    """
    from jaxport.forecast.forecaster import Forecaster

    def fit(market: MarketData, spec: FitSpec):
        syms = _symbol_ids(market, symbols)
        train_t, es_t = select_origins(
            spec,
            context=config.context,
            horizon=config.horizon,
            es_rows=es_rows,
            es_fraction=es_fraction,
        )
        result = train_on_windows(
            market,
            _grid(syms, train_t),
            _grid(syms, es_t),
            config,
            train_config,
            log_fn=log_fn,
            log_prefix=f"forecaster/{spec.name}/",
        )
        return Forecaster(
            config, result.params, {"crossfit": _fit_record(spec, train_t, es_t, result)}
        )

    return fit


def specialist_fit_fn(
    generic_models: Mapping[int, Any],
    symbol: str,
    train_config: TrainConfig,
    *,
    es_rows: tuple[int, int] | None = None,
    es_fraction: float = 0.15,
    log_fn=None,
) -> FitFn:
    """``fit_fn`` that fine-tunes ``generic_models[spec.model_id]`` on ``symbol``'s allowed windows.

    Use it with the generic cross-fit's plan (``crossfit_features(market, res.plan, ...)``) and
    ``res.models``: each block's specialist starts from the generic model that never saw that block.
    As :func:`~jaxport.forecast.train.finetune_specialist`, the specialist is kept only when its
    early-stopping NLL beats the generic model's on the same windows; otherwise the generic model
    is returned.  A block without a generic model (statistical/none) gets ``None``.
    """
    from jaxport.forecast.forecaster import Forecaster

    tc = dataclasses.replace(train_config, max_val_windows=None)

    def fit(market: MarketData, spec: FitSpec):
        base = generic_models.get(spec.model_id)
        if base is None:
            return None
        cfg = base.config
        syms = _symbol_ids(market, [symbol])
        train_t, es_t = select_origins(
            spec, context=cfg.context, horizon=cfg.horizon, es_rows=es_rows, es_fraction=es_fraction
        )
        result = train_on_windows(
            market,
            _grid(syms, train_t),
            _grid(syms, es_t),
            cfg,
            tc,
            params=base.params,
            log_fn=log_fn,
            log_prefix=f"forecaster/{symbol}/{spec.name}/",
        )
        kept = bool(
            np.isfinite(result.best_val_loss) and result.best_val_loss < result.initial_val_loss
        )
        record = _fit_record(spec, train_t, es_t, result)
        record.update(symbol=symbol, kept=kept, generic_es_nll=float(result.initial_val_loss))
        params = result.params if kept else base.params
        return Forecaster(cfg, params, {"crossfit": record})

    return fit


def _fit_record(spec: FitSpec, train_t: np.ndarray, es_t: np.ndarray, result) -> dict:
    mask = np.zeros(spec.origin_mask.shape[0], bool)
    mask[train_t] = True
    es_mask = np.zeros_like(mask)
    es_mask[es_t] = True
    return {
        "model": spec.name,
        "train_origin_ranges": [list(r) for r in _ranges(mask)],
        "es_origin_ranges": [list(r) for r in _ranges(es_mask)],
        "steps": int(result.steps),
        "best_es_nll": float(result.best_val_loss),
        "best_epoch": int(result.best_epoch),
        "num_train_windows": int(result.num_train_windows),
        "num_es_windows": int(result.num_val_windows),
        "wall_s": float(result.wall_s),
    }


# --------------------------------------------------------------------------- features
def feature_fn(**settings) -> FeaturiseFn:
    """``featurise_fn(model, market)`` = :func:`~jaxport.forecast.toto_features.compute_features`
    with these keyword ``settings`` (targets, horizon, sequence_length, append_stat, moments;
    ``model=None`` gives the statistical fallback). An unknown setting raises ``TypeError`` here."""
    unknown = set(settings) - _FEATURE_SETTINGS
    if unknown:
        raise TypeError(f"feature_fn: unknown settings {sorted(unknown)}")
    return functools.partial(compute_features, **settings)


def _date_range(dates: np.ndarray | None, a: int, b: int) -> list[str] | None:
    """ISO dates of rows ``a`` and ``b - 1`` (inclusive), or None for an empty range / no dates."""
    if dates is None or b <= a:
        return None
    return [str(np.asarray(dates)[a]), str(np.asarray(dates)[b - 1])]


def plan_summary(plan: CrossFitPlan, dates: np.ndarray | None = None) -> dict:
    """:meth:`CrossFitPlan.summary` plus, with ``dates`` (``[T]``), each model's featurised and
    fitted-target date ranges (inclusive ISO dates)."""
    out = plan.summary()
    if dates is None:
        return out
    T = len(dates)
    for entry in out["models"]:
        entry["dates"] = _date_range(dates, *entry["rows"])
        entry["fit_target_dates"] = [
            _date_range(dates, a, min(b, T)) for a, b in entry["fit_target_ranges"]
        ]
    return out


@dataclasses.dataclass(frozen=True)
class FittedCrossFit:
    """The fitted models of a cross-fit, without features: :meth:`featurise` applies them to any
    market with the plan's rows (e.g. one symbol of the market they were fitted on).

    models: ``model_id -> model`` (``None`` for statistical/none blocks).  labels: ``model_id ->``
    where that model lives (e.g. its checkpoint path), for provenance.  fit_s: fitting seconds.
    """

    plan: CrossFitPlan
    models: Mapping[int, Any]
    labels: Mapping[int, str] = dataclasses.field(default_factory=dict)
    fit_s: float = 0.0

    @property
    def final_model(self):
        """The model of the test rows (fitted on every pre-test row)."""
        return self.models.get(self.plan.final.model_id)

    def featurise(
        self, market: MarketData, featurise_fn: FeaturiseFn | None = None
    ) -> CrossFitResult:
        """Features ``[T, N, F]``, each model's rows from that model (:func:`crossfit_features`)."""
        plan = self.plan
        if plan.num_days != market.num_days:
            raise DataError(
                f"cross-fit: plan is for {plan.num_days} rows, market has {market.num_days}"
            )
        featurise_fn = featurise_fn or feature_fn(horizon=plan.horizon)
        T, N = market.num_days, market.num_symbols
        values, names, valid_from, sources = None, None, 0, set()
        t0 = time.perf_counter()
        for spec in plan.specs:
            a, b = spec.rows
            if spec.kind == "none" or b <= a:
                if spec.kind == "none":
                    valid_from = max(valid_from, b)
                continue
            out = featurise_fn(self.models.get(spec.model_id), market)
            if out.values.shape[:2] != (T, N):
                raise DataError(
                    f"cross-fit: featurise_fn returned shape {out.values.shape}, "
                    f"expected ({T}, {N}, F)"
                )
            if values is None:
                values = np.zeros((T, N, out.values.shape[2]), np.float32)
                names = tuple(out.names)
            elif tuple(out.names) != names:
                raise DataError(
                    f"cross-fit: model {spec.name} gives features {out.names[:3]}..., "
                    f"others {names[:3]}..."
                )
            values[a:b] = out.values[a:b]
            valid_from = max(valid_from, int(out.valid_from))
            sources.add(out.source)
        if values is None:
            raise DataError("cross-fit: no model featurises any row")
        valid_from = min(valid_from, T)
        values[:valid_from] = 0.0
        return CrossFitResult(
            values=values,
            names=names,
            valid_from=int(valid_from),
            source=f"crossfit:{plan.scheme}:{'+'.join(sorted(sources))}",
            plan=plan,
            models=dict(self.models),
            symbols=tuple(market.symbols),
            wall_s={"fit": self.fit_s, "featurise": time.perf_counter() - t0},
            dates=market.dates,
            labels=dict(self.labels),
        )

    def provenance(self, dates: np.ndarray | None = None) -> list[dict]:
        """Which model produced which rows: per model ``name, kind, rows`` (half-open), ``dates``
        (inclusive ISO, with ``dates``) and ``model`` (its label, when known)."""
        out = []
        for spec in self.plan.specs:
            entry = {"model": spec.name, "kind": spec.kind, "rows": list(spec.rows)}
            if dates is not None:
                entry["dates"] = _date_range(dates, *spec.rows)
            if spec.model_id in self.labels:
                entry["checkpoint"] = self.labels[spec.model_id]
            out.append(entry)
        return out


@dataclasses.dataclass(frozen=True)
class CrossFitResult:
    """Cross-fitted features and their provenance.

    values ``[T, N, F]`` float32, names, valid_from (first row every model fully computes; rows
    before are 0), source ("crossfit:<scheme>:<featurise source>").  plan: the :class:`CrossFitPlan`
    (``row_model`` says which model produced each row).  models: ``model_id -> model`` (``None`` for
    statistical/none blocks).  wall_s: ``{"fit": ..., "featurise": ...}`` seconds.  dates: the
    market's ``[T]`` dates; labels: ``model_id ->`` where each model lives (may be empty).
    """

    values: np.ndarray
    names: tuple
    valid_from: int
    source: str
    plan: CrossFitPlan
    models: dict
    symbols: tuple
    wall_s: dict
    dates: np.ndarray | None = None
    labels: dict = dataclasses.field(default_factory=dict)

    @property
    def row_model(self) -> np.ndarray:
        return self.plan.row_model

    @property
    def features(self) -> ForecastFeatures:
        return ForecastFeatures(self.values, self.names, self.valid_from, self.source)

    @property
    def fitted(self) -> FittedCrossFit:
        """The models without the features (to featurise another market of the same rows)."""
        return FittedCrossFit(self.plan, dict(self.models), dict(self.labels), self.wall_s["fit"])

    def select(self, symbols: Sequence[str]) -> np.ndarray:
        """``values[:, symbols]`` by name."""
        idx = [self.symbols.index(s) for s in symbols]
        return self.values[:, idx]

    def summary(self) -> dict:
        """JSON-ready provenance: the plan (with dates) plus each model's own record
        (``extra["crossfit"]``) and label."""
        out = plan_summary(self.plan, self.dates)
        for entry in out["models"]:
            model = self.models.get(entry["model_id"])
            entry["fit"] = (
                dict(getattr(model, "extra", {}).get("crossfit", {})) if model is not None else {}
            )
            if entry["model_id"] in self.labels:
                entry["checkpoint"] = self.labels[entry["model_id"]]
        out.update(valid_from=self.valid_from, source=self.source, wall_s=dict(self.wall_s))
        return out


_FIT = object()


def _as_plan(market: MarketData, split, **kw) -> CrossFitPlan:
    if isinstance(split, CrossFitPlan):
        plan = split
    else:
        plan = plan_crossfit(market.num_days, split, **kw)
    if plan.num_days != market.num_days:
        raise DataError(
            f"cross-fit: plan is for {plan.num_days} rows, market has {market.num_days}"
        )
    return plan


def fit_crossfit(
    market: MarketData,
    split: CrossFitPlan | SplitBounds | int,
    fit_fn: FitFn,
    *,
    num_blocks: int = 5,
    horizon: int = 8,
    embargo: int | None = None,
    scheme: str = "blocked",
    first_block: str = "invalid",
    input_purge: int = 0,
    final_model: Any = _FIT,
    on_fit: Callable[[FitSpec, Any], None] | None = None,
) -> FittedCrossFit:
    """Fit every model of a cross-fit plan; no features.

    split: a :class:`CrossFitPlan`, or SplitBounds / first test row from which
    :func:`plan_crossfit` builds one with ``num_blocks, horizon, embargo, scheme, first_block,
    input_purge``. fit_fn(market, spec) -> model. final_model: the model for the test rows when
    already fitted; by default it is fitted with ``fit_fn``.

    on_fit(spec, model): called after each model is fitted (e.g. to save a checkpoint).
    """
    plan = _as_plan(
        market,
        split,
        horizon=horizon,
        num_blocks=num_blocks,
        embargo=embargo,
        scheme=scheme,
        first_block=first_block,
        input_purge=input_purge,
    )
    models: dict[int, Any] = {}
    fit_s = 0.0
    for spec in plan.specs:
        model = None
        if spec.kind == "fitted":
            if spec is plan.final and final_model is not _FIT:
                model = final_model
            else:
                t0 = time.perf_counter()
                model = fit_fn(market, spec)
                fit_s += time.perf_counter() - t0
                if on_fit is not None:
                    on_fit(spec, model)
        models[spec.model_id] = model
    return FittedCrossFit(plan, models, {}, fit_s)


def crossfit_features(
    market: MarketData,
    split: CrossFitPlan | SplitBounds | int,
    fit_fn: FitFn,
    featurise_fn: FeaturiseFn | None = None,
    **plan_options,
) -> CrossFitResult:
    """Features ``[T, N, F]`` where each pre-test block comes from a model fitted without it.

    split: a :class:`CrossFitPlan` (reuse one plan for generic and specialist models), or
    SplitBounds / first test row, from which :func:`plan_crossfit` builds a plan with the keyword
    ``plan_options`` of :func:`fit_crossfit` (``num_blocks=5, horizon=8, embargo=None,
    scheme="blocked", first_block="invalid", input_purge=0``, and ``final_model``).
    fit_fn(market, spec) -> model; featurise_fn(model, market) -> ForecastFeatures (default
    :func:`feature_fn` with ``horizon``).  final_model: the model for the test rows when already
    fitted (today's model, fitted on all pre-test rows); by default it is fitted with ``fit_fn``.
    """
    fitted = fit_crossfit(market, split, fit_fn, **plan_options)
    return fitted.featurise(market, featurise_fn)
