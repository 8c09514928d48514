"""Differentiable training of deterministic allocators (gradient ascent through the env).

Same layout and builder as :mod:`jaxport.rl.ppo`:

- :mod:`~jaxport.rl.gradient.config`: :class:`GradientConfig`, every field with its unit.
- :mod:`~jaxport.rl.gradient.losses`: the objective (:func:`chunk_objective`).
- :mod:`~jaxport.rl.gradient.train`: :func:`make_train` and :data:`METRIC_KEYS`.
- :mod:`~jaxport.rl.gradient.policy`: the network (``networks.MLPAllocator`` or the transformer)
  and the deterministic policy function.

``make_gradient_train``, ``make_gradient_policy_fn`` and ``gradient_policy_apply`` are the same
functions under the names :mod:`jaxport.rl` re-exports (its unprefixed ``make_train`` is PPO's).
"""

from jaxport.rl.gradient.config import DYNAMIC_FIELDS, POLICIES, GradientConfig, split_config
from jaxport.rl.gradient.losses import (
    chunk_objective,
    make_objective_fn,
    reset_envs,
    training_params,
)
from jaxport.rl.gradient.policy import (
    init_policy_params,
    make_policy_apply,
    make_policy_fn,
    make_policy_network,
)
from jaxport.rl.gradient.train import METRIC_KEYS, make_train
from jaxport.rl.metrics import metrics_per_update
from jaxport.rl.networks import MLPAllocator

make_gradient_train = make_train
make_gradient_policy_fn = make_policy_fn
gradient_policy_apply = make_policy_apply

__all__ = [
    "DYNAMIC_FIELDS",
    "METRIC_KEYS",
    "MLPAllocator",
    "POLICIES",
    "GradientConfig",
    "chunk_objective",
    "gradient_policy_apply",
    "init_policy_params",
    "make_gradient_policy_fn",
    "make_gradient_train",
    "make_objective_fn",
    "make_policy_apply",
    "make_policy_fn",
    "make_policy_network",
    "make_train",
    "metrics_per_update",
    "reset_envs",
    "split_config",
    "training_params",
]
