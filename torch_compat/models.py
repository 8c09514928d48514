"""Plain PyTorch twins of jaxport's Flax models, for checkpoints exported by ``torch_compat.export``.

This module imports only ``torch``, the standard library (``safetensors`` for ``.safetensors``
files) and the stdlib-only :mod:`jaxport.allocator_kinds` (the allocator names it shares with the
core): an exported model loads without JAX::

    model = load_exported("out/portfolio_AAPL_MSFT.safetensors")  # no pickle; arch in its metadata
    model = load_exported("out/portfolio_AAPL_MSFT.pt")  # reads the sibling .json, strict load
    action = model.act(obs, info)  # obs, info: what the env returned (ReplayPolicy)

Modules (each mirrors the Flax definition named in its docstring; Flax ``Dense`` kernels are
``[in, out]``, so ``Linear.weight`` is the transpose):

* :class:`ActorCritic` -- ``jaxport.rl.networks.ActorCritic`` (PPO), plus the observation
  normalisation the trained policy was used with and the ``leverage_cap * tanh`` squash.
* :class:`MLPAllocator` -- ``jaxport.rl.gradient.MLPAllocator`` (differentiable-RL MLP policy).
* :class:`AllocatorPolicy` -- a shipped baseline (``jaxport.eval.allocators.Allocator``): no
  weights, a rule on the trailing prices it carries; ``act(obs, info)`` like every policy.
* :class:`PatchTransformerForecaster` -- ``jaxport.forecast.model.ForecasterNet`` (Toto-style patch
  transformer with a Student-T head) plus the per-window input normalisation.
"""

from __future__ import annotations

import collections.abc
import inspect
import json
import typing
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from jaxport.allocator_kinds import ALLOCATOR_KINDS  # stdlib only: no JAX

FORMAT = "torch_compat.export/1"


def activation(name: str) -> nn.Module:
    """Torch twin of ``jaxport.rl.networks.ACTIVATIONS[name]`` (Flax ``gelu`` is the tanh approximation)."""
    table = {
        "tanh": nn.Tanh,
        "relu": nn.ReLU,
        "gelu": lambda: nn.GELU(approximate="tanh"),
        "silu": nn.SiLU,
        "elu": nn.ELU,
    }
    if name not in table:
        raise ValueError(f"activation must be one of {sorted(table)}, got {name!r}")
    return table[name]()


def _mlp(in_dim: int, hidden: Sequence[int], out_dim: int, act: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), activation(act)]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def _constructor_config(module: type, arguments: dict) -> dict:
    """A module's ``config``: the arguments of ``module.__init__`` taken from ``arguments`` (the
    ``locals()`` of that call) in signature order, each cast to its annotation (``int``, ``float``,
    ``bool``, ``str``; a ``Sequence[T]`` to a list of ``T``), so that it is plain JSON and
    :func:`build_model` rebuilds the same module from it."""
    hints = typing.get_type_hints(module.__init__)
    config = {}
    for name in list(inspect.signature(module.__init__).parameters)[1:]:  # after self
        hint, value = hints[name], arguments[name]
        if typing.get_origin(hint) is collections.abc.Sequence:
            (item,) = typing.get_args(hint)
            config[name] = [item(v) for v in value]
        else:
            config[name] = hint(value)
    return config


# ---------------------------------------------------------------------------------- policies
class ReplayPolicy:
    """The one contract of every exported policy, learned or baseline: the same loop replays any
    of them::

        obs, info = env.reset(seed=0)
        policy.reset(prices=env.params.prices)  # optional: see below
        while True:
            obs, reward, terminated, truncated, info = env.step(policy.act(obs, info))
            if terminated or truncated:
                break

    ``act(obs, info)``: the env action (target exposure per asset, fraction of equity) for the raw
    observation ``obs [obs_dim]`` and the ``info`` dict the env returned with it (``reset`` or
    ``step``). Learned networks read only ``obs``; standard allocators (:class:`AllocatorPolicy`)
    read the day ``info["t"]`` and the close prices they carry. ``reset(prices=None)`` starts a new
    episode; ``prices`` (close prices ``[T, N]`` of the env's data) binds the price table an
    allocator reads (:func:`load_exported` binds the exported test episode's prices from the
    ``.env.npz`` beside the file). Learned networks ignore both.
    """

    def reset(self, prices=None) -> None:
        """Start a new episode (learned networks are stateless: nothing to do)."""


