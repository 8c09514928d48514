"""Export trained jaxport models (Flax parameter trees) to plain PyTorch checkpoints.

Every exported model is a Torch ``state_dict`` plus its architecture ``{"format", "kind", "config",
...}``, where ``config`` are the constructor arguments of the matching module in
:mod:`torch_compat.models` (which imports torch, not JAX), written by
:func:`torch_compat.serialization.save_exported` as ``NAME.safetensors`` (architecture in its
metadata) and/or ``NAME.pt`` + ``NAME.json``; ``torch_compat.models.load_exported`` rebuilds the
module and loads it with ``strict=True``.

* :func:`export_policy` -- a :class:`jaxport.rl.codec.Policy`. Its codec entry names its Torch twin
  (``PolicySpec.torch_twin``, a class name in :mod:`torch_compat.models`); :data:`TORCH_EXPORTERS`
  maps that name to the function that converts the Flax tree (:func:`register_torch_exporter` adds
  one). Kinds without a twin (the transformer allocator) are refused with one line.
* :func:`export_forecaster` -- the Toto-style ``ForecasterNet``.
* :func:`export_run` -- everything in a pipeline RUN_DIR, read through
  :class:`jaxport.pipeline.rundir.RunDir`; what ``jaxport export RUN_DIR --to OUT`` calls.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from jaxport.checkpoint import atomic_write, atomic_write_json, plain_tree, to_jsonable
from jaxport.errors import CheckpointError
from jaxport.rl.codec import Policy, load_policy_checkpoint
from torch_compat import models
from torch_compat.models import FORMAT
from torch_compat.serialization import EXPORT_FORMATS, save_exported

MANIFEST_FILE = "manifest.json"
#: env options of a policy's checkpoint metadata that the Torch env takes as keyword arguments
ENV_OPTION_KEYS = (
    "window",
    "long_only",
    "reward",
    "return_mode",
    "leverage_cap",
    "fee_rate",
    "annual_financing_rate",
    "periods_per_year",
)

#: A Torch exporter: ``policy -> (state_dict, constructor config of the twin)``.
TorchExporter = Callable[[Policy], tuple[dict, dict]]


# ---------------------------------------------------------------------------------- helpers
def _float32_tree(tree) -> dict:
    """Nested mapping -> nested dict of writable float32 NumPy arrays (torch.from_numpy shares
    them)."""
    return plain_tree(tree, lambda x: np.array(x, dtype=np.float32))


def _unwrap_params(params) -> dict:
    params = _float32_tree(params)
    return params["params"] if set(params) == {"params"} else params


def _linear(sd: dict, prefix: str, dense: dict) -> None:
    """Flax Dense ``{kernel [in, out], bias [out]}`` -> torch Linear ``{weight [out, in], bias}``"""
    sd[f"{prefix}.weight"] = torch.from_numpy(np.ascontiguousarray(dense["kernel"].T))
    if "bias" in dense:
        sd[f"{prefix}.bias"] = torch.from_numpy(np.ascontiguousarray(dense["bias"]))


def _twin_config(cfg: Mapping, twin: type, **computed) -> dict:
    """The constructor arguments of the Torch ``twin``: ``computed`` (what the exporter reads off
    the parameter tree or the env), then every other argument with a default, read from the stored
    policy config ``cfg`` by name (else the twin's default) and cast to the default's type
    (``float``, ``int``, ``bool``, ``str``)."""
    stored = {}
    for name, param in inspect.signature(twin).parameters.items():
        default = param.default
        if name not in computed and default is not inspect.Parameter.empty:
            stored[name] = type(default)(cfg.get(name, default))
    return {**computed, **stored}


def _config_dict(config) -> dict:
    if isinstance(config, Mapping):
        return dict(config)
    if hasattr(config, "to_dict"):
        return dict(config.to_dict())
    return to_jsonable(config)


# ---------------------------------------------------------------------------------- policies
def _export_actor_critic(policy: Policy) -> tuple[dict, dict]:
    """PPO actor-critic (+ its running observation statistics in the buffers)."""
    cfg = policy.config_dict()
    p = _unwrap_params(policy.tree["params"])
    hidden = [int(h) for h in cfg.get("hidden_sizes", cfg.get("hidden", (64, 64)))]
    L = len(hidden)
    expected = {f"Dense_{i}" for i in range(2 * L + 2)} | {"log_std"}
    if set(p) != expected:
        raise CheckpointError(
            f"policy export: ActorCritic params {sorted(p)} do not match hidden_sizes={hidden}"
        )
    sd: dict[str, torch.Tensor] = {}
    for i in range(L + 1):
        _linear(sd, f"actor.{2 * i}", p[f"Dense_{i}"])
        _linear(sd, f"critic.{2 * i}", p[f"Dense_{L + 1 + i}"])
    sd["log_std"] = torch.from_numpy(np.ascontiguousarray(p["log_std"]))
    obs_dim = int(p["Dense_0"]["kernel"].shape[0])
    norm = _float32_tree(policy.tree["obs_norm"])
    sd["obs_mean"] = torch.from_numpy(np.ascontiguousarray(norm["mean"].reshape(obs_dim)))
    sd["obs_var"] = torch.from_numpy(np.ascontiguousarray(norm["var"].reshape(obs_dim)))
    config = _twin_config(
        cfg,
        models.ActorCritic,
        obs_dim=obs_dim,
        action_dim=int(p["log_std"].shape[-1]),
        hidden=hidden,
    )
    return sd, config


def _config_params_hidden(policy: Policy, default_hidden) -> tuple[dict, dict, list[int]]:
    """``(config dict, flax params, hidden layer widths)`` of a stored MLP-style policy."""
    cfg = policy.config_dict()
    hidden = [int(h) for h in cfg.get("hidden_sizes", default_hidden)]
    return cfg, _unwrap_params(policy.tree["params"]), hidden


def _linear_stack(prefix: str, p: dict, names: list[str]) -> dict[str, torch.Tensor]:
    """The state dict of a ``torch.nn.Sequential`` ``prefix`` of Linear layers interleaved with
    activations (``prefix.0``, ``prefix.2``, ...) from the flax dense layers ``p[name]``."""
    sd: dict[str, torch.Tensor] = {}
    for i, name in enumerate(names):
        _linear(sd, f"{prefix}.{2 * i}", p[name])
    return sd


def _export_mlp_allocator(policy: Policy) -> tuple[dict, dict]:
    """The gradient method's deterministic MLP allocator."""
    cfg, p, hidden = _config_params_hidden(policy, (64, 64))
    names = [f"dense_{i}" for i in range(len(hidden))] + ["out"]
    if set(p) != set(names):
        raise CheckpointError(
            f"policy export: MLPAllocator params {sorted(p)} do not match hidden_sizes={hidden}"
        )
    sd = _linear_stack("net", p, names)
    observe_equity = bool(cfg.get("observe_equity", False))
    in_dim = int(p[names[0]]["kernel"].shape[0])
    obs_dim = in_dim + (0 if observe_equity else 1)
    if obs_dim != policy.env.obs_dim:
        raise CheckpointError(
            f"policy export: MLPAllocator input {in_dim} does not fit obs_dim={policy.env.obs_dim}"
        )
    config = _twin_config(
        cfg,
        models.MLPAllocator,
        obs_dim=obs_dim,
        num_assets=int(p["out"]["kernel"].shape[1]),
        hidden_sizes=hidden,
        observe_equity=observe_equity,
    )
    return sd, config


def _export_universe_allocator(policy: Policy) -> tuple[dict, dict]:
    """The universe allocator (``jaxport.rl.universe``): any basket size, rebalance rate in the
    config."""
    cfg, p, hidden = _config_params_hidden(policy, (32, 32))
    names = [f"enc_{i}" for i in range(len(hidden))]
    missing = [k for k in names + ["head_0", "head_out", "gross_0", "gross_out"] if k not in p]
    if missing:
        raise CheckpointError(f"policy export: UniverseAllocator params lack {missing}")
    sd = _linear_stack("enc", p, names)
    _linear(sd, "head.0", p["head_0"])
    _linear(sd, "head.2", p["head_out"])
    _linear(sd, "gross.0", p["gross_0"])
    _linear(sd, "gross.2", p["gross_out"])
    config = _twin_config(
        cfg,
        models.UniverseAllocator,
        window=int(policy.env.window),
        num_features=int(policy.env.num_features),
        hidden_sizes=hidden,
        rebalance_rate=float(np.asarray(policy.tree["rebalance_rate"])),
    )
    return sd, config


def _export_allocator_policy(policy: Policy) -> tuple[dict, dict]:
    """A shipped baseline (``baseline:<name>``): no weights, the ``Allocator`` fields as config."""
    cfg = policy.config_dict()
    try:
        config = _twin_config(
            cfg,
            models.AllocatorPolicy,
            allocator=str(cfg["kind"]),
            num_assets=int(policy.env.num_assets),
            lookback=int(cfg["lookback"]),
            rebalance_every=int(cfg["rebalance_every"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"policy export: bad allocator config ({exc})") from None
    return {}, config


TORCH_EXPORTERS: dict[str, TorchExporter] = {
    "ActorCritic": _export_actor_critic,
    "AllocatorPolicy": _export_allocator_policy,
    "MLPAllocator": _export_mlp_allocator,
    "UniverseAllocator": _export_universe_allocator,
}


def register_torch_exporter(twin: str, exporter: TorchExporter, *, replace: bool = False) -> None:
    """Map the Torch twin class name ``twin`` (a class in :mod:`torch_compat.models` with a
    ``kind``) to ``exporter(policy) -> (state_dict, constructor config)``."""
    if twin in TORCH_EXPORTERS and not replace:
        raise ValueError(f"a Torch exporter for {twin!r} is already registered (pass replace=True)")
    TORCH_EXPORTERS[twin] = exporter


def export_policy(policy: Policy, *, metadata: dict | None = None) -> tuple[dict, dict]:
    """``(state_dict, arch_json)`` of a :class:`jaxport.rl.codec.Policy`, for its Torch twin.

    ``arch_json``: ``{"format", "kind" (the twin's), "policy_kind", "config" (twin constructor
    arguments), "training_config"}``; with ``metadata`` (the policy checkpoint's) also ``"source"``
    and, from its env block, ``"env"`` (``symbols``, env ``options``, ``obs_dim``, ``features``).
    One-line ``CheckpointError`` when the kind has no twin or the tree does not fit the config.
    """
    twin = policy.torch_twin
    if twin is None or twin not in TORCH_EXPORTERS:
        raise CheckpointError(f"policy export: policy kind {policy.kind!r} has no Torch twin")
    cls = getattr(models, twin, None)
    if cls is None:
        raise CheckpointError(f"policy export: torch_compat.models has no class {twin!r}")
    sd, config = TORCH_EXPORTERS[twin](policy)
    arch = {
        "format": FORMAT,
        "kind": cls.kind,
        "policy_kind": policy.kind,
        "config": config,
        "training_config": to_jsonable(policy.config_dict()),
    }
    if metadata:
        arch["source"] = to_jsonable(metadata)
        env = _env_block(metadata)
        if env:
            arch["env"] = env
    return sd, arch


def _env_block(meta: dict) -> dict | None:
    """``{"symbols", "options", "obs_dim", "features"}`` for building a matching Torch env."""
    env = meta.get("env")
    if not isinstance(env, Mapping):
        return None
    return {
        "symbols": list(meta.get("symbols", [])),
        "options": {k: env[k] for k in ENV_OPTION_KEYS if k in env},
        "obs_dim": env.get("obs_dim"),
        "num_features": env.get("num_features"),
        "features": to_jsonable(meta.get("features", {})),
    }


# ---------------------------------------------------------------------------------- forecaster
def export_forecaster(params, config) -> tuple[dict, dict]:
    """``(state_dict, arch_json)`` of a ``ForecasterNet`` (``params``: its ``params`` collection;
    ``config``: ``jaxport.forecast.ForecasterConfig`` or its dict) for
    :class:`torch_compat.models.PatchTransformerForecaster`."""
    cfg = _config_dict(config)
    p = _unwrap_params(params)
    num_layers = int(cfg["num_layers"])
    sd: dict[str, torch.Tensor] = {}
    try:
        _linear(sd, "patch_embed", p["patch_embed"])
        for i in range(num_layers):
            b = p[f"blocks_{i}"]
            sd[f"blocks.{i}.attn_norm.weight"] = torch.from_numpy(b["attn_norm"]["scale"].copy())
            _linear(sd, f"blocks.{i}.attn.qkv", b["attn"]["qkv"])
            _linear(sd, f"blocks.{i}.attn.out", b["attn"]["out"])
            sd[f"blocks.{i}.mlp_norm.weight"] = torch.from_numpy(b["mlp_norm"]["scale"].copy())
            _linear(sd, f"blocks.{i}.mlp.fc1", b["mlp"]["fc1"])
            _linear(sd, f"blocks.{i}.mlp.fc2", b["mlp"]["fc2"])
        sd["final_norm.weight"] = torch.from_numpy(p["final_norm"]["scale"].copy())
        _linear(sd, "head", p["head"])
    except KeyError as err:
        raise CheckpointError(
            f"forecaster export: parameter {err} missing for num_layers={num_layers}"
        ) from None
    extra = sorted(
        set(p) - {"patch_embed", "final_norm", "head"} - {f"blocks_{i}" for i in range(num_layers)}
    )
    if extra:
        raise CheckpointError(f"forecaster export: unexpected parameters {extra}")
    keys = (
        "context",
        "patch",
        "d_model",
        "num_layers",
        "num_heads",
        "mlp_ratio",
        "horizon",
        "targets",
        "min_dof",
        "input_clip",
        "scale_eps",
        "rope_base",
        "dropout",
    )
    arch_config = {k: to_jsonable(cfg[k]) for k in keys if k in cfg}
    arch_config["num_channels"] = int(p["patch_embed"]["kernel"].shape[0] // int(cfg["patch"]))
    arch = {
        "format": FORMAT,
        "kind": "patch_transformer_forecaster",
        "config": arch_config,
        "inputs": (
            "raw channel windows [B, context, 6]: r_close, r_open, r_high, r_low, |r_close|, "
            "log1p(volume) (see jaxport.forecast.windows); predict_distribution() normalises them "
            "per window"
        ),
        "outputs": (
            "Student-T (loc, scale, dof) [B, K, H] of log(col[t+h] / close[t]) for col in "
            "config.targets"
        ),
    }
    return sd, arch


# ---------------------------------------------------------------------------------- files
def pair_env_arrays(run, name: str) -> dict[str, np.ndarray]:
    """The Torch env arrays of a pair's TEST episode, rebuilt through ``run``
    (:class:`jaxport.pipeline.rundir.RunDir`) as ``jaxport eval`` rebuilds them."""
    pair = run.pair(name)
    test = pair.test
    return {
        "prices": np.asarray(test.prices),
        "open_prices": np.asarray(test.open_prices),
        "features": np.asarray(test.features),
        "dates": np.asarray(pair.calendar).astype(str),
        "eval_start": np.asarray(int(test.eval_start)),
        "start_min": np.asarray(int(test.start_min)),
        "symbols": np.asarray(pair.symbols),
    }


def export_run(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    env_data: bool = True,
    format: str = "both",  # noqa: A002
) -> list[Path]:
    """Export every forecaster and portfolio policy of a pipeline run; returns the written paths.

    Writes ``base_forecaster``, ``specialist_<SYM>`` (kept specialists) and ``portfolio_<A>_<B>``
    (``.safetensors`` and/or ``.pt`` + ``.json`` each, see ``format`` and
    :func:`torch_compat.serialization.save_exported`), ``portfolio_<A>_<B>_learned_<algo>`` for
    every learned candidate the gate did not ship (labelled ``"learned (not shipped)"`` in its
    JSON and the manifest, next to the gate's reason) and ``manifest.json`` (what was exported or
    skipped, and why) into ``out_dir``. With ``env_data``, each policy also gets
    ``portfolio_<A>_<B>.env.npz``: the arrays of its test episode (``prices``, ``open_prices``,
    standardised ``features``, ``dates``, ``eval_start``, ``start_min``) for
    ``TorchPortfolioEnv(prices, features, ...)``, rebuilt like ``jaxport eval`` does; when that is
    impossible (no run config in the summary, data moved) the manifest says why. Policies whose kind
    has no Torch twin (the transformer allocator) are skipped with a reason. Without a summary the
    checkpoints are found from the folder layout.
    """
    from jaxport.errors import ConfigError
    from jaxport.forecast import load_forecaster
    from jaxport.pipeline.rundir import RunDir

    if format not in EXPORT_FORMATS:
        raise ConfigError(f"format={format!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    out_dir = Path(out_dir)
    run = RunDir(run_dir, require_summary=False)
    forecasters, policies = run.forecaster_checkpoints(), run.policy_checkpoints()
    if not forecasters and not policies:
        raise CheckpointError(
            f"{run.root}: no checkpoints found "
            "(expected base/, specialists/<SYM>/ or portfolio/<A>_<B>/)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "run_dir": str(run.root.absolute()),
        "models": {},
        "skipped": {},
    }
    for name, path in forecasters:
        params, config, extra = load_forecaster(path)
        sd, arch = export_forecaster(params, config)
        arch["source"] = {"checkpoint": str(path), "extra": to_jsonable(extra)}
        files = save_exported(out_dir / name, sd, arch, format)
        written += files
        manifest["models"][name] = {"kind": arch["kind"], "files": [f.name for f in files]}
    for pair_name, path in policies:
        written += _export_pair(run, pair_name, path, out_dir, manifest, env_data, format)
    written.append(atomic_write_json(out_dir / MANIFEST_FILE, manifest))
    return written


def _pair_labels(run, pair_name: str) -> tuple[str, str | None]:
    """``(label of the shipped policy, the gate's reason)`` from the summary ("shipped" alone
    when the summary has no such pair)."""
    if not run.summary:
        return "shipped", None
    try:
        entry = run.pair_entry(pair_name)
    except CheckpointError:
        return "shipped", None
    shipped = entry.shipped or entry.algo or "?"
    reason = (entry.metrics or {}).get("selection")
    kind = "standard allocator" if shipped.startswith("baseline:") else "learned"
    return f"shipped ({kind})", reason


def _export_pair(run, pair_name, path, out_dir, manifest, env_data, format) -> list[Path]:  # noqa: A002
    """Export one pair's shipped policy as ``portfolio_<PAIR>`` and every learned candidate the
    gate refused as ``portfolio_<PAIR>_learned_<algo>`` (label ``"learned (not shipped)"``),
    each with the pair's test-episode ``.env.npz``; record them (or why not) in ``manifest``."""
    shipped_label, reason = _pair_labels(run, pair_name)
    policy, meta = load_policy_checkpoint(path)
    jobs = [(f"portfolio_{pair_name}", policy, meta, path, shipped_label)]
    if run.summary:
        for algo, learned_path in run.learned_checkpoints(pair_name):
            learned = load_policy_checkpoint(learned_path)[0].with_env(policy.env)
            learned_meta = dict(meta, algo=algo)  # the pair's env, symbols and features
            name = f"portfolio_{pair_name}_learned_{algo}"
            jobs.append((name, learned, learned_meta, learned_path, "learned (not shipped)"))
    written: list[Path] = []
    arrays: dict | None = None
    for name, pol, pol_meta, source, label in jobs:
        try:
            sd, arch = export_policy(pol, metadata=pol_meta)
        except CheckpointError as err:
            manifest["skipped"][name] = f"{label}: {err}"
            continue
        arch.setdefault("source", {})["checkpoint"] = str(source)
        arch["label"] = label
        files = save_exported(out_dir / name, sd, arch, format)
        entry = {
            "kind": arch["kind"],
            "policy_kind": pol.kind,
            "algo": pol_meta.get("algo"),
            "pair": pair_name,
            "label": label,
            "files": [f.name for f in files],
        }
        if reason:
            entry["gate_reason"] = reason
        if env_data and not run.has_config:
            entry["env_data"] = (
                "not written: the run summary has no pipeline config to rebuild the features from"
            )
        elif env_data:
            try:
                arrays = arrays if arrays is not None else pair_env_arrays(run, pair_name)
                npz = _save_npz(out_dir / f"{name}.env.npz", arrays)
                files.append(npz)
                entry["files"].append(npz.name)
            except Exception as err:  # noqa: BLE001 - best effort, reported in the manifest
                first = str(err).splitlines()[0] if str(err) else ""
                entry["env_data"] = f"not written: {type(err).__name__}: {first}"
        written += files
        manifest["models"][name] = entry
    return written


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """``np.savez`` written atomically (:func:`jaxport.checkpoint.atomic_write`)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    return atomic_write(path, write)


__all__ = [
    "ENV_OPTION_KEYS",
    "EXPORT_FORMATS",
    "TORCH_EXPORTERS",
    "export_forecaster",
    "export_policy",
    "export_run",
    "load_policy_checkpoint",
    "pair_env_arrays",
    "register_torch_exporter",
    "save_exported",
]
