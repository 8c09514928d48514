"""Training the universe allocator by gradient ascent through the env, as a population
(:mod:`jaxport.rl.population`), and the host-side run every universe trainer shares.

One update: every env of every basket steps ``bptt_length`` days (nested vmap, see
:mod:`jaxport.rl.universe.baskets`) under the deterministic policy; the gradient of
:func:`~jaxport.rl.universe.losses.chunk_objective` (per step: mean log growth - risk_penalty x
return variance - turnover_penalty x turnover - tilt_penalty x the target's L1 distance to the
untrained policy's (the anchor rule's), averaged over every env of every basket) w.r.t. the
network parameters takes one AdamW step (truncated BPTT: the env state is carried into the next
chunk with ``stop_gradient``; finished envs are re-drawn on a random start day first).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import optax

from jaxport.env import EnvParams, PortfolioEnv
from jaxport.rl.common import select
from jaxport.rl.optim import cosine_adamw
from jaxport.rl.population import (
    MemberAlgorithm,
    gather_members,
    member_inputs,
    member_mesh,
    population_result,
    train_population,
)
from jaxport.rl.universe.baskets import (
    BOOKKEEPING,
    check_stacked,
    nested_step,
    reset_baskets,
    training_params,
    validation_rollout,
    validation_steps,
)
from jaxport.rl.universe.config import DYNAMIC_FIELDS, UniverseConfig
from jaxport.rl.universe.losses import chunk_objective, feature_noise_mask, validation_stats
from jaxport.rl.universe.network import (
    make_network,
    policy_target,
    rebalance,
    split_obs,
    untrained_target,
)
from jaxport.rl.universe.policy import make_universe_policy

METRIC_KEYS = (
    "objective",  # per-step training objective of the update (all baskets and envs)
    "mean_log_growth",  # per-step log growth net of costs
    "turnover",  # per-step turnover sum|dw| (fraction of equity)
    "mean_leverage",  # gross exposure (multiples of equity)
    "tilt_deviation",  # per-step sum_i |target_i - untrained target_i| (fraction of equity)
    "grad_norm",  # global gradient norm before clipping
)


# ----------------------------------------------------------------------------------------- shared
def make_validator(config, env, network, val_steps, val_params, sel, hp) -> Callable:
    """``validate(net_params) -> {objective, sharpe, log_growth, turnover: [B]}``: the
    deterministic validation episode of every basket, scored by ``config.objective`` with the
    selection penalties ``sel``."""
    cap = float(config.leverage_cap)
    ppy = val_params.periods_per_year

    def validate(p):
        roll = jax.vmap(
            lambda vp: validation_rollout(env, network, cap, p, hp["rebalance_rate"], vp, val_steps)
        )
        valid, lg, ret, to = roll(val_params)  # [B, S]
        return validation_stats(
            valid, lg, ret, to, ppy, sel["risk_penalty"], sel["turnover_penalty"], config.objective
        )

    return validate


def population_inputs(config, env, train_params, val_params, key, fields: Sequence[str]):
    """The host-side setup every universe trainer shares: validate ``config`` and the stacked
    params, then ``(val_steps, members [(hyperparams, seed)], hp {field: [M]}, keys [M],
    sel {risk_penalty, turnover_penalty})`` for the traced ``fields``."""
    config.validate()
    check_stacked(env, train_params, "train_params")
    check_stacked(env, val_params, "val_params")
    members, hp, keys = member_inputs(config.members_hparams(), config.num_seeds, key, fields)
    return validation_steps(val_params), members, hp, keys, selection_penalties(config)


def selection_penalties(config) -> dict:
    """``{risk_penalty, turnover_penalty}`` of the validation objective that selection scores
    (``config.select_*``, the same for every member)."""
    return {
        "risk_penalty": jnp.float32(config.select_risk_penalty),
        "turnover_penalty": jnp.float32(config.select_turnover_penalty),
    }


def run_population(make_algorithm, config, env, train_params, val_params, key, fields, mesh):
    """Train the population of ``config`` with the member algorithm ``make_algorithm(config, env,
    val_steps, train_params, val_params, sel, hp)`` (a module-level function: it keys the compiled
    program) and return ``(members, out, result)``: the ``(hyperparams, seed)`` list, the
    member-stacked program output and :func:`~jaxport.rl.population.population_result`."""
    val_steps, members, hp, keys, sel = population_inputs(
        config, env, train_params, val_params, key, fields
    )
    mesh = member_mesh(mesh, len(members), config.num_seeds, "train_universe")
    shared = (train_params, val_params, sel)
    out = train_population(make_algorithm, config.static(), env, val_steps, shared, hp, keys, mesh)
    out = gather_members(out, mesh)
    return members, out, population_result(config.eval_every, members, out)


def best_member_policy(config, env, members, params, best: int):
    """Member ``best``'s checkpoint in the member-stacked ``params`` as a ``"universe"``
    :class:`~jaxport.rl.codec.Policy` of ``config``, at that member's ``rebalance_rate``."""
    best_params = jax.tree_util.tree_map(lambda x: x[best], params)
    rate = members[best][0]["rebalance_rate"]
    return make_universe_policy(config, env, best_params, rebalance_rate=rate)


