"""Hyperparameters of differentiable training (CleanRL style: every field documented with its unit).

Names shared with :class:`jaxport.rl.ppo.PPOConfig` mean the same thing (``num_envs``,
``hidden_sizes``, ``lr``, ``anneal_lr``, ``max_grad_norm``, ``leverage_cap``, ``risk_penalty``,
``turnover_penalty``). ``lr``, ``weight_decay``, ``max_grad_norm``, ``risk_penalty`` and
``turnover_penalty`` are traced in the compiled program (configs differing only in them share it);
every other field is static.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxport.data import DataError
from jaxport.rl.common import config_from_dict

POLICIES = ("mlp", "transformer")


@dataclasses.dataclass(frozen=True)
class GradientConfig:
    """Static configuration of differentiable training (hashable)."""

    # --- network and policy
    policy: str = "mlp"  # "mlp" (networks.MLPAllocator) | "transformer" (TransformerAllocator)
    hidden_sizes: tuple[int, ...] = (64, 64)  # MLP hidden widths
    hidden_size: int = 32  # transformer width (--rl-hidden-size)
    num_layers: int = 2  # transformer blocks (--rl-num-layers)
    num_heads: int = 4  # attention heads (--rl-num-heads)
    leverage_cap: float = 2.0  # output scale: action = leverage_cap * tanh(.) (x equity per asset)
    output_init_scale: float = 0.01  # std scale of the output layer: the untrained policy is ~flat
    observe_equity: bool = False  # feed E/E0 - 1 (the last obs entry) to the network
    # --- rollout
    num_envs: int = 64  # parallel envs (episodes start on random days)
    bptt_length: int = 32  # env steps (days) per update: truncated-BPTT chunk length
    episode_length: int = 128  # env steps (days) per training episode
    num_updates: int = 500  # Adam steps over the run
    # --- optimisation
    lr: float = 1e-3  # AdamW learning rate (per update)
    anneal_lr: bool = True  # cosine decay of lr to 0 over num_updates
    weight_decay: float = 0.0  # AdamW decoupled weight decay (0: plain Adam)
    max_grad_norm: float = 1.0  # global-norm gradient clip (dimensionless)
    # --- objective (see gradient.losses.chunk_objective)
    risk_penalty: float = 0.0  # x per-step return variance (fraction^2), >= 0
    turnover_penalty: float = 0.0  # x mean per-step turnover sum|dw| (fraction of equity), >= 0

    def __post_init__(self):
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))

    def validate(self) -> "GradientConfig":
        """Raise ``DataError`` naming the field on an invalid value; return ``self``."""
        if self.policy not in POLICIES:
            raise DataError(f"GradientConfig.policy must be one of {POLICIES}, got {self.policy!r}")
        ints = (
            "num_envs",
            "bptt_length",
            "episode_length",
            "num_updates",
            "hidden_size",
            "num_heads",
        )
        for name in ints:
            if int(getattr(self, name)) < 1:
                raise DataError(f"GradientConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_layers < 0:
            raise DataError(f"GradientConfig.num_layers must be >= 0, got {self.num_layers}")
        if not all(int(h) >= 1 for h in self.hidden_sizes):
            raise DataError(
                f"GradientConfig.hidden_sizes must be positive, got {self.hidden_sizes}"
            )
        if self.policy == "transformer" and self.hidden_size % self.num_heads:
            raise DataError(
                f"GradientConfig.hidden_size={self.hidden_size} must be divisible by "
                f"num_heads={self.num_heads}"
            )
        for name in ("lr", "max_grad_norm", "leverage_cap"):
            if not getattr(self, name) > 0:
                raise DataError(f"GradientConfig.{name} must be > 0, got {getattr(self, name)}")
        for name in ("risk_penalty", "turnover_penalty", "weight_decay"):
            if not getattr(self, name) >= 0:
                raise DataError(f"GradientConfig.{name} must be >= 0, got {getattr(self, name)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        d = dataclasses.asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GradientConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``DataError``."""
        return config_from_dict(cls, d, hidden_sizes=tuple)


#: Numeric hyperparameters that travel as traced arrays: configs differing only in these share code.
DYNAMIC_FIELDS = ("lr", "weight_decay", "max_grad_norm", "risk_penalty", "turnover_penalty")


def split_config(config: GradientConfig) -> tuple[GradientConfig, dict[str, Any]]:
    """``(static config with DYNAMIC_FIELDS at fixed placeholders, {field: float32 array})``."""
    import jax.numpy as jnp

    static = dataclasses.replace(
        config, lr=1.0, weight_decay=0.0, max_grad_norm=1.0, risk_penalty=0.0, turnover_penalty=0.0
    )
    dynamic = {k: jnp.asarray(getattr(config, k), jnp.float32) for k in DYNAMIC_FIELDS}
    return static, dynamic
