"""Portfolio environment: pure functional, jit/vmap/scan/grad-able multi-asset trading step."""

from jaxport.env.params import EnvParams
from jaxport.env.portfolio_env import RETURN_MODES, REWARD_MODES, PortfolioEnv
from jaxport.env.rollout import (
    RolloutResult,
    Trajectory,
    batch_reset,
    random_policy,
    rollout,
    scan_steps,
)
from jaxport.env.state import EnvState

__all__ = [
    "EnvParams",
    "EnvState",
    "PortfolioEnv",
    "RETURN_MODES",
    "REWARD_MODES",
    "RolloutResult",
    "Trajectory",
    "batch_reset",
    "random_policy",
    "rollout",
    "scan_steps",
]
