"""Stages 1 and 2 of ``jaxport train`` for one split (the whole run, or one walk-forward fold):
the generic forecaster, the per-symbol specialists, and the feature models stage 3 reads.

Out-of-sample features (``data.crossfit_blocks = K > 0``, default 3): besides the model of the test
rows (fitted on the train split, early-stopped on the validation split -- unchanged), the pre-test
rows ``[0, val_end)`` are cut into K blocks and each block gets its own generic forecaster (and
specialists) fitted only on windows none of whose days (inputs ``t-context+1 .. t`` and targets
``t+1 .. t+horizon``) fall in the block widened by ``embargo = toto_horizon`` days (purged K-fold
with an input purge, :mod:`jaxport.forecast.crossfit`). The features of a train or validation row
therefore come from a model that never trained, early-stopped or conditioned on that row's
targets; nothing here ever fits on a test row's target. ``K = 0`` gives
the single-model behaviour (one model featurises every row).

Layout under ``io.out_dir``: ``base/`` (the test-row generic model, as before), ``base/crossfit/
block<b>``, ``specialists/<SYM>`` (kept specialist), ``specialists/<SYM>/crossfit/block<b>`` (kept
block specialists). Provenance: ``stages.base.crossfit`` (the plan, and per model its featurised
rows and dates, the window origins it trained and early-stopped on, its checkpoint) and
``stages.specialists.<SYM>.crossfit`` (per block: kept, fit record, checkpoint of the model used).

API::

    out = run_base_stage(config, market, bounds, base_syms, io, previous_entry)   # BaseOutcome
    spec = run_specialist_stage(config, market, bounds, spec_syms, out, io, entries, base_entry)
    spec.features   # symbol -> Forecaster | None | FittedCrossFit, what pair_features reads
    feature_models(base_entry, specialist_entries, load, symbols, num_days)  # from a summary
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from jaxport.data import MarketData
from jaxport.errors import CheckpointError, JaxportError
from jaxport.pipeline.provenance import stage_seed
from jaxport.pipeline.stage_io import StageIO
from jaxport.pipeline.summary import ForecasterStage, SpecialistStage

log = logging.getLogger(__name__)

CROSSFIT_KEY = "crossfit"  # key of the provenance block in stages.base / stages.specialists.<SYM>


@dataclasses.dataclass
class BaseOutcome:
    """Stage 1: ``model`` (the generic forecaster of the test rows; None on the statistical path),
    ``crossfit`` (its cross-fitted block models, or None), the summary ``entry``, whether it was
    restored from a finished stage (``resumed``) and the seconds it took (``wall_s``)."""

    model: Any
    crossfit: Any
    entry: ForecasterStage
    resumed: bool = False
    wall_s: float = 0.0

    @property
    def feature_model(self):
        """What featurises a symbol served by the generic model: the cross-fit, else the model."""
        return self.crossfit if self.crossfit is not None else self.model


@dataclasses.dataclass
class SpecialistsOutcome:
    """Stage 2: ``models`` (symbol -> Forecaster | None serving its test rows), ``features``
    (symbol -> what :func:`jaxport.pipeline.basket_stage.pair_features` reads), the summary
    ``entries`` (the dict passed in, filled) and ``wall_s`` (None when nothing was trained)."""

    models: dict[str, Any]
    features: dict[str, Any]
    entries: dict[str, SpecialistStage]
    wall_s: float | None = None


def forecaster_configs(config, seed_fn: Callable[..., int]):
    """``(ForecasterConfig, TrainConfig)`` of stage 1 (``seed_fn(run_seed, *names)`` derives the
    stage seed)."""
    d = config.data
    return config.base.forecaster_configs(
        horizon=d.toto_horizon, targets=d.toto_targets, seed=seed_fn(config.seed, "base")
    )


def wants_forecaster(config) -> bool:
    return config.data.features in ("toto", "toto+stat") and not config.data.disable_toto


def forecast_metrics(evaluation: dict) -> dict[str, Any]:
    """The forecast evaluation in the summary's shape: ``test`` (pooled), ``baselines``, per
    symbol."""
    model = evaluation.get("model", {})
    return {
        "test": model.get("pooled", {}),
        "per_symbol": model.get("per_symbol", {}),
        "baselines": {
            name: table.get("pooled", {}) for name, table in evaluation.get("baselines", {}).items()
        },
        "baselines_per_symbol": {
            name: table.get("per_symbol", {})
            for name, table in evaluation.get("baselines", {}).items()
        },
        "split": evaluation.get("split", {}),
        "notes": evaluation.get("notes", []),
    }


# ---------------------------------------------------------------------------- cross-fit helpers
def _plan(config, market: MarketData, bounds, model_config):
    """The cross-fit plan of a split: K blocks over ``[0, val_end)``, embargo = toto_horizon (at
    least the model's horizon), input purge = the model's context (no window of a block's model
    reads a day of the held-out span, even as input)."""
    from jaxport.forecast.crossfit import plan_crossfit

    d = config.data
    return plan_crossfit(
        market.num_days,
        int(bounds.val_end),
        horizon=int(model_config.horizon),
        num_blocks=int(d.crossfit_blocks),
        embargo=max(int(d.toto_horizon), int(model_config.horizon)),
        scheme="blocked",
        input_purge=int(model_config.context),
    )


def _es_rows(bounds) -> tuple[int, int]:
    return int(bounds.val_start), int(bounds.val_end)


def _final_record(bounds, fcfg, result=None) -> dict:
    """Fit record of the test-row model (train_forecaster on the split): origins trained and
    early-stopped on (half-open ranges; targets are origin+1 .. origin+horizon)."""
    from jaxport.forecast.windows import split_window_range

    rec = {"model": "final"}
    for key, split in (("train_origin_ranges", "train"), ("es_origin_ranges", "val")):
        first, last = split_window_range(split, bounds, fcfg)
        rec[key] = [[int(first), int(last) + 1]] if last >= first else []
    if result is not None:
        rec.update(
            steps=int(result.steps),
            best_es_nll=float(result.best_val_loss),
            best_epoch=int(result.best_epoch),
        )
    return rec


def _crossfit_block(plan, market: MarketData, labels: Mapping[int, str], records) -> dict:
    """``stages.*.crossfit``: the plan with dates, per model its checkpoint and fit record."""
    from jaxport.forecast.crossfit import plan_summary

    out = plan_summary(plan, market.dates)
    for entry in out["models"]:
        mid = entry["model_id"]
        entry["checkpoint"] = labels.get(mid)
        entry["fit"] = records.get(mid, {})
    return out


def _rebuild_plan(record: dict, num_days: int, where: str):
    from jaxport.forecast.crossfit import plan_crossfit

    try:
        plan = plan_crossfit(
            num_days,
            int(record["test_start"]),
            horizon=int(record["horizon"]),
            num_blocks=int(record["num_blocks"]),
            embargo=int(record["embargo"]),
            scheme=str(record["scheme"]),
            first_block=str(record.get("first_block", "invalid")),
            input_purge=int(record.get("input_purge", 0)),
        )
    except (KeyError, TypeError, ValueError, JaxportError) as exc:
        raise CheckpointError(f"{where}: cross-fit record does not fit the data ({exc})") from None
    rows = [list(s.rows) for s in plan.blocks]  # the final model's rows end with the data
    if rows != [list(m["rows"]) for m in record.get("models", [])][: len(rows)]:
        raise CheckpointError(
            f"{where}: cross-fit blocks differ from the recorded ones (data changed since?)"
        )
    return plan


def _symbol_crossfit(plan, generic, spec_record: dict | None, final_model, final_label, load):
    """FittedCrossFit of one symbol: per block its kept specialist, else the generic block model."""
    from jaxport.forecast.crossfit import FittedCrossFit

    models = dict(generic.models)
    labels = dict(generic.labels)
    for m in (spec_record or {}).get("models", []):
        mid = int(m["model_id"])
        if m.get("kept") and m.get("checkpoint") and mid != plan.final.model_id:
            models[mid] = load(m["checkpoint"])
            labels[mid] = m["checkpoint"]
    models[plan.final.model_id] = final_model
    labels[plan.final.model_id] = final_label
    return FittedCrossFit(plan, models, labels, 0.0)


def feature_models(
    base_entry: ForecasterStage | None,
    specialist_entries: Mapping[str, SpecialistStage],
    load: Callable[[str], Any],
    symbols,
    num_days: int,
) -> dict[str, Any]:
    """symbol -> what :func:`~jaxport.pipeline.basket_stage.pair_features` reads, rebuilt from a
    finished run's summary entries: a :class:`~jaxport.forecast.crossfit.FittedCrossFit` when the
    run cross-fitted, else the Forecaster (its kept specialist, else the generic model) or None.

    load(rel): the Forecaster at a summary path.  One-line CheckpointError on an inconsistent
    record.
    """
    from jaxport.forecast.crossfit import FittedCrossFit

    base_rel = base_entry.checkpoint if base_entry is not None else None
    base_record = (base_entry.extra or {}).get(CROSSFIT_KEY) if base_entry is not None else None
    generic = None
    if base_rel and base_record:
        plan = _rebuild_plan(base_record, num_days, "stages.base")
        models, labels = {}, {}
        for m in base_record["models"]:
            mid = int(m["model_id"])
            rel = base_rel if mid == plan.final.model_id else m.get("checkpoint")
            models[mid] = load(rel) if rel else None
            labels[mid] = rel
        generic = FittedCrossFit(plan, models, labels, 0.0)
    out: dict[str, Any] = {}
    for sym in symbols:
        spec = specialist_entries.get(sym)
        rel = spec.checkpoint if spec is not None and spec.kept else base_rel
        final = None if rel is None else load(rel)
        if generic is None:
            out[sym] = final
            continue
        record = (spec.extra or {}).get(CROSSFIT_KEY) if spec is not None else None
        out[sym] = _symbol_crossfit(generic.plan, generic, record, final, rel, load)
    return out


# ---------------------------------------------------------------------------- stage 1
def run_base_stage(
    config,
    market: MarketData,
    bounds,
    base_syms: list[str],
    io: StageIO,
    previous: ForecasterStage | None = None,
    *,
    stage: str = "base",
) -> BaseOutcome:
    """Train (or restore) the generic forecaster, then its cross-fitted block models.

    previous: the summary's entry from an earlier session; a completed one is restored (resume).
    stage: the tracker/progress name.  The caller stores ``outcome.entry`` in its summary.  With
    ``base_checkpoint`` the restored model serves the test rows and the block models are trained
    here with its architecture and the run's training settings.
    """
    from jaxport.forecast import Forecaster, evaluate_forecaster, train_forecaster

    cfg = config
    if previous is not None and previous.status == "completed":
        if previous.checkpoint:
            io.say(f"resume: generic forecaster from {previous.checkpoint}")
            model = Forecaster.load(io.abs(previous.checkpoint))
            crossfit = None
            if (previous.extra or {}).get(CROSSFIT_KEY):
                sym0 = market.symbols[0]
                crossfit = feature_models(previous, {}, _loader(io), [sym0], market.num_days)[sym0]
            return BaseOutcome(model, crossfit, previous, resumed=True)
        return BaseOutcome(None, None, previous, resumed=True)
    t0 = time.perf_counter()
    ckpt_dir = io.out_dir / "base"
    entry = ForecasterStage(status="running", symbols=list(base_syms))
    fcfg, tcfg = forecaster_configs(cfg, stage_seed)
    result = None
    if cfg.base_checkpoint:
        path = Path(cfg.base_checkpoint)
        if not path.exists():
            raise CheckpointError(f"base_checkpoint {path}: does not exist")
        forecaster = Forecaster.load(path)
        entry.restored_from = str(path)
    elif cfg.skip_base or not wants_forecaster(cfg):
        if cfg.skip_base:
            why = "--skip-base"
        else:
            why = "--disable-toto" if cfg.data.disable_toto else f"--features {cfg.data.features}"
        entry.status, entry.skipped, entry.reason, entry.checkpoint = "completed", True, why, None
        io.say(f"stage 1 skipped ({why}): statistical forecast features are used")
        return BaseOutcome(None, None, entry, wall_s=time.perf_counter() - t0)
    else:
        io.stage_start(stage, tcfg.max_steps or 0)
        result = train_forecaster(
            market,
            bounds,
            fcfg,
            tcfg,
            symbols=base_syms,
            log_fn=io.log_fn(stage, stage),
            log_prefix="",
        )
        io.stage_end(stage)
        forecaster = Forecaster(fcfg, result.params)
        entry.training = result.summary()
    forecaster.save(ckpt_dir, extra={"symbols": base_syms, "stage": "base"})
    evaluation = evaluate_forecaster(forecaster, market.select(base_syms), bounds)
    entry.checkpoint = io.rel(ckpt_dir)
    entry.num_params = forecaster.num_params
    entry.metrics = forecast_metrics(evaluation)
    io.track(stage, 0, {f"test_{k}": v for k, v in entry.metrics["test"].items()})
    crossfit = None
    if cfg.data.crossfit_blocks and wants_forecaster(cfg):
        crossfit, record = _fit_base_crossfit(
            cfg, market, bounds, base_syms, forecaster, tcfg, entry, result, io, stage
        )
        entry.extra[CROSSFIT_KEY] = record
    entry.status = "completed"
    return BaseOutcome(forecaster, crossfit, entry, wall_s=time.perf_counter() - t0)


def _loader(io: StageIO):
    from jaxport.forecast import Forecaster

    cache: dict[str, Any] = {}

    def load(rel: str):
        if rel not in cache:
            path = io.abs(rel)
            if not Path(path).exists():
                raise CheckpointError(f"{path}: checkpoint listed in the summary is missing")
            cache[rel] = Forecaster.load(path)
        return cache[rel]

    return load


def _fit_base_crossfit(cfg, market, bounds, base_syms, forecaster, tcfg, entry, result, io, stage):
    from jaxport.forecast.crossfit import fit_crossfit, forecaster_fit_fn

    plan = _plan(cfg, market, bounds, forecaster.config)
    K = len(plan.blocks)
    io.say(f"cross-fit: {K} block forecasters for out-of-sample train/validation features")
    io.stage_start(f"{stage}/crossfit", K)
    labels = {plan.final.model_id: entry.checkpoint}

    def saved(spec, model):
        path = io.out_dir / "base" / "crossfit" / spec.name
        model.save(path, extra={"symbols": base_syms, "stage": "base", "block": spec.name})
        labels[spec.model_id] = io.rel(path)
        io.advance(f"{stage}/crossfit", 1, {"block": spec.name})

    fit = forecaster_fit_fn(
        forecaster.config,
        tcfg,
        symbols=base_syms,
        es_rows=_es_rows(bounds),
        log_fn=io.log_fn(stage, None),
    )
    fitted = fit_crossfit(market, plan, fit, final_model=forecaster, on_fit=saved)
    io.stage_end(f"{stage}/crossfit")
    records = {
        mid: dict(getattr(m, "extra", {}).get("crossfit", {}))
        for mid, m in fitted.models.items()
        if m is not None and mid != plan.final.model_id
    }
    records[plan.final.model_id] = _final_record(bounds, forecaster.config, result)
    record = _crossfit_block(plan, market, labels, records)
    record.update(symbols=list(base_syms), wall_s=fitted.fit_s)
    fitted = dataclasses.replace(fitted, labels=labels)
    return fitted, record


# ---------------------------------------------------------------------------- stage 2
def run_specialist_stage(
    config,
    market: MarketData,
    bounds,
    spec_syms: list[str],
    base: BaseOutcome,
    io: StageIO,
    entries: dict[str, SpecialistStage],
    *,
    stage: str = "specialists",
) -> SpecialistsOutcome:
    """Per-symbol specialists (the specialist where kept, else the generic model), each with its
    cross-fitted block specialists when stage 1 cross-fitted.

    entries: the summary's ``stages.specialists`` dict, filled in place (completed symbols are
    restored, not retrained); ``io.checkpoint(f"{stage}/<SYM>")`` runs after each symbol.
    """
    cfg = config
    generic = base.model
    models: dict[str, Any] = {s: generic for s in market.symbols}
    features: dict[str, Any] = {s: base.feature_model for s in market.symbols}
    if generic is None or cfg.skip_specialists:
        why = "--skip-specialists" if cfg.skip_specialists else "no generic forecaster"
        for sym in spec_syms:
            entries.setdefault(
                sym,
                SpecialistStage(
                    status="completed",
                    skipped=True,
                    reason=why,
                    checkpoint=base.entry.checkpoint,
                    kept=False,
                ),
            )
        io.save()
        return SpecialistsOutcome(models, features, entries, None)
    t0 = time.perf_counter()
    _, tcfg = forecaster_configs(cfg, stage_seed)
    load = _loader(io)
    io.stage_start(stage, len(spec_syms))
    for sym in spec_syms:
        done = entries.get(sym)
        if done is not None and done.status == "completed":
            models[sym], features[sym] = _restore_specialist(done, models[sym], base, load)
            io.advance(stage, 1, {})
            continue
        entry, models[sym], features[sym] = _train_specialist(
            cfg, market, bounds, sym, base, io, tcfg, stage=stage
        )
        io.track(stage, 0, {f"{sym}/test_{k}": v for k, v in entry.metrics["test"].items()})
        entries[sym] = entry
        io.advance(stage, 1, {"symbol": sym, "kept": entry.kept})
        io.checkpoint(f"{stage}/{sym}")
    io.stage_end(stage)
    return SpecialistsOutcome(models, features, entries, time.perf_counter() - t0)


def _train_specialist(
    config, market, bounds, sym: str, base: BaseOutcome, io: StageIO, tcfg, *, stage: str
):
    """Fine-tune ``sym``'s specialist from the generic model (kept only when it beats the generic
    on validation), evaluate it, and cross-fit its block specialists when stage 1 cross-fitted:
    ``(summary entry, model serving sym's test rows, what featurises sym)``."""
    from jaxport.forecast import Forecaster, evaluate_forecaster, finetune_specialist

    cfg, generic, model = config, base.model, base.model
    spec_tc = dataclasses.replace(
        tcfg,
        learning_rate=cfg.finetune.learning_rate,
        epochs=max(1, cfg.finetune.epochs),
        max_steps=cfg.finetune.max_steps,
        warmup_steps=max(1, tcfg.warmup_steps // 4),
        max_val_windows=None,
        seed=stage_seed(cfg.seed, "specialist", sym),
    )
    if cfg.finetune.epochs == 0:
        result, kept = None, False
    else:
        result = finetune_specialist(
            generic.params,
            generic.config,
            market,
            bounds,
            sym,
            spec_tc,
            log_fn=io.log_fn(stage, None),
        )
        kept = result.kept
    entry = SpecialistStage(status="completed", kept=kept)
    sym_dir = io.out_dir / "specialists" / sym
    if kept:
        model = Forecaster(generic.config, result.params)
        model.save(sym_dir, extra={"symbols": [sym], "stage": "specialist"})
        entry.checkpoint = io.rel(sym_dir)
    else:
        entry.checkpoint = base.entry.checkpoint  # the generic model serves this symbol
    evaluation = evaluate_forecaster(model, market.select([sym]), bounds)
    entry.metrics = {
        "generic_val_nll": None if result is None else result.generic_val_nll,
        "specialist_val_nll": None if result is None else result.specialist_val_nll,
        **forecast_metrics(evaluation),
    }
    if result is not None:
        entry.training = result.summary()
    feature_model = model
    if base.crossfit is not None:
        feature_model, record = _fit_specialist_crossfit(
            market, bounds, sym, base, model, entry, spec_tc, result, sym_dir, io, stage
        )
        entry.extra[CROSSFIT_KEY] = record
    return entry, model, feature_model


def _restore_specialist(done: SpecialistStage, model, base: BaseOutcome, load):
    """``(model, feature model)`` of a symbol whose specialist finished in an earlier run."""
    if done.kept:
        model = load(done.checkpoint)
    if base.crossfit is None:
        return model, model
    record = (done.extra or {}).get(CROSSFIT_KEY)
    source = done.checkpoint if done.kept else base.entry.checkpoint
    return model, _symbol_crossfit(base.crossfit.plan, base.crossfit, record, model, source, load)


def _fit_specialist_crossfit(
    market, bounds, sym, base: BaseOutcome, final_model, entry, spec_tc, result, sym_dir, io, stage
):
    """Block specialists of ``sym``: each fine-tunes the generic model of its block on the same
    allowed windows; kept only when it beats that model on its early-stopping windows."""
    from jaxport.forecast.crossfit import FittedCrossFit, fit_crossfit, specialist_fit_fn

    generic = base.crossfit
    plan = generic.plan
    models = dict(generic.models)
    labels = dict(generic.labels)
    records: dict[int, dict] = {}
    if result is not None:  # finetune.epochs > 0
        fit = specialist_fit_fn(
            generic.models, sym, spec_tc, es_rows=_es_rows(bounds), log_fn=io.log_fn(stage, None)
        )

        def saved(spec, model):
            rec = dict(model.extra.get("crossfit", {}))
            records[spec.model_id] = rec
            if rec.get("kept"):
                path = sym_dir / "crossfit" / spec.name
                model.save(path, extra={"symbols": [sym], "stage": "specialist"})
                labels[spec.model_id] = io.rel(path)
                models[spec.model_id] = model

        fit_crossfit(market, plan, fit, final_model=final_model, on_fit=saved)
        final = _final_record(bounds, final_model.config)
        final.update(kept=bool(entry.kept), symbol=sym)
        records[plan.final.model_id] = final
    models[plan.final.model_id] = final_model
    labels[plan.final.model_id] = entry.checkpoint
    record = _crossfit_block(plan, market, labels, records)
    for m in record["models"]:
        m["kept"] = bool(m["fit"].get("kept", False))
    record["plan"] = "stages.base.crossfit"
    return FittedCrossFit(plan, models, labels, 0.0), record
