"""Export trained jaxport models (Flax parameter trees) to plain PyTorch checkpoints.

Every exported model is two files with a common stem: ``NAME.pt`` -- a ``state_dict`` saved with
``torch.save`` (load with ``torch.load(..., weights_only=True)``) -- and ``NAME.json`` -- the
architecture: ``{"format", "kind", "config", ...}`` where ``config`` are the constructor arguments
of the matching module in :mod:`torch_compat.models` (which imports only torch), so
``torch_compat.models.load_exported("NAME.pt")`` rebuilds the module and loads it with
``strict=True``.

* :func:`export_policy` -- PPO ``ActorCritic`` (+ its running observation statistics), or the
  differentiable-RL ``MLPAllocator``.
* :func:`export_forecaster` -- the Toto-style ``ForecasterNet``.
* :func:`export_run` -- everything in a pipeline RUN_DIR (``base/``, ``specialists/<SYM>/``,
  ``portfolio/<A>_<B>/`` and ``pipeline_summary.json``); what ``jaxport export RUN_DIR --to OUT``
  calls.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from jaxport.data import DataError
from torch_compat.models import FORMAT

SUMMARY_FILE = "pipeline_summary.json"
MANIFEST_FILE = "manifest.json"
#: env options of a policy's checkpoint metadata that the Torch env takes as keyword arguments
ENV_OPTION_KEYS = ("window", "long_only", "reward", "return_mode", "leverage_cap", "fee_rate",
                   "annual_financing_rate", "periods_per_year")


# ---------------------------------------------------------------------------------- helpers
def _plain(tree) -> dict:
    """FrozenDict / nested mapping -> nested dict of float32 NumPy arrays."""
    if isinstance(tree, Mapping) or hasattr(tree, "items"):
        return {str(k): _plain(v) for k, v in tree.items()}
    return np.array(tree, dtype=np.float32)  # a writable copy (torch.from_numpy shares it)


def _unwrap_params(params) -> dict:
    params = _plain(params)
    return params["params"] if set(params) == {"params"} else params


def _linear(sd: dict, prefix: str, dense: dict) -> None:
    """Flax Dense ``{kernel [in, out], bias [out]}`` -> torch Linear ``{weight [out, in], bias}``."""
    sd[f"{prefix}.weight"] = torch.from_numpy(np.ascontiguousarray(dense["kernel"].T))
    if "bias" in dense:
        sd[f"{prefix}.bias"] = torch.from_numpy(np.ascontiguousarray(dense["bias"]))


def _config_dict(config) -> dict:
    if isinstance(config, Mapping):
        return dict(config)
    if hasattr(config, "to_dict"):
        return dict(config.to_dict())
    import dataclasses

    return dataclasses.asdict(config)


def _jsonable(obj):
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray) or hasattr(obj, "__array__") and not isinstance(obj, (str, bytes)):
        return np.asarray(obj).tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


# ---------------------------------------------------------------------------------- policies
def _is_gradient_config(cfg: dict) -> bool:
    return "hidden_sizes" in cfg or cfg.get("policy") in ("mlp", "transformer")


def export_policy(params, config, obs_norm=None, *, metadata: dict | None = None) -> tuple[dict, dict]:
    """``(state_dict, arch_json)`` of a trained policy.

    ``params``: the Flax variables (``{"params": {...}}``) or the bare param tree; ``config``: a
    ``jaxport.rl.PPOConfig`` (-> :class:`torch_compat.models.ActorCritic`, with ``obs_norm``, a
    ``jaxport.rl.RunningMeanStd`` or ``{"mean", "var"}``, copied into its buffers) or a
    ``jaxport.rl.gradient.GradientConfig`` with ``policy="mlp"`` (-> ``MLPAllocator``); either as
    the dataclass or its dict. ``metadata`` (e.g. the pipeline checkpoint's) is stored under
    ``"source"`` and its env block under ``"env"``.
    """
    cfg = _config_dict(config)
    p = _unwrap_params(params)
    sd: dict[str, torch.Tensor] = {}
    if _is_gradient_config(cfg):
        if cfg.get("policy", "mlp") != "mlp":
            raise DataError(f"policy export: gradient policy {cfg.get('policy')!r} has no torch twin (only 'mlp')")
        hidden = [int(h) for h in cfg.get("hidden_sizes", (64, 64))]
        names = [f"dense_{i}" for i in range(len(hidden))] + ["out"]
        missing = [n for n in names if n not in p]
        if missing or len(p) != len(names):
            raise DataError(f"policy export: MLPAllocator params {sorted(p)} do not match hidden_sizes={hidden}")
        for i, name in enumerate(names):
            _linear(sd, f"net.{2 * i}", p[name])
        observe_equity = bool(cfg.get("observe_equity", False))
        in_dim = p["dense_0"]["kernel"].shape[0] if hidden else p["out"]["kernel"].shape[0]
        arch_config = dict(obs_dim=int(in_dim + (0 if observe_equity else 1)),
                           num_assets=int(p["out"]["kernel"].shape[1]),
                           hidden_sizes=hidden, leverage_cap=float(cfg.get("leverage_cap", 2.0)),
                           observe_equity=observe_equity)
        kind = "mlp_allocator"
    else:
        hidden = [int(h) for h in cfg.get("hidden", (64, 64))]
        L = len(hidden)
        expected = {f"Dense_{i}" for i in range(2 * L + 2)} | {"log_std"}
        if set(p) != expected:
            raise DataError(f"policy export: ActorCritic params {sorted(p)} do not match hidden={hidden}")
        for i in range(L + 1):
            _linear(sd, f"actor.{2 * i}", p[f"Dense_{i}"])
            _linear(sd, f"critic.{2 * i}", p[f"Dense_{L + 1 + i}"])
        sd["log_std"] = torch.from_numpy(np.ascontiguousarray(p["log_std"]))
        obs_dim = int(p["Dense_0"]["kernel"].shape[0])
        if obs_norm is None:
            mean, var = np.zeros(obs_dim, np.float32), np.ones(obs_dim, np.float32)
        else:
            get = (lambda k: obs_norm[k]) if isinstance(obs_norm, Mapping) else (lambda k: getattr(obs_norm, k))
            mean, var = np.array(get("mean"), np.float32), np.array(get("var"), np.float32)
        sd["obs_mean"] = torch.from_numpy(np.ascontiguousarray(mean.reshape(obs_dim)))
        sd["obs_var"] = torch.from_numpy(np.ascontiguousarray(var.reshape(obs_dim)))
        arch_config = dict(obs_dim=obs_dim, action_dim=int(p["log_std"].shape[-1]), hidden=hidden,
                           activation=str(cfg.get("activation", "tanh")),
                           leverage_cap=float(cfg.get("leverage_cap", 2.0)),
                           normalize_obs=bool(cfg.get("normalize_obs", True)) and obs_norm is not None,
                           obs_clip=float(cfg.get("obs_clip", 10.0)), init_log_std=float(cfg.get("init_log_std", 0.0)))
        kind = "actor_critic"
    arch = {"format": FORMAT, "kind": kind, "config": arch_config, "training_config": _jsonable(cfg)}
    if metadata:
        arch["source"] = _jsonable(metadata)
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
        "features": _jsonable(meta.get("features", {})),
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
        raise DataError(f"forecaster export: parameter {err} missing for num_layers={num_layers}") from None
    extra = sorted(set(p) - {"patch_embed", "final_norm", "head"} - {f"blocks_{i}" for i in range(num_layers)})
    if extra:
        raise DataError(f"forecaster export: unexpected parameters {extra}")
    keys = ("context", "patch", "d_model", "num_layers", "num_heads", "mlp_ratio", "horizon", "targets", "min_dof",
            "input_clip", "scale_eps", "rope_base", "dropout")
    arch_config = {k: _jsonable(cfg[k]) for k in keys if k in cfg}
    arch_config["num_channels"] = int(p["patch_embed"]["kernel"].shape[0] // int(cfg["patch"]))
    arch = {
        "format": FORMAT,
        "kind": "patch_transformer_forecaster",
        "config": arch_config,
        "inputs": "raw channel windows [B, context, 6]: r_close, r_open, r_high, r_low, |r_close|, log1p(volume) "
                  "(see jaxport.forecast.windows); predict_distribution() normalises them per window",
        "outputs": "Student-T (loc, scale, dof) [B, K, H] of log(col[t+h] / close[t]) for col in config.targets",
    }
    return sd, arch


# ---------------------------------------------------------------------------------- files
def save_exported(stem: str | Path, state_dict: dict, arch: dict) -> list[Path]:
    """Write ``stem.pt`` (``torch.save(state_dict)``) and ``stem.json``; returns both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    pt, js = stem.with_suffix(".pt"), stem.with_suffix(".json")
    torch.save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, pt)
    js.write_text(json.dumps(_jsonable(arch), indent=2) + "\n", encoding="utf-8")
    return [pt, js]


