"""The three-stage training pipeline behind ``jaxport train``.

data -> generic forecaster (stage 1) -> per-symbol specialists (stage 2) -> forecast features ->
portfolio RL per pair (stage 3: PPO and/or gradient ascent through the differentiable env) ->
evaluation on the chronological test split against baselines.

Every stage writes its checkpoints (orbax, atomically) and then the summary (atomically), so an
interrupted run keeps what it finished and ``--resume`` continues from there. Random keys are
derived from the seed and the stage/pair name, so a resumed run gives the same results as an
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from jaxport.checkpoint import atomic_write_json, to_jsonable
from jaxport.data import (
    MarketData,
    add_covering_symbols,
    describe_split,
    list_symbols,
    load_market,
    resolve_data_dir,
    split_bounds,
)
from jaxport.data.split import walk_forward_bounds
from jaxport.errors import CheckpointError, ConfigError
from jaxport.eval.walk_forward import fold_curves, pooled_walk_forward, walk_forward_statistics
from jaxport.pipeline.config import (
    ORIGINAL_BASE_STOCKS,
    ORIGINAL_SPECIALIST_STOCKS,
    PipelineConfig,
    min_rows_needed,
)
from jaxport.pipeline.data_columns import fit_config_to_data
from jaxport.pipeline.provenance import device_description, git_commit, package_versions, stage_seed
from jaxport.pipeline.summary import (
    SUMMARY_SCHEMA_VERSION,
    PairStage,
    RunSummary,
    read_summary,
)
from jaxport.pipeline.tracking import Tracker

log = logging.getLogger(__name__)

#: Entries the pipeline creates inside ``--output-dir`` (``--overwrite`` removes only these).
RUN_ENTRIES = (
    "folds",
    "base",
    "specialists",
    "portfolio",
    "pipeline_summary.json",
    "report",
    "evaluation.json",
    "export",
)
TENSORBOARD_STAGES = ("base", "specialists", "portfolio")


class RunInterrupted(Exception):
    """Raised (after saving) when a run stops early: Ctrl-C or the ``stop_after`` test hook."""


@dataclasses.dataclass
class Reporter:
    """Hooks the CLI uses to show progress; all optional (the library stays silent without them).

    ``advance(name, n, metrics)``: ``n`` more units done; a ``"step"`` in ``metrics`` is the
    absolute position instead (and ``"total"`` the total, when it was unknown at ``stage_start``).
    """

    stage_start: Callable[[str, int], None] = lambda name, total: None
    advance: Callable[[str, int, dict], None] = lambda name, n, metrics: None
    stage_end: Callable[[str], None] = lambda name: None
    say: Callable[[str], None] = lambda message: log.info(message)


# ---------------------------------------------------------------------------- helpers
def read_json(path: Path) -> Any:
    import json

    return json.loads(Path(path).read_text(encoding="utf-8"))


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(Path(path).resolve())


def prepare_output_dir(output_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to write into a non-empty folder unless ``resume`` or ``overwrite`` (one-line
    ConfigError)."""
    if resume and overwrite:
        raise ConfigError("resume=True and overwrite=True exclude each other")
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError(f"output_dir {output_dir}: exists and is not a directory")
    entries = sorted(p.name for p in output_dir.iterdir()) if output_dir.is_dir() else []
    if resume:
        if not (output_dir / "pipeline_summary.json").exists():
            raise CheckpointError(
                f"resume: {output_dir} holds no pipeline_summary.json to resume from"
            )
        return
    if not entries:
        return
    if not overwrite:
        finished = (output_dir / "pipeline_summary.json").exists()
        what = "a previous run" if finished else "files"
        raise ConfigError(
            f"output_dir {output_dir}: already holds {what}; pass resume=True to continue it, "
            f"overwrite=True to replace it, or choose another output_dir"
        )
    foreign = [e for e in entries if e not in RUN_ENTRIES and not e.startswith(".")]
    if foreign:
        raise ConfigError(
            f"overwrite: {output_dir} holds files a jaxport run does not write "
            f"({', '.join(foreign[:5])}); refusing to delete them"
        )
    for entry in entries:
        target = output_dir / entry
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()


