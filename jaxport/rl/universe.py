"""The universe allocator: ONE symbol-agnostic, permutation-equivariant policy for any basket
size N, trained by gradient ascent through the env on many baskets at once, as a population of
seeds x hyperparameters in one jitted program, with checkpoint selection on validation inside the
jit.

Network (:class:`UniverseAllocator`). The env observation is ``concat(features[t-K+1..t].ravel()
([K, N, F] row-major), w [N], cash, gross, E/E0 - 1)``. Per asset ``x_i = concat(features[:, i,
:].ravel(), w_i)`` goes through a shared MLP encoder ``e_i``; the pooled context is ``c =
concat(mean_i e_i, cash, gross[, E/E0 - 1])``; a per-asset head on ``[e_i, c]`` gives the score
``s_i``, a global head on ``c`` the gross logit ``g`` (and, with ``critic=True``, a value head on
``c`` the state value for PPO). Assets only meet through the mean, so permuting the assets of the
observation permutes the output, and the same parameters serve every N.

Action ("target weights", long-only): ``target = gross * softmax(s)`` with ``gross = leverage_cap *
sigmoid(g)`` (multiples of equity). The output layers start at ``s = 0`` and ``gross = init_gross``
(default 1.0): the untrained policy IS the 1/N portfolio. Partial rebalancing: ``executed = w_old +
rate * (target - w_old)`` (``rate`` in (0, 1]; ``w_old`` = the drifted weights in the observation;
a flat book (fresh episode) goes straight to the target).

Training (:func:`train_universe`): env params stacked over baskets (``[B, ...]``, all baskets with
the same N and shapes, see :func:`stack_env_params`), envs arranged ``[B, num_envs]`` and stepped
with a nested vmap (outer over baskets with params ``in_axes=0``, inner over envs with params
``None``, so market arrays are never copied per env). The objective is the gradient trainer's (per
step: mean log growth - risk_penalty x return variance - turnover_penalty x turnover; see
:mod:`jaxport.rl.gradient.losses`) averaged over every env of every basket. Members = the cartesian
``grid`` of hyperparameters x ``num_seeds`` seeds, vmapped (hyperparameters are traced arrays).
Every ``eval_every`` updates (and at update 0, the 1/N start) each member is evaluated
deterministically on the validation episode of every basket and its best parameters by the
validation objective are kept.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from functools import partial
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxport.checkpoint import plain_tree
from jaxport.data import DataError
from jaxport.env import EnvParams, PortfolioEnv
from jaxport.errors import CheckpointError
from jaxport.rl.codec import Policy, PolicySpec, make_policy

KIND = "universe"

#: Hyperparameters that travel as traced arrays (the population axis); all per update/step.
DYNAMIC_FIELDS = (
    "lr",
    "weight_decay",
    "max_grad_norm",
    "risk_penalty",
    "turnover_penalty",
    "feature_noise",
    "rebalance_rate",
)


# ----------------------------------------------------------------------------------------- config
@dataclasses.dataclass(frozen=True)
class UniverseConfig:
    """Configuration of the universe allocator and its trainer (hashable).

    Fields in :data:`DYNAMIC_FIELDS` are traced (members differing only in them share one program);
    ``grid`` lists ``(field, values)`` pairs of DYNAMIC_FIELDS whose cartesian product, times
    ``num_seeds`` seeds, is the population.
    """

    # --- network
    hidden_sizes: tuple[int, ...] = (32, 32)  # shared per-asset encoder widths (tanh)
    head_size: int = 32  # hidden width of the per-asset score head and the global heads (tanh)
    leverage_cap: float = 2.0  # gross = leverage_cap * sigmoid(g) (multiples of equity)
    init_gross: float = 1.0  # gross exposure at init (< leverage_cap); with s = 0: 1/N each
    observe_equity: bool = False  # feed E/E0 - 1 to the context
    # --- rollout (per basket)
    num_envs: int = 16  # envs per basket (episodes start on random days)
    bptt_length: int = 32  # env steps (days) per update (truncated BPTT chunk)
    episode_length: int = 128  # env steps per training episode
    num_updates: int = 200  # Adam steps per member
    # --- optimisation (lr, weight_decay, max_grad_norm traced)
    lr: float = 3e-3  # AdamW learning rate (per update)
    anneal_lr: bool = True  # cosine decay to 0 over num_updates
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    max_grad_norm: float = 1.0  # global-norm gradient clip
    # --- objective (traced); per step, not annualised
    risk_penalty: float = 0.0  # x per-step return variance (fraction^2)
    turnover_penalty: float = 0.0  # x mean per-step turnover sum|dw| (fraction of equity)
    # --- regularisation (traced)
    feature_noise: float = 0.0  # std of Gaussian noise added to the feature part (train only)
    rebalance_rate: float = 1.0  # executed = w_old + rate * (target - w_old), in (0, 1]
    # --- population and checkpoint selection
    num_seeds: int = 4  # seeds per hyperparameter combination
    grid: tuple = ()  # ((field, (v1, v2, ...)), ...) over DYNAMIC_FIELDS; () = the base config
    eval_every: int = 25  # updates between validation evaluations (must divide num_updates)
    select_risk_penalty: float = 0.0  # validation objective: mean log growth - this x var ...
    select_turnover_penalty: float = 0.0  # ... - this x mean turnover (same for every member)

    def __post_init__(self):
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        grid = tuple((str(k), tuple(float(v) for v in vs)) for k, vs in dict(self.grid).items())
        object.__setattr__(self, "grid", grid)

    def validate(self) -> "UniverseConfig":
        """Raise ``DataError`` naming the field on an invalid value; return ``self``."""
        for name in ("num_envs", "bptt_length", "episode_length", "num_updates", "head_size"):
            if int(getattr(self, name)) < 1:
                raise DataError(f"UniverseConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_seeds", "eval_every"):
            if int(getattr(self, name)) < 1:
                raise DataError(f"UniverseConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_updates % self.eval_every:
            raise DataError(
                f"UniverseConfig.eval_every={self.eval_every} must divide "
                f"num_updates={self.num_updates}"
            )
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise DataError(
                f"UniverseConfig.hidden_sizes must be positive, got {self.hidden_sizes}"
            )
        if not 0.0 < self.init_gross < self.leverage_cap:
            raise DataError(
                f"UniverseConfig.init_gross={self.init_gross} must be in (0, leverage_cap="
                f"{self.leverage_cap})"
            )
        for name, values in self.grid:
            if name not in DYNAMIC_FIELDS:
                raise DataError(f"UniverseConfig.grid: {name!r} is not one of {DYNAMIC_FIELDS}")
            if not values:
                raise DataError(f"UniverseConfig.grid: {name!r} has no values")
        for hp in self.members_hparams():
            for name in ("lr", "max_grad_norm"):
                if not hp[name] > 0:
                    raise DataError(f"UniverseConfig.{name} must be > 0, got {hp[name]}")
            for name in ("weight_decay", "risk_penalty", "turnover_penalty", "feature_noise"):
                if not hp[name] >= 0:
                    raise DataError(f"UniverseConfig.{name} must be >= 0, got {hp[name]}")
            if not 0.0 < hp["rebalance_rate"] <= 1.0:
                raise DataError(
                    f"UniverseConfig.rebalance_rate must be in (0, 1], got {hp['rebalance_rate']}"
                )
        return self

    def members_hparams(self, fields: Sequence[str] = DYNAMIC_FIELDS) -> list[dict[str, float]]:
        """The grid's combinations of the traced ``fields`` (the base config when the grid is
        empty)."""
        base = {k: float(getattr(self, k)) for k in fields}
        names = [k for k, _ in self.grid]
        combos = itertools.product(*[vs for _, vs in self.grid]) if names else [()]
        return [{**base, **dict(zip(names, combo))} for combo in combos]

    def static(self) -> "UniverseConfig":
        """The config with DYNAMIC_FIELDS, the population and the selection settings at fixed
        placeholders (the compile-time part)."""
        return dataclasses.replace(
            self,
            **{
                k: 1.0 if k in ("lr", "max_grad_norm", "rebalance_rate") else 0.0
                for k in DYNAMIC_FIELDS
            },
            num_seeds=1,
            grid=(),
            select_risk_penalty=0.0,
            select_turnover_penalty=0.0,
        )

    def network_config(self) -> "UniverseConfig":
        """Only the architecture fields matter to the policy (what a checkpoint stores)."""
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        d = dataclasses.asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        d["grid"] = {k: list(vs) for k, vs in self.grid}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "UniverseConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``DataError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise DataError(f"UniverseConfig: unknown field(s) {unknown}")
        d = dict(d)
        if "hidden_sizes" in d:
            d["hidden_sizes"] = tuple(d["hidden_sizes"])
        if "grid" in d:
            d["grid"] = tuple((k, tuple(v)) for k, v in dict(d["grid"]).items())
        return cls(**d)


# ----------------------------------------------------------------------------------------- network
def num_assets_from_obs(obs_dim: int, window: int, num_features: int) -> int:
    """N from ``obs_dim = K * N * F + N + 3`` (one-line ``ValueError`` when it does not divide)."""
    per = window * num_features + 1
    n, rem = divmod(obs_dim - 3, per)
    if rem or n < 1:
        raise ValueError(
            f"obs_dim={obs_dim} is not K*N*F + N + 3 for window={window}, features={num_features}"
        )
    return n


def split_obs(obs: jnp.ndarray, window: int, num_features: int):
    """``obs [..., D]`` -> ``(x [..., N, K*F + 1] per-asset inputs, w [..., N], scalars [..., 3])``
    (scalars: cash ``1 - sum w``, gross ``sum|w|``, ``E/E0 - 1``)."""
    n = num_assets_from_obs(obs.shape[-1], window, num_features)
    lead = obs.shape[:-1]
    kf = window * num_features
    feats = obs[..., : kf * n].reshape(lead + (window, n, num_features))
    feats = jnp.moveaxis(feats, -2, -3).reshape(lead + (n, kf))  # [..., N, K*F]
    w = obs[..., kf * n : kf * n + n]
    x = jnp.concatenate([feats, w[..., None]], axis=-1)
    return x, w, obs[..., kf * n + n :]


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


class UniverseAllocator(nn.Module):
    """Permutation-equivariant allocator network; returns ``(scores [..., N], gross_logit [...],
    value [...] or None)`` for ``obs [..., obs_dim]`` of any N (module docstring).

    Parameter tree (every ``Dense`` has ``kernel [in, out]``, ``bias [out]``; H = head_size,
    h_L = hidden_sizes[-1], C = h_L + 2 (+1 with observe_equity))::

        enc_0 .. enc_{L-1}   per-asset encoder   (K*F + 1 -> h_1 -> ... -> h_L), tanh
        head_0               per-asset head      (h_L + C -> H), tanh
        head_out             per-asset score     (H -> 1), zero init
        gross_0              global gross head   (C -> H), tanh
        gross_out            gross logit         (H -> 1), zero kernel, bias logit(init/cap)
        value_0, value_out   critic (critic=True only): C -> H (tanh) -> 1
        log_std              [2] (critic=True only): latent log std of (scores, gross logit)
    """

    window: int
    num_features: int
    hidden_sizes: tuple[int, ...] = (32, 32)
    head_size: int = 32
    leverage_cap: float = 2.0
    init_gross: float = 1.0
    observe_equity: bool = False
    critic: bool = False
    init_log_std: float = -1.0

    @nn.compact
    def __call__(self, obs: jnp.ndarray):
        x, w, scalars = split_obs(obs, self.window, self.num_features)
        for i, width in enumerate(self.hidden_sizes):
            x = jnp.tanh(nn.Dense(width, name=f"enc_{i}")(x))
        pooled = jnp.mean(x, axis=-2)
        tail = scalars if self.observe_equity else scalars[..., :2]
        ctx = jnp.concatenate([pooled, tail], axis=-1)
        ctx_i = jnp.broadcast_to(ctx[..., None, :], x.shape[:-1] + ctx.shape[-1:])
        h = jnp.tanh(nn.Dense(self.head_size, name="head_0")(jnp.concatenate([x, ctx_i], -1)))
        zeros = nn.initializers.zeros
        scores = nn.Dense(1, kernel_init=zeros, bias_init=zeros, name="head_out")(h)[..., 0]
        hg = jnp.tanh(nn.Dense(self.head_size, name="gross_0")(ctx))
        g_bias = nn.initializers.constant(_logit(self.init_gross / self.leverage_cap))
        gross_logit = nn.Dense(1, kernel_init=zeros, bias_init=g_bias, name="gross_out")(hg)[..., 0]
        value = None
        if self.critic:
            hv = jnp.tanh(nn.Dense(self.head_size, name="value_0")(ctx))
            value = nn.Dense(1, name="value_out")(hv)[..., 0]
            self.param("log_std", nn.initializers.constant(self.init_log_std), (2,))
        return scores, gross_logit, value


def target_weights(scores, gross_logit, leverage_cap):
    """``leverage_cap * sigmoid(g) * softmax(s)`` (long-only target exposures, fractions)."""
    return (leverage_cap * jax.nn.sigmoid(gross_logit))[..., None] * jax.nn.softmax(scores, -1)


def rebalance(target, w_old, rate):
    """``w_old + rate * (target - w_old)``; a flat book (``sum|w_old| = 0``) takes the target."""
    flat = jnp.sum(jnp.abs(w_old), axis=-1, keepdims=True) <= 0
    rate = jnp.where(flat, 1.0, jnp.asarray(rate, target.dtype))
    return w_old + rate * (target - w_old)


def make_network(config: UniverseConfig, env: PortfolioEnv, critic: bool = False):
    return UniverseAllocator(
        window=env.window,
        num_features=env.num_features,
        hidden_sizes=tuple(config.hidden_sizes),
        head_size=int(config.head_size),
        leverage_cap=float(config.leverage_cap),
        init_gross=float(config.init_gross),
        observe_equity=bool(config.observe_equity),
        critic=critic,
    )


def apply_policy(network: UniverseAllocator, params, obs, rebalance_rate, leverage_cap):
    """Deterministic executed exposures ``[..., N]`` for ``obs [..., obs_dim]``."""
    scores, g, _ = network.apply(params, obs)
    _, w_old, _ = split_obs(obs, network.window, network.num_features)
    return rebalance(target_weights(scores, g, leverage_cap), w_old, rebalance_rate)


def init_params(config: UniverseConfig, env: PortfolioEnv, key: jax.Array, critic: bool = False):
    """Fresh network variables (jitted init)."""
    return _init(config.static(), env, critic, key)


@partial(jax.jit, static_argnums=(0, 1, 2))
def _init(config, env, critic, key):
    return make_network(config, env, critic).init(key, jnp.zeros((env.obs_dim,), jnp.float32))


# ----------------------------------------------------------------------------------------- codec
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


# ----------------------------------------------------------------------------------------- data
def stack_env_params(params: Sequence[EnvParams]) -> EnvParams:
    """Stack baskets' ``EnvParams`` (same N, T, F) along a new leading basket axis ``[B, ...]``."""
    params = list(params)
    if not params:
        raise DataError("stack_env_params: no baskets")
    shapes = {(p.prices.shape, p.features.shape) for p in params}
    if len(shapes) != 1:
        raise DataError(f"stack_env_params: baskets differ in shape {sorted(shapes)}")
    return jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *params)


