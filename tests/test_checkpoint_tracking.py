"""Atomic checkpoints/summary writes and experiment tracking that never stops a run."""

from __future__ import annotations

import builtins
import json

import numpy as np
import pytest

from jaxport.checkpoint import atomic_write_json, load_checkpoint, save_checkpoint
from jaxport.pipeline.tracking import Tracker


def test_checkpoint_roundtrip_and_refuses_overwrite(tmp_path):
    tree = {"params": {"Dense_0": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}}, "n": np.array(3)}
    path = save_checkpoint(tmp_path / "ckpt", tree, {"algo": "ppo", "hidden": (64, 64)})
    restored, meta = load_checkpoint(path)
    np.testing.assert_array_equal(restored["params"]["Dense_0"]["kernel"], tree["params"]["Dense_0"]["kernel"])
    assert meta == {"algo": "ppo", "hidden": [64, 64]}
    with pytest.raises(FileExistsError):
        save_checkpoint(path, tree)
    save_checkpoint(path, {"x": np.ones(2)}, overwrite=True)
    assert set(load_checkpoint(path)[0]) == {"x"}


def test_failed_checkpoint_write_leaves_nothing(tmp_path):
    class Boom:
        def __array__(self, *a, **k):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_checkpoint(tmp_path / "ckpt", {"x": Boom()})
    assert list(tmp_path.iterdir()) == []  # no half-written checkpoint, no temp dir left behind


def test_atomic_json_replaces_whole_file(tmp_path):
    path = tmp_path / "s.json"
    atomic_write_json(path, {"a": np.float32(1.5), "b": np.arange(3), "c": (1, 2)})
    assert json.loads(path.read_text()) == {"a": 1.5, "b": [0, 1, 2], "c": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]


def test_tracker_without_wandb_says_so_once_and_logs_tensorboard(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError("no wandb")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    said = []
    tracker = Tracker(tmp_path, wandb_project="proj", announce=said.append)
    tracker.log("base", 1, {"loss": 0.5, "nan": float("nan"), "text": "x"})
    tracker.log_series("portfolio/A_B/ppo", {"ret": [0.1, 0.2, 0.3]})
    tracker.close()
    assert tracker.wandb_status == "missing" and len(said) == 1 and "wandb" in said[0]
    assert list((tmp_path / "base").glob("events.out.tfevents.*"))
    assert list((tmp_path / "portfolio" / "A_B" / "ppo").glob("events.out.tfevents.*"))
