"""Reinforcement learning on the portfolio env: PPO and gradient ascent through the env.

Subpackages share one layout (Brax's, with PureJaxRL's single-jit ``make_train``):
``config`` (the hyperparameter dataclass), ``losses`` (pure, testable objective pieces), ``train``
(``make_train(config, env, env_params) -> train(key, env_params=None)`` and ``METRIC_KEYS``) and
``policy`` (the deterministic policy function). Networks live in :mod:`jaxport.rl.networks`.

- :mod:`jaxport.rl.ppo`: PPO with a tanh-squashed Gaussian actor-critic.
- :mod:`jaxport.rl.gradient`: deterministic policies trained by backpropagating through the env.
- :mod:`jaxport.rl.universe`: one permutation-equivariant allocator for any basket size, trained
  on many baskets at once as a population (``train_universe``; PPO: ``universe.ppo``).
- :mod:`jaxport.rl.population`: the one training loop every trainer plugs into (the universe
  trainers as a population of members, the per-pair trainers as one member without validation).

The PPO names are re-exported here unprefixed (``make_train`` is PPO's); the gradient trainer's
as ``GradientConfig``, ``make_gradient_train`` and ``make_gradient_policy_fn``.
"""

from jaxport.rl.gradient import (
    GradientConfig,
    gradient_policy_apply,
    make_gradient_policy_fn,
    make_gradient_train,
)
from jaxport.rl.metrics import metrics_per_update
from jaxport.rl.networks import (
    ActorCritic,
    MLPAllocator,
    gaussian_entropy,
    gaussian_log_prob,
    orthogonal_init,
    sample_action,
    squash,
    squash_log_det,
    squashed_log_prob,
)
from jaxport.rl.normalize import RunningMeanStd, normalize, update_running_stats
from jaxport.rl.ppo import (
    PPOConfig,
    Transition,
    compute_gae,
    export_policy,
    import_policy,
    make_network,
    make_policy_apply,
    make_policy_fn,
    make_train,
    ppo_loss,
    shaped_reward,
)
from jaxport.rl.universe import (
    UniverseAllocator,
    UniverseConfig,
    stack_env_params,
    train_universe,
)

__all__ = [
    "ActorCritic",
    "GradientConfig",
    "MLPAllocator",
    "PPOConfig",
    "RunningMeanStd",
    "Transition",
    "UniverseAllocator",
    "UniverseConfig",
    "compute_gae",
    "export_policy",
    "gaussian_entropy",
    "gaussian_log_prob",
    "gradient_policy_apply",
    "import_policy",
    "make_gradient_policy_fn",
    "make_gradient_train",
    "make_network",
    "make_policy_apply",
    "make_policy_fn",
    "make_train",
    "metrics_per_update",
    "normalize",
    "orthogonal_init",
    "ppo_loss",
    "sample_action",
    "shaped_reward",
    "squash",
    "squash_log_det",
    "squashed_log_prob",
    "stack_env_params",
    "train_universe",
    "update_running_stats",
]