def basket(params: EnvParams, b: int) -> EnvParams:
    """Basket ``b`` of stacked params."""
    return jax.tree_util.tree_map(lambda x: x[b], params)


# ----------------------------------------------------------------------------------------- training
METRIC_KEYS = (
    "objective",  # per-step training objective of the update (all baskets and envs)
    "mean_log_growth",  # per-step log growth net of costs
    "turnover",  # per-step turnover sum|dw| (fraction of equity)
    "mean_leverage",  # gross exposure (multiples of equity)
    "grad_norm",  # global gradient norm before clipping
)


#: EnvState fields that only keep the episode's books (no effect on rewards or observations).
_BOOKKEEPING = (
    "open_trade_pnl",
    "gross_pnl",
    "fees",
    "financing",
    "num_trades",
    "winning_trades",
    "last_reward",
)


def _select(mask, new, old):
    return jnp.where(mask.reshape(mask.shape + (1,) * (new.ndim - mask.ndim)), new, old)


def _reset_baskets(env, params, key, num_envs):
    """``(obs [B, E, D], state [B, E, ...])``: random start days per basket."""
    num_baskets = params.prices.shape[0]
    keys = jax.random.split(key, num_baskets * num_envs).reshape(num_baskets, num_envs, -1)
    inner = jax.vmap(env.reset_env, in_axes=(0, None))
    return jax.vmap(inner, in_axes=(0, 0))(keys, params)


