"""#16 item 5: the RL stage's compile vs run time, and one compilation per (algo, config, shape)."""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxport.data import split_bounds
from jaxport.data.synth import generate_synthetic_market
from jaxport.features import stat_features
from jaxport.pipeline.basket_stage import PairData, train_gradient
from jaxport.pipeline.config import RLConfig

TINY = RLConfig(
    algo="gradient",
    epochs=2,
    batch_size=4,
    num_steps=8,
    episode_length=16,
    hidden_size=4,
    num_layers=1,
)


def _pair(seed: int) -> PairData:
    market = generate_synthetic_market(2, 300, seed=seed)
    feats, names = stat_features(market.open, market.high, market.low, market.close, market.volume)
    bounds = split_bounds(market, [0.7, 0.15, 0.15])
    return PairData.build(market, np.asarray(feats), names, 60, bounds, TINY)


def test_second_pair_of_same_shape_reuses_the_compiled_trainer():
    import jax

    a, b = _pair(3), _pair(4)  # same shapes, different prices (env params are traced)
    assert not np.array_equal(np.asarray(a.train.prices), np.asarray(b.train.prices))
    # a fresh static config (a hidden size no other test uses) so the first call must compile
    cfg = dataclasses.replace(TINY, hidden_size=5)
    _, _, first = train_gradient(a, cfg, jax.random.PRNGKey(0))
    _, metrics, second = train_gradient(b, cfg, jax.random.PRNGKey(1))
    assert not first["compile_cache_hit"] and first["compile_s"] > 0 and first["run_s"] > 0
    assert second["compile_cache_hit"] and second["compile_s"] == 0.0 and second["run_s"] > 0
    assert all(np.isfinite(np.asarray(v)).all() for v in metrics.values())
