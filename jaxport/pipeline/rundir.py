"""The typed run API: everything a finished (or interrupted) ``jaxport train`` run holds, read back.

``RunDir(path)`` (the run's output folder, or its ``pipeline_summary.json``) gives

- ``summary`` (the dict) / ``typed_summary`` (:class:`~jaxport.pipeline.summary.RunSummary`) and
  ``config`` (the resolved :class:`~jaxport.pipeline.config.PipelineConfig`);
- ``market`` (the run's data, every symbol on common dates, exactly as training loaded it) and
  ``bounds`` (its train/validation/test split);
- per pair (``"A_B"``): ``features(name)`` (forecast features, from the run's own forecaster
  checkpoints), ``pair(name)`` (env + EnvParams for train/val/test, standardised as in training),
  ``checkpoint(name)`` (tree, metadata), ``policy(name)`` (a :class:`jaxport.rl.codec.Policy`) and
  ``evaluation(name)`` (the stored test curves);
- ``forecaster(rel)`` / ``symbol_models(symbols)`` and ``forecaster_checkpoints()`` /
  ``policy_checkpoints()`` (what ``jaxport export`` exports).

``jaxport eval``, ``jaxport report`` and ``jaxport export`` read runs only through this class.
Loaded objects are cached on the instance. Problems (missing summary or checkpoint, data that no
longer matches the checkpoint) raise a one-line :class:`jaxport.errors.CheckpointError`.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

from jaxport.checkpoint import is_checkpoint, load_checkpoint, read_metadata
from jaxport.errors import CheckpointError
from jaxport.pipeline.summary import PairStage, RunSummary, config_from_summary, read_summary

SUMMARY_FILE = "pipeline_summary.json"


class RunDir:
    """A run directory written by ``jaxport train`` (see the module docstring).

    ``require_summary=False`` accepts a folder without ``pipeline_summary.json`` (only the
    checkpoint listing then works, found from the folder layout).
    """

    def __init__(self, path: str | Path, *, require_summary: bool = True):
        path = Path(path)
        self.summary_path = path if path.is_file() else path / SUMMARY_FILE
        self.root = self.summary_path.parent
        self._require_summary = require_summary
        self._forecasters: dict[str, Any] = {}
        self._pairs: dict[str, Any] = {}
        if require_summary:
            self.summary  # noqa: B018 - read now: a bad RUN_DIR fails here, with one line
        elif not self.root.is_dir():
            raise CheckpointError(f"{self.root}: run directory not found")

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    # ------------------------------------------------------------------ summary and config
    @cached_property
    def summary(self) -> dict[str, Any]:
        """The summary dict (``{}`` when there is none and ``require_summary`` was False)."""
        if not self._require_summary and not self.summary_path.is_file():
            return {}
        return read_summary(self.summary_path)

    @cached_property
    def typed_summary(self) -> RunSummary:
        return RunSummary.from_dict(self.summary)

    @property
    def has_config(self) -> bool:
        """Whether the summary records the run's configuration (needed to rebuild data and envs)."""
        return bool(self.summary.get("config"))

    @cached_property
    def config(self):
        """The :class:`~jaxport.pipeline.config.PipelineConfig` the run was trained with."""
        if not self.has_config:
            raise CheckpointError(f"{self.summary_path}: the summary records no run configuration")
        return config_from_summary(self.summary)

    def path(self, rel: str | Path) -> Path:
        """A path stored in the summary (relative to its folder) as an absolute path."""
        p = Path(rel)
        return p if p.is_absolute() else self.root / p

    # ------------------------------------------------------------------ data
    @cached_property
    def data_dir(self) -> Path:
        return Path(
            self.summary.get("data", {}).get("trainingdata_dir")
            or self.config.data.trainingdata_dir
        )

    @cached_property
    def market(self):
        """Every symbol of the run on their common dates (as the run loaded them)."""
        from jaxport.data import load_market

        symbols = self.summary.get("data", {}).get("symbols")
        if not symbols:
            raise CheckpointError(f"{self.summary_path}: the summary lists no data symbols")
        return load_market(self.data_dir, symbols)

    @cached_property
    def bounds(self):
        """The run's chronological train/validation/test split of :attr:`market` (in a
        walk-forward run: the last fold's, whose models the top-level ``stages`` hold)."""
        from jaxport.data import split_bounds

        folds = (self.summary.get("walk_forward") or {}).get("folds") or []
        if folds:
            return self._fold_bounds(folds[-1], self.market.num_days)
        return split_bounds(self.market, self.config.data.split)

    # ------------------------------------------------------------------ walk-forward folds
    @staticmethod
    def _fold_bounds(record: dict, num_days: int):
        from jaxport.data import SplitBounds

        b = record.get("bounds") or {}
        try:
            return SplitBounds(num_days=int(num_days), fold=record.get("fold"), **b)
        except TypeError as exc:
            raise CheckpointError(f"walk-forward fold: bad bounds {b} ({exc})") from None

    @property
    def num_folds(self) -> int:
        """Walk-forward folds recorded in the summary (0 for a plain run)."""
        return len((self.summary.get("walk_forward") or {}).get("folds") or [])

    def fold(self, k: int) -> "RunDir":
        """Fold ``k`` of a walk-forward run as a RunDir of its own: its ``stages`` (forecasters and
        policies under ``folds/<k>/``), its ``bounds`` and the market cut after its test block."""
        folds = (self.summary.get("walk_forward") or {}).get("folds") or []
        if not 0 <= k < len(folds):
            raise CheckpointError(
                f"{self.summary_path}: no walk-forward fold {k} ({len(folds)} fold(s))"
            )
        record = folds[k]
        view = RunDir.__new__(RunDir)
        view.summary_path, view.root, view._require_summary = self.summary_path, self.root, True
        view._forecasters, view._pairs = self._forecasters, {}
        summary = {key: v for key, v in self.summary.items() if key != "walk_forward"}
        summary["stages"] = record.get("stages") or {}
        bounds = self._fold_bounds(record, self.market.num_days)
        view.__dict__.update(
            summary=summary,
            market=self.market.slice_days(0, bounds.test_end),
            bounds=bounds.truncated(),
            config=self.config,
            data_dir=self.data_dir,
        )
        return view

    # ------------------------------------------------------------------ stages
    def pairs(self) -> dict[str, PairStage]:
        """Every pair entry of the portfolio stage (completed or not), typed."""
        return dict(self.typed_summary.portfolio)

    def pair_entry(self, name: str) -> PairStage:
        entry = self.typed_summary.portfolio.get(name)
        if entry is None:
            known = ", ".join(self.typed_summary.portfolio) or "none"
            raise CheckpointError(f"{self.summary_path}: no pair {name!r} (pairs: {known})")
        return entry

    def pair_symbols(self, name: str) -> list[str]:
        entry = self.pair_entry(name)
        if entry.symbols:
            return list(entry.symbols)
        for pair in self.summary.get("config", {}).get("pairs", []):
            if "_".join(pair) == name:
                return list(pair)
        raise CheckpointError(f"{self.summary_path}: pair {name!r} records no symbols")

    # ------------------------------------------------------------------ forecasters and features
    def forecaster(self, rel: str | Path):
        """The :class:`jaxport.forecast.Forecaster` at a summary path (cached)."""
        from jaxport.forecast import Forecaster

        key = str(rel)
        if key not in self._forecasters:
            path = self.path(rel)
            if not path.exists():
                raise CheckpointError(f"{path}: checkpoint listed in the summary is missing")
            self._forecasters[key] = Forecaster.load(path)
        return self._forecasters[key]

    def symbol_models(self, symbols) -> dict[str, Any]:
        """symbol -> Forecaster (its specialist if kept, else the generic model), None (the
        statistical fallback), or the cross-fitted models when the run cross-fitted (see
        :func:`jaxport.pipeline.forecast_stage.feature_models`)."""
        from jaxport.pipeline.forecast_stage import feature_models

        summary = self.typed_summary
        return feature_models(
            summary.base, summary.specialists, self.forecaster, symbols, self.market.num_days
        )

    def features(self, name: str):
        """The pair's raw forecast features (:class:`~jaxport.pipeline.basket_stage.PairFeatures`)."""
        from jaxport.pipeline.basket_stage import pair_features

        symbols = self.pair_symbols(name)
        market = self.market.select(symbols)
        return pair_features(self.config.data, market, symbols, self.symbol_models(symbols))

    def pair(self, name: str, *, check: bool = True):
        """The pair's :class:`~jaxport.pipeline.basket_stage.PairData` (env and EnvParams of train,
        validation and test), rebuilt as training built it (cached).

        ``check``: compare the feature names and train statistics with the policy checkpoint's
        metadata (when it exists) and refuse a mismatch (data or forecasters changed since).
        """
        if name not in self._pairs:
            from jaxport.pipeline.basket_stage import PairData

            symbols = self.pair_symbols(name)
            feats = self.features(name)
            self._pairs[name] = PairData.build(
                self.market.select(symbols),
                feats.values,
                feats.names,
                feats.valid_from,
                self.bounds,
                self.config.rl,
            )
        pair = self._pairs[name]
        entry = self.pair_entry(name)
        if check and entry.checkpoint and is_checkpoint(self.path(entry.checkpoint)):
            _check_features(
                self.path(entry.checkpoint), read_metadata(self.path(entry.checkpoint)), pair
            )
        return pair

    # ------------------------------------------------------------------ policies
    def checkpoint_path(self, name: str) -> Path:
        entry = self.pair_entry(name)
        if not entry.checkpoint:
            raise CheckpointError(
                f"{self.summary_path}: pair {name!r} has no checkpoint (status {entry.status})"
            )
        return self.path(entry.checkpoint)

    def checkpoint(self, name: str) -> tuple[dict, dict]:
        """``(tree, metadata)`` of the pair's policy checkpoint."""
        return load_checkpoint(self.checkpoint_path(name), kind="policy")

    def policy(self, name: str, env=None):
        """The pair's shipped policy (:class:`jaxport.rl.codec.Policy`), acting in ``env`` (default:
        the env stored in its checkpoint)."""
        from jaxport.rl.codec import load_policy_checkpoint

        return load_policy_checkpoint(self.checkpoint_path(name), env)[0]

    def evaluation(self, name: str) -> dict[str, Any]:
        """The pair's stored test curves (``portfolio/<PAIR>_evaluation.json``)."""
        entry = self.pair_entry(name)
        if not entry.evaluation:
            raise CheckpointError(f"{self.summary_path}: pair {name!r} records no evaluation file")
        path = self.path(entry.evaluation)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CheckpointError(
                f"{path}: evaluation file listed in the summary is missing"
            ) from None
        except json.JSONDecodeError as exc:
            raise CheckpointError(
                f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})"
            ) from None

    # ------------------------------------------------------------------ listing
    def forecaster_checkpoints(self) -> list[tuple[str, Path]]:
        """``[(export name, path)]``: ``base_forecaster`` and ``specialist_<SYM>`` (kept ones), from
        the summary, or from the folder layout when there is no summary."""
        out: list[tuple[str, Path]] = []
        if self.summary:
            summary = self.typed_summary
            base = summary.base.checkpoint if summary.base is not None else None
            if base:
                out.append(("base_forecaster", self.path(base)))
            for sym, entry in sorted(summary.specialists.items()):
                if entry.checkpoint and entry.kept and entry.checkpoint != base:
                    out.append((f"specialist_{sym}", self.path(entry.checkpoint)))
            return out
        if is_checkpoint(self.root / "base", "forecaster"):
            out.append(("base_forecaster", self.root / "base"))
        for d in _subdirs(self.root / "specialists"):
            if is_checkpoint(d, "forecaster"):
                out.append((f"specialist_{d.name}", d))
        return out

    def policy_checkpoints(self) -> list[tuple[str, Path]]:
        """``[(pair name, path)]`` of the completed pairs' policies (from the summary, else the
        folder layout)."""
        if self.summary:
            return [
                (name, self.path(entry.checkpoint))
                for name, entry in sorted(self.pairs().items())
                if entry.completed and entry.checkpoint
            ]
        return [
            (d.name, d) for d in _subdirs(self.root / "portfolio") if is_checkpoint(d, "policy")
        ]


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []


def _check_features(path: Path, meta: dict, pair) -> None:
    import numpy as np

    stored = meta.get("features", {})
    if stored.get("names") is not None and stored["names"] != pair.feature_names:
        raise CheckpointError(f"{path}: feature names differ from the recomputed features")
    if stored.get("mean") is not None:
        mean = np.asarray(stored["mean"], dtype=np.float64)
        if mean.shape != pair.feature_mean.shape or not np.allclose(
            mean, pair.feature_mean, rtol=1e-4, atol=1e-6
        ):
            raise CheckpointError(f"{path}: feature statistics differ from the recomputed data")
