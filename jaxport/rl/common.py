"""Checks shared by the RL trainers."""

from __future__ import annotations

from jaxport.data import DataError
from jaxport.env import EnvParams, PortfolioEnv


def check_env_params(env: PortfolioEnv, env_params: EnvParams) -> None:
    """One-line ``DataError`` unless ``env_params`` has ``env``'s asset and feature counts."""
    n, f = env_params.prices.shape[-1], env_params.features.shape[-1]
    if n != env.num_assets or f != env.num_features:
        raise DataError(
            f"env_params shapes {env_params.prices.shape}/{env_params.features.shape} do not match "
            f"env (num_assets={env.num_assets}, num_features={env.num_features})"
        )
