"""PPO for the universe allocator: the public names of :mod:`jaxport.rl.universe.ppo` under their
historical module path (pipeline configs and callers import them from here)."""

from jaxport.rl.universe.ppo import (
    CRITIC_PARAMS,
    METRIC_KEYS,
    PPO_DYNAMIC_FIELDS,
    UniversePPOConfig,
    actor_params,
    latent_distribution,
    latent_to_exposure,
    ppo_member,
    train_universe_ppo,
)

__all__ = [
    "CRITIC_PARAMS",
    "METRIC_KEYS",
    "PPO_DYNAMIC_FIELDS",
    "UniversePPOConfig",
    "actor_params",
    "latent_distribution",
    "latent_to_exposure",
    "ppo_member",
    "train_universe_ppo",
]