# ---------------------------------------------------------------------------- symbols and data
def resolve_symbols(
    config: PipelineConfig, data_dir: Path
) -> tuple[list[str], list[str], list[list[str]]]:
    """Base symbols, specialist symbols and RL pairs (original defaults when their files exist)."""
    available = list_symbols(data_dir)
    base = config.data.base_symbols
    specialists = config.data.specialist_symbols
    if base is None:
        base = (
            list(ORIGINAL_BASE_STOCKS) if set(ORIGINAL_BASE_STOCKS) <= set(available) else available
        )
    if specialists is None:
        originals = set(ORIGINAL_SPECIALIST_STOCKS)
        specialists = (
            list(ORIGINAL_SPECIALIST_STOCKS) if originals <= set(available) else available[:3]
        )
    pairs = config.data.pairs
    if pairs is None:
        pairs = [[a, b] for a, b in zip(specialists, specialists[1:])]
        if not pairs and len(base) >= 2:
            pairs = [base[:2]]
    return list(base), list(specialists), [list(p) for p in pairs]


def universe_training_symbols(
    config: PipelineConfig, base: list[str], pairs: list[list[str]]
) -> list[str]:
    """The symbols whose every pair trains the universe policy: ``data.universe_symbols`` (the
    base symbols when unset) and every basket's symbols, in that order, each once."""
    first = config.data.universe_symbols if config.data.universe_symbols is not None else base
    return list(dict.fromkeys([*first, *(s for p in pairs for s in p)]))


#: At most this many symbols train the universe policy by default (every pair: 190 baskets).
DEFAULT_UNIVERSE_MAX_SYMBOLS = 20


def broaden_universe(config: PipelineConfig, data_dir: Path, market, base: list[str]):
    """The default universe (``data.universe_symbols`` unset): the base symbols plus every other
    symbol of the data folder that covers the run's dates (:func:`covering_symbols`), up to
    :data:`DEFAULT_UNIVERSE_MAX_SYMBOLS` in all; returns the market with them and the config with
    ``data.universe_symbols`` resolved. Training on the whole folder's pairs, not only the base
    symbols', raised the learned candidate's pooled Sharpe gap to 1/N on inner walk-forward folds
    (README, "Choosing defaults without test rows")."""
    room = DEFAULT_UNIVERSE_MAX_SYMBOLS - len(market.symbols)
    wide = add_covering_symbols(data_dir, market, room, min_rows=min_rows_needed(config))
    extra = list(wide.symbols[len(market.symbols) :])
    if extra:
        log.info("universe policy: also trains on %s (the data folder's symbols)", ", ".join(extra))
    symbols = list(dict.fromkeys([*base, *extra]))
    data = dataclasses.replace(config.data, universe_symbols=symbols)
    return wide, dataclasses.replace(config, data=data)


