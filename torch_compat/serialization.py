"""Files of exported Torch models: ``.safetensors`` (no pickle) and/or ``.pt`` + ``.json``.

:func:`save_exported` writes one exported model (a Torch ``state_dict`` and its architecture JSON,
as :func:`torch_compat.export.export_policy` / ``export_forecaster`` return them) under a common
stem:

* ``NAME.safetensors`` -- the same tensor names as the ``state_dict``; the architecture JSON is in
  the file's metadata under :data:`ARCH_METADATA_KEY` (``"jaxport_arch"``), next to
  ``"format": "pt"`` (the Hugging Face convention). Loads without pickle and memory-mapped:
  ``safetensors.torch.load_file`` or :func:`torch_compat.models.load_exported`.
* ``NAME.pt`` -- ``torch.save(state_dict)`` (load with ``torch.load(..., weights_only=True)``) and
  ``NAME.json`` -- the architecture.

Every file is written to a temporary sibling and renamed into place (``os.replace``), so a crash
never leaves a half-written model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Mapping

import torch

from jaxport.checkpoint import atomic_write, atomic_write_text, to_json, to_jsonable
from jaxport.errors import ConfigError
from torch_compat.models import ARCH_METADATA_KEY  # "jaxport_arch"

#: ``format`` values of :func:`save_exported` (and of ``jaxport export --format``)
EXPORT_FORMATS = ("both", "safetensors", "pt")


def _atomic_write(path: Path, write: Callable[[str], None]) -> Path:
    """``write(tmp)`` then rename onto ``path`` (:func:`jaxport.checkpoint.atomic_write`: the
    umask's mode, the temporary file removed on error)."""
    return atomic_write(path, lambda tmp: write(str(tmp)))


def _host_tensors(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors, each with its own storage (safetensors refuses shared)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise ConfigError(
                f"state_dict[{key!r}]: expected a torch.Tensor, got {type(value).__name__}"
            )
        t = value.detach().cpu().contiguous()
        ptr = t.untyped_storage().data_ptr()
        if t.numel() and ptr in seen:
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[str(key)] = t
    return out


def save_safetensors(path: str | Path, state_dict: Mapping[str, torch.Tensor], arch: dict) -> Path:
    """Write ``state_dict`` to ``path`` (``.safetensors``) with ``arch`` as JSON in its metadata."""
    from safetensors.torch import save_file

    tensors = _host_tensors(state_dict)
    metadata = {
        "format": "pt",
        ARCH_METADATA_KEY: json.dumps(to_jsonable(arch), separators=(",", ":")),
    }
    return _atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=metadata))


def save_exported(
    stem: str | Path, state_dict: Mapping[str, torch.Tensor], arch: dict, format: str = "both"
) -> list[Path]:
    """Write one exported model under ``stem``; returns the written paths.

    ``format``: ``"both"`` (default) -> ``stem.pt``, ``stem.json``, ``stem.safetensors``;
    ``"pt"`` -> ``stem.pt`` + ``stem.json``; ``"safetensors"`` -> ``stem.safetensors`` only (the
    architecture is in its metadata). A ``stem`` ending in one of those suffixes is taken without
    it. Writes are atomic: an existing file is replaced only by a complete new one.
    """
    if format not in EXPORT_FORMATS:
        raise ConfigError(f"format={format!r}: expected one of {EXPORT_FORMATS}")
    stem = Path(stem)
    if stem.suffix in (".pt", ".json", ".safetensors"):
        stem = stem.with_suffix("")
    written: list[Path] = []
    if format in ("both", "pt"):
        pt, js = stem.with_name(stem.name + ".pt"), stem.with_name(stem.name + ".json")
        tensors = _host_tensors(state_dict)
        written.append(_atomic_write(pt, lambda tmp: torch.save(tensors, tmp)))
        written.append(atomic_write_text(js, to_json(arch) + "\n"))
    if format in ("both", "safetensors"):
        written.append(
            save_safetensors(stem.with_name(stem.name + ".safetensors"), state_dict, arch)
        )
    return written


__all__ = ["ARCH_METADATA_KEY", "EXPORT_FORMATS", "save_exported", "save_safetensors"]
