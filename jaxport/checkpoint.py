"""Orbax checkpoints of pytrees with a JSON metadata file, written atomically.

Layout of a checkpoint directory ``path/``::

    path/state/          orbax PyTree checkpoint (arrays)
    path/metadata.json   architecture/config/provenance (plain JSON)

The directory is built under a temporary sibling name and renamed into place only when complete, so a
crash never leaves a half-written checkpoint at ``path``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

METADATA_FILE = "metadata.json"
STATE_DIR = "state"


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _json_default(obj: Any):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.ndarray, jax.Array)):
        return np.asarray(obj).tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json(obj: Any) -> str:
    """JSON text of nested dicts/lists with NumPy/JAX scalars and arrays converted."""
    return json.dumps(obj, indent=2, default=_json_default, allow_nan=True)


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, to_json(obj) + "\n")


def _checkpointer():
    import orbax.checkpoint as ocp

    return ocp.PyTreeCheckpointer()


def save_checkpoint(path: str | Path, tree: Any, metadata: dict | None = None, *, overwrite: bool = False) -> Path:
    """Save the pytree ``tree`` (arrays) and JSON ``metadata`` to the directory ``path``, atomically.

    Refuses to replace an existing checkpoint unless ``overwrite``.
    """
    path = Path(path).absolute()
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: checkpoint already exists (pass overwrite=True to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        host_tree = jax.tree.map(np.asarray, tree)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _checkpointer().save(tmp / STATE_DIR, host_tree)
        (tmp / METADATA_FILE).write_text(to_json(metadata or {}) + "\n", encoding="utf-8")
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> tuple[Any, dict]:
    """``(tree, metadata)`` from a directory written by :func:`save_checkpoint` (arrays as NumPy)."""
    path = Path(path).absolute()
    if not (path / STATE_DIR).exists():
        raise FileNotFoundError(f"{path}: not a jaxport checkpoint (no {STATE_DIR}/)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = _checkpointer().restore(path / STATE_DIR)
    tree = jax.tree.map(np.asarray, tree)
    meta_file = path / METADATA_FILE
    metadata = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.exists() else {}
    return tree, metadata