class ActorCritic(ReplayPolicy, nn.Module):
    """PPO actor-critic (twin of ``jaxport.rl.networks.ActorCritic``) with its observation normaliser.

    ``forward(x)`` on the NETWORK input (normalised observation) -> ``(mean, log_std, value)``
    exactly like the Flax module. ``act(obs)`` on a RAW env observation: normalise with the stored
    running statistics (``clip((obs - mean) / sqrt(var + 1e-8), +-obs_clip)``, when
    ``normalize_obs``), then ``leverage_cap * tanh(mean)`` (deterministic) or of a Gaussian sample.
    Actions are target exposures per asset (fractions of equity).
    """

    kind = "actor_critic"

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        leverage_cap: float = 2.0,
        normalize_obs: bool = True,
        obs_clip: float = 10.0,
        init_log_std: float = 0.0,
    ):
        super().__init__()
        self.config = _constructor_config(ActorCritic, locals())
        self.actor = _mlp(obs_dim, hidden, action_dim, activation)
        self.critic = _mlp(obs_dim, hidden, 1, activation)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(init_log_std)))
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_var", torch.ones(obs_dim))

    def forward(self, x: torch.Tensor):
        mean = self.actor(x)
        value = self.critic(x).squeeze(-1)
        return mean, self.log_std.expand_as(mean), value

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.config["normalize_obs"]:
            return obs
        clip = self.config["obs_clip"]
        z = (obs - self.obs_mean) * torch.rsqrt(self.obs_var + 1e-8)
        return torch.clamp(z, -clip, clip)

    def act(
        self,
        obs: torch.Tensor,
        info: dict | None = None,
        deterministic: bool = True,
        generator: torch.Generator | None = None,
    ):
        """Target exposures ``leverage_cap * tanh(u)`` for raw observations ``[..., obs_dim]``
        (``info`` is not read; :class:`ReplayPolicy`)."""
        mean, log_std, _ = self(self.normalize(obs))
        u = mean
        if not deterministic:
            noise = torch.randn(
                mean.shape, generator=generator, dtype=mean.dtype, device=mean.device
            )
            u = mean + log_std.exp() * noise
        return self.config["leverage_cap"] * torch.tanh(u)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self(self.normalize(obs))[2]


class MLPAllocator(ReplayPolicy, nn.Module):
    """Deterministic MLP policy (twin of ``jaxport.rl.gradient.MLPAllocator``).

    ``forward(obs)`` = ``act(obs)`` -> ``leverage_cap * tanh(MLP(x))`` with tanh hidden layers, where
    ``x`` is the raw observation without its last entry (E/E0 - 1) unless ``observe_equity``.
    """

    kind = "mlp_allocator"

    def __init__(
        self,
        obs_dim: int,
        num_assets: int,
        hidden_sizes: Sequence[int] = (64, 64),
        leverage_cap: float = 2.0,
        observe_equity: bool = False,
    ):
        super().__init__()
        self.config = _constructor_config(MLPAllocator, locals())
        in_dim = obs_dim if observe_equity else obs_dim - 1
        self.net = _mlp(in_dim, hidden_sizes, num_assets, "tanh")

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs if self.config["observe_equity"] else obs[..., :-1]
        return self.config["leverage_cap"] * torch.tanh(self.net(x))

    def act(
        self, obs: torch.Tensor, info: dict | None = None, deterministic: bool = True
    ) -> torch.Tensor:
        """The env action for raw observations ``[..., obs_dim]`` (``info`` is not read)."""
        return self(obs)


