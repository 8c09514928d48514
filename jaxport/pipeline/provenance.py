"""Where a run came from and how it is seeded: the git commit, package versions and devices that
the summary records, and the per-stage seeds (stable across processes, so a resumed run draws the
same keys as an uninterrupted one)."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from pathlib import Path
from typing import Any

from jaxport.pipeline.config import RLConfig, sharded_batch


def stage_seed(seed: int, *names: str) -> int:
    """A 31-bit seed from the run seed and a stage/pair name (stable across processes)."""
    digest = hashlib.sha256(("/".join([str(seed), *names])).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def git_commit() -> str | None:
    """The commit of the checkout jaxport runs from (``None`` outside git)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str | None]:
    """Versions of Python and the packages a run depends on (``None``: not installed)."""
    from importlib import metadata

    names = (
        "jaxport",
        "jax",
        "jaxlib",
        "flax",
        "optax",
        "gymnax",
        "chex",
        "orbax-checkpoint",
        "numpy",
        "pandas",
        "tensorboardX",
        "torch",
        "gymnasium",
        "arch",
        "wandb",
    )
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_description(rl: RLConfig | None = None, *, check: bool = True) -> dict[str, Any]:
    """The summary's ``device`` block: platform and kind of the devices, how many there are
    (``num_devices``, every process), how many the RL trainers shard over (``devices_used``:
    ``rl.devices``, all when unset) and the process count (multi-host).

    With ``check`` (the run trains RL) it fails early, with one ``ConfigError`` line, when
    ``rl.devices`` exceeds the devices available or the sharded batch does not divide over them
    (``rl.seeds`` for the universe population, else ``rl.batch_size``)."""
    import jax

    from jaxport.distributed import check_batch, rl_mesh
    from jaxport.xla_options import applied_options

    available = jax.devices()
    if rl is None:
        mesh = rl_mesh(None)
    else:
        size, setting = sharded_batch(rl)
        mesh = rl_mesh(rl.devices, batch=size)
        if check:
            check_batch(size, mesh, setting)
    return {
        "platform": available[0].platform,
        "device_kind": available[0].device_kind,
        "num_devices": len(available),
        "devices_used": int(mesh.devices.size),
        "num_processes": jax.process_count(),
        "host": platform.node(),
        "processor": platform.machine(),
        # per-compile XLA options of jaxport's CPU programs (jaxport.xla_options)
        "xla_options": applied_options()["compiler_options"],
    }


__all__ = ["device_description", "git_commit", "package_versions", "stage_seed"]
