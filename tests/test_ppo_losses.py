"""PPO's pure pieces checked against hand computations: GAE, the clipped loss, the shaped reward
(one objective with the gradient trainer) and the deterministic mean-action policy.

Everything here is small numpy arithmetic written out in the comments; no training runs.
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxport.env import EnvParams, PortfolioEnv
from jaxport.rl.gradient import GradientConfig, chunk_objective, make_policy_network, reset_envs
from jaxport.rl.networks import squash
from jaxport.rl.normalize import RunningMeanStd, normalize
from jaxport.rl.ppo import (
    PPOConfig,
    Transition,
    compute_gae,
    make_network,
    make_policy_fn,
    ppo_loss,
    shaped_reward,
)

GAMMA, LAM = 0.9, 0.8
REWARD = np.array([[1.0], [2.0]], np.float32)  # [S=2, B=1]
VALUE = np.array([[0.5], [0.25]], np.float32)
LAST_VALUE = np.array([10.0], np.float32)


def gae(done, bootstrap):
    d = jnp.asarray(np.array(done, bool).reshape(2, 1))
    b = jnp.asarray(np.array(bootstrap, np.float32).reshape(2, 1))
    adv, tgt = compute_gae(
        jnp.asarray(REWARD), jnp.asarray(VALUE), d, b, jnp.asarray(LAST_VALUE), GAMMA, LAM
    )
    chex.assert_shape([adv, tgt], [(2, 1), (2, 1)])
    chex.assert_trees_all_close(tgt, adv + VALUE)
    return np.asarray(adv[:, 0])


def test_gae_no_done_bootstraps_from_last_value():
    # delta_1 = 2 + 0.9 * 10 - 0.25 = 10.75;  delta_0 = 1 + 0.9 * 0.25 - 0.5 = 0.725
    # A_1 = 10.75;  A_0 = 0.725 + 0.9 * 0.8 * 10.75 = 8.465
    np.testing.assert_allclose(gae([0, 0], [0, 0]), [8.465, 10.75], rtol=1e-6)


def test_gae_termination_cuts_the_bootstrap():
    # done after step 1 with bootstrap 0 (terminated): V(last obs) = 10 is ignored
    # A_1 = 2 - 0.25 = 1.75;  A_0 = 0.725 + 0.72 * 1.75 = 1.985
    np.testing.assert_allclose(gae([0, 1], [0, 0]), [1.985, 1.75], rtol=1e-6)


def test_gae_truncation_bootstraps_from_final_observation():
    # truncated after step 1, V(final obs) = 3: A_1 = 2 + 0.9 * 3 - 0.25 = 4.45
    # A_0 = 0.725 + 0.72 * 4.45 = 3.929
    np.testing.assert_allclose(gae([0, 1], [0, 3.0]), [3.929, 4.45], rtol=1e-6)


def test_gae_done_cuts_the_trace():
    # episode ends after step 0 (terminated): A_0 = 1 - 0.5 = 0.5, nothing flows back from step 1
    np.testing.assert_allclose(gae([1, 0], [0, 0]), [0.5, 10.75], rtol=1e-6)


def test_gae_batch_columns_are_independent():
    rng = np.random.default_rng(0)
    S, B = 6, 3
    r, v = rng.normal(size=(S, B)).astype(np.float32), rng.normal(size=(S, B)).astype(np.float32)
    done = rng.random((S, B)) < 0.3
    boot = np.where(done, rng.normal(size=(S, B)), 0.0).astype(np.float32)
    last = rng.normal(size=B).astype(np.float32)
    adv, _ = compute_gae(*map(jnp.asarray, (r, v, done, boot, last)), GAMMA, LAM)
    chex.assert_shape(adv, (S, B))
    for b in range(B):
        col, _ = compute_gae(
            *(jnp.asarray(x[:, b : b + 1]) for x in (r, v, done, boot)),
            jnp.asarray(last[b : b + 1]),
            GAMMA,
            LAM,
        )
        np.testing.assert_allclose(adv[:, b], col[:, 0], rtol=1e-6)


# ---------------------------------------------------------------- ppo_loss
def stub_apply(params, obs):
    """A 'network' whose outputs are its parameters (one row per sample)."""
    del obs
    return params["mean"], params["log_std"], params["value"]


RATIO = np.array([1.5, 0.5, 1.1, 0.5])
ADV = np.array([1.0, 1.0, -1.0, -1.0])
U = np.array([[0.3], [-0.2], [0.1], [0.0]])
MEAN = np.array([[0.1], [0.0], [0.2], [-0.1]])
LOG_STD = np.array([[0.1], [-0.3], [0.0], [0.2]])
OLD_VALUE = np.zeros(4)
NEW_VALUE = np.array([0.5, -0.1, 0.3, 1.0])
TARGETS = np.array([1.0, 0.0, 0.0, 1.0])


def gauss_logp(u, m, s):
    return (-0.5 * ((u - m) / np.exp(s)) ** 2 - s - 0.5 * math.log(2 * math.pi)).sum(-1)


def loss_inputs():
    old_logp = gauss_logp(U, MEAN, LOG_STD) - np.log(RATIO)  # so that pi_new / pi_old == RATIO
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    params = {"mean": f32(MEAN), "log_std": f32(LOG_STD), "value": f32(NEW_VALUE)}
    batch = Transition(
        obs=jnp.zeros((4, 3)),
        u=f32(U),
        log_prob=f32(old_logp),
        value=f32(OLD_VALUE),
        reward=None,
        terminated=None,
        done=None,
        bootstrap=None,
        info={},
    )
    return params, batch


def run_loss(params=None, **kw):
    p, batch = loss_inputs()
    opts = dict(clip_eps=0.2, vf_clip=0.2, vf_coef=0.5, ent_coef=0.01, normalize_advantages=False)
    opts.update(kw)
    return ppo_loss(
        p if params is None else params,
        stub_apply,
        batch,
        jnp.asarray(ADV, jnp.float32),
        jnp.asarray(TARGETS, jnp.float32),
        **opts,
    )


def test_ppo_loss_matches_hand_computation():
    total, aux = run_loss()
    chex.assert_shape([total, *aux.values()], [()] * 6)
    # surrogate per sample: min(r A, clip(r, 0.8, 1.2) A)
    #   r=1.5, A=+1 -> min(1.5, 1.2) = 1.2  (clip active)
    #   r=0.5, A=+1 -> min(0.5, 0.8) = 0.5  (clip inactive: the unclipped term is lower)
    #   r=1.1, A=-1 -> -1.1                 (inside the trust region)
    #   r=0.5, A=-1 -> min(-0.5, -0.8) = -0.8 (clip active)
    pg = -np.mean([1.2, 0.5, -1.1, -0.8])
    # value: V_clipped = 0 + clip(V - 0, -0.2, 0.2); per sample max of squared errors
    #   0.5 -> max(0.25, 0.64); -0.1 -> 0.01; 0.3 -> max(0.09, 0.04); 1.0 -> max(0, 0.64)
    v = 0.5 * np.mean([0.64, 0.01, 0.09, 0.64])
    ent = np.mean(LOG_STD[:, 0] + 0.5 * (1 + math.log(2 * math.pi)))
    kl = np.mean((RATIO - 1) - np.log(RATIO))
    np.testing.assert_allclose(aux["policy_loss"], pg, rtol=1e-5)
    np.testing.assert_allclose(aux["value_loss"], v, rtol=1e-5)
    np.testing.assert_allclose(aux["entropy"], ent, rtol=1e-5)
    np.testing.assert_allclose(aux["approx_kl"], kl, rtol=1e-4)
    np.testing.assert_allclose(aux["clip_frac"], 0.75)  # |r - 1| > 0.2 for 1.5, 0.5, 0.5
    np.testing.assert_allclose(total, pg + 0.5 * v - 0.01 * ent, rtol=1e-5)


def test_ppo_loss_value_clipping_off():
    _, aux = run_loss(vf_clip=0.0)
    np.testing.assert_allclose(aux["value_loss"], 0.5 * np.mean([0.25, 0.01, 0.09, 0.0]), rtol=1e-5)


def test_ppo_loss_clipped_samples_get_no_policy_gradient():
    """Where the clip is active (samples 0 and 3) the surrogate is flat in the policy's mean."""
    params, _ = loss_inputs()

    def pg(mean):
        return run_loss(dict(params, mean=mean), vf_coef=0.0, ent_coef=0.0)[0]

    g = np.asarray(jax.grad(pg)(params["mean"]))[:, 0]
    assert g[0] == 0.0 and g[3] == 0.0, g
    assert abs(g[1]) > 1e-3 and abs(g[2]) > 1e-3, g
    # d/dmean of -r A / 4 with d log r / d mean = (u - mean) / std^2
    for i in (1, 2):
        want = -RATIO[i] * ADV[i] * (U[i, 0] - MEAN[i, 0]) / np.exp(2 * LOG_STD[i, 0]) / 4
        np.testing.assert_allclose(g[i], want, rtol=1e-4)


