"""PPO for the universe allocator: the permutation-equivariant policy of
:mod:`jaxport.rl.universe.network` trained by clipped PPO on many baskets at once, as a population of
seeds x hyperparameters in ONE jitted program, with checkpoint selection on validation inside
the jit. :func:`train_universe_ppo` returns what :func:`~jaxport.rl.universe.train_universe`
returns, so the pipeline can swap the two trainers.

Policy. :class:`~jaxport.rl.universe.UniverseAllocator` with ``critic=True`` gives per-asset
scores ``s [N]``, the gross logit ``g``, a state value and a ``log_std [2]`` parameter. The
stochastic policy is a diagonal Gaussian in the LATENT space ``z = (s_1..s_N, g)`` (``N + 1``
dims): ``z ~ N((s, g), diag(std_s^2 x N, std_g^2))`` with ``(log std_s, log std_g) = log_std``
(one std shared by every score, one for the gross logit). The env receives ``rebalance(
target_weights(z), w_old, rebalance_rate)`` (long-only target weights, partial rebalancing); the
log-probability, ratio, KL and entropy are those of the latent Gaussian (the map to weights does
not depend on the parameters, so its Jacobian cancels in the ratio). Deterministic evaluation is
at the latent mean, i.e. :func:`~jaxport.rl.universe.apply_policy`; the untrained policy is 1/N at
gross ``init_gross`` (the network's zero-initialised output layers), exactly as for the gradient
trainer.

Reward (:func:`jaxport.rl.ppo.losses.shaped_reward`, the per-pair PPO's shaping): ``r~_t = r_t -
risk_penalty (ret_t - mean_rollout ret)^2 - turnover_penalty turnover_t`` with ``r_t`` the
per-step log growth net of costs, ``ret_t`` the simple per-step portfolio return and ``turnover_t
= sum|dw|`` (fractions); learning uses ``reward_scale x r~``. So PPO and the gradient trainer
optimise the same per-step objective.

One update: ``num_steps`` steps of ``num_envs`` envs in every basket (nested vmap: baskets x
envs, auto-reset, truncation bootstrapped with ``V(final obs)``), GAE, then ``update_epochs`` x
``num_minibatches`` AdamW steps of :func:`jaxport.rl.ppo.losses.ppo_loss` over the shuffled
``num_steps x B x num_envs`` transitions (no value clipping; advantages standardised per
minibatch). Members (``grid`` x ``num_seeds``), checkpoint selection every ``eval_every``
updates on the validation episode of every basket and the returned dict: as ``train_universe``.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from jaxport.data import DataError
from jaxport.env import EnvParams, PortfolioEnv
from jaxport.rl.networks import gaussian_log_prob
from jaxport.rl.optim import adamw_with_clip
from jaxport.rl.population import MemberAlgorithm
from jaxport.rl.ppo.losses import ppo_loss_grad, shaped_reward, step_transition
from jaxport.rl.ppo.rollout import explained_variance, ppo_update
from jaxport.rl.universe.baskets import nested_autoreset_step, reset_baskets, training_params
from jaxport.rl.universe.config import DYNAMIC_FIELDS, UniverseConfig
from jaxport.rl.universe.losses import feature_noise_mask
from jaxport.rl.universe.network import make_network, rebalance, split_obs, target_weights
from jaxport.rl.universe.train import best_member_policy, make_validator, run_population

#: Hyperparameters that travel as traced arrays (the population axis): the universe trainer's
#: plus PPO's.
PPO_DYNAMIC_FIELDS = DYNAMIC_FIELDS + (
    "clip_eps",
    "ent_coef",
    "vf_coef",
    "gamma",
    "gae_lambda",
    "init_log_std",
    "reward_scale",
)

#: Critic-only entries of the parameter tree (dropped from the returned deterministic policy).
CRITIC_PARAMS = ("value_0", "value_out", "log_std")

METRIC_KEYS = (
    "objective",  # mean per-step shaped reward r~ of the rollout (unscaled)
    "mean_log_growth",  # mean per-step log growth net of costs (rollout)
    "turnover",  # mean per-step turnover sum|dw| (fraction of equity, rollout)
    "mean_leverage",  # mean gross exposure (multiples of equity, rollout)
    "policy_loss",  # clipped surrogate loss (mean over epochs x minibatches)
    "value_loss",  # 0.5 x squared value error (scaled reward units)
    "entropy",  # latent Gaussian entropy (nats, N + 1 dims)
    "approx_kl",  # mean of (ratio - 1) - log ratio
    "clip_fraction",  # fraction of samples with |ratio - 1| > clip_eps
    "explained_variance",  # 1 - Var(targets - values) / Var(targets) of the rollout
    "grad_norm",  # global gradient norm before clipping (mean over minibatches)
    "action_std",  # mean of (std_scores, std_gross) after the update (latent units)
    "action_std_scores",  # latent std of every score after the update
    "action_std_gross",  # latent std of the gross logit after the update
)


# ----------------------------------------------------------------------------------------- config
@dataclasses.dataclass(frozen=True)
class UniversePPOConfig(UniverseConfig):
    """:class:`~jaxport.rl.universe.UniverseConfig` (network, rollout, objective, regularisation,
    population and selection fields, same meanings) plus PPO's fields (hashable).

    Differences from the gradient trainer: ``bptt_length`` is unused (the rollout length is
    ``num_steps``); ``lr`` is per AdamW step (``update_epochs x num_minibatches`` steps per
    update) and ``anneal_lr`` decays it linearly to 0 over the run; ``init_gross`` and the zero
    output layers still make the untrained policy 1/N. Fields in :data:`PPO_DYNAMIC_FIELDS` are
    traced (``grid`` may vary any of them).
    """

    # --- optimisation (overridden defaults; traced)
    lr: float = 1e-3  # AdamW learning rate per minibatch step
    max_grad_norm: float = 0.5  # global-norm gradient clip
    weight_decay: float = 0.0  # AdamW decoupled weight decay (never applied to log_std)
    num_updates: int = 100  # PPO updates (rollout + epochs) per member
    eval_every: int = 10  # updates between validation evaluations (must divide num_updates)
    # --- PPO rollout and update (static)
    num_steps: int = 32  # env steps per env per rollout (one update = one rollout)
    update_epochs: int = 4  # passes over each rollout
    num_minibatches: int = 4  # AdamW steps per epoch; must divide num_steps * num_envs
    # --- PPO loss and returns (traced)
    clip_eps: float = 0.2  # ratio kept in [1 - clip_eps, 1 + clip_eps]
    ent_coef: float = 0.0  # weight of the latent entropy bonus (nats)
    vf_coef: float = 0.5  # weight of the value loss (critic shares the per-asset encoder)
    gamma: float = 0.9  # discount per env step (day); low: the action mostly moves r_t
    gae_lambda: float = 0.9  # GAE lambda
    init_log_std: float = -0.5  # initial latent log std of scores and gross logit (nats)
    reward_scale: float = 100.0  # learning rewards = reward_scale x r~ (metrics unscaled)

    def validate(self) -> "UniversePPOConfig":
        """Raise ``DataError`` naming the field on an invalid value; return ``self``."""
        for name, _ in self.grid:
            if name not in PPO_DYNAMIC_FIELDS:
                raise DataError(
                    f"UniversePPOConfig.grid: {name!r} is not one of {PPO_DYNAMIC_FIELDS}"
                )
        base_grid = tuple((k, v) for k, v in self.grid if k in DYNAMIC_FIELDS)
        try:
            dataclasses.replace(self.universe_config(), grid=base_grid).validate()
        except DataError as exc:
            raise DataError(str(exc).replace("UniverseConfig", "UniversePPOConfig")) from None
        if any(hp["tilt_penalty"] for hp in self.members_hparams()):
            raise DataError(
                "UniversePPOConfig.tilt_penalty: the gradient trainer's regulariser; PPO's reward "
                "does not use it (set 0)"
            )
        for name in ("num_steps", "update_epochs", "num_minibatches"):
            if int(getattr(self, name)) < 1:
                raise DataError(f"UniversePPOConfig.{name} must be >= 1, got {getattr(self, name)}")
        if (self.num_steps * self.num_envs) % self.num_minibatches:
            raise DataError(
                f"UniversePPOConfig.num_minibatches={self.num_minibatches} must divide "
                f"num_steps*num_envs={self.num_steps * self.num_envs}"
            )
        for hp in self.members_hparams():
            for name in ("clip_eps", "reward_scale"):
                if not hp[name] > 0:
                    raise DataError(f"UniversePPOConfig.{name} must be > 0, got {hp[name]}")
            for name in ("ent_coef", "vf_coef"):
                if not hp[name] >= 0:
                    raise DataError(f"UniversePPOConfig.{name} must be >= 0, got {hp[name]}")
            for name in ("gamma", "gae_lambda"):
                if not 0.0 <= hp[name] <= 1.0:
                    raise DataError(f"UniversePPOConfig.{name} must be in [0, 1], got {hp[name]}")
            if not -10.0 <= hp["init_log_std"] <= 2.0:
                raise DataError(
                    f"UniversePPOConfig.init_log_std must be in [-10, 2], got {hp['init_log_std']}"
                )
        return self

    def members_hparams(self, fields=PPO_DYNAMIC_FIELDS) -> list[dict[str, float]]:
        """The grid's hyperparameter combinations over :data:`PPO_DYNAMIC_FIELDS`."""
        return super().members_hparams(fields)

    def static(self) -> "UniversePPOConfig":
        """The compile-time part: traced fields, population and selection at placeholders."""
        ones = ("lr", "max_grad_norm", "rebalance_rate", "clip_eps", "reward_scale")
        return dataclasses.replace(
            self,
            **{k: 1.0 if k in ones else 0.0 for k in PPO_DYNAMIC_FIELDS},
            num_seeds=1,
            grid=(),
            select_risk_penalty=0.0,
            select_turnover_penalty=0.0,
        )

    def universe_config(self, **overrides) -> UniverseConfig:
        """The shared fields as a plain :class:`UniverseConfig` (what a ``"universe"`` policy
        checkpoint stores); the grid keeps only its :data:`DYNAMIC_FIELDS` entries."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(UniverseConfig)}
        d["grid"] = tuple((k, v) for k, v in self.grid if k in DYNAMIC_FIELDS)
        d.update(overrides)
        return UniverseConfig(**d)


# ----------------------------------------------------------------------------------------- policy
def latent_distribution(network, params, obs):
    """``(mean [..., N+1], log_std [N+1], value [...])`` of the latent Gaussian policy: mean =
    ``(scores, gross_logit)``, log std ``log_std[0]`` for every score and ``log_std[1]`` for the
    gross logit."""
    scores, g, value = network.apply(params, obs)
    mean = jnp.concatenate([scores, g[..., None]], axis=-1)
    ls = params["params"]["log_std"]
    log_std = jnp.concatenate([jnp.full(scores.shape[-1:], ls[0]), ls[1:2]])
    return mean, log_std, value


def latent_to_exposure(z, w_old, rate, leverage_cap):
    """Executed exposures ``[..., N]`` of latent ``z = (scores, gross_logit)`` ``[..., N+1]``:
    ``rebalance(target_weights(z[:N], z[N]), w_old, rate)``."""
    target = target_weights(z[..., :-1], z[..., -1], leverage_cap)
    return rebalance(target, w_old, rate)


def actor_params(params):
    """``params`` without the critic entries :data:`CRITIC_PARAMS` (a deterministic
    ``"universe"`` policy's tree; works on member-stacked trees too)."""
    inner = params["params"] if "params" in params else params
    return {"params": {k: v for k, v in inner.items() if k not in CRITIC_PARAMS}}


# ----------------------------------------------------------------------------------------- training
def _make_optimizer(config, hp):
    total = config.num_updates * config.update_epochs * config.num_minibatches
    if config.anneal_lr:

        def lr(count):
            return hp["lr"] * (1.0 - jnp.minimum(count / total, 1.0))

    else:
        lr = hp["lr"]

    def decay_mask(params):  # never decay log_std
        return jax.tree_util.tree_map_with_path(
            lambda path, _: not any(getattr(p, "key", None) == "log_std" for p in path), params
        )

    return adamw_with_clip(hp, lr, eps=1e-5, mask=decay_mask)


def ppo_member(config, env, val_steps, train_params, val_params, sel, hp) -> MemberAlgorithm:
    """Universe PPO as a :class:`~jaxport.rl.population.MemberAlgorithm`: state ``(net_params,
    opt_state, obs, env_state)``; one update = one rollout + :func:`~jaxport.rl.ppo.rollout.
    ppo_update` (module docstring)."""
    network = make_network(config, env, critic=True)
    params = training_params(config.episode_length, train_params)
    tx = _make_optimizer(config, hp)
    dist = partial(latent_distribution, network)
    traced = {k: hp[k] for k in ("clip_eps", "vf_coef", "ent_coef")}
    grad_fn = ppo_loss_grad(dist, vf_clip=0.0, normalize_advantages=True, **traced)
    env_step = partial(_env_step, config, env, dist, params, feature_noise_mask(config, env), hp)

    def init(k_init, k_reset):
        net_params = network.init(k_init, jnp.zeros((env.obs_dim,), jnp.float32))
        inner = dict(net_params["params"])
        inner["log_std"] = jnp.full((2,), hp["init_log_std"], jnp.float32)
        net_params = {"params": inner}
        obs, state = reset_baskets(env, params, k_reset, config.num_envs)
        return (net_params, tx.init(net_params), obs, state)

    def update(carry, k):
        p, opt_state, obs, state = carry
        k_roll, k_epochs = jax.random.split(k)
        (obs, state), traj = jax.lax.scan(
            partial(env_step, p), (obs, state), jax.random.split(k_roll, config.num_steps)
        )  # [S, B, E, ...]
        info = traj.info
        objective = shaped_reward(
            traj.reward, info["ret"], info["turnover"], hp["risk_penalty"], hp["turnover_penalty"]
        )
        p, opt_state, _, targets, aux = ppo_update(
            grad_fn,
            tx,
            p,
            opt_state,
            traj,
            objective * hp["reward_scale"],
            dist(p, obs)[2],
            hp["gamma"],
            hp["gae_lambda"],
            jax.random.split(k_epochs, config.update_epochs),
            config.num_minibatches,
        )
        std = jnp.exp(p["params"]["log_std"])
        metrics = dict(
            objective=jnp.mean(objective),
            mean_log_growth=jnp.mean(traj.reward),
            turnover=jnp.mean(info["turnover"]),
            mean_leverage=jnp.mean(info["leverage"]),
            policy_loss=aux["policy_loss"],
            value_loss=aux["value_loss"],
            entropy=aux["entropy"],
            approx_kl=aux["approx_kl"],
            clip_fraction=aux["clip_frac"],
            explained_variance=explained_variance(targets, traj.value),
            grad_norm=aux["grad_norm"],
            action_std=jnp.mean(std),
            action_std_scores=std[0],
            action_std_gross=std[1],
        )
        return (p, opt_state, obs, state), metrics

    validate = make_validator(config, env, network, val_steps, val_params, sel, hp)
    # unmarked carries: the numbers of the trainer before the population module, bit for bit
    return MemberAlgorithm(init=init, update=update, validate=validate, mark_members=False)


def _env_step(config, env, dist, params, noise_mask, hp, p, carry, k):
    """One step of every env of every basket under the stochastic latent policy ``p``:
    ``((obs, state), Transition)`` (auto-reset; truncation bootstrapped with ``V(final obs)``)."""
    obs, state = carry
    num_b, num_e = params.prices.shape[0], config.num_envs
    k_noise, k_act, k_env = jax.random.split(k, 3)
    obs_n = obs + hp["feature_noise"] * noise_mask * jax.random.normal(k_noise, obs.shape)
    mean, log_std, value = dist(p, obs_n)
    z = mean + jnp.exp(log_std) * jax.random.normal(k_act, mean.shape)
    log_prob = gaussian_log_prob(z, mean, log_std)
    _, w_old, _ = split_obs(obs_n, env.window, env.num_features)
    action = latent_to_exposure(z, w_old, hp["rebalance_rate"], float(config.leverage_cap))
    keys = jax.random.split(k_env, num_b * num_e).reshape(num_b, num_e, -1)
    n_obs, n_state, reward, term, trunc, info = nested_autoreset_step(env)(
        keys, state, action, params
    )
    final_value = dist(p, info["final_observation"])[2]
    kept = dict(ret=info["portfolio_return"], turnover=info["turnover"], leverage=info["leverage"])
    tr = step_transition(obs_n, z, log_prob, value, reward, term, trunc, final_value, kept)
    return (n_obs, n_state), tr


def train_universe_ppo(
    config: UniversePPOConfig,
    env: PortfolioEnv,
    train_params: EnvParams,
    val_params: EnvParams,
    key: jax.Array,
    *,
    mesh=None,
) -> dict[str, Any]:
    """Train the PPO population (``grid`` x ``num_seeds``) on every basket of ``train_params`` in
    ONE jitted program and select on ``val_params`` (both stacked ``[B, ...]``; validation
    baskets need ``eval_start >= 0``); ``mesh``: as for
    :func:`~jaxport.rl.universe.train.train_universe` (members split over its devices).

    Returns :func:`~jaxport.rl.universe.train_universe`'s contract: ``policy`` (the selected
    member's best checkpoint as a ``"universe"`` :class:`~jaxport.rl.codec.Policy`, deterministic
    at the latent mean, critic dropped; its config is :meth:`UniversePPOConfig.universe_config`
    with the member's hyperparameters), ``members`` (per member ``{hyperparams, seed,
    best_update, val_score, val_objective [B], val_sharpe [B]}``), ``best_member``, ``metrics``
    (``{name: [M, num_updates]}``, :data:`METRIC_KEYS`), ``val_curve`` (``{objective, sharpe,
    log_growth, turnover: [M, num_evals + 1, B]}``, row 0 = the 1/N start), ``eval_updates``,
    ``params`` (every member's best actor params, stacked ``[M, ...]``, critic dropped); plus
    ``critic_params`` (the same checkpoints with critic and ``log_std``), ``final_params`` (every
    member's actor params after the last update, stacked) and ``universe_config``
    (the plain config for :func:`~jaxport.rl.universe.member_policies`).
    """
    members, out, result = run_population(
        ppo_member, config, env, train_params, val_params, key, PPO_DYNAMIC_FIELDS, mesh
    )
    best = result["best_member"]
    stacked = actor_params(out["params"])
    chosen = {k: members[best][0][k] for k in DYNAMIC_FIELDS}
    ucfg = config.universe_config(**chosen, grid=())
    policy = best_member_policy(ucfg, env, members, stacked, best)
    return dict(
        result,
        policy=policy,
        params=stacked,
        critic_params=out["params"],
        final_params=actor_params(out["final_params"]),
        universe_config=config.universe_config(),
    )


__all__ = [
    "CRITIC_PARAMS",
    "METRIC_KEYS",
    "PPO_DYNAMIC_FIELDS",
    "UniversePPOConfig",
    "actor_params",
    "latent_distribution",
    "latent_to_exposure",
    "ppo_member",
    "train_universe_ppo",
]