class UniverseAllocator(ReplayPolicy, nn.Module):
    """Twin of ``jaxport.rl.universe.UniverseAllocator`` (deterministic policy, any basket size).

    ``forward(obs [..., obs_dim])`` -> executed exposures ``[..., N]``: per-asset inputs
    ``[features of asset i over the window, w_i]`` -> shared tanh encoder ``enc`` -> context
    ``[mean_i e_i, cash, gross(, E/E0 - 1)]`` -> score ``s_i`` (``head``) and gross logit ``g``
    (``gross``); target ``leverage_cap * sigmoid(g) * softmax(s)``; executed ``w + rate * (target -
    w)`` (the full target when the book is flat). N is read from ``obs_dim``.
    """

    kind = "universe_allocator"

    def __init__(
        self,
        window: int,
        num_features: int,
        hidden_sizes: Sequence[int] = (32, 32),
        head_size: int = 32,
        leverage_cap: float = 2.0,
        observe_equity: bool = False,
        rebalance_rate: float = 1.0,
        anchor: str = "none",
        anchor_eta: float = 1.0,
        anchor_vol_managed: bool = False,
        max_gross: float = 1.0,
        init_gross: float = 1.0,
    ):
        super().__init__()
        self.config = _constructor_config(UniverseAllocator, locals())
        in_dim = window * num_features + 1
        layers, d = [], in_dim
        for h in hidden_sizes:
            layers += [nn.Linear(d, int(h)), nn.Tanh()]
            d = int(h)
        self.enc = nn.Sequential(*layers)
        ctx = d + (3 if observe_equity else 2)
        self.head = nn.Sequential(nn.Linear(d + ctx, head_size), nn.Tanh(), nn.Linear(head_size, 1))
        self.gross = nn.Sequential(nn.Linear(ctx, head_size), nn.Tanh(), nn.Linear(head_size, 1))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        c = self.config
        k, f = c["window"], c["num_features"]
        n = (obs.shape[-1] - 3) // (k * f + 1)
        lead = obs.shape[:-1]
        feats = obs[..., : k * n * f].reshape(*lead, k, n, f).movedim(-2, -3)
        feats = feats.reshape(*lead, n, k * f)
        w = obs[..., k * n * f : k * n * f + n]
        scalars = obs[..., k * n * f + n :]
        e = self.enc(torch.cat([feats, w.unsqueeze(-1)], dim=-1))
        tail = scalars if c["observe_equity"] else scalars[..., :2]
        ctx = torch.cat([e.mean(dim=-2), tail], dim=-1)
        ctx_i = ctx.unsqueeze(-2).expand(*e.shape[:-1], ctx.shape[-1])
        s = self.head(torch.cat([e, ctx_i], dim=-1)).squeeze(-1)
        g = self.gross(ctx).squeeze(-1)
        if c["anchor"] != "none":
            s, g = self._anchored(feats, s, g)
        target = (c["leverage_cap"] * torch.sigmoid(g)).unsqueeze(-1) * torch.softmax(s, dim=-1)
        flat = w.abs().sum(dim=-1, keepdim=True) <= 0
        rate = torch.where(
            flat,
            torch.ones_like(flat, dtype=obs.dtype),
            torch.full_like(flat, c["rebalance_rate"], dtype=obs.dtype),
        )
        return w + rate * (target - w)

    def _anchored(self, feats: torch.Tensor, tilt: torch.Tensor, gross_tilt: torch.Tensor):
        """Scores and gross logit of ``anchor + tilt`` (``UniverseAllocator._anchored``): scores
        ``-2 eta log sigma_i + tilt_i``, gross ``min(max_gross, a * e^g)`` from the raw anchor
        columns (the last two features of the newest window row)."""
        c = self.config
        col = (c["window"] - 1) * c["num_features"] + c["num_features"] - 2
        log_vol, log_ratio = feats[..., col], feats[..., 0, col + 1]
        scores = tilt - 2.0 * c["anchor_eta"] * log_vol
        if c["anchor_vol_managed"]:
            base = torch.clamp(torch.exp(log_ratio), max=c["max_gross"])
        else:
            base = torch.full_like(gross_tilt, min(c["max_gross"], c["init_gross"]))
        gross = torch.clamp(
            base * torch.exp(torch.clamp(gross_tilt, -10.0, 10.0)), max=c["max_gross"]
        )
        frac = torch.clamp(gross / c["leverage_cap"], 1e-6, 1.0 - 1e-6)
        return scores, torch.log(frac) - torch.log1p(-frac)

    def act(
        self, obs: torch.Tensor, info: dict | None = None, deterministic: bool = True
    ) -> torch.Tensor:
        """The env action for raw observations ``[..., obs_dim]`` (``info`` is not read)."""
        return self(obs)


def _normalised_cov(cov: torch.Tensor) -> torch.Tensor:
    """``C / mean(diag C) + 1e-9 I`` (as ``jaxport.eval.allocators._normalised``)."""
    n = cov.shape[-1]
    scale = torch.clamp(torch.diagonal(cov).mean(), min=1e-12)
    return cov / scale + 1e-9 * torch.eye(n, dtype=cov.dtype, device=cov.device)


