"""The universe allocator: ONE symbol-agnostic, permutation-equivariant policy for any basket
size N, trained by gradient ascent through the env on many baskets at once, as a population of
seeds x hyperparameters in one jitted program, with checkpoint selection on validation inside the
jit.

Network (:class:`UniverseAllocator`). The env observation is ``concat(features[t-K+1..t].ravel()
([K, N, F] row-major), w [N], cash, gross, E/E0 - 1)``. Per asset ``x_i = concat(features[:, i,
:].ravel(), w_i)`` goes through a shared MLP encoder ``e_i``; the pooled context is ``c =
concat(mean_i e_i, cash, gross[, E/E0 - 1])``; a per-asset head on ``[e_i, c]`` gives the score
``s_i``, a global head on ``c`` the gross logit ``g`` (and, with ``critic=True``, a value head on
``c`` the state value for PPO). Assets only meet through the mean, so permuting the assets of the
observation permutes the output, and the same parameters serve every N.

Action ("target weights", long-only): ``target = gross * softmax(s)`` with ``gross = leverage_cap *
sigmoid(g)`` (multiples of equity). The output layers start at ``s = 0`` and ``gross = init_gross``
(default 1.0): the untrained policy IS the 1/N portfolio. Partial rebalancing: ``executed = w_old +
rate * (target - w_old)`` (``rate`` in (0, 1]; ``w_old`` = the drifted weights in the observation;
a flat book (fresh episode) goes straight to the target).

Layout (Brax's ``training/agents``): :mod:`~jaxport.rl.universe.config`,
:mod:`~jaxport.rl.universe.network`, :mod:`~jaxport.rl.universe.losses`,
:mod:`~jaxport.rl.universe.baskets` (the env batch over baskets and the validation episode),
:mod:`~jaxport.rl.universe.train` (the gradient trainer), :mod:`~jaxport.rl.universe.ppo` (PPO),
:mod:`~jaxport.rl.universe.policy` (the codec), :mod:`~jaxport.rl.universe.shrink` (the tilt
scale chosen on validation); both trainers plug into
:mod:`jaxport.rl.population` (members, validation, keep-best, device sharding).

Training (:func:`train_universe`): env params stacked over baskets (``[B, ...]``, all baskets with
the same N and shapes, see :func:`stack_env_params`), envs arranged ``[B, num_envs]`` and stepped
with a nested vmap (outer over baskets with params ``in_axes=0``, inner over envs with params
``None``, so market arrays are never copied per env). The objective is the gradient trainer's (per
step: mean log growth - risk_penalty x return variance - turnover_penalty x turnover; see
:mod:`jaxport.rl.gradient.losses`) averaged over every env of every basket. Members = the cartesian
``grid`` of hyperparameters x ``num_seeds`` seeds, vmapped (hyperparameters are traced arrays).
Every ``eval_every`` updates (and at update 0, the 1/N start) each member is evaluated
deterministically on the validation episode of every basket and its best parameters by the
validation objective are kept.
"""

from jaxport.rl.population import population_result, progress_hook
from jaxport.rl.universe.baskets import (
    basket,
    nested_step,
    stack_env_params,
    validation_steps,
)
from jaxport.rl.universe.config import (
    ANCHOR_COLUMNS,
    ANCHORS,
    DYNAMIC_FIELDS,
    KIND,
    OBJECTIVES,
    UniverseConfig,
)
from jaxport.rl.universe.losses import chunk_objective, feature_noise_mask, validation_stats
from jaxport.rl.universe.network import (
    UniverseAllocator,
    apply_policy,
    init_params,
    make_network,
    num_assets_from_obs,
    rebalance,
    split_obs,
    target_weights,
)
from jaxport.rl.universe.policy import UNIVERSE_POLICY, make_universe_policy, member_policies
from jaxport.rl.universe.shrink import choose_tilt_scale, scale_tilt, with_tilt_scale
from jaxport.rl.universe.train import METRIC_KEYS, population_inputs, train_universe

__all__ = [
    "DYNAMIC_FIELDS",
    "KIND",
    "METRIC_KEYS",
    "UNIVERSE_POLICY",
    "UniverseAllocator",
    "UniverseConfig",
    "ANCHORS",
    "ANCHOR_COLUMNS",
    "OBJECTIVES",
    "apply_policy",
    "basket",
    "choose_tilt_scale",
    "chunk_objective",
    "feature_noise_mask",
    "init_params",
    "make_network",
    "make_universe_policy",
    "member_policies",
    "nested_step",
    "num_assets_from_obs",
    "population_inputs",
    "population_result",
    "progress_hook",
    "rebalance",
    "scale_tilt",
    "split_obs",
    "stack_env_params",
    "target_weights",
    "train_universe",
    "validation_stats",
    "validation_steps",
    "with_tilt_scale",
]
