"""PyTorch layer over the JAX-array Gymnasium envs of :mod:`jaxport.env.gym`.

:class:`TorchPortfolioEnv` / :class:`TorchPortfolioVectorEnv` are Gymnasium's own
``gymnasium.wrappers.JaxToTorch`` / ``gymnasium.wrappers.vector.JaxToTorch`` (DLPack) around
:class:`~jaxport.env.gym.JaxPortfolioGymEnv` / :class:`~jaxport.env.gym.JaxPortfolioVectorGymEnv`:
actions go in and observations, rewards (vector env) and info come out as ``torch.Tensor``. Seeds,
auto-reset and spaces are those of :mod:`jaxport.env.gym`; this module only converts.

Copies (checked in tests/test_torch_compat.py with ``data_ptr`` / ``unsafe_buffer_pointer``):

* JAX -> Torch (observations, rewards, flags, info): Gymnasium's ``array_conversion`` =
  ``torch.from_dlpack`` on the JAX buffer, no copy when the Torch ``device`` is where JAX runs
  (CPU: always, XLA CPU buffers are 64-byte aligned). A copy when they differ (e.g. JAX on CPU,
  ``device="cuda"``). The tensors are fresh outputs of the jitted step (never the env state), so
  editing them in place cannot corrupt the env.
* Torch -> JAX (actions), ``action_transfer``: ``"dlpack"`` = Gymnasium's DLPack conversion, no
  copy for a contiguous tensor on the JAX device (on CPU only if 64-byte aligned: fresh allocations
  are, a view at an offset such as ``x[1:]`` is copied by JAX). ``"copy"`` = a NumPy view of the
  tensor handed to the jitted call, which copies the ``B x N`` floats at dispatch. ``"auto"``
  (default) = ``"copy"`` when tensor and JAX are both on CPU, else ``"dlpack"``: on CPU a DLPack
  import plus the jitted call costs ~120-330 us per step versus ~9-120 us for the NumPy view
  copied at dispatch (actions [B, 7], B = 1..8192, measured on the shared 2-core dev box).
  Tensors that require grad are detached.
"""

from __future__ import annotations

import dataclasses
import inspect
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import jax
import numpy as np
import torch
from gymnasium.wrappers import JaxToTorch
from gymnasium.wrappers.array_conversion import array_conversion
from gymnasium.wrappers.vector import JaxToTorch as VectorJaxToTorch

from jaxport.data import DataError
from jaxport.env import EnvParams, EnvState, PortfolioEnv
from jaxport.env import gym as jax_gym
from jaxport.env.gym import (
    ENV_KWARGS,
    FEATURE_MODES,
    PARAM_KWARGS,
    STEP_INFO_KEYS,
    JaxPortfolioGymEnv,
    JaxPortfolioVectorGymEnv,
    resolve_jax_env,
)
from torch_compat import (  # ENV_ID "jaxport/Portfolio-v0": defined in the package (cheap)
    ENV_ID,
    PACKAGE_EXPORTS,
)


