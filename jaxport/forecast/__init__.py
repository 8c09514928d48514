"""Stages 1-2 of the pipeline: Toto-style forecasters (generic + per-symbol specialists) and the
forecast features fed to the environment.

Public API::

    config, train_config = profile("quick")                      # or ForecasterConfig(...), TrainConfig(...)
    result = train_forecaster(market, bounds, config, train_config, log_fn=log_fn)   # TrainResult
    spec = finetune_specialist(result.params, config, market, bounds, "AAPL")      # SpecialistResult
    save_forecaster(path, params, config, extra=None); params, config, extra = load_forecaster(path)
    fc = Forecaster(config, params); fc.predict(windows); fc.forecast_market(market); Forecaster.load(path)
    values, names = features(fc_or_None, market, targets=..., horizon=8, sequence_length=60, append_stat=False)
    report = evaluate_forecaster(fc, market, bounds)              # JSON-ready dict
"""

from jaxport.forecast.checkpoint import load_forecaster, load_meta, save_forecaster
from jaxport.forecast.config import (
    INPUT_CHANNELS,
    PROFILES,
    TARGET_COLUMNS,
    ForecasterConfig,
    TrainConfig,
    profile,
    specialist_train_config,
)
from jaxport.forecast.evaluate import evaluate_forecaster, format_table
from jaxport.forecast.forecaster import Forecaster, MarketForecast
from jaxport.forecast.model import ForecasterNet, count_params, init_params, predict_distribution
from jaxport.forecast.toto_adapter import TotoAdapter, toto_available
from jaxport.forecast.toto_features import (
    ForecastFeatures,
    compute_features,
    feature_names,
    feature_valid_from,
    features,
    statistical_forecast,
)
from jaxport.forecast.train import (
    SpecialistResult,
    TrainResult,
    finetune_specialist,
    split_windows,
    train_forecaster,
)
from jaxport.forecast.windows import day_channels

__all__ = [
    "INPUT_CHANNELS",
    "PROFILES",
    "TARGET_COLUMNS",
    "ForecastFeatures",
    "Forecaster",
    "ForecasterConfig",
    "ForecasterNet",
    "MarketForecast",
    "SpecialistResult",
    "TotoAdapter",
    "TrainConfig",
    "TrainResult",
    "compute_features",
    "count_params",
    "day_channels",
    "evaluate_forecaster",
    "feature_names",
    "feature_valid_from",
    "features",
    "finetune_specialist",
    "format_table",
    "init_params",
    "load_forecaster",
    "load_meta",
    "predict_distribution",
    "profile",
    "save_forecaster",
    "specialist_train_config",
    "split_windows",
    "statistical_forecast",
    "toto_available",
    "train_forecaster",
]