def _train_params(config: UniverseConfig, params: EnvParams) -> EnvParams:
    b = params.prices.shape[0]
    return params.replace(
        episode_length=jnp.full((b,), config.episode_length, jnp.int32),
        eval_start=jnp.full((b,), -1, jnp.int32),
    )


def _nested_step(env):
    inner = jax.vmap(env.step_env, in_axes=(None, 0, 0, None))
    return jax.vmap(inner, in_axes=(None, 0, 0, 0))


def _val_rollout(env, network, cap, net_params, rate, params: EnvParams, num_steps: int):
    """Deterministic episode of ONE basket from ``params.eval_start``: per-step arrays ``[S]``."""
    obs, state = env.reset_env(jax.random.PRNGKey(0), params)
    num_days = params.prices.shape[-2]

    def body(carry, _):
        obs, state, done = carry
        action = apply_policy(network, net_params, obs, rate, cap)
        n_obs, n_state, reward, term, info = env.step_env(None, state, action, params)
        valid = (~done) & (state.time < params.episode_length) & (state.t < num_days - 1)
        obs = jnp.where(valid, n_obs, obs)
        state = jax.tree_util.tree_map(lambda a, b: jnp.where(valid, a, b), n_state, state)
        out = (
            valid.astype(jnp.float32),
            jnp.where(valid, reward, 0.0),
            jnp.where(valid, info["portfolio_return"], 0.0),
            jnp.where(valid, info["turnover"], 0.0),
        )
        return (obs, state, done | (valid & term)), out

    _, traj = jax.lax.scan(body, (obs, state, jnp.zeros((), bool)), None, length=num_steps)
    return traj


