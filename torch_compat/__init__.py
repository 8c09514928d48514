"""PyTorch interop for jaxport: Gymnasium envs with Torch tensors, a differentiable reward, and
export of trained JAX models to plain PyTorch modules. Needs the ``torch`` extra
(``pip install "jaxport[torch]"``); the JAX core never imports this package.

* :mod:`torch_compat.env` -- ``TorchPortfolioEnv`` / ``TorchPortfolioVectorEnv``: Gymnasium's
  ``JaxToTorch`` (DLPack) over the JAX-array envs of :mod:`jaxport.env.gym`.
* :mod:`torch_compat.autograd` -- ``differentiable_reward`` / ``differentiable_episode_reward``.
* :mod:`torch_compat.models` -- torch twins of the Flax models (imports torch, not JAX).
* :mod:`torch_compat.export` -- ``export_policy``, ``export_forecaster``, ``export_run``.
* :mod:`torch_compat.torchrl_env` -- ``TorchRLPortfolioEnv`` (TorchRL ``EnvBase``, one JAX step).
* :mod:`torch_compat.serialization` -- ``save_exported`` files: ``.safetensors`` and/or ``.pt``.

Importing this package registers the Gymnasium id ``"jaxport/Portfolio-v0"`` (entry points given as
strings, so nothing heavy is imported until an env is made). Names are loaded lazily:
``import torch_compat.models`` does not import JAX.
"""

from __future__ import annotations

from jaxport.lazy_exports import lazy_exports

ENV_ID = "jaxport/Portfolio-v0"

#: submodule -> the names the package re-exports from it, imported on first use (each submodule's
#: ``__all__`` starts from its entry).
PACKAGE_EXPORTS = {
    "env": (
        "JaxPortfolioGymEnv",
        "JaxPortfolioVectorGymEnv",
        "TorchPortfolioEnv",
        "TorchPortfolioVectorEnv",
        "build_jax_env",
        "load_csv_arrays",
        "make_portfolio_env",
        "make_portfolio_vector_env",
    ),
    "autograd": (
        "EpisodeOutput",
        "JaxVJPFunction",
        "StepOutput",
        "TorchEnvState",
        "differentiable_episode_reward",
        "differentiable_reward",
        "differentiable_step",
        "state_from_torch",
        "state_to_torch",
    ),
    "models": (
        "ActorCritic",
        "MLPAllocator",
        "PatchTransformerForecaster",
        "build_model",
        "load_exported",
    ),
    "torchrl_env": ("TorchRLPortfolioEnv",),
    "serialization": ("EXPORT_FORMATS", "save_safetensors"),
    "export": (
        "export_forecaster",
        "export_policy",
        "export_run",
        "load_policy_checkpoint",
        "save_exported",
    ),
}
_WHERE = {name: module for module, names in PACKAGE_EXPORTS.items() for name in names}


def register_envs() -> None:
    """Register ``jaxport/Portfolio-v0`` with Gymnasium (idempotent; string entry points).

    The passive env checker is off for this id (it expects NumPy observations and would call
    ``np.asarray`` on CUDA tensors); ``gymnasium.utils.env_checker.check_env`` runs in the tests.
    """
    try:
        import gymnasium as gym
    except ImportError:  # pragma: no cover - models-only use without gymnasium
        return
    if ENV_ID in gym.registry:
        return
    gym.register(
        id=ENV_ID,
        entry_point="torch_compat.env:make_portfolio_env",
        vector_entry_point="torch_compat.env:make_portfolio_vector_env",
        disable_env_checker=True,
    )


__getattr__, __dir__, _names = lazy_exports(__name__, _WHERE)


register_envs()

__all__ = ["ENV_ID", "register_envs", *_names]
