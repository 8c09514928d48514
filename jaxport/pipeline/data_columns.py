"""Fit a run's settings to the columns its data has (full OHLCV or close-only).

On close-only data (a close panel, or per-symbol date+close CSVs) the default forecast targets
(``close,open,high,low``) shrink to ``close`` with one log line; targets that the user set (flag or
TOML) and that name a missing column are a one-line ``ConfigError`` (exit 2). The stat features and
the forecaster's input channels degrade by themselves (see :class:`jaxport.data.MarketData`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from jaxport.data.market import MarketData
from jaxport.errors import ConfigError
from jaxport.pipeline.config import DataConfig, PipelineConfig

DEFAULT_TOTO_TARGETS: tuple[str, ...] = tuple(DataConfig().toto_targets)


def fit_config_to_data(
    config: PipelineConfig, market: MarketData, say: Callable[[str], None]
) -> PipelineConfig:
    """``config`` with ``data.toto_targets`` limited to the columns ``market`` has.

    The default target list degrades (``say`` reports it once); any other list that names a
    missing column raises ``ConfigError`` naming the setting (the CLI shows ``--toto-targets``).
    A list equal to the default counts as the default, also when given explicitly.
    """
    targets = [str(t).lower() for t in config.data.toto_targets]
    missing = [t for t in targets if t not in market.columns]
    if not missing:
        return config
    kept = [t for t in targets if t in market.columns]
    if tuple(targets) != DEFAULT_TOTO_TARGETS or not kept:
        raise ConfigError(
            f"data.toto_targets {','.join(targets)}: the data has no {', '.join(missing)} "
            f"column ({market.source_label()} has {', '.join(market.columns)})"
        )
    say(
        f"close-only data ({market.source_label()}): forecasting {','.join(kept)} only "
        f"(the default targets without {','.join(missing)})"
    )
    data = dataclasses.replace(config.data, toto_targets=kept)
    return dataclasses.replace(config, data=data)