def _read_summary(run_dir: Path) -> dict:
    path = run_dir / SUMMARY_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg})") from None


def _is_forecaster_dir(path: Path) -> bool:
    return (path / "params").is_dir() and (path / "meta").is_dir()


def _is_policy_dir(path: Path) -> bool:
    return (path / "state").exists()


def _discover(run_dir: Path, summary: dict) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
    """``(forecasters, policies)`` as (export name, checkpoint dir), from the summary or the layout."""
    def resolve(rel) -> Path:
        path = Path(rel)
        return path if path.is_absolute() else run_dir / path

    forecasters: list[tuple[str, Path]] = []
    policies: list[tuple[str, Path]] = []
    stages = summary.get("stages", {}) if summary else {}
    if stages:
        base = stages.get("base", {}).get("checkpoint")
        if base:
            forecasters.append(("base_forecaster", resolve(base)))
        for sym, entry in sorted(stages.get("specialists", {}).items()):
            ckpt = entry.get("checkpoint")
            if ckpt and entry.get("kept", True) and ckpt != base:
                forecasters.append((f"specialist_{sym}", resolve(ckpt)))
        for name, entry in sorted(stages.get("portfolio", {}).items()):
            if entry.get("status", "completed") == "completed" and entry.get("checkpoint"):
                policies.append((f"portfolio_{name}", resolve(entry["checkpoint"])))
        return forecasters, policies
    if _is_forecaster_dir(run_dir / "base"):
        forecasters.append(("base_forecaster", run_dir / "base"))
    for d in sorted((run_dir / "specialists").glob("*")) if (run_dir / "specialists").is_dir() else []:
        if _is_forecaster_dir(d):
            forecasters.append((f"specialist_{d.name}", d))
    for d in sorted((run_dir / "portfolio").glob("*")) if (run_dir / "portfolio").is_dir() else []:
        if _is_policy_dir(d):
            policies.append((f"portfolio_{d.name}", d))
    return forecasters, policies