def validation_stats(valid, log_growth, ret, turnover, ppy, risk_penalty, turnover_penalty):
    """Per-basket validation numbers from per-step arrays ``[..., S]``: ``objective`` (mean log
    growth - risk_penalty x var(ret) - turnover_penalty x mean turnover, per step), ``sharpe``
    (annualised with ``ppy``, ddof 1), ``log_growth`` and ``turnover`` (per step)."""
    n = jnp.maximum(jnp.sum(valid, -1), 1.0)
    mean_lg = jnp.sum(log_growth, -1) / n
    mean_ret = jnp.sum(ret, -1) / n
    dev2 = valid * (ret - mean_ret[..., None]) ** 2
    var = jnp.sum(dev2, -1) / n
    std1 = jnp.sqrt(jnp.sum(dev2, -1) / jnp.maximum(n - 1.0, 1.0))
    mean_to = jnp.sum(turnover, -1) / n
    sharpe = jnp.where(std1 > 1e-12, mean_ret / jnp.maximum(std1, 1e-12), 0.0) * jnp.sqrt(ppy)
    objective = mean_lg - risk_penalty * var - turnover_penalty * mean_to
    return dict(objective=objective, sharpe=sharpe, log_growth=mean_lg, turnover=mean_to)


def _make_optimizer(config, hp):
    if config.anneal_lr:

        def lr(count):
            progress = jnp.minimum(count / config.num_updates, 1.0)
            return hp["lr"] * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))

    else:
        lr = hp["lr"]
    return optax.chain(
        optax.clip_by_global_norm(hp["max_grad_norm"]),
        optax.adamw(lr, weight_decay=hp["weight_decay"]),
    )


