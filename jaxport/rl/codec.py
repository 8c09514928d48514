"""The policy codec: one registry that says, for every kind of allocation policy, how to store
it, restore it and run it.

A **policy kind** (``"ppo"``, ``"gradient_mlp"``, ``"gradient_transformer"``; later
``"baseline:<name>"`` and ``"universe"``) maps to a :class:`PolicySpec`:

- ``config_from_dict`` / ``config_to_dict``: the kind's (hashable, static) config <-> JSON dict;
- ``to_tree(config, **trained)``: what training produced -> the checkpoint tree (a nested dict of
  arrays; the only arrays a checkpoint stores);
- ``check_tree(tree, config)``: validates a restored tree (one-line ``CheckpointError``);
- ``make_act(config, env)``: the deterministic policy ``act(tree, obs) -> action``, pure and
  jittable, with the tree as a traced argument (``obs [obs_dim]`` or ``[B, obs_dim]`` -> target
  exposures ``[N]`` / ``[B, N]``, fractions of equity);
- ``needs_env_state``: when True, ``make_act`` returns ``act(tree, obs, state, params)``: the policy
  also reads the env state (day index ``state.t``, steps since reset ``state.time``, current
  weights) and the EnvParams (prices); the standard allocators (``"baseline:<name>"``, defined in
  :mod:`jaxport.eval.allocators`) are such policies;
- ``torch_twin``: the NAME of the matching module in :mod:`torch_compat.models`
  (``"ActorCritic"``, ``"MLPAllocator"``) or ``None``; ``torch_compat`` maps names to classes (the
  core never imports torch).

A :class:`Policy` bundles ``(kind, config, tree, env)``. Its checkpoint
(:func:`save_policy_checkpoint`) is a :mod:`jaxport.checkpoint` of kind ``"policy"`` whose metadata
holds ``policy = {kind, config, torch_twin}`` and the env's static configuration ``env``; the kind
is read from there, never guessed.

Adding a kind: define its ``PolicySpec`` as a module-level constant where the policy is defined and
list it in :data:`jaxport.registry.POLICY_KINDS` (code outside jaxport calls
:func:`register_policy`); a spec whose kind ends in ``":"``, e.g. ``"baseline:"``, serves every
kind with that prefix. The
act function of one ``(kind, config, env)`` is created once and reused, so evaluating many trees of
one architecture (pairs, seeds, folds) compiles once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxport.checkpoint import load_checkpoint, plain_tree, save_checkpoint
from jaxport.env import PortfolioEnv
from jaxport.errors import CheckpointError
from jaxport.registry import POLICY_KINDS, resolve

CHECKPOINT_KIND = "policy"

ActFn = Callable[[Any, jax.Array], jax.Array]  # act(tree, obs) -> action


@dataclasses.dataclass(frozen=True)
class PolicySpec:
    """How one policy kind is stored, restored and run (see the module docstring)."""

    kind: str
    config_from_dict: Callable[[Mapping[str, Any]], Any]
    config_to_dict: Callable[[Any], dict]
    make_act: Callable[[Any, PortfolioEnv], ActFn]
    to_tree: Callable[..., dict] = None  # type: ignore[assignment]  # default: {"params": params}
    check_tree: Callable[[dict, Any], dict] | None = None
    torch_twin: str | None = None
    description: str = ""
    needs_env_state: bool = False  # act(tree, obs, state, params) instead of act(tree, obs)

    def __post_init__(self):
        if self.to_tree is None:
            object.__setattr__(self, "to_tree", _params_tree)


def _params_tree(config, params) -> dict:
    del config
    return {"params": plain_tree(params)}


#: Kinds added at run time by :func:`register_policy` (the built-in kinds are listed in
#: :data:`jaxport.registry.POLICY_KINDS`).
_EXTRA: dict[str, PolicySpec] = {}


def register_policy(spec: PolicySpec, *, replace: bool = False) -> PolicySpec:
    """Add ``spec`` under ``spec.kind`` (a kind ending in ``":"`` serves every kind with that
    prefix): for kinds defined outside jaxport. Built-in kinds are listed in
    :mod:`jaxport.registry`.

    Registering a kind twice (or a built-in kind) is an error unless ``replace``.
    """
    if not spec.kind or not isinstance(spec.kind, str):
        raise ValueError(f"policy kind must be a non-empty string, got {spec.kind!r}")
    if spec.kind in registered_kinds() and not replace:
        raise ValueError(f"policy kind {spec.kind!r} is already registered (pass replace=True)")
    _EXTRA[spec.kind] = spec
    return spec


def registered_kinds() -> tuple[str, ...]:
    """The registered kinds: :mod:`jaxport.registry`'s and :func:`register_policy`'s (prefix kinds
    end in ``":"``)."""
    return tuple(sorted(set(POLICY_KINDS) | set(_EXTRA)))


def _spec_of(kind: str) -> PolicySpec | None:
    spec = _EXTRA.get(kind)
    if spec is None and kind in POLICY_KINDS:
        spec = resolve(POLICY_KINDS[kind])
    return spec


def policy_spec(kind: str) -> PolicySpec:
    """The spec of ``kind`` (exact, else the longest registered prefix kind).

    One-line ``CheckpointError`` for an unknown kind."""
    spec = _spec_of(kind)
    if spec is None:
        prefixes = [k for k in registered_kinds() if k.endswith(":") and str(kind).startswith(k)]
        if prefixes:
            spec = _spec_of(max(prefixes, key=len))
    if spec is None:
        raise CheckpointError(
            f"unknown policy kind {kind!r}; registered: {', '.join(registered_kinds())}"
        )
    return spec


# ---------------------------------------------------------------------------------- act functions
@lru_cache(maxsize=256)
def _act_functions(kind: str, config: Any, env: PortfolioEnv) -> tuple[ActFn, Callable, Callable]:
    """``(act, eval_fn, jitted act)``, one set per (kind, config, env): compiled code is shared."""
    act = policy_spec(kind).make_act(config, env)

    def eval_fn(tree, key, obs, *env_state):
        del key
        return act(tree, obs, *env_state)

    return act, eval_fn, jax.jit(act)


@dataclasses.dataclass(frozen=True, eq=False)
class Policy:
    """A runnable policy: ``kind``, static ``config``, array ``tree`` and the ``env`` it acts in.

    - ``policy.act(obs)``: jitted deterministic action for one observation ``[obs_dim]`` or a batch.
    - ``policy.act_fn``: the pure ``act(tree, obs)`` (tree traced), one per (kind, config, env).
    - ``policy.eval_fn`` + ``policy.tree``: for ``jaxport.eval.evaluate_policy(env, params,
      policy.eval_fn, policy_params=policy.tree)`` (one compilation per architecture); passing the
      ``Policy`` itself as the evaluator's policy does the same.
    - ``policy.policy_fn``: ``(key, obs) -> action`` closing over the tree (for rollouts).
    """

    kind: str
    config: Any
    tree: dict
    env: PortfolioEnv

    @property
    def spec(self) -> PolicySpec:
        return policy_spec(self.kind)

    @property
    def act_fn(self) -> ActFn:
        return _act_functions(self.kind, self.config, self.env)[0]

    @property
    def eval_fn(self) -> Callable:
        return _act_functions(self.kind, self.config, self.env)[1]

    @property
    def needs_env_state(self) -> bool:
        return self.spec.needs_env_state

    def act(self, obs, state=None, params=None) -> jax.Array:
        """The action for ``obs``; policies with ``needs_env_state`` also need the env ``state``
        and ``params`` (one-line ``ValueError`` without them)."""
        fn = _act_functions(self.kind, self.config, self.env)[2]
        if self.needs_env_state:
            if state is None or params is None:
                raise ValueError(f"{self.kind} policy acts on the env state: pass state and params")
            return fn(self.tree, jnp.asarray(obs), state, params)
        return fn(self.tree, jnp.asarray(obs))

    @property
    def policy_fn(self) -> Callable[[jax.Array, jax.Array], jax.Array]:
        act, tree = self.act_fn, self.tree
        return lambda key, obs, *env_state: act(tree, obs, *env_state)

    @property
    def torch_twin(self) -> str | None:
        return self.spec.torch_twin

    def config_dict(self) -> dict:
        return self.spec.config_to_dict(self.config)

    def metadata(self) -> dict:
        """``{"kind", "config", "torch_twin"}``: the ``policy`` block of its checkpoint metadata."""
        return {"kind": self.kind, "config": self.config_dict(), "torch_twin": self.torch_twin}

    def with_env(self, env: PortfolioEnv) -> "Policy":
        """The same policy acting in ``env`` (for policies that work for any basket size)."""
        return dataclasses.replace(self, env=env)


def make_policy(kind: str, config: Any, env: PortfolioEnv, **trained) -> Policy:
    """A :class:`Policy` from what training produced (``trained``: the spec's ``to_tree`` arguments,
    e.g. ``params=`` and, for PPO, ``obs_norm=``). ``config``: the config object or its dict."""
    spec = policy_spec(kind)
    if isinstance(config, Mapping):
        config = spec.config_from_dict(config)
    tree = plain_tree(spec.to_tree(config, **trained))
    return Policy(kind, config, tree, env)


# ---------------------------------------------------------------------------------- env metadata
def env_metadata(env: PortfolioEnv) -> dict:
    """The env's static configuration as stored in a policy checkpoint's ``env`` block."""
    return {
        "num_assets": env.num_assets,
        "num_features": env.num_features,
        "window": env.window,
        "long_only": env.long_only,
        "reward": env.reward_mode,
        "return_mode": env.return_mode,
        "obs_dim": env.obs_dim,
    }


def env_from_metadata(block: Mapping[str, Any]) -> PortfolioEnv:
    """The :class:`PortfolioEnv` of :func:`env_metadata` ``(env)`` (numeric keys are ignored)."""
    try:
        return PortfolioEnv(
            int(block["num_assets"]),
            int(block["num_features"]),
            window=int(block.get("window", 1)),
            long_only=bool(block.get("long_only", False)),
            reward=str(block.get("reward", "log_return")),
            return_mode=str(block.get("return_mode", "close_to_close")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"policy checkpoint: bad env block ({type(exc).__name__}: {exc})"
        ) from None


# ---------------------------------------------------------------------------------- checkpoints
def save_policy_checkpoint(
    path: str | Path,
    policy: Policy,
    metadata: Mapping[str, Any] | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Save ``policy`` as a checkpoint of kind ``"policy"``.

    Metadata: ``policy`` (:meth:`Policy.metadata`), ``env`` (the env's static configuration,
    merged over ``metadata["env"]``, which may add numeric settings such as ``fee_rate``) and every
    other key of ``metadata`` (e.g. ``algo``, ``symbols``, ``features``, ``dates``) as given.
    """
    extra = dict(metadata or {})
    env_block = {**dict(extra.pop("env", {}) or {}), **env_metadata(policy.env)}
    extra.pop("policy", None)
    meta = {"policy": policy.metadata(), "env": env_block, **extra}
    return save_checkpoint(path, policy.tree, meta, kind=CHECKPOINT_KIND, overwrite=overwrite)


