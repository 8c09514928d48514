"""PPO hyperparameters (CleanRL style: one frozen dataclass, every field documented with its unit).

The config is static: it is hashed into the compiled program (changing any field recompiles), while
the market data (``EnvParams``) is a traced argument of ``train``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from jaxport.data import DataError
from jaxport.rl.common import config_from_dict
from jaxport.rl.networks import ACTIVATIONS


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Static PPO hyperparameters (hashable; every field changes the compiled program)."""

    # --- rollout
    num_envs: int = 64  # parallel envs (vmapped); the batch axis of every rollout
    num_steps: int = 128  # env steps per env per rollout (one update = one rollout)
    total_timesteps: int = 1_000_000  # env steps over all envs; num_updates = total // (envs*steps)
    # --- optimisation
    update_epochs: int = 4  # passes over each rollout's batch
    num_minibatches: int = 4  # Adam steps per epoch; must divide num_envs * num_steps
    lr: float = 3e-4  # Adam learning rate (per Adam step)
    anneal_lr: bool = True  # decay lr linearly to 0 over the run (per update)
    max_grad_norm: float = 0.5  # global-norm gradient clip (dimensionless)
    # --- advantage and loss
    gamma: float = 0.99  # discount per env step, in [0, 1]
    gae_lambda: float = 0.95  # GAE lambda, in [0, 1]
    clip_eps: float = 0.2  # policy-ratio clip: ratio kept in [1 - clip_eps, 1 + clip_eps]
    vf_clip: float = 0.2  # value clip around the rollout's value (reward units); <= 0 disables
    vf_coef: float = 0.5  # weight of the value loss in the total loss
    ent_coef: float = 0.0  # weight of the entropy bonus (nats) in the total loss
    normalize_advantages: bool = True  # standardise advantages per minibatch
    bootstrap_truncation: bool = True  # bootstrap V(final obs) at truncation (else: as terminal)
    # --- objective (the same one the gradient trainer ascends; see ppo.losses.shaped_reward)
    risk_penalty: float = 0.0  # x squared per-step simple return (fraction^2), >= 0
    turnover_penalty: float = 0.0  # x per-step turnover sum|dw| (fraction of equity), >= 0
    reward_scale: float = 1.0  # learning rewards are multiplied by this (metrics stay unscaled)
    # --- network and policy
    hidden_sizes: tuple[int, ...] = (64, 64)  # widths of the actor and critic hidden layers
    activation: str = "tanh"  # hidden activation: tanh | relu | gelu | silu | elu
    init_log_std: float = 0.0  # initial log std of the pre-squash Gaussian (nats)
    leverage_cap: float = 2.0  # per-asset action bound: action = leverage_cap * tanh(u) (x equity)
    # --- observations
    normalize_obs: bool = True  # running mean/var normalisation of observations
    obs_clip: float = 10.0  # normalised observations are clipped to [-obs_clip, obs_clip] (std)
    # --- logging
    debug_callback: bool | Callable[[dict], None] = False  # True: print per update; or callable

    def __post_init__(self):
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))

    @property
    def batch_size(self) -> int:
        """Env steps per rollout (``num_envs * num_steps``)."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.batch_size

    def validate(self) -> "PPOConfig":
        """Raise :class:`jaxport.data.DataError` naming the bad field; return ``self``."""
        for name in ("num_envs", "num_steps", "update_epochs", "num_minibatches"):
            if int(getattr(self, name)) < 1:
                raise DataError(f"PPOConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size % self.num_minibatches:
            raise DataError(
                f"PPOConfig.num_minibatches={self.num_minibatches} must divide "
                f"num_envs*num_steps={self.batch_size}"
            )
        if self.num_updates < 1:
            raise DataError(
                f"PPOConfig.total_timesteps={self.total_timesteps} is below one rollout "
                f"(num_envs*num_steps={self.batch_size})"
            )
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise DataError(f"PPOConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("clip_eps", "lr", "max_grad_norm", "leverage_cap", "obs_clip"):
            if not getattr(self, name) > 0:
                raise DataError(f"PPOConfig.{name} must be > 0, got {getattr(self, name)}")
        for name in ("risk_penalty", "turnover_penalty"):
            if not getattr(self, name) >= 0:
                raise DataError(f"PPOConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise DataError(
                f"PPOConfig.hidden_sizes must be non-empty positive widths, got {self.hidden_sizes}"
            )
        if self.activation not in ACTIVATIONS:
            raise DataError(
                f"PPOConfig.activation must be one of {sorted(ACTIVATIONS)}, "
                f"got {self.activation!r}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (``debug_callback`` is dropped)."""
        d = dataclasses.asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        d.pop("debug_callback")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PPOConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``DataError``.

        The legacy key ``hidden`` (checkpoints from before the rename) is read as ``hidden_sizes``.
        """
        d = dict(d)
        if "hidden" in d:
            legacy = d.pop("hidden")
            d.setdefault("hidden_sizes", legacy)
        return config_from_dict(cls, d, hidden_sizes=tuple)