def test_ppo_loss_entropy_bonus_and_advantage_normalisation():
    _, base = run_loss(ent_coef=0.0)
    total0, _ = run_loss(ent_coef=0.0)
    total1, aux1 = run_loss(ent_coef=0.1)
    np.testing.assert_allclose(total0 - total1, 0.1 * aux1["entropy"], rtol=1e-5)
    # normalised advantages: A' = (A - mean) / (std + 1e-8) = A here (mean 0, std 1)
    _, norm = run_loss(ent_coef=0.0, normalize_advantages=True)
    np.testing.assert_allclose(norm["policy_loss"], base["policy_loss"], rtol=1e-5)


# ---------------------------------------------------------------- shaped reward (one objective)
def test_shaped_reward_hand_computation():
    reward = np.array([[0.01], [0.02], [-0.01]], np.float32)
    ret = np.array([[0.01], [0.03], [-0.01]], np.float32)  # rollout mean 0.01
    turnover = np.array([[0.5], [0.0], [1.0]], np.float32)
    got = shaped_reward(*map(jnp.asarray, (reward, ret, turnover)), 10.0, 0.001)
    chex.assert_shape(got, (3, 1))
    # r - 10 * (ret - 0.01)^2 - 0.001 * turnover
    np.testing.assert_allclose(got[:, 0], [0.0095, 0.016, -0.015], rtol=1e-5, atol=1e-8)
    # averaged over the rollout: mean log growth - lambda * Var(ret) - kappa * mean turnover
    np.testing.assert_allclose(
        float(jnp.mean(got)),
        reward.mean() - 10.0 * ret.var() - 0.001 * turnover.mean(),
        rtol=1e-5,
    )
    # zero penalties leave the reward unchanged; envs (columns) are centred separately
    np.testing.assert_array_equal(shaped_reward(*map(jnp.asarray, (reward, ret, turnover))), reward)
    two = shaped_reward(
        jnp.zeros((3, 2)), jnp.asarray(np.c_[ret, ret + 1.0]), jnp.zeros((3, 2)), 1.0
    )
    np.testing.assert_allclose(two[:, 0], two[:, 1], rtol=1e-5)


