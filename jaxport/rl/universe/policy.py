"""The universe policy as a codec :class:`~jaxport.rl.codec.Policy` (kind ``"universe"``): the
deterministic act function, the checkpoint tree ``{params, rebalance_rate}`` and the spec
registered in :data:`jaxport.registry.POLICY_KINDS`."""

from __future__ import annotations

import jax
import numpy as np

from jaxport.checkpoint import plain_tree
from jaxport.data import DataError
from jaxport.env import PortfolioEnv
from jaxport.errors import CheckpointError
from jaxport.rl.codec import Policy, PolicySpec, make_policy
from jaxport.rl.universe.config import KIND, UniverseConfig
from jaxport.rl.universe.network import apply_policy, make_network


def _make_act(config: UniverseConfig, env: PortfolioEnv):
    network = make_network(config.static(), env)
    cap = float(config.leverage_cap)

    def act(tree, obs):
        return apply_policy(network, tree["params"], obs, tree["rebalance_rate"], cap)

    return act


def _to_tree(config: UniverseConfig, params, rebalance_rate=None) -> dict:
    rate = config.rebalance_rate if rebalance_rate is None else rebalance_rate
    params = plain_tree(params)
    params = {"params": params["params"]} if "params" in params else {"params": params}
    return {"params": params, "rebalance_rate": np.asarray(rate, np.float32)}


def _check_tree(tree: dict, config) -> dict:
    missing = [k for k in ("params", "rebalance_rate") if k not in tree]
    if missing:
        raise CheckpointError(f"universe policy tree: missing {', '.join(missing)}")
    return tree


def _config_from_dict(d):
    try:
        return UniverseConfig.from_dict(dict(d)).validate()
    except DataError as exc:
        raise CheckpointError(str(exc)) from None


#: The codec spec of kind ``"universe"`` (listed in :data:`jaxport.registry.POLICY_KINDS`).
UNIVERSE_POLICY = PolicySpec(
    kind=KIND,
    config_from_dict=_config_from_dict,
    config_to_dict=lambda c: c.to_dict(),
    make_act=_make_act,
    to_tree=_to_tree,
    check_tree=_check_tree,
    torch_twin="UniverseAllocator",
    description="permutation-equivariant long-only allocator for any basket size",
)


def make_universe_policy(config: UniverseConfig, env: PortfolioEnv, params, rebalance_rate=None):
    """A codec :class:`~jaxport.rl.codec.Policy` of kind ``"universe"`` (works for any N via
    ``policy.with_env(other_env)``)."""
    return make_policy(KIND, config, env, params=params, rebalance_rate=rebalance_rate)


def member_policies(result: dict, config: UniverseConfig, env: PortfolioEnv) -> list[Policy]:
    """Every member's best-checkpoint :class:`Policy` (for the summary's candidate counts)."""
    out = []
    for m, row in enumerate(result["members"]):
        p = jax.tree_util.tree_map(lambda x: x[m], result["params"])
        out.append(make_universe_policy(config, env, p, row["hyperparams"]["rebalance_rate"]))
    return out
