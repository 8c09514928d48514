"""The universe allocator's configuration: network, anchor, objective, rollout, optimiser,
population and checkpoint-selection fields (:class:`UniverseConfig`), and the names of its
traced hyperparameters (:data:`DYNAMIC_FIELDS`)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from jaxport.data import DataError
from jaxport.rl.common import config_from_dict
from jaxport.rl.population import grid_hparams

KIND = "universe"
ANCHORS = ("none", "volatility_timing")  # what the policy's output is a tilt from
OBJECTIVES = ("mean-variance", "sharpe", "log-growth")  # trained, selected and gated on
ANCHOR_COLUMNS = 2  # raw anchor feature columns at the end of the features (jaxport.features.risk)

#: Hyperparameters that travel as traced arrays (the population axis); all per update/step.
DYNAMIC_FIELDS = (
    "lr",
    "weight_decay",
    "max_grad_norm",
    "risk_penalty",
    "turnover_penalty",
    "feature_noise",
    "rebalance_rate",
    "tilt_penalty",
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
    # --- anchor (module docstring): the untrained policy IS the anchor rule
    anchor: str = "none"  # "none" (1/N start) | "volatility_timing" (reads the 2 anchor columns)
    anchor_eta: float = 1.0  # volatility timing exponent: w ~ sigma^(-2 eta); 0 = 1/N
    anchor_vol_managed: bool = False  # anchor gross = min(max_gross, sigma_long / sigma_short)
    max_gross: float = 1.0  # anchored gross exposure cap (multiples of equity, < leverage_cap)
    # --- objective (static): "mean-variance" | "sharpe" | "log-growth" (module docstring)
    objective: str = "mean-variance"
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
    # x mean per-step sum_i |target_i - untrained target_i| (fraction of equity): the distance to
    # the anchor rule; a regulariser of the gradient trainer (not part of what selection scores)
    tilt_penalty: float = 0.0
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
        if self.anchor not in ANCHORS:
            raise DataError(f"UniverseConfig.anchor must be one of {ANCHORS}, got {self.anchor!r}")
        if self.objective not in OBJECTIVES:
            raise DataError(
                f"UniverseConfig.objective must be one of {OBJECTIVES}, got {self.objective!r}"
            )
        if self.anchor != "none" and not 0.0 < self.max_gross < self.leverage_cap:
            raise DataError(
                f"UniverseConfig.max_gross={self.max_gross} must be in (0, leverage_cap="
                f"{self.leverage_cap})"
            )
        if self.anchor_eta < 0.0:
            raise DataError(f"UniverseConfig.anchor_eta must be >= 0, got {self.anchor_eta}")
        for name, values in self.grid:
            if name not in DYNAMIC_FIELDS:
                raise DataError(f"UniverseConfig.grid: {name!r} is not one of {DYNAMIC_FIELDS}")
            if not values:
                raise DataError(f"UniverseConfig.grid: {name!r} has no values")
        for hp in self.members_hparams():
            for name in ("lr", "max_grad_norm"):
                if not hp[name] > 0:
                    raise DataError(f"UniverseConfig.{name} must be > 0, got {hp[name]}")
            for name in (
                "weight_decay",
                "risk_penalty",
                "turnover_penalty",
                "feature_noise",
                "tilt_penalty",
            ):
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
        return grid_hparams({k: float(getattr(self, k)) for k in fields}, self.grid)

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
        return config_from_dict(cls, d, hidden_sizes=tuple, grid=_grid_from_dict)


def _grid_from_dict(grid: Mapping[str, Sequence[float]]) -> tuple:
    """``{field: [values]}`` (JSON) -> ``((field, (values...)), ...)``."""
    return tuple((k, tuple(v)) for k, v in dict(grid).items())
