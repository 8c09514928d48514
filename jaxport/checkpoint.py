"""One checkpoint format for everything jaxport saves (policies and forecasters), written
atomically, and the one helper that turns arrays and dataclass fields into JSON.

Layout of a checkpoint directory ``path/``::

    path/state/          orbax PyTree checkpoint of the arrays (a nested dict of NumPy arrays)
    path/metadata.json   {"format": "jaxport.checkpoint/1", "kind": <what the arrays are>, ...}

``kind`` says what the tree holds (``"policy"``, ``"forecaster"``; readers check it, nothing is
guessed from the tree's keys); the other metadata keys belong to that kind (e.g. a policy's
``policy.kind`` and config, see :mod:`jaxport.rl.codec`). Zero-size arrays and empty sub-dicts,
which orbax refuses, are recorded in the metadata and restored, so any nested dict of arrays
round-trips (a parameter-free policy has an empty tree).

The directory is built under a temporary sibling name and renamed into place only when complete; an
existing checkpoint (``overwrite=True``) is moved aside first and deleted last, so a crash never
leaves a half-written checkpoint at ``path``. Files and folders get the modes a plain ``open`` /
``mkdir`` would give under the process umask (:func:`atomic_write`), not ``tempfile``'s owner-only
ones.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import numpy as np

from jaxport.errors import CheckpointError

CHECKPOINT_FORMAT = "jaxport.checkpoint/1"
METADATA_FILE = "metadata.json"
STATE_DIR = "state"
_EMPTY_KEY = "__jaxport_empty__"  # placeholder leaf when a tree has nothing orbax can store


# ---------------------------------------------------------------------------------- JSON
def to_jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON data: mappings (also flax FrozenDict) -> dicts with str keys,
    tuples/lists/sets -> lists, NumPy/JAX arrays -> nested lists, NumPy scalars -> Python numbers,
    ``Path`` -> str, dataclass instances -> dicts of their fields. Anything else is returned as is.

    The one array->JSON helper of the project: summaries, checkpoint metadata and exported
    architecture files all go through it (so a value reads back the same everywhere).
    """
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, Mapping) or (hasattr(obj, "items") and hasattr(obj, "keys")):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if hasattr(obj, "__array__"):
        return np.asarray(obj).tolist()
    return obj


def to_json(obj: Any) -> str:
    """JSON text of :func:`to_jsonable` ``(obj)`` (indented; NaN/inf allowed, as Python's json)."""
    return json.dumps(to_jsonable(obj), indent=2, allow_nan=True)


def plain_tree(tree: Any, leaf: Callable[[Any], Any] = np.asarray) -> Any:
    """Nested mappings (dicts, flax FrozenDicts) -> nested plain dicts, ``leaf`` applied to every
    leaf (default ``np.asarray``: device arrays are copied to the host)."""
    if isinstance(tree, Mapping) or (hasattr(tree, "items") and hasattr(tree, "keys")):
        return {str(k): plain_tree(v, leaf) for k, v in tree.items()}
    return leaf(tree)


