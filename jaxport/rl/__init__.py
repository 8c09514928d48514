"""Reinforcement learning on the portfolio env: PPO (PureJaxRL style) and its actor-critic network.

Only this package's own PPO modules are imported here; other RL modules (e.g. ``jaxport.rl.gradient``)
are imported by their full module path.
"""

from jaxport.rl.networks import (
    ActorCritic,
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
    METRIC_NAMES,
    PPOConfig,
    Transition,
    compute_gae,
    export_policy,
    import_policy,
    load_policy,
    make_network,
    make_policy_apply,
    make_policy_fn,
    make_train,
    metrics_per_update,
    save_policy,
)

__all__ = [
    "ActorCritic",
    "METRIC_NAMES",
    "PPOConfig",
    "RunningMeanStd",
    "Transition",
    "compute_gae",
    "export_policy",
    "gaussian_entropy",
    "gaussian_log_prob",
    "import_policy",
    "load_policy",
    "make_network",
    "make_policy_apply",
    "make_policy_fn",
    "make_train",
    "metrics_per_update",
    "normalize",
    "orthogonal_init",
    "sample_action",
    "save_policy",
    "squash",
    "squash_log_det",
    "squashed_log_prob",
    "update_running_stats",
]
