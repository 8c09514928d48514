"""``pipeline_summary.json``: reading it back, and the paths other tools may rely on.

The schema (version 1) is documented in README.md ("pipeline_summary.json"). Checkpoint paths are
relative to the folder holding the summary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jaxport.data import DataError

SUMMARY_SCHEMA_VERSION = 1

#: Paths guaranteed in a completed summary (``<SYM>``/``<PAIR>`` stand for each symbol / pair).
REQUIRED_PATHS = (
    "config",
    "data",
    "timings",
    "versions",
    "stages.base.checkpoint",
    "stages.base.metrics.test.nll",
    "stages.base.metrics.test.crps",
    "stages.base.metrics.baselines.rolling_gaussian.nll",
    "stages.base.metrics.baselines.rolling_gaussian.crps",
    "stages.specialists.<SYM>.checkpoint",
    "stages.specialists.<SYM>.kept",
    "stages.specialists.<SYM>.metrics",
    "stages.portfolio.<PAIR>.checkpoint",
    "stages.portfolio.<PAIR>.algo",
    "stages.portfolio.<PAIR>.metrics.test.total_return",
    "stages.portfolio.<PAIR>.metrics.test.sharpe",
    "stages.portfolio.<PAIR>.metrics.test.max_drawdown",
    "stages.portfolio.<PAIR>.metrics.baselines.buy_and_hold",
    "stages.portfolio.<PAIR>.metrics.baselines.equal_weight.total_return",
    "stages.portfolio.<PAIR>.metrics.baselines.cash.total_return",
    "base_checkpoint",
    "specialists",
    "portfolio_pairs",
)


def read_summary(path: str | Path) -> dict[str, Any]:
    """The summary dict; one-line DataError when missing or unreadable."""
    path = Path(path)
    if path.is_dir():
        path = path / "pipeline_summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no pipeline summary here (is this a jaxport train --output-dir?)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(summary, dict) or "stages" not in summary:
        raise DataError(f"{path}: not a jaxport pipeline summary (no 'stages')")
    return summary


def missing_paths(summary: dict[str, Any]) -> list[str]:
    """Required paths (see ``REQUIRED_PATHS``) absent from ``summary``, expanded per symbol/pair."""
    stages = summary.get("stages", {})
    expansions = {
        "<SYM>": list(stages.get("specialists", {})),
        "<PAIR>": [k for k, v in stages.get("portfolio", {}).items() if v.get("status") == "completed"],
    }
    missing = []
    for template in REQUIRED_PATHS:
        keys = [template]
        for marker, values in expansions.items():
            if marker in template:
                keys = [k.replace(marker, v) for k in keys for v in values]
        for dotted in keys:
            node: Any = summary
            for part in dotted.split("."):
                if not isinstance(node, dict) or part not in node:
                    missing.append(dotted)
                    break
                node = node[part]
    return missing
