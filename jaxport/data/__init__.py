"""Data layer: discovery, validated CSV parsing (OHLCV, close-only, wide panels), alignment, chronological splits, synthetic data."""

from jaxport.data.loader import (
    DEFAULT_DATA_DIR,
    FALLBACK_DATA_DIR,
    add_covering_symbols,
    align_frames,
    covering_symbols,
    find_symbol_file,
    list_symbols,
    load_market,
    load_ohlcv_csv,
    load_panel_csv,
    load_symbol_frame,
    resolve_data_dir,
)
from jaxport.data.market import CLOSE_ONLY, OHLCV_FIELDS, MarketData
from jaxport.data.split import SplitBounds, describe_split, min_rows_for, split_bounds, split_market
from jaxport.data.synth import generate_synthetic_market, planted_predictor, write_synthetic_csvs
from jaxport.errors import DataError

__all__ = [
    "CLOSE_ONLY",
    "DataError",
    "DEFAULT_DATA_DIR",
    "FALLBACK_DATA_DIR",
    "MarketData",
    "OHLCV_FIELDS",
    "SplitBounds",
    "add_covering_symbols",
    "align_frames",
    "covering_symbols",
    "describe_split",
    "find_symbol_file",
    "generate_synthetic_market",
    "list_symbols",
    "load_market",
    "load_ohlcv_csv",
    "load_panel_csv",
    "load_symbol_frame",
    "min_rows_for",
    "planted_predictor",
    "resolve_data_dir",
    "split_bounds",
    "split_market",
    "write_synthetic_csvs",
]
