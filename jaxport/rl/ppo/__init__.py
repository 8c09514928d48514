"""PPO for the portfolio env (PureJaxRL's single-jit ``make_train``, in Brax's module layout).

- :mod:`~jaxport.rl.ppo.config`: :class:`PPOConfig`, every hyperparameter with its unit.
- :mod:`~jaxport.rl.ppo.losses`: pure :func:`compute_gae`, :func:`ppo_loss` (and its
  ``value_and_grad``, :func:`ppo_loss_grad`), :func:`shaped_reward`, :func:`step_transition`.
- :mod:`~jaxport.rl.ppo.train`: :func:`make_train` and :data:`METRIC_KEYS`.
- :mod:`~jaxport.rl.ppo.policy`: the network and the deterministic mean-action policy.

Usage::

    cfg = PPOConfig(num_envs=256, num_steps=64, total_timesteps=2_000_000, leverage_cap=2.0)
    train = make_train(cfg, env, env_params)
    out = train(jax.random.PRNGKey(0))               # or train(key, other_env_params_same_shapes)
    rows = metrics_per_update(out["metrics"])        # list of {name: float}, one per update
    policy_fn = make_policy_fn(out["params"], out["obs_norm"], cfg)   # (key, obs) -> action
"""

from jaxport.rl.metrics import metrics_per_update
from jaxport.rl.ppo.config import PPOConfig
from jaxport.rl.ppo.losses import (
    Transition,
    compute_gae,
    ppo_loss,
    ppo_loss_grad,
    shaped_reward,
    step_transition,
)
from jaxport.rl.ppo.policy import (
    export_policy,
    import_policy,
    make_network,
    make_policy_apply,
    make_policy_fn,
)
from jaxport.rl.ppo.train import METRIC_KEYS, build_train_fn, make_train

__all__ = [
    "METRIC_KEYS",
    "PPOConfig",
    "Transition",
    "build_train_fn",
    "compute_gae",
    "export_policy",
    "import_policy",
    "make_network",
    "make_policy_apply",
    "make_policy_fn",
    "make_train",
    "metrics_per_update",
    "ppo_loss",
    "ppo_loss_grad",
    "shaped_reward",
    "step_transition",
]