def policy_from_checkpoint(
    tree: dict, metadata: Mapping[str, Any], env: PortfolioEnv | None = None
) -> Policy:
    """The :class:`Policy` of a restored ``(tree, metadata)`` (``env``: default the stored one)."""
    block = metadata.get("policy")
    if not isinstance(block, Mapping) or "kind" not in block:
        raise CheckpointError("policy checkpoint: metadata has no policy.kind")
    spec = policy_spec(block["kind"])
    try:
        config = spec.config_from_dict(dict(block.get("config", {})))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"policy checkpoint: bad {block['kind']} config ({exc})") from None
    if env is None:
        env = env_from_metadata(metadata.get("env", {}))
    tree = spec.check_tree(tree, config) if spec.check_tree else tree
    return Policy(str(block["kind"]), config, tree, env)


def load_policy_checkpoint(
    path: str | Path, env: PortfolioEnv | None = None
) -> tuple[Policy, dict]:
    """``(policy, metadata)`` of a checkpoint written by :func:`save_policy_checkpoint`."""
    tree, meta = load_checkpoint(path, kind=CHECKPOINT_KIND)
    try:
        return policy_from_checkpoint(tree, meta, env), meta
    except CheckpointError as exc:
        raise CheckpointError(f"{Path(path)}: {exc}") from None


def gradient_kind(config) -> str:
    """The policy kind of a gradient-method config (``"gradient_" + config.policy``)."""
    return f"gradient_{config.policy}"


__all__ = [
    "CHECKPOINT_KIND",
    "Policy",
    "PolicySpec",
    "env_from_metadata",
    "env_metadata",
    "gradient_kind",
    "load_policy_checkpoint",
    "make_policy",
    "policy_from_checkpoint",
    "policy_spec",
    "register_policy",
    "registered_kinds",
    "save_policy_checkpoint",
]
