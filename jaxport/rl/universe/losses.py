"""The universe objectives, as pure functions of per-step arrays: the training objective of one
BPTT chunk (:func:`chunk_objective`), the validation numbers checkpoint selection scores
(:func:`validation_stats`) and the mask of the observation entries training noise perturbs.

Per step, not annualised (fractions): ``mean-variance`` = mean log growth - risk_penalty x
var(ret) - turnover_penalty x mean turnover; ``log-growth`` drops the variance term; ``sharpe``
is a per-step (training) or annualised (validation) Sharpe ratio.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxport.env import PortfolioEnv
from jaxport.rl.universe.config import ANCHOR_COLUMNS, UniverseConfig


def validation_stats(
    valid,
    log_growth,
    ret,
    turnover,
    ppy,
    risk_penalty,
    turnover_penalty,
    objective: str = "mean-variance",
):
    """Per-basket validation numbers from per-step arrays ``[..., S]``: ``objective`` (by
    ``objective``: ``mean-variance`` = mean log growth - risk_penalty x var(ret) - turnover_penalty
    x mean turnover, per step; ``log-growth`` = mean log growth - turnover_penalty x mean turnover;
    ``sharpe`` = the annualised Sharpe), ``sharpe`` (annualised with ``ppy``, ddof 1),
    ``log_growth`` and ``turnover`` (per step)."""
    n = jnp.maximum(jnp.sum(valid, -1), 1.0)
    mean_lg = jnp.sum(log_growth, -1) / n
    mean_ret = jnp.sum(ret, -1) / n
    dev2 = valid * (ret - mean_ret[..., None]) ** 2
    var = jnp.sum(dev2, -1) / n
    std1 = jnp.sqrt(jnp.sum(dev2, -1) / jnp.maximum(n - 1.0, 1.0))
    mean_to = jnp.sum(turnover, -1) / n
    # 0 for returns constant to float32 precision (rounding leaves std ~ 1e-7 x |mean|, which
    # would read as a Sharpe of ~1e8)
    flat = std1 <= 1e-5 * jnp.abs(mean_ret) + 1e-12
    sharpe = jnp.where(flat, 0.0, mean_ret / jnp.maximum(std1, 1e-12)) * jnp.sqrt(ppy)
    if objective == "sharpe":
        score = sharpe
    elif objective == "log-growth":
        score = mean_lg - turnover_penalty * mean_to
    else:
        score = mean_lg - risk_penalty * var - turnover_penalty * mean_to
    return dict(objective=score, sharpe=sharpe, log_growth=mean_lg, turnover=mean_to)


def chunk_objective(
    objective: str,
    valid,
    log_growth,
    ret,
    turnover,
    risk_penalty,
    turnover_penalty,
    deviation=None,
    tilt_penalty=0.0,
):
    """The training objective of one BPTT chunk from per-step arrays ``[L, B, E]`` (a scalar to
    ascend, averaged over baskets and envs; per step, not annualised):

    - ``mean-variance``: per env, mean log growth - risk_penalty x var(ret) - turnover_penalty x
      mean turnover;
    - ``log-growth``: per env, mean log growth - turnover_penalty x mean turnover;
    - ``sharpe``: per basket, the Sharpe ``mean(ret) / std(ret)`` of every valid step of its envs
      pooled (a differentiable per-step Sharpe), minus turnover_penalty x mean turnover.

    With ``deviation`` (per step ``sum_i |target_i - untrained target_i|``, the distance to the
    anchor rule, zero where not valid), ``tilt_penalty`` x its mean is subtracted as well, averaged
    like the turnover.
    """
    axes = (0, 2) if objective == "sharpe" else 0  # per basket, or per env
    n = jnp.sum(valid, axes)
    n_safe = jnp.maximum(n, 1.0)
    charge = turnover_penalty * jnp.sum(turnover, axes) / n_safe
    if deviation is not None:
        charge = charge + tilt_penalty * jnp.sum(deviation, axes) / n_safe
    if objective == "sharpe":
        mean = jnp.sum(ret, axes) / n_safe
        var = jnp.sum(valid * (ret - mean[None, :, None]) ** 2, axes) / n_safe
        per = mean / jnp.sqrt(var + 1e-10) - charge
    else:
        mean_lg = jnp.sum(log_growth, 0) / n_safe
        mean_ret = jnp.sum(ret, 0) / n_safe
        var = jnp.sum(valid * (ret - mean_ret) ** 2, 0) / n_safe
        risk = risk_penalty * var if objective == "mean-variance" else 0.0
        per = mean_lg - risk - charge
    has = n > 0
    return jnp.sum(jnp.where(has, per, 0.0)) / jnp.maximum(jnp.sum(has), 1)


def feature_noise_mask(config: UniverseConfig, env: PortfolioEnv) -> jnp.ndarray:
    """``[obs_dim]`` 1 on the observation entries that training noise perturbs: the feature block,
    without the raw anchor columns (the anchor rule reads them exactly)."""
    pos = jnp.arange(env.obs_dim)
    feature = pos % env.num_features
    skip = ANCHOR_COLUMNS if config.anchor != "none" else 0
    mask = (pos < env.window * env.num_assets * env.num_features) & (
        feature < env.num_features - skip
    )
    return mask.astype(jnp.float32)
