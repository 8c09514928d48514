"""Orbax checkpoints of a forecaster: parameters + config + normalisation settings + free ``extra``.

Layout (one orbax composite checkpoint directory)::

    PATH/params/   StandardSave of the flax ``params`` tree (see jaxport.forecast.model for names)
    PATH/meta/     JSON: {"format": "jaxport.forecaster/1", "config": ForecasterConfig fields,
                          "normalisation": {...}, "extra": {...}}

Restoring needs only this module, the config dataclass and the model definition (to rebuild the
abstract parameter tree), not the training code.  Writes are atomic: orbax writes into a temporary
sibling directory and renames it into place; when ``PATH`` already exists the new checkpoint is
written completely first, then the old one is moved aside and deleted, so a crash never leaves a
half-written ``PATH``.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

import jax
import numpy as np

from jaxport.data.errors import DataError
from jaxport.forecast.config import INPUT_CHANNELS, ForecasterConfig
from jaxport.forecast.model import abstract_params

FORMAT = "jaxport.forecaster/1"


def _ocp():
    import orbax.checkpoint as ocp  # heavy import, deferred

    logging.getLogger("absl").setLevel(logging.WARNING)
    return ocp


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def normalisation_info(config: ForecasterConfig) -> dict:
    """The (fixed, per-window) input normalisation, recorded in checkpoints for other readers."""
    return {
        "kind": "per-window instance normalisation",
        "channels": list(INPUT_CHANNELS),
        "return_scale": "s = sqrt(mean(r_close^2 over the window) + scale_eps^2); returns and targets / s",
        "volume": "log1p(volume) z-scored within the window (var + 1e-6)",
        "scale_eps": config.scale_eps,
        "input_clip": config.input_clip,
    }


def save_forecaster(path, params, config: ForecasterConfig, extra: dict | None = None) -> Path:
    """Write ``params`` + ``config`` (+ JSON-able ``extra``) to directory ``path`` atomically."""
    ocp = _ocp()
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "config": config.to_dict(),
        "normalisation": normalisation_info(config),
        "extra": _jsonable(extra or {}),
    }
    tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    params = jax.tree_util.tree_map(np.asarray, params)
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
        ckptr.save(tmp, ocp.args.Composite(params=ocp.args.StandardSave(params), meta=ocp.args.JsonSave(meta)))
    if path.exists():
        old = path.with_name(f"{path.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, path)
    return path


def load_meta(path) -> dict:
    """The JSON metadata of a forecaster checkpoint (config, normalisation, extra)."""
    ocp = _ocp()
    path = Path(path).absolute()
    if not (path / "meta").is_dir() or not (path / "params").is_dir():
        raise DataError(f"{path}: not a jaxport forecaster checkpoint (missing params/ or meta/)")
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
        meta = ckptr.restore(path, ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    if meta.get("format") != FORMAT:
        raise DataError(f"{path}: unknown forecaster checkpoint format {meta.get('format')!r}; expected {FORMAT}")
    return meta


def load_forecaster(path) -> tuple[dict, ForecasterConfig, dict]:
    """``(params, config, extra)`` from a checkpoint written by :func:`save_forecaster`."""
    ocp = _ocp()
    path = Path(path).absolute()
    meta = load_meta(path)
    config = ForecasterConfig.from_dict(meta["config"])
    abstract = abstract_params(config)
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
        try:
            restored = ckptr.restore(path, ocp.args.Composite(params=ocp.args.StandardRestore(abstract)))
        except (ValueError, KeyError) as exc:
            raise DataError(f"{path}: parameters do not match the stored config ({str(exc).splitlines()[0]})") from None
    return restored.params, config, meta.get("extra", {})