# ---------------------------------------------------------------------------- the run
class Pipeline:
    """One ``jaxport train`` run. ``run()`` returns the summary dict (also written to disk)."""

    def __init__(
        self,
        config: PipelineConfig,
        *,
        resume: bool = False,
        overwrite: bool = False,
        reporter: Reporter | None = None,
        stop_after: str | None = None,
        walk_forward: int = 1,
        gate: bool = True,
    ):
        if int(walk_forward) < 1:
            raise ConfigError(f"walk_forward {walk_forward}: the number of folds must be >= 1")
        self.walk_forward = int(walk_forward)  # K folds (1 = the plain chronological split)
        self.gate = bool(gate)  # the baseline gate (False: --no-gate)
        self.config = config
        self.resume = resume
        self.overwrite = overwrite
        self.reporter = reporter or Reporter()
        self.stop_after = (
            stop_after  # test hook: raise RunInterrupted after this stage/pair completes
        )
        self.output_dir = Path(config.output_dir)
        self.summary_path = config.resolved_summary_path
        self.summary = RunSummary()
        self.tracker: Tracker | None = None

    # -- summary bookkeeping
    def _save_summary(self) -> None:
        atomic_write_json(self.summary_path, self.summary.to_dict())

    def _rel(self, path: Path) -> str:
        return _rel(path, self.summary_path.parent)

    def _abs(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.summary_path.parent / p

    def _checkpoint_point(self, name: str) -> None:
        self._save_summary()
        if self.stop_after == name:
            raise RunInterrupted(f"stopped after {name} (stop_after hook)")

    # -- entry point
    def run(self) -> dict[str, Any]:
        cfg = self.config
        prepare_output_dir(self.output_dir, resume=self.resume, overwrite=self.overwrite)
        if self.resume:
            previous = read_summary(self.summary_path)
            self.summary = RunSummary.from_dict(previous)
        started = time.time()
        # Data first: bad files fail before anything is written.
        t0 = time.perf_counter()
        data_dir = resolve_data_dir(cfg.data.trainingdata_dir, announce=self.reporter.say)
        base_syms, spec_syms, pairs = resolve_symbols(cfg, data_dir)
        all_syms = list(dict.fromkeys(base_syms + spec_syms + [s for p in pairs for s in p]))
        if cfg.rl.scope == "universe":
            all_syms = list(
                dict.fromkeys(all_syms + universe_training_symbols(cfg, base_syms, pairs))
            )
        market = load_market(data_dir, all_syms, min_rows=min_rows_needed(cfg))
        if cfg.rl.scope == "universe" and cfg.data.universe_symbols is None:
            market, cfg = broaden_universe(cfg, data_dir, market, base_syms)
        cfg = self.config = fit_config_to_data(cfg, market, self.reporter.say)
        if self.resume:  # compared after fitting: a degraded default is what the first run stored
            self._check_resumable(previous)
        folds = None
        if self.walk_forward > 1:
            folds = walk_forward_bounds(
                market.num_days,
                self.walk_forward,
                test_rows=int(round(float(cfg.data.split[2]) * market.num_days)),
                embargo=cfg.data.toto_horizon,
                min_train_rows=min_rows_needed(cfg),
            )
            bounds = folds[-1]
        else:
            bounds = split_bounds(market, cfg.data.split)
        data_seconds = time.perf_counter() - t0
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if self.overwrite and not self.resume:
            for stage in TENSORBOARD_STAGES:
                shutil.rmtree(Path(cfg.tensorboard_dir) / stage, ignore_errors=True)
        summary = self.summary
        summary.schema_version = SUMMARY_SCHEMA_VERSION
        summary.status = "running"
        summary.config = self._config_block(data_dir, base_syms, spec_syms, pairs)
        summary.versions = package_versions()
        summary.device = device_description(cfg.rl, check=not cfg.skip_rl)
        summary.git_commit = git_commit()
        summary.data = {
            "trainingdata_dir": str(data_dir.resolve()),
            **market.summary(),
            "split": describe_split(market, bounds),
            "split_fractions": list(cfg.data.split),
        }
        summary.timings["data"] = data_seconds
        self.tracker = Tracker(
            cfg.tensorboard_dir,
            wandb_project=cfg.wandb_project,
            wandb_entity=cfg.wandb_entity,
            run_config=summary.config,
            announce=self.reporter.say,
        )
        summary.tracking = {
            "tensorboard_dir": self._rel(Path(cfg.tensorboard_dir)),
            "wandb": self.tracker.wandb_status,
        }
        try:
            self._save_summary()
            if folds is not None:
                self._run_walk_forward(market, folds, base_syms, spec_syms, pairs)
            else:
                base = self._stage_base(market, bounds, base_syms)
                models = self._stage_specialists(market, bounds, spec_syms, base)
                if not cfg.skip_rl:
                    self._stage_portfolio(market, bounds, pairs, models, base_syms)
            summary.status = "completed"
        except (KeyboardInterrupt, RunInterrupted) as exc:
            summary.status = "interrupted"
            summary.interrupted = str(exc) or "KeyboardInterrupt"
            self._save_summary()
            raise RunInterrupted(summary.interrupted) from None
        except Exception as exc:  # keep what finished; say in the summary why the run stopped
            summary.status = "failed"
            summary.error = f"{type(exc).__name__}: {exc}"
            self._save_summary()
            raise
        finally:
            self.output_dir = Path(cfg.output_dir)
            summary.timings["total_this_session"] = time.time() - started
            if self.tracker is not None:
                self.tracker.close()
        self._save_summary()
        return summary.to_dict()

    def _check_resumable(self, previous: dict) -> None:
        old = previous.get("config", {})
        mine = {**dataclasses.asdict(self.config), "walk_forward": self.walk_forward}
        mine["gate"] = self.gate
        for key in ("seed", "data", "base", "finetune", "rl", "walk_forward", "gate"):
            if key in old and old[key] != to_jsonable(mine[key]):
                raise ConfigError(
                    f"resume: the configuration differs from the interrupted run in [{key}]; "
                    "resume with the same settings, or start a new output_dir"
                )

    def _config_block(self, data_dir: Path, base_syms, spec_syms, pairs) -> dict[str, Any]:
        cfg = self.config
        block = to_jsonable(dataclasses.asdict(cfg))
        use_toto = cfg.data.features in ("toto", "toto+stat") and not cfg.data.disable_toto
        # Keys of the original trainer's summary, so tools written against it keep working.
        block.update(
            {
                "base_symbols": base_syms,
                "specialist_symbols": spec_syms,
                "pairs": pairs,
                "universe_symbols": (
                    universe_training_symbols(cfg, base_syms, pairs)
                    if cfg.rl.scope == "universe"
                    else None
                ),
                "trainingdata_dir": str(data_dir),
                "walk_forward": self.walk_forward,
                "gate": self.gate,
                "output_dir": cfg.output_dir,
                "tensorboard_dir": cfg.tensorboard_dir,
                "toto": {
                    "enabled": use_toto,
                    "horizon": cfg.data.toto_horizon,
                    "context_length": cfg.base.context if use_toto else cfg.data.sequence_length,
                    "targets": list(cfg.data.toto_targets),
                },
            }
        )
        block["rl"].update(
            {
                "transaction_cost_bps": cfg.rl.transaction_cost_bps,
                "risk_penalty": cfg.rl.risk_penalty,
                "leverage_limit": cfg.rl.leverage_limit,
                "borrowing_cost": cfg.rl.borrowing_cost,
                "trading_days_per_year": cfg.rl.trading_days_per_year,
            }
        )
        return block

    # ------------------------------------------------------------------ walk-forward
    def _run_walk_forward(self, market, folds, base_syms, spec_syms, pairs) -> None:
        """K folds, sequentially in this process: each fold's forecasters, pairs and gate see only
        the rows before its test block's end (the market is cut at ``test_end``); checkpoints go
        under ``folds/<k>/``. The summary's ``stages`` hold the fold in progress (so ``--resume``
        continues it) and, at the end, the last fold (the most recent models)."""
        cfg = self.config
        summary = self.summary
        root = Path(cfg.output_dir)
        wf = summary.walk_forward or {}
        if wf.get("num_folds") != len(folds):
            wf = {"num_folds": len(folds), "folds": [], "pairs": {}}
        wf.update(
            embargo=int(folds[0].embargo),
            test_rows=int(folds[0].test_end - folds[0].test_start),
            benchmark="equal_weight",
            gate=self.gate,
        )
        summary.walk_forward = wf
        done = [f for f in wf["folds"] if f.get("status") == "completed"]
        wf["folds"] = done
        for k, b in enumerate(folds):
            if k < len(done):
                continue
            if wf.get("current_fold") != k:  # a fresh fold: its stages start empty
                summary.base, summary.specialists, summary.portfolio = None, {}, {}
                summary.universe = None
                wf["current_fold"] = k
            self.reporter.say(
                f"walk-forward fold {k + 1}/{len(folds)}: train rows [0, {b.train_end}), "
                f"validation [{b.val_start}, {b.val_end}), test [{b.test_start}, {b.test_end})"
            )
            fold_market = market.slice_days(0, b.test_end)  # nothing after the test block
            fb = b.truncated()
            self.output_dir = root / "folds" / str(k)
            base = self._stage_base(fold_market, fb, base_syms)
            models = self._stage_specialists(fold_market, fb, spec_syms, base)
            if not cfg.skip_rl:
                self._stage_portfolio(fold_market, fb, pairs, models, base_syms)
            stages = summary.to_dict()["stages"]
            record = {
                "fold": k,
                "status": "completed",
                **_fold_dates(market, b),
                "bounds": _fold_bounds(b),
                "pairs": {},
                "stages": stages,
            }
            for name, entry in summary.portfolio.items():
                if not entry.completed:
                    record["pairs"][name] = {"status": entry.status, "error": entry.error}
                    continue
                m = entry.metrics or {}
                record["pairs"][name] = {
                    "shipped": entry.shipped,
                    "test": m.get("test"),
                    "validation": m.get("validation"),
                    "baselines": m.get("baselines"),
                    "reason": m.get("selection"),
                }
            wf["folds"].append(record)
            wf.pop("current_fold", None)
            self._checkpoint_point(f"fold/{k}")
        self.output_dir = root
        curves = fold_curves(wf["folds"], lambda rel: read_json(self._abs(rel)))
        ppy = float(cfg.rl.trading_days_per_year)
        wf["pairs"] = walk_forward_statistics(curves, periods_per_year=ppy, seed=cfg.seed)
        wf["pooled"] = pooled_walk_forward(curves, periods_per_year=ppy, seed=cfg.seed)

    # ------------------------------------------------------------------ stage 1: generic forecaster
    def _forecaster_configs(self):
        d = self.config.data
        return self.config.base.forecaster_configs(
            horizon=d.toto_horizon,
            targets=d.toto_targets,
            seed=stage_seed(self.config.seed, "base"),
        )

    def _log_fn(self, stage: str, progress_name: str | None = None):
        tracker = self.tracker

        def log_fn(step: int, scalars: dict) -> None:
            tracker.log(stage, step, scalars)
            if progress_name is not None:
                self.reporter.advance(progress_name, 0, {"step": step, **scalars})

        return log_fn

    def _stage_io(self):
        """The callbacks and output folder stages 1-2 use (``jaxport.pipeline.forecast_stage``)."""
        from jaxport.pipeline.stage_io import StageIO

        r = self.reporter
        return StageIO(
            out_dir=self.output_dir,
            rel=self._rel,
            abs=self._abs,
            say=r.say,
            stage_start=r.stage_start,
            advance=r.advance,
            stage_end=r.stage_end,
            log_fn=self._log_fn,
            track=self.tracker.log,
            log_series=self.tracker.log_series,
            checkpoint=self._checkpoint_point,
            save=self._save_summary,
        )

    def _stage_base(self, market: MarketData, bounds, base_syms: list[str]):
        """Train (or restore) the generic forecaster and its cross-fitted block models; returns a
        :class:`~jaxport.pipeline.forecast_stage.BaseOutcome` (``.model`` None: statistical
        path)."""
        from jaxport.pipeline.forecast_stage import run_base_stage

        out = run_base_stage(
            self.config, market, bounds, base_syms, self._stage_io(), self.summary.base
        )
        if not out.resumed:
            self.summary.base = out.entry
            self.summary.timings["base"] = out.wall_s
            self._checkpoint_point("base")
        return out

    # ------------------------------------------------------------------ stage 2: specialists
    def _stage_specialists(self, market, bounds, spec_syms: list[str], base) -> dict[str, Any]:
        """Per-symbol feature models (the specialist where kept, else the generic model, with their
        cross-fitted blocks), as ``pair_features`` reads them."""
        from jaxport.pipeline.forecast_stage import run_specialist_stage

        out = run_specialist_stage(
            self.config, market, bounds, spec_syms, base, self._stage_io(), self.summary.specialists
        )
        if out.wall_s is not None:
            timings = self.summary.timings
            timings["specialists"] = timings.get("specialists", 0.0) + out.wall_s
        return out.features

    # ------------------------------------------------------------------ stage 3: portfolio RL
    def _stage_portfolio(self, market, bounds, pairs, models, base_syms) -> None:
        """Stage 3: with ``rl.scope`` universe one policy over every pair of the base (and
        requested) symbols first, then each requested basket: trained alone (pair scope) or the
        universe policy evaluated on it, gated against the standard allocators."""
        portfolio = self.summary.portfolio
        t0 = time.perf_counter()
        universe = None
        if self.config.rl.scope == "universe":
            symbols = universe_training_symbols(self.config, base_syms, pairs)
            universe = self._stage_universe(market, bounds, symbols, models)
        self.reporter.stage_start("portfolio", len(pairs))
        for pair in pairs:
            name = "_".join(pair)
            if name in portfolio and portfolio[name].completed:
                self.reporter.advance("portfolio", 1, {})
                continue
            try:
                portfolio[name] = self._train_pair(market, bounds, pair, models, universe)
                for cand in (portfolio[name].candidates or {}).values():
                    for k in ("compile_s", "run_s"):
                        key = f"portfolio_{k}"
                        self.summary.timings[key] = self.summary.timings.get(key, 0.0) + float(
                            cand.get(k, 0.0)
                        )
            except (KeyboardInterrupt, RunInterrupted):
                raise
            except Exception as exc:  # one failing pair must not stop the others
                log.debug("pair %s failed", name, exc_info=True)
                portfolio[name] = PairStage(
                    status="failed",
                    error=f"{type(exc).__name__}: {exc}",
                    traceback=traceback.format_exc(limit=8),
                )
                self.reporter.say(f"pair {name} failed: {type(exc).__name__}: {exc}")
            self.reporter.advance("portfolio", 1, {"pair": name})
            self._checkpoint_point(f"portfolio/{name}")
        self.reporter.stage_end("portfolio")
        timings = self.summary.timings
        timings["portfolio"] = timings.get("portfolio", 0.0) + (time.perf_counter() - t0)

    def _basket_data(self, market: MarketData, bounds, basket: list[str], models):
        """``(PairData, PairFeatures)`` of one basket: its forecast features and split EnvParams."""
        from jaxport.pipeline.basket_stage import PairData, pair_features

        sub = market.select(basket)
        feats = pair_features(self.config.data, sub, basket, models)
        data = PairData.build(
            sub, feats.values, feats.names, feats.valid_from, bounds, self.config.rl
        )
        return data, feats

    def _stage_universe(self, market: MarketData, bounds, symbols: list[str], models):
        """Train (or, on resume, restore) the universe policy over every pair of ``symbols``;
        returns a :class:`~jaxport.pipeline.universe_stage.UniverseOutcome`."""
        from jaxport.pipeline.universe_stage import run_universe_stage, universe_baskets

        baskets = universe_baskets(symbols)
        if not baskets:
            raise ConfigError(
                f"rl.scope universe needs at least two symbols, got {', '.join(symbols) or 'none'}"
            )
        data = [self._basket_data(market, bounds, b, models)[0] for b in baskets]

        def advance(done: int, total: int) -> None:
            self.reporter.advance("universe", 0, {"step": done, "total": total})

        self.reporter.stage_start("universe", 0)  # the total arrives with the first report
        try:
            outcome, resumed = run_universe_stage(
                self.config,
                data,
                baskets,
                self._stage_io(),
                previous=self.summary.universe,
                progress=advance,
            )
        finally:
            self.reporter.stage_end("universe")
        if not resumed:
            self.summary.universe = outcome.entry
            self.summary.timings["universe"] = outcome.entry.training["wall_s"]
            self._checkpoint_point("universe")
        return outcome

    def _train_pair(
        self, market: MarketData, bounds, pair: list[str], models, universe=None
    ) -> PairStage:
        from jaxport.pipeline.basket_stage import train_and_evaluate_pair
        from jaxport.pipeline.universe_stage import universe_pair_result
        from jaxport.rl.codec import save_policy_checkpoint

        cfg = self.config
        name = "_".join(pair)
        t0 = time.perf_counter()
        pair_data, feats = self._basket_data(market, bounds, pair, models)
        if universe is not None:
            result = universe_pair_result(pair_data, cfg.rl, universe, gate=self.gate)
        else:
            result = train_and_evaluate_pair(
                pair_data,
                cfg.rl,
                seed=stage_seed(cfg.seed, "portfolio", name),
                log=lambda algo, series: self.tracker.log_series(
                    f"portfolio/{name}/{algo}", series
                ),
                gate=self.gate,
            )
        ckpt = self.output_dir / "portfolio" / name
        save_policy_checkpoint(
            ckpt, result.policy, result.checkpoint_metadata(feats.sources), overwrite=True
        )
        for algo, learned in result.learned.items():  # the learned candidates the gate refused
            if algo != result.shipped:
                path = ckpt.parent / f"{name}_learned_{algo}"
                meta = dict(result.checkpoint_metadata(feats.sources), algo=algo)
                meta["label"] = "learned (not shipped)"
                save_policy_checkpoint(path, learned, meta, overwrite=True)
                result.candidates[algo]["checkpoint"] = self._rel(path)
        evaluation_file = ckpt.parent / f"{name}_evaluation.json"
        atomic_write_json(evaluation_file, result.curves)
        test = result.metrics["test"]
        for i, value in enumerate(result.curves["equity_curve"]):
            if i % 5 == 0 or i == len(result.curves["equity_curve"]) - 1:
                self.tracker.log(f"portfolio/{name}", i, {"test_equity": value})
        self.tracker.log(f"portfolio/{name}", 0, {f"test_{k}": v for k, v in test.items()})
        return PairStage(
            status="completed",
            symbols=list(pair),
            algo=result.algo,
            shipped=result.shipped,
            gate=result.gate,
            policy_kind=result.policy.kind,
            checkpoint=self._rel(ckpt),
            evaluation=self._rel(evaluation_file),
            feature_source=feats.sources,
            num_features=pair_data.env.num_features,  # forecast features + anchor columns
            metrics=result.metrics,
            candidates=result.candidates,
            wall_s=time.perf_counter() - t0,
        )


def _fold_dates(market: MarketData, b) -> dict[str, str]:
    d = market.dates
    return {
        "train_last_date": str(d[b.train_end - 1]),
        "val_first_date": str(d[b.val_start]),
        "test_first_date": str(d[b.test_start]),
        "test_last_date": str(d[b.test_end - 1]),
    }


def _fold_bounds(b) -> dict[str, int]:
    return {
        "train_end": int(b.train_end),
        "val_start": int(b.val_start),
        "val_end": int(b.val_end),
        "test_start": int(b.test_start),
        "test_end": int(b.test_end),
    }