def load_policy_checkpoint(path: str | Path) -> tuple[dict, Any, Any, dict]:
    """``(params, obs_norm or None, config, metadata)`` of a pipeline portfolio checkpoint.

    Uses ``jaxport.checkpoint.load_checkpoint``; ``metadata["algo"]`` is ``"ppo"`` (tree from
    ``jaxport.rl.ppo.export_policy``) or ``"gradient"`` (tree ``{"params": ...}``).
    """
    from jaxport.checkpoint import load_checkpoint

    try:
        tree, meta = load_checkpoint(path)
    except FileNotFoundError as err:
        raise DataError(str(err)) from None
    algo = meta.get("algo")
    if algo == "ppo":
        from jaxport.rl.ppo import import_policy

        params, obs_norm, cfg = import_policy({**tree, "config": meta["config"]})
        return params, obs_norm, cfg, meta
    if algo == "gradient":
        return tree["params"], None, dict(meta["config"]), meta
    raise DataError(f"{path}: unknown policy algo {algo!r} (expected 'ppo' or 'gradient')")


def _pair_env_arrays(summary: dict, run_dir: Path, symbols: list[str]) -> dict[str, np.ndarray]:
    """The Torch env arrays of a pair's TEST episode, rebuilt as ``jaxport eval`` does (needs the run's
    config in the summary and its forecaster checkpoints)."""
    from jaxport.data import load_market, split_bounds
    from jaxport.pipeline.evaluate_run import load_symbol_models
    from jaxport.pipeline.portfolio import PairData
    from jaxport.pipeline.run import config_from_summary, pair_features

    cfg = config_from_summary(summary)
    data = summary.get("data", {})
    data_dir = Path(data.get("trainingdata_dir", cfg.data.trainingdata_dir))
    market = load_market(data_dir, data.get("symbols", symbols)).select(symbols)
    bounds = split_bounds(market, cfg.data.split)
    models = load_symbol_models(summary, run_dir, symbols)
    values, names, valid_from, _ = pair_features(cfg.data, market, symbols, models)
    pair = PairData.build(market, values, names, valid_from, bounds, cfg.rl)
    test = pair.test
    return {
        "prices": np.asarray(test.prices),
        "open_prices": np.asarray(test.open_prices),
        "features": np.asarray(test.features),
        "dates": np.asarray(market.dates).astype(str),
        "eval_start": np.asarray(int(test.eval_start)),
        "start_min": np.asarray(int(test.start_min)),
        "symbols": np.asarray(symbols),
    }


