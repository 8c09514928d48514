"""The policy kinds of the pair-scope trainers as codec specs: ``ppo`` (actor-critic with its
observation normaliser), ``gradient_mlp`` and ``gradient_transformer``. Listed in
:data:`jaxport.registry.POLICY_KINDS`; importing this module registers nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxport.checkpoint import plain_tree
from jaxport.env import PortfolioEnv
from jaxport.errors import CheckpointError
from jaxport.rl.codec import ActFn, PolicySpec
from jaxport.rl.gradient.config import GradientConfig
from jaxport.rl.gradient.policy import make_policy_apply as gradient_policy_apply
from jaxport.rl.normalize import RunningMeanStd
from jaxport.rl.ppo.config import PPOConfig
from jaxport.rl.ppo.policy import make_policy_apply


def _require(tree: Mapping, keys: tuple[str, ...], kind: str) -> None:
    missing = [k for k in keys if k not in tree]
    if missing:
        raise CheckpointError(
            f"{kind} policy tree: missing {', '.join(missing)} (has {', '.join(sorted(tree))})"
        )


def _ppo_config_from_dict(d: Mapping[str, Any]):
    return PPOConfig.from_dict(dict(d))


def _ppo_to_tree(config, params, obs_norm=None) -> dict:
    params = plain_tree(params)
    if obs_norm is None:
        dim = int(np.shape(params["params"]["Dense_0"]["kernel"])[0])
        mean, var, count = np.zeros(dim, np.float32), np.ones(dim, np.float32), np.float32(1e-4)
    else:
        get = (
            (lambda k: obs_norm[k])
            if isinstance(obs_norm, Mapping)
            else (lambda k: getattr(obs_norm, k))
        )
        mean, var, count = get("mean"), get("var"), get("count")
    return {
        "params": params,
        "obs_norm": {"mean": mean, "var": var, "count": np.asarray(count, np.float32)},
    }


def _ppo_check_tree(tree: dict, config) -> dict:
    _require(tree, ("params", "obs_norm"), "ppo")
    _require(tree["obs_norm"], ("mean", "var", "count"), "ppo obs_norm")
    return tree


def _ppo_make_act(config, env: PortfolioEnv) -> ActFn:
    apply = make_policy_apply(config, env.num_assets)

    def act(tree, obs):
        on = tree["obs_norm"]
        stats = RunningMeanStd(mean=on["mean"], var=on["var"], count=on["count"])
        return apply(tree["params"], stats, None, obs, True)

    return act


def _config_to_dict(config) -> dict:
    return dict(config.to_dict()) if hasattr(config, "to_dict") else dataclasses.asdict(config)


def _gradient_config_from_dict(d: Mapping[str, Any]):
    names = {f.name for f in dataclasses.fields(GradientConfig)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise CheckpointError(f"GradientConfig: unknown field(s) {unknown}")
    return GradientConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    ).validate()


def _gradient_check_tree(tree: dict, config) -> dict:
    _require(tree, ("params",), f"gradient_{config.policy}")
    return tree


def _gradient_make_act(config, env: PortfolioEnv) -> ActFn:
    apply = gradient_policy_apply(config, env)

    def act(tree, obs):
        return apply(tree["params"], None, obs)

    return act


def _gradient_spec(policy: str, twin: str | None) -> PolicySpec:
    kind = f"gradient_{policy}"

    def from_dict(d):
        cfg = _gradient_config_from_dict(d)
        if cfg.policy != policy:
            raise CheckpointError(f"{kind} policy: config.policy is {cfg.policy!r}")
        return cfg

    return PolicySpec(
        kind=kind,
        config_from_dict=from_dict,
        config_to_dict=_config_to_dict,
        make_act=_gradient_make_act,
        check_tree=_gradient_check_tree,
        torch_twin=twin,
        description=f"deterministic {policy} allocator trained by gradient ascent through the env",
    )


PPO_POLICY = PolicySpec(
    kind="ppo",
    config_from_dict=_ppo_config_from_dict,
    config_to_dict=_config_to_dict,
    make_act=_ppo_make_act,
    to_tree=_ppo_to_tree,
    check_tree=_ppo_check_tree,
    torch_twin="ActorCritic",
    description="PPO actor-critic acting at its Gaussian's squashed mean (params, obs_norm)",
)
GRADIENT_MLP_POLICY = _gradient_spec("mlp", "MLPAllocator")
GRADIENT_TRANSFORMER_POLICY = _gradient_spec("transformer", None)


__all__ = ["GRADIENT_MLP_POLICY", "GRADIENT_TRANSFORMER_POLICY", "PPO_POLICY"]