# ----------------------------------------------------------------------------------------- gradient
def gradient_member(config, env, val_steps, train_params, val_params, sel, hp) -> MemberAlgorithm:
    """The gradient trainer as a :class:`~jaxport.rl.population.MemberAlgorithm`: state
    ``(net_params, opt_state, obs, state, done)``; one update = one BPTT chunk + one AdamW step."""
    network = make_network(config, env)
    cap = float(config.leverage_cap)
    params = training_params(config.episode_length, train_params)
    num_days = params.prices.shape[-2]
    num_e = config.num_envs
    tx = cosine_adamw(hp, config.num_updates, config.anneal_lr)
    noise_mask = feature_noise_mask(config, env)
    objective = partial(_bptt_objective, config, env, network, cap, params, noise_mask, hp)
    grad_fn = jax.value_and_grad(objective, has_aux=True)

    def init(k_init, k_reset):
        net_params = network.init(k_init, jnp.zeros((env.obs_dim,), jnp.float32))
        obs, state = reset_baskets(env, params, k_reset, num_e)
        done = jnp.zeros((params.prices.shape[0], num_e), bool)
        return (net_params, tx.init(net_params), obs, state, done)

    def update(carry, k):
        p, opt_state, obs, state, done = carry
        k_reset, k_noise = jax.random.split(k)
        finished = done | (state.time >= params.episode_length[:, None]) | (state.t >= num_days - 1)
        r_obs, r_state = reset_baskets(env, params, k_reset, num_e)
        obs = select(finished, r_obs, obs)
        state = jax.tree_util.tree_map(partial(select, finished), r_state, state)
        done = done & ~finished
        (_, (obs, state, done, metrics)), grads = grad_fn(p, obs, state, done, k_noise)
        grads = jax.tree_util.tree_map(jnp.negative, grads)
        updates, opt_state = tx.update(grads, opt_state, p)
        p = optax.apply_updates(p, updates)
        obs, state, done = jax.lax.stop_gradient((obs, state, done))
        metrics = dict(metrics, grad_norm=optax.tree.norm(grads))
        return (p, opt_state, obs, state, done), metrics

    validate = make_validator(config, env, network, val_steps, val_params, sel, hp)
    return MemberAlgorithm(init=init, update=update, validate=validate)


