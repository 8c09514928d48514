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

Names are imported lazily (``import jaxport.forecast.config`` stays free of jax).
"""

from __future__ import annotations

from jaxport.lazy_exports import lazy_exports

_LAZY = {
    "CrossFitPlan": "crossfit",
    "CrossFitResult": "crossfit",
    "FitSpec": "crossfit",
    "ForecastFeatures": "toto_features",
    "Forecaster": "forecaster",
    "ForecasterConfig": "config",
    "ForecasterNet": "model",
    "INPUT_CHANNELS": "config",
    "MarketForecast": "forecaster",
    "PROFILES": "config",
    "SpecialistResult": "train",
    "TARGET_COLUMNS": "config",
    "TrainConfig": "config",
    "TrainResult": "train",
    "compute_features": "toto_features",
    "count_params": "model",
    "crossfit_features": "crossfit",
    "day_channels": "windows",
    "evaluate_forecaster": "scoring",
    "feature_names": "toto_features",
    "feature_valid_from": "toto_features",
    "features": "toto_features",
    "finetune_specialist": "train",
    "forecaster_fit_fn": "crossfit",
    "format_table": "scoring",
    "init_params": "model",
    "load_forecaster": "checkpoint",
    "load_meta": "checkpoint",
    "plan_crossfit": "crossfit",
    "predict_distribution": "model",
    "profile": "config",
    "save_forecaster": "checkpoint",
    "specialist_fit_fn": "crossfit",
    "specialist_train_config": "config",
    "split_windows": "train",
    "statistical_forecast": "toto_features",
    "train_forecaster": "train",
    "train_on_windows": "crossfit",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)
