"""The JAX core never needs torch (``pip install jaxport`` has none; ``jaxport[torch]`` adds it).

* Importing every module under ``jaxport/`` (``pkgutil.walk_packages``) plus ``jaxport.cli``, in a
  fresh interpreter, never even tries to import ``torch`` or ``torch_compat``, and leaves ``torch``
  out of ``sys.modules``.
* No source file under ``jaxport/`` imports torch anywhere (not even inside a function), and
  ``torch_compat`` is imported only inside functions of the CLI layer (``jaxport export``).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "jaxport"
CLI_LAYER = ("jaxport/cli/", "jaxport/cli.py")

# Runs in a fresh interpreter: a meta-path hook records every attempt to import torch or
# torch_compat (even one guarded by try/except), then lets the import proceed normally.
SCRIPT = r"""
import importlib, json, pkgutil, sys

attempts = []


class Recorder:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torch_compat"):
            attempts.append(name)
        return None


sys.meta_path.insert(0, Recorder())
import jaxport

failed = {}
names = ["jaxport", "jaxport.cli"]
names += [m.name for m in pkgutil.walk_packages(
    jaxport.__path__, "jaxport.", onerror=lambda name: failed.setdefault(name, "walk failed"))]
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:  # reported, not raised: the test lists every failure at once
        failed[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({
    "modules": names,
    "failed": failed,
    "attempts": sorted(set(attempts)),
    "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torch_compat")),
}))
"""


def test_importing_every_jaxport_module_leaves_torch_out():
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(result["modules"]) > 30  # the walk really found the package's modules
    assert {"jaxport.cli", "jaxport.env.gym", "jaxport.pipeline.run"} <= set(result["modules"])
    assert result["failed"] == {}
    assert result["attempts"] == [], f"modules under jaxport/ import {result['attempts']}"
    assert result["loaded"] == []
    assert "torch" not in result["loaded"]


def _imports(tree: ast.AST):
    """``(module name, at module level?)`` for every import statement in ``tree``."""
    top = {id(node) for node in getattr(tree, "body", [])}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, id(node) in top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, id(node) in top


def test_no_source_under_jaxport_imports_torch():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for name, top_level in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            root = name.split(".")[0]
            if root == "torch":
                bad.append(f"{rel}: import {name}")
            elif root == "torch_compat" and (top_level or not rel.startswith(CLI_LAYER)):
                where = "at module level" if top_level else "outside the CLI layer"
                bad.append(f"{rel}: import {name} {where}")
    assert bad == [], "torch must stay optional:\n" + "\n".join(bad)