def _bptt_objective(config, env, network, cap, params, noise_mask, hp, p, obs, state, done, key):
    """``(objective, (obs, state, done, metrics))`` of one ``bptt_length`` chunk of every env of
    every basket under the deterministic policy ``p`` (finished envs are masked out)."""
    num_days = params.prices.shape[-2]
    step = nested_step(env)

    def body(carry, k):
        obs, state, done = carry
        noisy = obs + hp["feature_noise"] * noise_mask * jax.random.normal(k, obs.shape)
        target = policy_target(network, p, noisy, cap)
        _, w_old, _ = split_obs(noisy, env.window, env.num_features)
        action = rebalance(target, w_old, hp["rebalance_rate"])
        deviation = jnp.sum(jnp.abs(target - untrained_target(network, noisy)), -1)
        n_obs, n_state, reward, term, info = step(None, state, action, params)
        # per-trade bookkeeping never feeds the reward or the observation: keep it out of the
        # differentiated graph (same gradient, a smaller program to compile)
        n_state = n_state.replace(
            **{k: jax.lax.stop_gradient(getattr(n_state, k)) for k in BOOKKEEPING}
        )
        valid = (~done) & (state.time < params.episode_length[:, None]) & (state.t < num_days - 1)
        obs = select(valid, n_obs, obs)
        state = jax.tree_util.tree_map(partial(select, valid), n_state, state)
        done = done | (valid & term)
        out = (
            valid.astype(jnp.float32),
            jnp.where(valid, reward, 0.0),
            jnp.where(valid, info["portfolio_return"], 0.0),
            jnp.where(valid, info["turnover"], 0.0),
            jnp.where(valid, info["leverage"], 0.0),
            jnp.where(valid, deviation, 0.0),
        )
        return (obs, state, done), out

    keys = jax.random.split(key, config.bptt_length)
    (obs, state, done), traj = jax.lax.scan(body, (obs, state, done), keys)
    valid, lg, ret, to, lev, dev = traj
    obj = chunk_objective(
        config.objective,
        valid,
        lg,
        ret,
        to,
        hp["risk_penalty"],
        hp["turnover_penalty"],
        deviation=dev,
        tilt_penalty=hp["tilt_penalty"],
    )
    total = jnp.maximum(jnp.sum(valid), 1.0)
    metrics = dict(
        objective=obj,
        mean_log_growth=jnp.sum(lg) / total,
        turnover=jnp.sum(to) / total,
        mean_leverage=jnp.sum(lev) / total,
        tilt_deviation=jnp.sum(dev) / total,
    )
    return obj, (obs, state, done, metrics)


def train_universe(
    config: UniverseConfig,
    env: PortfolioEnv,
    train_params: EnvParams,
    val_params: EnvParams,
    key: jax.Array,
    *,
    mesh=None,
) -> dict[str, Any]:
    """Train the population (``grid`` x ``num_seeds``) on every basket of ``train_params`` in ONE
    jitted program and select on ``val_params`` (both stacked ``[B, ...]``,
    :func:`~jaxport.rl.universe.baskets.stack_env_params`; validation baskets need
    ``eval_start >= 0``).

    ``mesh``: a 1-D ``jax.sharding.Mesh`` (e.g. ``jaxport.distributed.rl_mesh``); with more than
    one device the population members are split over its devices (the member count must be a
    multiple of the device count, else ``ConfigError``); the numbers are those of one device.

    Returns ``{"policy"``: the best member's :class:`~jaxport.rl.codec.Policy` (kind
    ``"universe"``; evaluate any basket of the same N with ``jaxport.eval.evaluate_policy(env,
    params, policy)``, other N via ``policy.with_env``), ``"members"``: per member ``{hyperparams,
    seed, best_update, val_objective [B], val_sharpe [B], val_score}``, ``"best_member"`` (index),
    ``"metrics"``: ``{name: [M, num_updates]}``, ``"val_curve"``: ``{objective, sharpe,
    log_growth, turnover: [M, num_evals + 1, B]}`` (row 0 = the untrained 1/N start),
    ``"eval_updates"``: update index of each curve row, ``"params"``: every member's best
    params and ``"final_params"`` its params after the last update (stacked ``[M, ...]``)``}``.
    """
    members, out, result = run_population(
        gradient_member, config, env, train_params, val_params, key, DYNAMIC_FIELDS, mesh
    )
    policy = best_member_policy(config, env, members, out["params"], result["best_member"])
    return dict(result, policy=policy, params=out["params"], final_params=out["final_params"])


__all__ = [
    "METRIC_KEYS",
    "best_member_policy",
    "gradient_member",
    "make_validator",
    "population_inputs",
    "run_population",
    "selection_penalties",
    "train_universe",
]