def current_umask() -> int:
    """The process umask (read from ``/proc/self/status`` where it exists, which leaves it
    untouched; else set and restored at once)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` gives a new file: ``0o666`` minus the umask."""
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    """The mode ``mkdir`` gives a new folder: ``0o777`` minus the umask."""
    return 0o777 & ~current_umask()


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """``write(tmp)`` fills a temporary file in ``path``'s folder, which is then renamed onto
    ``path`` (``os.replace``): readers see the old file or the complete new one, never a part.

    The file gets the mode a normal ``open`` would give (``0o666`` minus the umask), not the
    owner-only ``0o600`` of ``tempfile.mkstemp``. On any error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
        os.close(fd)
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write`, fsynced)."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    return atomic_write(path, write)


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """``obj`` as JSON (:func:`to_json`) written atomically to ``path``."""
    return atomic_write_text(path, to_json(obj) + "\n")


# ---------------------------------------------------------------------------------- checkpoints
def _checkpointer():
    import orbax.checkpoint as ocp  # heavy import, deferred

    logging.getLogger("absl").setLevel(logging.WARNING)
    return ocp.PyTreeCheckpointer()


def _split_storable(tree: dict, prefix: tuple = ()) -> tuple[dict, list[dict]]:
    """``(storable, empties)``: the tree without zero-size arrays / empty dicts, and where those
    were."""
    storable: dict = {}
    empties: list[dict] = []
    for key, value in tree.items():
        path = prefix + (key,)
        if isinstance(value, dict):
            if not value:
                empties.append({"path": list(path), "dict": True})
                continue
            sub, sub_empty = _split_storable(value, path)
            empties += sub_empty
            if sub:
                storable[key] = sub
            elif not sub_empty:
                empties.append({"path": list(path), "dict": True})
        elif value.size == 0:
            empties.append(
                {"path": list(path), "shape": list(value.shape), "dtype": value.dtype.str}
            )
        else:
            storable[key] = value
    return storable, empties


def _restore_empties(tree: dict, empties: list[dict]) -> dict:
    for item in empties:
        node = tree
        *parents, last = item["path"]
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = {} if item.get("dict") else np.zeros(item["shape"], np.dtype(item["dtype"]))
    return tree


def save_checkpoint(
    path: str | Path,
    tree: Any,
    metadata: Mapping[str, Any] | None = None,
    *,
    kind: str = "tree",
    overwrite: bool = False,
) -> Path:
    """Save ``tree`` (nested dict of arrays) and JSON ``metadata`` to directory ``path``.

    Atomic. The metadata file gets ``format`` and ``kind`` (see the module docstring) in front of
    ``metadata`` (converted with :func:`to_jsonable`). Refuses to replace an existing checkpoint
    unless ``overwrite``.
    """
    path = Path(path).absolute()
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path}: checkpoint already exists (pass overwrite=True to replace it)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(tmp, dir_mode())  # mkdtemp's 0o700 -> what mkdir would give
        host = plain_tree(tree)
        if not isinstance(host, dict):
            raise TypeError(f"checkpoint tree must be a mapping, got {type(tree).__name__}")
        storable, empties = _split_storable(host)
        meta = {"format": CHECKPOINT_FORMAT, "kind": kind, **to_jsonable(dict(metadata or {}))}
        if empties:
            meta["empty_leaves"] = empties
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _checkpointer().save(tmp / STATE_DIR, storable or {_EMPTY_KEY: np.zeros(1, np.int8)})
        (tmp / METADATA_FILE).write_text(
            json.dumps(meta, indent=2, allow_nan=True) + "\n", encoding="utf-8"
        )
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(path, old)
        os.rename(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_metadata(path: str | Path, *, kind: str | None = None) -> dict:
    """The metadata of the checkpoint at ``path`` (no arrays are read).

    One-line ``CheckpointError`` when ``path`` is not a jaxport checkpoint, has another format, or
    (with ``kind``) holds something else.
    """
    path = Path(path).absolute()
    meta_file = path / METADATA_FILE
    if not (path / STATE_DIR).is_dir() or not meta_file.is_file():
        raise CheckpointError(
            f"{path}: not a jaxport checkpoint (no {STATE_DIR}/ and {METADATA_FILE})"
        )
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"{meta_file}: not valid JSON ({exc.msg} at line {exc.lineno})"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"{path}: checkpoint format {found!r} is not {CHECKPOINT_FORMAT!r}")
    if kind is not None and meta.get("kind") != kind:
        raise CheckpointError(f"{path}: holds a {meta.get('kind')!r} checkpoint, expected {kind!r}")
    return meta


def load_checkpoint(path: str | Path, *, kind: str | None = None) -> tuple[dict, dict]:
    """``(tree, metadata)`` from a directory written by :func:`save_checkpoint` (arrays as NumPy).

    ``kind``: refuse (one-line ``CheckpointError``) a checkpoint of another kind.
    """
    path = Path(path).absolute()
    meta = read_metadata(path, kind=kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = _checkpointer().restore(path / STATE_DIR)
    tree = plain_tree(tree)
    tree.pop(_EMPTY_KEY, None)
    tree = _restore_empties(tree, meta.get("empty_leaves", []))
    return tree, meta


def is_checkpoint(path: str | Path, kind: str | None = None) -> bool:
    """Whether ``path`` holds a jaxport checkpoint (of ``kind``, when given)."""
    try:
        read_metadata(path, kind=kind)
    except CheckpointError:
        return False
    return True