def _train_member(config, env, val_steps, train_params, val_params, sel, hp, key):
    """One member: returns best params, validation curve and per-update metrics."""
    network = make_network(config, env)
    cap = float(config.leverage_cap)
    params = _train_params(config, train_params)
    num_days = params.prices.shape[-2]
    num_b, num_e = params.prices.shape[0], config.num_envs
    tx = _make_optimizer(config, hp)
    step = _nested_step(env)
    kf = env.window * env.num_assets * env.num_features
    noise_mask = (jnp.arange(env.obs_dim) < kf).astype(jnp.float32)
    ppy = val_params.periods_per_year

    k_init, k_reset, k_loop = jax.random.split(key, 3)
    net_params = network.init(k_init, jnp.zeros((env.obs_dim,), jnp.float32))
    opt_state = tx.init(net_params)
    obs, state = _reset_baskets(env, params, k_reset, num_e)
    done = jnp.zeros((num_b, num_e), bool)

    def objective(p, obs, state, done, key):
        def body(carry, k):
            obs, state, done = carry
            noisy = obs + hp["feature_noise"] * noise_mask * jax.random.normal(k, obs.shape)
            action = apply_policy(network, p, noisy, hp["rebalance_rate"], cap)
            n_obs, n_state, reward, term, info = step(None, state, action, params)
            # per-trade bookkeeping never feeds the reward or the observation: keep it out of the
            # differentiated graph (same gradient, a smaller program to compile)
            n_state = n_state.replace(
                **{k: jax.lax.stop_gradient(getattr(n_state, k)) for k in _BOOKKEEPING}
            )
            valid = (
                (~done) & (state.time < params.episode_length[:, None]) & (state.t < num_days - 1)
            )
            obs = _select(valid, n_obs, obs)
            state = jax.tree_util.tree_map(partial(_select, valid), n_state, state)
            done = done | (valid & term)
            out = (
                valid.astype(jnp.float32),
                jnp.where(valid, reward, 0.0),
                jnp.where(valid, info["portfolio_return"], 0.0),
                jnp.where(valid, info["turnover"], 0.0),
                jnp.where(valid, info["leverage"], 0.0),
            )
            return (obs, state, done), out

        keys = jax.random.split(key, config.bptt_length)
        (obs, state, done), (valid, lg, ret, to, lev) = jax.lax.scan(
            body, (obs, state, done), keys
        )  # [L, B, E]
        n = jnp.sum(valid, 0)
        has = n > 0
        n_safe = jnp.maximum(n, 1.0)
        mean_lg = jnp.sum(lg, 0) / n_safe
        mean_ret = jnp.sum(ret, 0) / n_safe
        var = jnp.sum(valid * (ret - mean_ret) ** 2, 0) / n_safe
        mean_to = jnp.sum(to, 0) / n_safe
        per_env = mean_lg - hp["risk_penalty"] * var - hp["turnover_penalty"] * mean_to
        obj = jnp.sum(jnp.where(has, per_env, 0.0)) / jnp.maximum(jnp.sum(has), 1)
        total = jnp.maximum(jnp.sum(valid), 1.0)
        metrics = dict(
            objective=obj,
            mean_log_growth=jnp.sum(lg) / total,
            turnover=jnp.sum(to) / total,
            mean_leverage=jnp.sum(lev) / total,
        )
        return obj, (obs, state, done, metrics)

    grad_fn = jax.value_and_grad(objective, has_aux=True)

    def update(carry, k):
        p, opt_state, obs, state, done = carry
        k_reset, k_noise = jax.random.split(k)
        finished = done | (state.time >= params.episode_length[:, None]) | (state.t >= num_days - 1)
        r_obs, r_state = _reset_baskets(env, params, k_reset, num_e)
        obs = _select(finished, r_obs, obs)
        state = jax.tree_util.tree_map(partial(_select, finished), r_state, state)
        done = done & ~finished
        (_, (obs, state, done, metrics)), grads = grad_fn(p, obs, state, done, k_noise)
        grads = jax.tree_util.tree_map(jnp.negative, grads)
        updates, opt_state = tx.update(grads, opt_state, p)
        p = optax.apply_updates(p, updates)
        obs, state, done = jax.lax.stop_gradient((obs, state, done))
        metrics = dict(metrics, grad_norm=optax.tree.norm(grads))
        return (p, opt_state, obs, state, done), metrics

    def validate(p):
        roll = jax.vmap(
            lambda vp: _val_rollout(env, network, cap, p, hp["rebalance_rate"], vp, val_steps)
        )
        valid, lg, ret, to = roll(val_params)  # [B, S]
        return validation_stats(
            valid, lg, ret, to, ppy, sel["risk_penalty"], sel["turnover_penalty"]
        )

    num_evals = config.num_updates // config.eval_every

    def keep_best(best, params, stats, j):
        best_p, best_obj, best_idx = best
        score = jnp.mean(stats["objective"])
        better = (j == 0) | (score > best_obj)
        best_p = jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b), params, best_p)
        return best_p, jnp.where(better, score, best_obj), jnp.where(better, j, best_idx)

    def period(carry, xs):
        # evaluation j validates the params after j * eval_every updates (j = 0: the untrained
        # start), then runs the next eval_every updates; the last evaluation follows the scan
        inner, best = carry
        keys, j = xs
        stats = validate(inner[0])
        best = keep_best(best, inner[0], stats, j)
        inner, metrics = jax.lax.scan(update, inner, keys)
        return (inner, best), (metrics, stats)

    keys = jax.random.split(k_loop, config.num_updates).reshape(num_evals, config.eval_every, -1)
    carry = (
        (net_params, opt_state, obs, state, done),
        (net_params, jnp.float32(-jnp.inf), jnp.zeros((), jnp.int32)),
    )
    # Under the population vmap every carry is per member: marking them so up front lets each
    # nested scan's batching rule settle in one pass instead of re-tracing its body (compile time)
    member = hp["lr"] == hp["lr"]
    carry = jax.tree_util.tree_map(lambda a: jnp.where(member, a, a), carry)
    xs = (keys, jnp.arange(num_evals, dtype=jnp.int32))
    (inner, best), (metrics, curve) = jax.lax.scan(period, carry, xs)
    last = validate(inner[0])
    best_p, best_obj, best_idx = keep_best(best, inner[0], last, jnp.int32(num_evals))
    curve = jax.tree_util.tree_map(lambda c, x: jnp.concatenate([c, x[None]], 0), curve, last)
    metrics = {k: v.reshape(-1) for k, v in metrics.items()}  # [num_updates]
    # curve: [num_evals + 1, B]
    return dict(
        params=best_p,
        final_params=inner[0],
        best_eval=best_idx,
        best_objective=best_obj,
        val_curve=curve,
        metrics=metrics,
    )


