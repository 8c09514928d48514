"""PyTorch interop for jaxport: Gymnasium envs with Torch tensors, a differentiable reward, and
export of trained JAX models to plain PyTorch modules.

Importing this package registers the Gymnasium id ``"jaxport/Portfolio-v0"``.
"""

from torch_compat.env import (
    ENV_ID,
    JaxPortfolioGymEnv,
    JaxPortfolioVectorGymEnv,
    TorchPortfolioEnv,
    TorchPortfolioVectorEnv,
    build_jax_env,
    load_csv_arrays,
    make_portfolio_env,
    make_portfolio_vector_env,
    register_envs,
)

from torch_compat.autograd import (
    EpisodeOutput,
    JaxVJPFunction,
    StepOutput,
    TorchEnvState,
    differentiable_episode_reward,
    differentiable_reward,
    differentiable_step,
    state_from_torch,
    state_to_torch,
)

register_envs()

__all__ = [
    "EpisodeOutput",
    "JaxVJPFunction",
    "StepOutput",
    "TorchEnvState",
    "differentiable_episode_reward",
    "differentiable_reward",
    "differentiable_step",
    "state_from_torch",
    "state_to_torch",
    "ENV_ID",
    "JaxPortfolioGymEnv",
    "JaxPortfolioVectorGymEnv",
    "TorchPortfolioEnv",
    "TorchPortfolioVectorEnv",
    "build_jax_env",
    "load_csv_arrays",
    "make_portfolio_env",
    "make_portfolio_vector_env",
    "register_envs",
]