def _project_simplex(v: torch.Tensor) -> torch.Tensor:
    """Euclidean projection onto ``{w >= 0, sum w = 1}`` (sort-based)."""
    n = v.shape[-1]
    u = torch.sort(v, descending=True).values
    css = torch.cumsum(u, 0) - 1.0
    k = torch.arange(1, n + 1, dtype=v.dtype, device=v.device)
    rho = int(torch.sum(u - css / k > 0))
    theta = css[rho - 1] / rho
    return torch.clamp(v - theta, min=0.0)


class AllocatorPolicy(ReplayPolicy, nn.Module):
    """Twin of a shipped ``baseline:<name>`` policy (``jaxport.eval.allocators.Allocator``).

    No parameters: the weights are a rule on the trailing prices. ``act(obs, info)`` (the
    :class:`ReplayPolicy` contract) reads the day ``t = info["t"]`` and the close prices bound by
    ``reset(prices=...)`` or :func:`load_exported`; it counts episode steps itself (a new episode
    starts at ``reset()`` or when ``t`` does not follow the previous call's day). The explicit form
    is ``act_at(obs, prices, step)``:

    - ``prices``: the close prices ``[R, N]`` of days ``t - R + 1 .. t`` (``t`` the current day),
      ``R = min(t, lookback) + 1`` (fewer rows at the start of the data; more are cut to the last
      ``lookback + 1``); :meth:`price_window` slices it from the whole table.
    - ``step``: episode steps since reset; on rebalance steps (``step % rebalance_every == 0``;
      ``rebalance_every == 0``: step 0 only) the action is the allocator's :meth:`target`, else the
      current drifted weights read from ``obs`` (its ``w`` block), i.e. no trade.

    Estimators (per-step simple returns, covariance ddof=1, computed in float64 and returned in
    ``obs``'s dtype): ``equal_weight`` 1/N, ``inverse_volatility``, ``minimum_variance`` (long-only,
    covariance shrunk by ``shrinkage`` toward its diagonal; N = 2 closed form, exact support
    enumeration up to ``exact_max_assets``, projected gradient beyond), ``risk_parity`` (cyclical
    coordinate descent from inverse volatility), ``volatility_timing`` (w ~ sigma^(-2 eta)),
    ``vol_managed_equal_weight`` (1/N x min(max_gross, sigma_long / sigma_short) of the 1/N book,
    ``long_lookback`` days for the long window), ``equal_minimum_variance`` (``mix`` x 1/N + (1 -
    mix) x minimum variance), ``buy_and_hold`` of ``asset``, ``cash`` (flat); fewer than 2 returns
    -> 1/N. Weights are fractions of equity.
    """

    kind = "allocator_policy"

    def __init__(
        self,
        allocator: str,
        num_assets: int,
        lookback: int = 60,
        rebalance_every: int = 21,
        asset: int = -1,
        shrinkage: float = 0.1,
        name: str = "",
        exact_max_assets: int = 10,
        iterations: int = 500,
        sweeps: int = 100,
        eta: float = 1.0,
        long_lookback: int = 252,
        max_gross: float = 1.0,
        mix: float = 0.5,
    ):
        super().__init__()
        if allocator not in ALLOCATOR_KINDS:
            raise ValueError(f"allocator must be one of {ALLOCATOR_KINDS}, got {allocator!r}")
        name = name or allocator  # the default name is the rule's
        self.config = _constructor_config(AllocatorPolicy, locals())
        self.prices: torch.Tensor | None = None  # close prices [T, N] (reset(prices=...))
        self._episode: tuple[int, int] | None = None

    def price_window(self, prices, t: int) -> torch.Tensor:
        """The rows of ``prices [T, N]`` that :meth:`target` reads for day ``t``."""
        prices = torch.as_tensor(prices)
        return prices[max(0, int(t) - self._window()) : int(t) + 1]

    def _window(self) -> int:
        """Trailing returns the rule reads (the long window for ``vol_managed_equal_weight``)."""
        c = self.config
        long = c["allocator"] == "vol_managed_equal_weight"
        return max(c["lookback"], c["long_lookback"]) if long else c["lookback"]

    def is_rebalance_step(self, step: int) -> bool:
        every = self.config["rebalance_every"]
        return int(step) == 0 if every == 0 else int(step) % every == 0

    def _covariance(self, prices: torch.Tensor, lookback: int | None = None):
        p = prices[-((lookback or self.config["lookback"]) + 1) :].to(torch.float64)
        r = p[1:] / p[:-1] - 1.0
        count = int(r.shape[0])
        if count < 2:
            return torch.zeros(p.shape[-1], p.shape[-1], dtype=p.dtype), count
        d = r - r.mean(dim=0)
        return d.T @ d / (count - 1), count

    def target(self, prices) -> torch.Tensor:
        """Target weights ``[N]`` (float64) from the trailing price window ``[R, N]``."""
        c = self.config
        prices = torch.as_tensor(prices)
        n = c["num_assets"]
        if prices.shape[-1] != n:
            raise ValueError(f"price window has {prices.shape[-1]} assets, the policy {n}")
        f64 = dict(dtype=torch.float64, device=prices.device)
        kind = c["allocator"]
        if kind == "equal_weight":
            return torch.full((n,), 1.0 / n, **f64)
        if kind == "cash":
            return torch.zeros(n, **f64)
        if kind == "buy_and_hold":
            return torch.zeros(n, **f64).index_fill_(0, torch.tensor([c["asset"]]), 1.0)
        cov, count = self._covariance(prices)
        if count < 2:
            return torch.full((n,), 1.0 / n, **f64)
        if kind == "inverse_volatility":
            inv = 1.0 / torch.sqrt(torch.diagonal(_normalised_cov(cov)))
            return inv / inv.sum()
        if kind == "volatility_timing":  # softmax(-2 eta log sigma_i)
            log_sigma = 0.5 * torch.log(torch.diagonal(_normalised_cov(cov)))
            return torch.softmax(-2.0 * c["eta"] * log_sigma, dim=0)
        if kind == "vol_managed_equal_weight":  # sigma_long / sigma_short of the 1/N book
            long, _ = self._covariance(prices, c["long_lookback"])
            var_s, var_l = cov.sum() / n**2, long.sum() / n**2
            ratio = torch.sqrt(torch.clamp(var_l, min=1e-12) / torch.clamp(var_s, min=1e-12))
            ratio = ratio if float(var_s) > 1e-12 else torch.ones((), **f64)
            return torch.clamp(ratio, max=c["max_gross"]) * torch.full((n,), 1.0 / n, **f64)
        if kind in ("minimum_variance", "equal_minimum_variance"):
            s = c["shrinkage"]
            w = self._minimum_variance((1.0 - s) * cov + s * torch.diag(torch.diagonal(cov)))
            if kind == "minimum_variance":
                return w
            return c["mix"] / n + (1.0 - c["mix"]) * w
        return self._risk_parity(cov)

    def _minimum_variance(self, cov: torch.Tensor) -> torch.Tensor:
        n = cov.shape[-1]
        if n == 1:
            return torch.ones(1, dtype=cov.dtype)
        c = _normalised_cov(cov)
        if n == 2:  # w_1 = clip((s2^2 - c12) / (s1^2 + s2^2 - 2 c12), 0, 1)
            w1 = torch.clamp((c[1, 1] - c[0, 1]) / (c[0, 0] + c[1, 1] - 2.0 * c[0, 1]), 0.0, 1.0)
            return torch.stack([w1, 1.0 - w1])
        if n <= self.config["exact_max_assets"]:
            best, best_var = None, float("inf")
            for bits in range(1, 2**n):
                idx = [i for i in range(n) if bits >> (n - 1 - i) & 1]
                sub = c[idx][:, idx]
                m = len(idx)
                kkt = torch.zeros(m + 1, m + 1, dtype=c.dtype)
                kkt[:m, :m], kkt[:m, m], kkt[m, :m] = sub, 1.0, 1.0
                rhs = torch.zeros(m + 1, dtype=c.dtype)
                rhs[m] = 1.0
                try:
                    ws = torch.linalg.solve(kkt, rhs)[:m]
                except RuntimeError:  # singular on this support
                    continue
                if not bool(torch.all(torch.isfinite(ws))) or bool(torch.any(ws < -1e-6)):
                    continue
                w = torch.zeros(n, dtype=c.dtype)
                w[idx] = ws
                var = float(w @ c @ w)
                if var < best_var:
                    best, best_var = w, var
            if best is None:
                return torch.full((n,), 1.0 / n, dtype=c.dtype)
            best = torch.clamp(best, min=0.0)
            return best / best.sum()
        step = 1.0 / (2.0 * torch.abs(c).sum(dim=1).max())
        w = z = torch.full((n,), 1.0 / n, dtype=c.dtype)
        for k in range(self.config["iterations"]):
            w_next = _project_simplex(z - step * 2.0 * (c @ z))
            z = w_next + (k / (k + 3.0)) * (w_next - w)
            w = w_next
        return w

    def _risk_parity(self, cov: torch.Tensor) -> torch.Tensor:
        n = cov.shape[-1]
        if n == 1:
            return torch.ones(1, dtype=cov.dtype)
        c = _normalised_cov(cov)
        diag = torch.diagonal(c)
        b = 1.0 / n
        inv_vol = 1.0 / torch.sqrt(diag)
        inv_vol = inv_vol / inv_vol.sum()
        y = inv_vol / torch.sqrt(torch.clamp(inv_vol @ c @ inv_vol, min=1e-12))
        for _ in range(self.config["sweeps"]):
            for i in range(n):
                s = c[i] @ y - c[i, i] * y[i]
                y = y.clone()
                y[i] = (-s + torch.sqrt(s * s + 4.0 * c[i, i] * b)) / (2.0 * c[i, i])
        w = y / y.sum()
        ok = bool(torch.all(torch.isfinite(w))) and bool(torch.all(w >= 0))
        return w if ok else inv_vol

    def act_at(self, obs: torch.Tensor, prices, step: int) -> torch.Tensor:
        """The env action for raw observation ``obs [obs_dim]`` (``obs = [..., w [N], cash, gross,
        E/E0 - 1]``) at episode step ``step`` with the trailing ``prices [R, N]`` up to today."""
        obs = torch.as_tensor(obs)
        n = self.config["num_assets"]
        if self.is_rebalance_step(step):
            return self.target(prices).to(obs.dtype)
        return obs[..., -(n + 3) : -3].clone()

    def reset(self, prices=None) -> None:
        """Start a new episode; ``prices``: close prices ``[T, N]`` of the env's data (day ``t`` of
        ``info["t"]`` is row ``t``)."""
        if prices is not None:
            table = torch.as_tensor(_to_numpy(prices), dtype=torch.float64)
            if table.ndim != 2 or table.shape[-1] != self.config["num_assets"]:
                raise ValueError(
                    f"prices must be [T, {self.config['num_assets']}], got {tuple(table.shape)}"
                )
            self.prices = table
        self._episode = None  # (first day, last day seen)

    def act(self, obs: torch.Tensor, info: dict, deterministic: bool = True) -> torch.Tensor:
        """The env action for ``obs`` and the env's ``info`` (:class:`ReplayPolicy`)."""
        if getattr(self, "prices", None) is None:
            raise RuntimeError(
                "AllocatorPolicy.act: no price table; call policy.reset(prices=env.params.prices) "
                "or load it with load_exported next to its .env.npz"
            )
        if info is None or "t" not in info:
            raise ValueError("AllocatorPolicy.act(obs, info): info must carry the day index 't'")
        t = int(info["t"])
        episode = getattr(self, "_episode", None)
        first = t if episode is None or t != episode[1] + 1 else episode[0]
        self._episode = (first, t)
        return self.act_at(obs, self.price_window(self.prices, t), t - first)

    def forward(self, obs: torch.Tensor, info: dict) -> torch.Tensor:
        return self.act(obs, info)


