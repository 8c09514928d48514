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
import hashlib
import logging
import platform
import shutil
import subprocess
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from jaxport.checkpoint import atomic_write_json, to_jsonable
from jaxport.data import (
    MarketData,
    describe_split,
    list_symbols,
    load_market,
    resolve_data_dir,
    split_bounds,
)
from jaxport.errors import CheckpointError, ConfigError
from jaxport.pipeline.config import (
    ORIGINAL_BASE_STOCKS,
    ORIGINAL_SPECIALIST_STOCKS,
    PipelineConfig,
    min_rows_needed,
)
from jaxport.pipeline.summary import (
    SUMMARY_SCHEMA_VERSION,
    ForecasterStage,
    PairStage,
    RunSummary,
    SpecialistStage,
    read_summary,
)
from jaxport.pipeline.tracking import Tracker

log = logging.getLogger(__name__)

#: Entries the pipeline creates inside ``--output-dir`` (``--overwrite`` removes only these).
RUN_ENTRIES = (
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
    """Hooks the CLI uses to show progress; all optional (the library stays silent without them)."""

    stage_start: Callable[[str, int], None] = lambda name, total: None
    advance: Callable[[str, int, dict], None] = lambda name, n, metrics: None
    stage_end: Callable[[str], None] = lambda name: None
    say: Callable[[str], None] = lambda message: log.info(message)


# ---------------------------------------------------------------------------- helpers
def stage_seed(seed: int, *names: str) -> int:
    """A 31-bit seed from the run seed and a stage/pair name (stable across processes)."""
    digest = hashlib.sha256(("/".join([str(seed), *names])).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(Path(path).resolve())


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str | None]:
    from importlib import metadata

    names = (
        "jaxport",
        "jax",
        "jaxlib",
        "flax",
        "optax",
        "gymnax",
        "chex",
        "orbax-checkpoint",
        "numpy",
        "pandas",
        "tensorboardX",
        "torch",
        "gymnasium",
        "arch",
        "wandb",
    )
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_description() -> dict[str, Any]:
    import jax

    devices = jax.devices()
    return {
        "platform": devices[0].platform,
        "device_kind": devices[0].device_kind,
        "num_devices": len(devices),
        "host": platform.node(),
        "processor": platform.machine(),
    }


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
    ):
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
            self._check_resumable(previous)
            self.summary = RunSummary.from_dict(previous)
        started = time.time()
        # Data first: bad files fail before anything is written.
        t0 = time.perf_counter()
        data_dir = resolve_data_dir(cfg.data.trainingdata_dir, announce=self.reporter.say)
        base_syms, spec_syms, pairs = resolve_symbols(cfg, data_dir)
        all_syms = list(dict.fromkeys(base_syms + spec_syms + [s for p in pairs for s in p]))
        market = load_market(data_dir, all_syms, min_rows=min_rows_needed(cfg))
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
        summary.device = device_description()
        summary.git_commit = _git_commit()
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
            base = self._stage_base(market, bounds, base_syms)
            models = self._stage_specialists(market, bounds, spec_syms, base)
            if not cfg.skip_rl:
                self._stage_portfolio(market, bounds, pairs, base, models)
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
            summary.timings["total_this_session"] = time.time() - started
            if self.tracker is not None:
                self.tracker.close()
        self._save_summary()
        return summary.to_dict()

    def _check_resumable(self, previous: dict) -> None:
        old = previous.get("config", {})
        mine = dataclasses.asdict(self.config)
        for key in ("seed", "data", "base", "finetune", "rl"):
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
                "trainingdata_dir": str(data_dir),
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
                self.reporter.advance(progress_name, 0, scalars)

        return log_fn

    def _stage_base(self, market: MarketData, bounds, base_syms: list[str]):
        """Train (or restore) the generic forecaster; ``None`` when the statistical path is used."""
        from jaxport.forecast import Forecaster, evaluate_forecaster, train_forecaster

        cfg = self.config
        summary = self.summary
        wants_model = cfg.data.features in ("toto", "toto+stat") and not cfg.data.disable_toto
        if summary.base is not None and summary.base.status == "completed":
            if summary.base.checkpoint:
                self.reporter.say(f"resume: generic forecaster from {summary.base.checkpoint}")
                return Forecaster.load(self._abs(summary.base.checkpoint))
            return None
        t0 = time.perf_counter()
        ckpt_dir = self.output_dir / "base"
        entry = ForecasterStage(status="running", symbols=list(base_syms))
        forecaster = None
        if cfg.base_checkpoint:
            path = Path(cfg.base_checkpoint)
            if not path.exists():
                raise CheckpointError(f"base_checkpoint {path}: does not exist")
            forecaster = Forecaster.load(path)
            entry.restored_from = str(path)
        elif cfg.skip_base or not wants_model:
            why = (
                "--skip-base"
                if cfg.skip_base
                else (
                    "--disable-toto" if cfg.data.disable_toto else f"--features {cfg.data.features}"
                )
            )
            entry.status, entry.skipped, entry.reason, entry.checkpoint = (
                "completed",
                True,
                why,
                None,
            )
            self.reporter.say(f"stage 1 skipped ({why}): statistical forecast features are used")
            summary.base = entry
            summary.timings["base"] = time.perf_counter() - t0
            self._checkpoint_point("base")
            return None
        else:
            fcfg, tcfg = self._forecaster_configs()
            self.reporter.stage_start("base", tcfg.max_steps or 0)
            result = train_forecaster(
                market,
                bounds,
                fcfg,
                tcfg,
                symbols=base_syms,
                log_fn=self._log_fn("base", "base"),
                log_prefix="",
            )
            self.reporter.stage_end("base")
            forecaster = Forecaster(fcfg, result.params)
            entry.training = result.summary()
        forecaster.save(ckpt_dir, extra={"symbols": base_syms, "stage": "base"})
        evaluation = evaluate_forecaster(forecaster, market.select(base_syms), bounds)
        entry.status = "completed"
        entry.checkpoint = self._rel(ckpt_dir)
        entry.num_params = forecaster.num_params
        entry.metrics = forecast_metrics(evaluation)
        self.tracker.log("base", 0, {f"test_{k}": v for k, v in entry.metrics["test"].items()})
        summary.base = entry
        summary.timings["base"] = time.perf_counter() - t0
        self._checkpoint_point("base")
        return forecaster

    # ------------------------------------------------------------------ stage 2: specialists
    def _stage_specialists(self, market, bounds, spec_syms: list[str], base) -> dict[str, Any]:
        """Per-symbol forecasters: the specialist where kept, else the generic model (or None)."""
        from jaxport.forecast import Forecaster, evaluate_forecaster, finetune_specialist

        cfg = self.config
        summary = self.summary
        specs = summary.specialists
        models: dict[str, Any] = {s: base for s in market.symbols}
        if base is None or cfg.skip_specialists:
            why = "--skip-specialists" if cfg.skip_specialists else "no generic forecaster"
            generic = summary.base.checkpoint if summary.base is not None else None
            for sym in spec_syms:
                specs.setdefault(
                    sym,
                    SpecialistStage(
                        status="completed", skipped=True, reason=why, checkpoint=generic, kept=False
                    ),
                )
            self._save_summary()
            return models
        t0 = time.perf_counter()
        fcfg, tcfg = self._forecaster_configs()
        f = cfg.finetune
        self.reporter.stage_start("specialists", len(spec_syms))
        for sym in spec_syms:
            done = specs.get(sym)
            if done is not None and done.status == "completed":
                if done.kept:
                    models[sym] = Forecaster.load(self._abs(done.checkpoint))
                self.reporter.advance("specialists", 1, {})
                continue
            spec_tc = dataclasses.replace(
                tcfg,
                learning_rate=f.learning_rate,
                epochs=max(1, f.epochs),
                max_steps=f.max_steps,
                warmup_steps=max(1, tcfg.warmup_steps // 4),
                max_val_windows=None,
                seed=stage_seed(cfg.seed, "specialist", sym),
            )
            if f.epochs == 0:
                result = None
                kept = False
            else:
                result = finetune_specialist(
                    base.params,
                    base.config,
                    market,
                    bounds,
                    sym,
                    spec_tc,
                    log_fn=self._log_fn("specialists", None),
                )
                kept = result.kept
            entry = SpecialistStage(status="completed", kept=kept)
            if kept:
                model = Forecaster(base.config, result.params)
                ckpt = self.output_dir / "specialists" / sym
                model.save(ckpt, extra={"symbols": [sym], "stage": "specialist"})
                entry.checkpoint = self._rel(ckpt)
                models[sym] = model
            else:
                entry.checkpoint = summary.base.checkpoint  # the generic model serves this symbol
            evaluation = evaluate_forecaster(models[sym], market.select([sym]), bounds)
            entry.metrics = {
                "generic_val_nll": None if result is None else result.generic_val_nll,
                "specialist_val_nll": None if result is None else result.specialist_val_nll,
                **forecast_metrics(evaluation),
            }
            if result is not None:
                entry.training = result.summary()
            self.tracker.log(
                "specialists", 0, {f"{sym}/test_{k}": v for k, v in entry.metrics["test"].items()}
            )
            specs[sym] = entry
            self.reporter.advance("specialists", 1, {"symbol": sym, "kept": kept})
            self._checkpoint_point(f"specialists/{sym}")
        self.reporter.stage_end("specialists")
        summary.timings["specialists"] = summary.timings.get("specialists", 0.0) + (
            time.perf_counter() - t0
        )
        return models

    # ------------------------------------------------------------------ stage 3: portfolio RL
    def _stage_portfolio(self, market, bounds, pairs, base, models) -> None:
        portfolio = self.summary.portfolio
        t0 = time.perf_counter()
        self.reporter.stage_start("portfolio", len(pairs))
        for pair in pairs:
            name = "_".join(pair)
            if name in portfolio and portfolio[name].completed:
                self.reporter.advance("portfolio", 1, {})
                continue
            try:
                portfolio[name] = self._train_pair(market, bounds, pair, models)
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

    def _train_pair(self, market: MarketData, bounds, pair: list[str], models) -> PairStage:
        from jaxport.pipeline.portfolio import PairData, pair_features, train_and_evaluate_pair
        from jaxport.rl.codec import save_policy_checkpoint

        cfg = self.config
        name = "_".join(pair)
        t0 = time.perf_counter()
        sub = market.select(pair)
        feats = pair_features(cfg.data, sub, pair, models)
        pair_data = PairData.build(sub, feats.values, feats.names, feats.valid_from, bounds, cfg.rl)
        result = train_and_evaluate_pair(
            pair_data,
            cfg.rl,
            seed=stage_seed(cfg.seed, "portfolio", name),
            log=lambda algo, series: self.tracker.log_series(f"portfolio/{name}/{algo}", series),
        )
        ckpt = self.output_dir / "portfolio" / name
        save_policy_checkpoint(
            ckpt, result.policy, result.checkpoint_metadata(feats.sources), overwrite=True
        )
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
            policy_kind=result.policy.kind,
            checkpoint=self._rel(ckpt),
            evaluation=self._rel(evaluation_file),
            feature_source=feats.sources,
            num_features=len(feats.names),
            metrics=result.metrics,
            candidates=result.candidates,
            wall_s=time.perf_counter() - t0,
        )


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
