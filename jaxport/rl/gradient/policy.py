"""The gradient trainer's deterministic policy: network construction, init and the policy function.

``make_policy_fn(params, config, env)`` returns a :class:`jax.tree_util.Partial` of an apply
function cached per architecture: the trained arrays are traced leaves, so evaluating many trained
policies of one architecture reuses one compiled evaluator.
"""

from __future__ import annotations

from functools import lru_cache, partial
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxport.env import PortfolioEnv
from jaxport.rl.gradient.config import GradientConfig, split_config
from jaxport.rl.networks import MLPAllocator, module_from_config
from jaxport.rl.transformer import TransformerAllocator


def make_policy_network(config: GradientConfig, env: PortfolioEnv) -> nn.Module:
    """The flax module of ``config.policy`` for ``env`` (maps one obs or a batch to actions)."""
    config.validate()
    if config.policy == "mlp":
        return module_from_config(MLPAllocator, config, num_assets=env.num_assets)
    shapes = dict(num_assets=env.num_assets, num_features=env.num_features, window=env.window)
    return module_from_config(TransformerAllocator, config, **shapes)


def init_policy_params(config: GradientConfig, env: PortfolioEnv, key: jax.Array):
    """Fresh network parameters for ``config.policy`` (jitted: eager flax init is slow on CPU)."""
    return _init_params(split_config(config)[0], env, key)


@partial(jax.jit, static_argnums=(0, 1))
def _init_params(config: GradientConfig, env: PortfolioEnv, key: jax.Array):
    return make_policy_network(config, env).init(key, jnp.zeros((env.obs_dim,), jnp.float32))


@lru_cache(maxsize=64)
def _cached_apply(config: GradientConfig, env: PortfolioEnv) -> Callable:
    network = make_policy_network(config, env)

    def apply(net_params, key, obs):
        del key
        return network.apply(net_params, obs)

    return apply


def make_policy_apply(config: GradientConfig, env: PortfolioEnv) -> Callable:
    """``apply(net_params, key, obs) -> action``, one function object per network architecture.

    Passing it with ``policy_params=net_params`` to ``jaxport.eval.evaluate_policy`` evaluates many
    parameter sets of one architecture with a single compilation.
    """
    return _cached_apply(split_config(config)[0], env)


def make_policy_fn(params, config: GradientConfig, env: PortfolioEnv) -> jax.tree_util.Partial:
    """Deterministic ``policy_fn(key, obs[obs_dim]) -> action[N]`` (key unused) for eval/rollouts.

    A ``jax.tree_util.Partial`` whose leaves are ``params``: jitted evaluators trace them.
    """
    return jax.tree_util.Partial(make_policy_apply(config, env), params)