def _to_numpy(x):
    """Any array (torch, NumPy, JAX) as something ``torch.as_tensor`` takes, on the host."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    import numpy as np  # torch's own dependency for array interop

    return np.array(x)  # a writable host copy (JAX arrays are read-only views)


# ---------------------------------------------------------------------------------- forecaster
def rope(x: torch.Tensor, base: float) -> torch.Tensor:
    """Rotary embedding of ``x [B, L, heads, d]`` (rotate-half), as ``jaxport.forecast.model.rope``."""
    L, d = x.shape[-3], x.shape[-1]
    half = d // 2
    inv_freq = 1.0 / (base ** (torch.arange(half, dtype=torch.float32, device=x.device) / half))
    ang = torch.arange(L, dtype=torch.float32, device=x.device)[:, None] * inv_freq[None, :]
    cos, sin = torch.cos(ang)[:, None, :].to(x.dtype), torch.sin(ang)[:, None, :].to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, num_heads: int, rope_base: float):
        super().__init__()
        self.num_heads, self.rope_base = num_heads, rope_base
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        H = self.num_heads
        qkv = self.qkv(x).reshape(B, L, 3, H, D // H)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        q, k = rope(q, self.rope_base), rope(k, self.rope_base)
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        return self.out(out.transpose(1, 2).reshape(B, L, D))


class MLP(nn.Module):
    def __init__(self, d_model: int, mlp_ratio: int):
        super().__init__()
        self.fc1 = nn.Linear(d_model, mlp_ratio * d_model)
        self.fc2 = nn.Linear(mlp_ratio * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU, as the Flax model


class Block(nn.Module):
    def __init__(self, d_model: int, num_heads: int, mlp_ratio: int, rope_base: float):
        super().__init__()
        self.attn_norm = nn.RMSNorm(d_model, eps=1e-6)
        self.attn = CausalSelfAttention(d_model, num_heads, rope_base)
        self.mlp_norm = nn.RMSNorm(d_model, eps=1e-6)
        self.mlp = MLP(d_model, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class PatchTransformerForecaster(nn.Module):
    """Twin of ``jaxport.forecast.model.ForecasterNet`` (inference; dropout is not applied).

    ``forward(x_norm [B, C, 6])`` -> ``(loc, scale, dof)`` each ``[B, K, H]`` in normalised units;
    :meth:`predict_distribution` takes RAW channel windows (``r_close, r_open, r_high, r_low,
    |r_close|, log1p(volume)``, see ``jaxport.forecast.windows``) and returns loc/scale in natural
    log-return units of ``log(col[t+h] / close[t])`` (targets in ``config["targets"]`` order).
    """

    kind = "patch_transformer_forecaster"
    MIN_SCALE = 1e-4

    def __init__(
        self,
        context: int = 128,
        patch: int = 8,
        d_model: int = 192,
        num_layers: int = 4,
        num_heads: int = 6,
        mlp_ratio: int = 4,
        horizon: int = 8,
        targets: Sequence[str] = ("close", "open", "high", "low"),
        min_dof: float = 2.5,
        input_clip: float = 10.0,
        scale_eps: float = 1e-4,
        rope_base: float = 10000.0,
        num_channels: int = 6,
        dropout: float = 0.0,
    ):
        super().__init__()
        if context % patch or d_model % num_heads:
            raise ValueError(
                f"context={context} must be a multiple of patch={patch}; d_model % num_heads must be 0"
            )
        self.config = _constructor_config(PatchTransformerForecaster, locals())
        self.patch_embed = nn.Linear(patch * num_channels, d_model)
        self.blocks = nn.ModuleList(
            Block(d_model, num_heads, mlp_ratio, rope_base) for _ in range(num_layers)
        )
        self.final_norm = nn.RMSNorm(d_model, eps=1e-6)
        self.head = nn.Linear(d_model, len(targets) * horizon * 3)

    def forward(self, x: torch.Tensor):
        cfg = self.config
        B = x.shape[0]
        h = self.patch_embed(
            x.reshape(B, cfg["context"] // cfg["patch"], cfg["patch"] * x.shape[-1])
        )
        for block in self.blocks:
            h = block(h)
        z = self.final_norm(h)[:, -1]
        raw = self.head(z).reshape(B, len(cfg["targets"]), cfg["horizon"], 3)
        loc = raw[..., 0]
        scale = F.softplus(raw[..., 1]) + self.MIN_SCALE
        dof = cfg["min_dof"] + F.softplus(raw[..., 2])
        return loc, scale, dof

    def normalise_window(self, x: torch.Tensor):
        """Raw ``[..., C, 6]`` -> (normalised ``[..., C, 6]``, window scale ``s [...]``), as JAX's."""
        cfg = self.config
        rc = x[..., 0]
        s = torch.sqrt(torch.mean(rc * rc, dim=-1) + cfg["scale_eps"] ** 2)
        rets = x[..., :5] / s[..., None, None]
        lv = x[..., 5]
        lv = (lv - lv.mean(dim=-1, keepdim=True)) / torch.sqrt(
            lv.var(dim=-1, unbiased=False, keepdim=True) + 1e-6
        )
        out = torch.cat([rets, lv[..., None]], dim=-1)
        return torch.clamp(out, -cfg["input_clip"], cfg["input_clip"]), s

    def predict_distribution(self, x_raw: torch.Tensor):
        """Raw windows ``[B, C, 6]`` -> Student-T ``(loc, scale, dof)`` ``[B, K, H]`` in log-return units."""
        x, s = self.normalise_window(x_raw)
        loc, scale, dof = self(x)
        s = s[:, None, None]
        return loc * s, scale * s, dof


