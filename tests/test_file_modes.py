"""Atomic writes keep their atomicity and give files the mode a plain ``open`` would (issue #23:
under umask 022 the run's outputs must be readable by others, not tempfile's 0600/0700)."""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxport.checkpoint import (
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    current_umask,
    save_checkpoint,
)

UMASKS = st.sampled_from([0o022, 0o002, 0o077, 0o027, 0o000])


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def plain_open_mode(folder: Path, mask: int) -> int:
    """The mode ``open(..., "w")`` gives a new file under ``mask`` (the reference)."""
    ref = folder / f"reference-{mask:o}"
    with umask(mask):
        ref.write_text("x")
    out = mode(ref)
    ref.unlink()
    return out


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mask=UMASKS)
def test_atomic_files_get_the_mode_of_a_plain_open(tmp_path, mask):
    expected = plain_open_mode(tmp_path, mask)
    with umask(mask):
        assert current_umask() == mask
        text = atomic_write_text(tmp_path / "a.txt", "hello")
        js = atomic_write_json(tmp_path / "b.json", {"x": np.float32(1.5)})
        raw = atomic_write(tmp_path / "c.bin", lambda tmp: tmp.write_bytes(b"\x00\x01"))
    for path in (text, js, raw):
        assert mode(path) == expected, (oct(mode(path)), oct(expected), path.name)
    assert text.read_text() == "hello" and raw.read_bytes() == b"\x00\x01"


def test_umask_022_outputs_are_readable_by_others(tmp_path):
    with umask(0o022):
        path = atomic_write_text(tmp_path / "summary.json", "{}")
        ckpt = save_checkpoint(tmp_path / "ckpt", {"w": np.ones(3, np.float32)}, kind="policy")
    assert mode(path) == 0o644
    assert mode(ckpt) == 0o755
    for p in [ckpt, *ckpt.rglob("*")]:
        assert p.stat().st_mode & stat.S_IROTH, f"{p} is not readable by others"


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mask=UMASKS)
def test_checkpoint_folder_gets_the_mode_of_mkdir(tmp_path, mask):
    ref = tmp_path / f"ref-{mask:o}"
    with umask(mask):
        ref.mkdir()
        ckpt = save_checkpoint(
            tmp_path / f"ckpt-{mask:o}", {"a": {"b": np.arange(4.0)}}, kind="tree"
        )
    assert mode(ckpt) == mode(ref)
    assert mode(ckpt / "metadata.json") == 0o666 & ~mask


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = atomic_write_text(tmp_path / "x.txt", "old")

    def boom(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, boom)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]
