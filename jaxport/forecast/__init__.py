"""Stages 1-2 of the pipeline: our own Toto-style forecasters (generic + per-symbol specialists,
trained from scratch; no pretrained Toto weights are used) and the forecast features fed to the env.

Public API::

    config, train_config = profile("quick")  # the profile `jaxport train` uses; or build your own
    result = train_forecaster(market, bounds, config, train_config, log_fn=log_fn)  # TrainResult
    spec = finetune_specialist(result.params, config, market, bounds, "AAPL")  # SpecialistResult
    save_forecaster(path, params, config, extra=None)
    params, config, extra = load_forecaster(path)
    fc = Forecaster(config, params); fc.predict(windows); fc.forecast_market(market)
    fc = Forecaster.load(path)
    values, names = features(fc_or_None, market, targets=..., horizon=8, sequence_length=60)
    report = evaluate_forecaster(fc, market, bounds)  # JSON-ready dict
    cf = crossfit_features(market, bounds, forecaster_fit_fn(config, train_config))  # OOS features
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
from jaxport.forecast.crossfit import (
    CrossFitPlan,
    CrossFitResult,
    FitSpec,
    crossfit_features,
    forecaster_fit_fn,
    plan_crossfit,
    specialist_fit_fn,
    train_on_windows,
)
from jaxport.forecast.forecaster import Forecaster, MarketForecast
from jaxport.forecast.model import ForecasterNet, count_params, init_params, predict_distribution
from jaxport.forecast.scoring import evaluate_forecaster, format_table
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
    "CrossFitPlan",
    "CrossFitResult",
    "FitSpec",
    "ForecastFeatures",
    "Forecaster",
    "ForecasterConfig",
    "ForecasterNet",
    "MarketForecast",
    "SpecialistResult",
    "TrainConfig",
    "TrainResult",
    "compute_features",
    "count_params",
    "crossfit_features",
    "day_channels",
    "evaluate_forecaster",
    "feature_names",
    "feature_valid_from",
    "features",
    "finetune_specialist",
    "forecaster_fit_fn",
    "format_table",
    "init_params",
    "load_forecaster",
    "load_meta",
    "plan_crossfit",
    "predict_distribution",
    "profile",
    "save_forecaster",
    "specialist_fit_fn",
    "specialist_train_config",
    "split_windows",
    "statistical_forecast",
    "train_forecaster",
    "train_on_windows",
]