def export_run(run_dir: str | Path, out_dir: str | Path, *, env_data: bool = True) -> list[Path]:
    """Export every forecaster and portfolio policy of a pipeline run; returns the written paths.

    Writes ``base_forecaster``, ``specialist_<SYM>`` (kept specialists) and ``portfolio_<A>_<B>``
    (``.pt`` + ``.json`` each) and ``manifest.json`` (what was exported or skipped, and why) into
    ``out_dir``. With ``env_data``, each policy also gets ``portfolio_<A>_<B>.env.npz``: the arrays of
    its test episode (``prices``, ``open_prices``, standardised ``features``, ``dates``,
    ``eval_start``, ``start_min``) for ``TorchPortfolioEnv(prices, features, ...)``, rebuilt like
    ``jaxport eval`` does; when that is impossible (no run config in the summary, data moved) the
    manifest says why. Models the Torch side has no twin for (the transformer gradient policy)
    are skipped with a reason.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: run directory not found")
    summary = _read_summary(run_dir)
    forecasters, policies = _discover(run_dir, summary)
    if not forecasters and not policies:
        raise DataError(f"{run_dir}: no checkpoints found (expected base/, specialists/<SYM>/ or portfolio/<A>_<B>/)")
    from jaxport.forecast import load_forecaster

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    manifest: dict[str, Any] = {"format": FORMAT, "run_dir": str(run_dir.absolute()), "models": {}, "skipped": {}}
    for name, path in forecasters:
        params, config, extra = load_forecaster(path)
        sd, arch = export_forecaster(params, config)
        arch["source"] = {"checkpoint": str(path), "extra": _jsonable(extra)}
        files = save_exported(out_dir / name, sd, arch)
        written += files
        manifest["models"][name] = {"kind": arch["kind"], "files": [f.name for f in files]}
    for name, path in policies:
        params, obs_norm, config, meta = load_policy_checkpoint(path)
        try:
            sd, arch = export_policy(params, config, obs_norm, metadata=meta)
        except DataError as err:
            manifest["skipped"][name] = str(err)
            continue
        arch.setdefault("source", {})["checkpoint"] = str(path)
        files = save_exported(out_dir / name, sd, arch)
        entry = {"kind": arch["kind"], "algo": meta.get("algo"), "files": [f.name for f in files]}
        if env_data and not summary.get("config"):
            entry["env_data"] = "not written: the run summary has no pipeline config to rebuild the features from"
        elif env_data:
            try:
                arrays = _pair_env_arrays(summary, run_dir, list(meta.get("symbols", [])))
                npz = out_dir / f"{name}.env.npz"
                np.savez(npz, **arrays)
                files.append(npz)
                entry["files"].append(npz.name)
            except Exception as err:  # noqa: BLE001 - best effort, reported in the manifest
                entry["env_data"] = f"not written: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        written += files
        manifest["models"][name] = entry
    man = out_dir / MANIFEST_FILE
    man.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    written.append(man)
    return written


__all__ = [
    "ENV_OPTION_KEYS",
    "export_forecaster",
    "export_policy",
    "export_run",
    "load_policy_checkpoint",
    "save_exported",
]