@partial(jax.jit, static_argnums=(0, 1, 2, 8))
def _train_population(config, env, val_steps, train_params, val_params, sel, hp, keys, mesh=None):
    """Every member, vmapped; with a ``mesh`` (1-D, more than one device) the member axis of
    ``hp``/``keys`` and of every output is split over it (``shard_map``: members are independent,
    so no communication; each device vmaps its own members)."""
    fn = partial(_train_member, config, env, val_steps)
    population = jax.vmap(fn, in_axes=(None, None, None, 0, 0))
    if mesh is None:
        return population(train_params, val_params, sel, hp, keys)
    from jax.sharding import PartitionSpec as P

    axis = P(mesh.axis_names[0])
    sharded = jax.shard_map(  # no collectives inside: the varying-axis check is not needed
        population,
        mesh=mesh,
        in_specs=(P(), P(), P(), axis, axis),
        out_specs=axis,
        check_vma=False,
    )
    return sharded(train_params, val_params, sel, hp, keys)


def _check_stacked(env: PortfolioEnv, params: EnvParams, name: str) -> None:
    if params.prices.ndim != 3:
        raise DataError(
            f"{name}: expected EnvParams stacked over baskets [B, T, N] "
            f"(see stack_env_params), got prices {params.prices.shape}"
        )
    n, f = params.prices.shape[-1], params.features.shape[-1]
    if n != env.num_assets or f != env.num_features:
        raise DataError(
            f"{name}: N={n}, F={f} do not match env ({env.num_assets}, {env.num_features})"
        )