def test_ppo_shaped_reward_equals_gradient_objective_on_one_chunk():
    """Same actions and steps: PPO's mean shaped reward is the gradient trainer's objective."""
    rng = np.random.default_rng(3)
    prices = 100 * np.cumprod(1 + rng.normal(0.0, 0.02, (40, 2)), axis=0)
    params = EnvParams.from_arrays(
        prices, rng.normal(size=(40, 2, 1)), fee_rate=0.001, episode_length=8, eval_start=5
    )
    env = PortfolioEnv(2, 1)
    cfg = GradientConfig(
        hidden_sizes=(4,),
        num_envs=1,
        bptt_length=8,
        episode_length=8,
        output_init_scale=1.0,
        risk_penalty=3.0,
        turnover_penalty=0.01,
    )
    network = make_policy_network(cfg, env)

    @jax.jit
    def both(key):
        net = network.init(key, jnp.zeros(env.obs_dim))
        obs, state = reset_envs(env, params, jax.random.PRNGKey(1), 1)
        obj, _ = chunk_objective(
            net,
            network,
            cfg,
            env,
            params,
            obs,
            state,
            jnp.zeros(1, bool),
            cfg.risk_penalty,
            cfg.turnover_penalty,
        )

        def step(carry, _):  # the same 8 steps, one env, no masking
            o, s = carry
            o, s, r, _, info = env.step_env(key, s, network.apply(net, o), params)
            return (o, s), (r, info["portfolio_return"], info["turnover"])

        first = jax.tree.map(lambda x: x[0], (obs, state))
        _, (rewards, rets, turns) = jax.lax.scan(step, first, None, length=8)
        col = lambda x: x[:, None]  # noqa: E731
        shaped = shaped_reward(
            col(rewards), col(rets), col(turns), cfg.risk_penalty, cfg.turnover_penalty
        )
        return obj, jnp.mean(shaped), jnp.mean(turns)

    obj, shaped_mean, turns = both(jax.random.PRNGKey(0))
    assert float(turns) > 0.01  # the penalties are exercised
    np.testing.assert_allclose(float(shaped_mean), float(obj), rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------- deterministic evaluation
@pytest.mark.parametrize("normalize_obs", [True, False])
def test_policy_fn_acts_deterministically_at_the_mean(normalize_obs):
    cfg = PPOConfig(
        hidden_sizes=(8,), leverage_cap=1.5, init_log_std=0.5, normalize_obs=normalize_obs
    )
    net = make_network(cfg, 2)
    params = jax.jit(net.init)(jax.random.PRNGKey(0), jnp.zeros(5))
    stats = RunningMeanStd(mean=jnp.arange(5.0), var=jnp.full(5, 4.0), count=jnp.asarray(10.0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (7, 5))
    policy = make_policy_fn(params, stats, cfg)  # deterministic by default
    a1, a2 = policy(jax.random.PRNGKey(2), obs), policy(jax.random.PRNGKey(3), obs)
    chex.assert_shape(a1, (7, 2))
    np.testing.assert_array_equal(a1, a2)  # the key is not used
    x = normalize(stats, obs, cfg.obs_clip) if normalize_obs else obs
    mean, _, _ = jax.jit(net.apply)(params, x)
    np.testing.assert_allclose(a1, squash(mean, 1.5), rtol=1e-6)
    sampled = make_policy_fn(params, stats, cfg, deterministic=False)
    assert not np.allclose(sampled(jax.random.PRNGKey(2), obs), sampled(jax.random.PRNGKey(3), obs))
    # one cached function object per architecture: the policy's arrays are pytree leaves
    other = make_policy_fn(jax.tree.map(lambda p: p + 1.0, params), stats, cfg)
    assert other.func is policy.func
    assert len(jax.tree.leaves(policy)) == len(jax.tree.leaves(params)) + 3
