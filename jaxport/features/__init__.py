"""Causal per-symbol features computed from aligned OHLCV arrays (row t uses data up to day t's close)."""

from jaxport.features.stat import (
    RETURN_SCALE,
    STAT_FEATURE_NAMES,
    market_stat_features,
    stat_feature_array,
    stat_feature_names,
    stat_features,
    warmup_days,
)

__all__ = [
    "RETURN_SCALE",
    "STAT_FEATURE_NAMES",
    "market_stat_features",
    "stat_feature_array",
    "stat_feature_names",
    "stat_features",
    "warmup_days",
]