# ---------------------------------------------------------------------------------- building
def _host(x):
    """Torch tensors -> NumPy (detached, on CPU); anything else unchanged."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return x


def build_jax_env(prices, features=None, **options) -> tuple[PortfolioEnv, EnvParams]:
    """:func:`jaxport.env.gym.build_jax_env` that also takes Torch tensors (any device)."""
    if "open_prices" in options:
        options["open_prices"] = _host(options["open_prices"])
    return jax_gym.build_jax_env(_host(prices), _host(features), **options)


def load_csv_arrays(
    data_dir: str | Path,
    symbols: Sequence[str] | None = None,
    *,
    features: str | np.ndarray | torch.Tensor | None = "stat",
) -> dict[str, Any]:
    """:func:`jaxport.env.gym.load_csv_arrays` that also takes a Torch ``features`` tensor."""
    return jax_gym.load_csv_arrays(data_dir, symbols, features=_host(features))


def _csv_env_args(data_dir, symbols, features, options: dict) -> tuple[dict, dict]:
    return jax_gym.env_args_from_csv(data_dir, symbols, _host(features), options)


# ---------------------------------------------------------------------------------- shared keywords
#: The keywords, with their defaults, that every Torch env constructor takes after its own
#: (``num_envs``, ``requires_grad``): the Torch side (``device`` of the tensors, ``action_transfer``
#: one of :data:`ACTION_TRANSFERS`), a ready JAX env (``jax_env=`` with ``params=``, instead of
#: arrays) and the labels of its data. Any other keyword is an option of the JAX env
#: (:func:`build_jax_env`).
SHARED_KEYWORDS: dict[str, Any] = {
    "device": None,
    "action_transfer": "auto",
    "jax_env": None,
    "params": None,
    "symbols": None,
    "dates": None,
    "feature_names": None,
}
LABEL_KEYWORDS = ("symbols", "dates", "feature_names")
_ANNOTATIONS = {
    "action_transfer": "str",
    "jax_env": "PortfolioEnv | None",
    "params": "EnvParams | None",
}


@dataclasses.dataclass(frozen=True)
class TorchEnvArgs:
    """The shared keywords of a Torch env constructor, resolved: ``device`` and
    ``action_transfer`` as given (each class checks them), the JAX env and its params, and the
    labels of its data (``symbols``, ``dates``, ``feature_names``; ``None`` when not given)."""

    device: Any
    action_transfer: str
    jax_env: PortfolioEnv
    params: EnvParams
    labels: dict[str, Any]

    @classmethod
    def resolve(cls, owner: str, prices, features, keywords: dict[str, Any]) -> TorchEnvArgs:
        """From a constructor's ``prices``, ``features`` and ``**keywords`` (:data:`SHARED_KEYWORDS`
        plus the JAX env's options); one-line ``ConfigError`` naming ``owner`` when both or neither
        of arrays and ``jax_env=``/``params=`` are given."""
        options = dict(keywords)
        given = {k: options.pop(k, default) for k, default in SHARED_KEYWORDS.items()}
        labels = {k: given.pop(k) for k in LABEL_KEYWORDS}
        jax_env, params = given.pop("jax_env"), given.pop("params")
        jax_env, params = resolve_jax_env(
            owner, prices, features, jax_env, params, options, build=build_jax_env
        )
        return cls(jax_env=jax_env, params=params, labels=labels, **given)


def with_shared_keywords(init):
    """Decorator of a Torch env ``__init__(self, prices=None, features=None, *, <own keywords>,
    **keywords)`` (``keywords`` read by :meth:`TorchEnvArgs.resolve`): its signature, as
    ``inspect.signature`` and ``help`` show it, spells out :data:`SHARED_KEYWORDS` and then
    ``**options``."""
    signature = inspect.signature(init)
    kinds = inspect.Parameter
    own = [p for p in signature.parameters.values() if p.kind is not kinds.VAR_KEYWORD]
    shared = [
        kinds(k, kinds.KEYWORD_ONLY, default=d, annotation=_ANNOTATIONS.get(k, kinds.empty))
        for k, d in SHARED_KEYWORDS.items()
    ]
    options = kinds("options", kinds.VAR_KEYWORD)
    init.__signature__ = signature.replace(parameters=[*own, *shared, options])
    return init


# ---------------------------------------------------------------------------------- Torch envs
ACTION_TRANSFERS = ("auto", "dlpack", "copy")


def _torch_device(device) -> torch.device | None:
    return None if device is None else torch.device(device)


def _check_transfer(action_transfer: str) -> str:
    if action_transfer not in ACTION_TRANSFERS:
        raise DataError(f"action_transfer={action_transfer!r}: expected one of {ACTION_TRANSFERS}")
    return action_transfer


def env_action(action, transfer: str, env_xp, env_device):
    """Torch action -> what the JAX-array env takes (module docstring, "Copies").

    ``"copy"`` (and ``"auto"`` when the tensor and JAX are both on CPU): a NumPy view of the tensor,
    copied by XLA when the jitted step is dispatched. ``"dlpack"`` (``"auto"`` otherwise):
    Gymnasium's DLPack conversion, zero-copy on a shared device. Other inputs pass through.
    """
    if not isinstance(action, torch.Tensor):
        return action
    action = action.detach()
    on_cpu = action.device.type == "cpu" and jax.default_backend() == "cpu"
    if transfer == "copy" or (transfer == "auto" and on_cpu):
        return action.cpu().numpy()
    return array_conversion(action.contiguous(), xp=env_xp, device=env_device)


def _convert_step(wrapper, action, single: bool):
    """``ArrayConversion.step`` with :func:`env_action` for the action."""
    action = env_action(action, wrapper.action_transfer, wrapper._env_xp, wrapper._env_device)
    obs, reward, terminated, truncated, info = wrapper.env.step(action)
    to_torch = partial(array_conversion, xp=wrapper._target_xp, device=wrapper._target_device)
    if single:
        return to_torch(obs), float(reward), bool(terminated), bool(truncated), to_torch(info)
    return (
        to_torch(obs),
        to_torch(reward),
        to_torch(terminated),
        to_torch(truncated),
        to_torch(info),
    )


class _UnwrappedAccess:
    """Conveniences shared by the Torch envs (Gymnasium wrappers do not forward attributes)."""

    @property
    def jax_env(self) -> PortfolioEnv:
        return self.env.unwrapped.jax_env

    @property
    def params(self) -> EnvParams:
        return self.env.unwrapped.params

    @property
    def jax_state(self) -> EnvState | None:
        """The current JAX ``EnvState`` (batched for the vector env; ``torch_compat.autograd``)."""
        return self.env.unwrapped.state

    @property
    def symbols(self) -> tuple[str, ...]:
        return self.env.unwrapped.symbols

    @property
    def dates(self):
        return self.env.unwrapped.dates


class TorchEnvConstructors:
    """``from_jax`` and ``from_csv_dir`` of every Torch env class. ``CONSTRUCTOR_KEYWORDS``: the
    class's own keywords (``device``, ``num_envs``, ...); ``from_csv_dir`` hands every other option
    to the JAX env."""

    CONSTRUCTOR_KEYWORDS: tuple[str, ...] = ("device", "action_transfer")

    @classmethod
    def from_jax(cls, jax_env: PortfolioEnv, params: EnvParams, **kwargs):
        """Wrap an existing ``(PortfolioEnv, EnvParams)``; ``kwargs`` as the constructor's
        (``device``, ``num_envs``, ``symbols``, ...)."""
        return cls(jax_env=jax_env, params=params, **kwargs)

    @classmethod
    def from_csv_dir(
        cls, data_dir, symbols: Sequence[str] | None = None, *, features="stat", **options
    ):
        """Env over the CSVs in ``data_dir`` (``jaxport.data.load_market``): closes, opens, and
        ``features="stat"|"none"|array|tensor``. The class's ``CONSTRUCTOR_KEYWORDS`` go to its
        constructor, the other ``options`` to the JAX env's (``start_min`` defaults to the end of
        the feature warm-up)."""
        own = {k: options.pop(k) for k in cls.CONSTRUCTOR_KEYWORDS if k in options}
        kwargs, meta = _csv_env_args(data_dir, symbols, features, options)
        return cls(**own, **meta, **kwargs)


class TorchPortfolioEnv(TorchEnvConstructors, _UnwrappedAccess, JaxToTorch):
    """One portfolio env with a PyTorch interface (a Gymnasium ``JaxToTorch`` over the JAX step).

    ``TorchPortfolioEnv(prices [T,N], features [T,N,F] | None, device=..., **options)`` with the JAX
    env's options (see :func:`build_jax_env`), or :meth:`from_csv_dir`, or :meth:`from_jax`.
    ``reset(seed=, options={"start": day})`` -> ``(obs, info)``; ``step(action)`` ->
    ``(obs, reward, terminated, truncated, info)``: ``obs`` float32 ``torch.Tensor [D]`` on
    ``device``, ``reward`` a Python float and the flags Python bools (Gymnasium's ``Env`` contract,
    as ``JaxToTorch`` returns them), ``info`` a dict of 0-d/1-d tensors: equity (units of E0's
    currency), leverage (sum|w|), turnover, fees and financing of the step, gross_pnl,
    portfolio_return (fraction), closed_trade_pnl [N], num_closed, t (day index).
    Not auto-resetting: call ``reset()`` after ``terminated or truncated`` (else ``ResetNeeded``).
    """

    @with_shared_keywords
    def __init__(self, prices=None, features=None, **keywords):
        args = TorchEnvArgs.resolve("TorchPortfolioEnv", prices, features, keywords)
        inner = JaxPortfolioGymEnv(args.jax_env, args.params, **args.labels)
        super().__init__(inner, device=_torch_device(args.device))
        self.action_transfer = _check_transfer(args.action_transfer)

    def step(self, action):
        return _convert_step(self, action, single=True)


class TorchPortfolioVectorEnv(TorchEnvConstructors, _UnwrappedAccess, VectorJaxToTorch):
    """``num_envs`` portfolio envs, one jitted vmapped JAX call per step, PyTorch interface.

    A Gymnasium ``vector.JaxToTorch`` over :class:`JaxPortfolioVectorGymEnv` (auto-reset
    ``NEXT_STEP``, declared in ``metadata["autoreset_mode"]``). ``step(actions [B, N])`` ->
    ``(obs [B, D] float32, reward [B] float32, terminated [B] bool, truncated [B] bool, info)``, all
    ``torch.Tensor`` on ``device``; zero-copy DLPack where the devices allow (module docstring).
    """

    CONSTRUCTOR_KEYWORDS = ("device", "num_envs", "action_transfer")

    @with_shared_keywords
    def __init__(self, prices=None, features=None, *, num_envs: int = 1, **keywords):
        args = TorchEnvArgs.resolve("TorchPortfolioVectorEnv", prices, features, keywords)
        inner = JaxPortfolioVectorGymEnv(args.jax_env, args.params, num_envs, **args.labels)
        super().__init__(inner, device=_torch_device(args.device))
        self.action_transfer = _check_transfer(args.action_transfer)

    def step(self, actions):
        return _convert_step(self, actions, single=False)


# ---------------------------------------------------------------------------------- registration
def _make_env(cls, prices, features, data_dir, symbols, **keywords):
    """``cls`` over ``prices``/``features`` arrays, or over the CSVs in ``data_dir`` (features
    ``"stat"`` by default) via ``cls.from_csv_dir``; ``keywords`` go to either."""
    if data_dir is None:
        return cls(prices, features, symbols=symbols, **keywords)
    if prices is not None:
        raise DataError("pass either data_dir= or prices=, not both")
    features = "stat" if features is None else features
    return cls.from_csv_dir(data_dir, symbols, features=features, **keywords)


def make_portfolio_env(
    prices=None, features=None, *, data_dir=None, symbols=None, device=None, **options
):
    """Entry point of ``gymnasium.make("jaxport/Portfolio-v0", ...)``: a :class:`TorchPortfolioEnv`.

    Either ``prices=``/``features=`` arrays or ``data_dir=`` (+ ``symbols=``, ``features="stat"|
    "none"|array``), plus the JAX env's options.
    """
    return _make_env(
        TorchPortfolioEnv, prices, features, data_dir, symbols, device=device, **options
    )


def make_portfolio_vector_env(
    num_envs: int = 1,
    prices=None,
    features=None,
    *,
    data_dir=None,
    symbols=None,
    device=None,
    **options,
):
    """Vector entry point (``gymnasium.make_vec("jaxport/Portfolio-v0", num_envs=B, ...)``)."""
    keywords = dict(num_envs=num_envs, device=device, **options)
    return _make_env(TorchPortfolioVectorEnv, prices, features, data_dir, symbols, **keywords)


def register_envs() -> None:
    """Register ``jaxport/Portfolio-v0`` with Gymnasium (see ``torch_compat.register_envs``)."""
    from torch_compat import register_envs as _register

    _register()


__all__ = [
    *PACKAGE_EXPORTS["env"],
    "ENV_ID",
    "ENV_KWARGS",
    "FEATURE_MODES",
    "PARAM_KWARGS",
    "SHARED_KEYWORDS",
    "STEP_INFO_KEYS",
    "TorchEnvArgs",
    "register_envs",
    "with_shared_keywords",
]