def validation_steps(val_params: EnvParams) -> int:
    """Static length of the validation scan: the longest basket episode (host-side)."""
    starts = np.asarray(val_params.eval_start).reshape(-1)
    if np.any(starts < 0):
        raise DataError("val_params: every basket needs eval_start >= 0 (a fixed validation start)")
    num_days = int(val_params.prices.shape[-2])
    lengths = np.asarray(val_params.episode_length).reshape(-1)
    steps = int(np.max(np.minimum(lengths, num_days - 1 - starts)))
    if steps < 1:
        raise DataError("val_params: no validation step")
    return steps


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
    :func:`stack_env_params`; validation baskets need ``eval_start >= 0``).

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
    val_steps, members, hp, keys, sel = population_inputs(
        config, env, train_params, val_params, key, DYNAMIC_FIELDS
    )
    if mesh is not None and mesh.devices.size == 1:
        mesh = None
    if mesh is not None:
        from jaxport.errors import ConfigError

        n = mesh.devices.size
        if len(mesh.axis_names) != 1:
            raise ConfigError(f"train_universe: expected a 1-D mesh, got axes {mesh.axis_names}")
        if len(members) % n:
            raise ConfigError(
                f"rl.seeds {config.num_seeds}: the universe population of {len(members)} members "
                f"= {len(members) // config.num_seeds} hyperparameter set(s) x {config.num_seeds} seeds must be a "
                f"multiple of the {n} devices it is sharded over, see rl.devices"
            )
    out = _train_population(
        config.static(), env, val_steps, train_params, val_params, sel, hp, keys, mesh
    )
    if mesh is not None:  # gathered whole onto the default device of every process
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            out = multihost_utils.process_allgather(out, tiled=True)
        out = jax.device_put(jax.device_get(out))
    result = population_result(config, members, out)
    best = result["best_member"]
    best_params = jax.tree_util.tree_map(lambda x: x[best], out["params"])
    policy = make_universe_policy(
        config, env, best_params, rebalance_rate=members[best][0]["rebalance_rate"]
    )
    return dict(result, policy=policy, params=out["params"], final_params=out["final_params"])


