"""#20 item 4: one registry lists every policy and forecaster kind; nothing registers by import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from jaxport.registry import FORECASTER_KINDS, POLICY_KINDS, resolve
from jaxport.rl.codec import PolicySpec, policy_spec, registered_kinds

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("kind", sorted(POLICY_KINDS))
def test_every_listed_policy_kind_resolves_to_its_spec(kind):
    spec = resolve(POLICY_KINDS[kind])
    assert isinstance(spec, PolicySpec) and spec.kind == kind
    assert policy_spec(kind) is spec and kind in registered_kinds()


def test_prefix_kinds_serve_their_names_and_unknown_kinds_fail():
    from jaxport.errors import CheckpointError

    assert policy_spec("baseline:equal_weight") is resolve(POLICY_KINDS["baseline:"])
    with pytest.raises(CheckpointError, match="unknown policy kind 'nope'"):
        policy_spec("nope")


def test_every_forecaster_kind_resolves():
    for kind, entry in FORECASTER_KINDS.items():
        assert callable(resolve(entry)), kind


def test_importing_the_registry_imports_no_jaxport_module():
    code = (
        "import sys; import jaxport.registry; "
        "print(sorted(m for m in sys.modules if m.startswith('jaxport.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.strip() == "['jaxport.registry']"


def test_no_module_registers_a_policy_when_imported():
    """``register_policy`` is for code outside jaxport: no jaxport module calls it."""
    offenders = []
    for path in sorted((ROOT / "jaxport").rglob("*.py")) + sorted(
        (ROOT / "torch_compat").rglob("*.py")
    ):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "register_policy":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
