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


#: mesh axis the env batch is split over (``jaxport.distributed.ENV_AXIS``)
ENV_AXIS = "envs"


def constrain_batch(tree, batch_dim: int = 0):
    """Split ``batch_dim`` (the env batch) of every array leaf of ``tree`` over the ``"envs"`` axis
    of JAX's context mesh (``jax.set_mesh``, as :func:`jaxport.distributed.compile_sharded` sets);
    identity when no such mesh is set (the single-device path is unchanged). Call inside jit."""
    import jax
    from jax.sharding import PartitionSpec as P

    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or ENV_AXIS not in mesh.axis_names or mesh.shape[ENV_AXIS] == 1:
        return tree

    def one(x):
        if getattr(x, "ndim", 0) <= batch_dim:
            return x
        spec = (None,) * batch_dim + (ENV_AXIS,)
        return jax.lax.with_sharding_constraint(x, P(*spec))

    return jax.tree.map(one, tree)


def select(mask, new, old):
    """``where(mask, new, old)`` with ``mask`` (e.g. ``[B]`` or ``[B, E]``, one flag per env)
    broadcast over the trailing axes of ``new``/``old``."""
    import jax.numpy as jnp

    return jnp.where(mask.reshape(mask.shape + (1,) * (new.ndim - mask.ndim)), new, old)


def config_from_dict(cls, d, **convert):
    """``cls(**d)`` for a config dataclass read back from JSON: unknown keys raise one
    ``DataError`` naming them; ``convert`` maps a field to the function that restores its type
    (e.g. ``hidden_sizes=tuple``) where the key is present."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise DataError(f"{cls.__name__}: unknown field(s) {unknown}")
    d = dict(d)
    for name, fn in convert.items():
        if name in d:
            d[name] = fn(d[name])
    return cls(**d)