def population_inputs(config, env, train_params, val_params, key, fields: Sequence[str]):
    """The host-side setup every universe trainer shares: validate ``config`` and the stacked
    params, then ``(val_steps, members [(hyperparams, seed)], hp {field: [M]}, keys [M],
    sel {risk_penalty, turnover_penalty})`` for the traced ``fields``."""
    config.validate()
    _check_stacked(env, train_params, "train_params")
    _check_stacked(env, val_params, "val_params")
    members = [(h, s) for h in config.members_hparams() for s in range(config.num_seeds)]
    hp = {k: jnp.asarray([h[k] for h, _ in members], jnp.float32) for k in fields}
    base_keys = jax.random.split(key, config.num_seeds)
    keys = jnp.stack([base_keys[s] for _, s in members])
    sel = {
        "risk_penalty": jnp.float32(config.select_risk_penalty),
        "turnover_penalty": jnp.float32(config.select_turnover_penalty),
    }
    return validation_steps(val_params), members, hp, keys, sel


def population_result(config: UniverseConfig, members: Sequence[tuple], out: dict) -> dict:
    """The host-side part of a population run that every universe trainer shares: per member
    ``{hyperparams, seed, best_update, val_score, val_objective [B], val_sharpe [B]}``,
    ``best_member`` (argmax of the validation score), ``metrics``, ``val_curve``, ``eval_updates``.
    ``members``: ``(hyperparams, seed)`` per member; ``out``: the jitted program's output."""
    curve = {k: np.asarray(v) for k, v in out["val_curve"].items()}
    best_eval = np.asarray(out["best_eval"])
    scores = np.asarray(out["best_objective"])
    rows = []
    for m, (h, s) in enumerate(members):
        e = int(best_eval[m])
        rows.append(
            dict(
                hyperparams=dict(h),
                seed=int(s),
                best_update=e * config.eval_every,
                val_score=float(scores[m]),
                val_objective=curve["objective"][m, e].tolist(),
                val_sharpe=curve["sharpe"][m, e].tolist(),
            )
        )
    return dict(
        members=rows,
        best_member=int(np.argmax(scores)),
        metrics={k: np.asarray(v) for k, v in out["metrics"].items()},
        val_curve=curve,
        eval_updates=[i * config.eval_every for i in range(curve["objective"].shape[1])],
    )


def member_policies(result: dict, config: UniverseConfig, env: PortfolioEnv) -> list[Policy]:
    """Every member's best-checkpoint :class:`Policy` (for the summary's candidate counts)."""
    out = []
    for m, row in enumerate(result["members"]):
        p = jax.tree_util.tree_map(lambda x: x[m], result["params"])
        out.append(make_universe_policy(config, env, p, row["hyperparams"]["rebalance_rate"]))
    return out


__all__ = [
    "DYNAMIC_FIELDS",
    "KIND",
    "METRIC_KEYS",
    "UniverseAllocator",
    "UniverseConfig",
    "apply_policy",
    "basket",
    "init_params",
    "make_network",
    "make_universe_policy",
    "member_policies",
    "num_assets_from_obs",
    "population_inputs",
    "population_result",
    "rebalance",
    "split_obs",
    "stack_env_params",
    "target_weights",
    "train_universe",
    "validation_stats",
    "validation_steps",
]
