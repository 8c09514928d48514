"""Checkpoints of a forecaster: parameters + config + normalisation settings + free ``extra``.

Written in the project's one checkpoint format (:mod:`jaxport.checkpoint`, kind ``"forecaster"``)::

    PATH/state/          the flax ``params`` tree (see jaxport.forecast.model for names)
    PATH/metadata.json   {"format": "jaxport.checkpoint/1", "kind": "forecaster",
                          "config": ForecasterConfig fields, "normalisation": {...}, "extra": {...}}

Restoring needs only this module, the config dataclass and the model definition (to check the
restored tree against the config's parameter shapes), not the training code. Writes are atomic and
replace an existing checkpoint at ``PATH`` only once the new one is complete.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from jaxport.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from jaxport.errors import CheckpointError
from jaxport.forecast.config import INPUT_CHANNELS, ForecasterConfig
from jaxport.forecast.model import abstract_params

KIND = "forecaster"


def normalisation_info(config: ForecasterConfig) -> dict:
    """The (fixed, per-window) input normalisation, recorded in checkpoints for other readers."""
    return {
        "kind": "per-window instance normalisation",
        "channels": list(INPUT_CHANNELS),
        "return_scale": (
            "s = sqrt(mean(r_close^2 over the window) + scale_eps^2); returns and targets / s"
        ),
        "volume": "log1p(volume) z-scored within the window (var + 1e-6)",
        "scale_eps": config.scale_eps,
        "input_clip": config.input_clip,
    }


def save_forecaster(path, params, config: ForecasterConfig, extra: dict | None = None) -> Path:
    """Write ``params`` + ``config`` (+ JSON-able ``extra``) to directory ``path`` atomically
    (replacing a checkpoint already there)."""
    meta = {
        "config": config.to_dict(),
        "normalisation": normalisation_info(config),
        "extra": extra or {},
    }
    return save_checkpoint(path, params, meta, kind=KIND, overwrite=True)


def load_meta(path) -> dict:
    """The JSON metadata of a forecaster checkpoint (config, normalisation, extra)."""
    return read_metadata(path, kind=KIND)


def load_forecaster(path) -> tuple[dict, ForecasterConfig, dict]:
    """``(params, config, extra)`` from a checkpoint written by :func:`save_forecaster`.

    One-line ``CheckpointError`` when the stored parameters do not have the shapes of the stored
    config.
    """
    path = Path(path).absolute()
    tree, meta = load_checkpoint(path, kind=KIND)
    config = ForecasterConfig.from_dict(meta["config"])
    want = abstract_params(config)
    got_paths = {
        jax.tree_util.keystr(k): np.shape(v) for k, v in jax.tree_util.tree_leaves_with_path(tree)
    }
    want_paths = {
        jax.tree_util.keystr(k): tuple(v.shape)
        for k, v in jax.tree_util.tree_leaves_with_path(want)
    }
    if got_paths != want_paths:
        diff = sorted(set(got_paths.items()) ^ set(want_paths.items()))[:1]
        raise CheckpointError(
            f"{path}: parameters do not match the stored config (first difference: {diff})"
        )
    params = jax.tree.map(lambda a, w: np.asarray(a, dtype=w.dtype), tree, want)
    return params, config, meta.get("extra", {})