MODELS = {
    cls.kind: cls
    for cls in (
        ActorCritic,
        MLPAllocator,
        PatchTransformerForecaster,
        UniverseAllocator,
        AllocatorPolicy,
    )
}


# ---------------------------------------------------------------------------------- files
def build_model(arch: dict) -> nn.Module:
    """The (untrained) module described by an exported architecture JSON."""
    kind = arch.get("kind")
    if kind not in MODELS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(MODELS)}")
    return MODELS[kind](**arch["config"])


ARCH_METADATA_KEY = "jaxport_arch"  # safetensors metadata key of the architecture JSON


def _read_safetensors(path: Path, device: str) -> tuple[dict, dict]:
    """``(state_dict, arch)`` of an exported ``.safetensors`` file: no pickle (``load_file``), the
    architecture from the file's metadata (or a sibling ``.json`` when the metadata has none)."""
    try:
        from safetensors import safe_open
        from safetensors.torch import load_file
    except ImportError as err:  # pragma: no cover - safetensors ships with the torch extra
        raise ImportError(f"{path}: .safetensors needs the safetensors package ({err})") from None
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    if ARCH_METADATA_KEY in meta:
        arch = json.loads(meta[ARCH_METADATA_KEY])
    elif path.with_suffix(".json").is_file():
        arch = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    else:
        raise ValueError(
            f"{path}: no {ARCH_METADATA_KEY!r} in the safetensors metadata and no "
            f"{path.with_suffix('.json').name} beside it"
        )
    return load_file(str(path), device=device), arch


def load_exported(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Load an exported ``NAME.safetensors`` or ``NAME.pt`` + ``NAME.json``; strict, eval mode.

    ``.safetensors`` is read with ``safetensors.torch.load_file`` (no pickle; the architecture comes
    from its metadata, key ``"jaxport_arch"``); ``.pt`` with ``torch.load(weights_only=True)`` and
    the sibling ``.json``. Any other path (a bare stem or the ``.json``) loads ``NAME.safetensors``
    when it exists, else ``NAME.pt``. The architecture JSON's ``config`` are the module's
    constructor arguments; the other keys (``source``, ``env``, ...) describe where the model came
    from and how to feed it, and are kept on the module as ``model.arch``.
    """
    path = Path(path)
    if path.suffix not in (".safetensors", ".pt"):
        base = path.with_suffix("") if path.suffix == ".json" else path
        st = base.with_name(base.name + ".safetensors")
        path = st if st.is_file() else base.with_name(base.name + ".pt")
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: file not found")
        device = str(torch.device(map_location))
        state, arch = _read_safetensors(path, device)
    else:
        meta = path.with_suffix(".json")
        if not path.is_file() or not meta.is_file():
            raise FileNotFoundError(f"{path}: need both {path.name} and {meta.name}")
        arch = json.loads(meta.read_text(encoding="utf-8"))
        state = torch.load(path, map_location=map_location, weights_only=True)
    model = build_model(arch).to(map_location)
    model.load_state_dict(state, strict=True)
    model.arch = arch
    npz = path.with_name(path.name[: -len(path.suffix)] + ".env.npz")
    if isinstance(model, AllocatorPolicy) and npz.is_file():
        import numpy as np

        with np.load(npz) as z:
            model.reset(prices=z["prices"])  # the exported test episode's close prices
    return model.eval()


__all__ = [
    "ARCH_METADATA_KEY",
    "FORMAT",
    "MODELS",
    "ActorCritic",
    "AllocatorPolicy",
    "MLPAllocator",
    "PatchTransformerForecaster",
    "ReplayPolicy",
    "UniverseAllocator",
    "build_model",
    "load_exported",
    "rope",
]
