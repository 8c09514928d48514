"""The benchmark tables in README.md and benchmarks/README.md are exactly what
``benchmarks/make_tables.py`` renders from the committed JSON results, so they cannot drift."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import load_benchmark

ROOT = Path(__file__).resolve().parents[1]
mt = load_benchmark("make_tables")


def test_docs_tables_equal_generated_from_committed_json():
    stale = mt.stale_blocks()
    assert not stale, f"stale tables {stale}: run `python benchmarks/make_tables.py`"


def test_every_block_has_its_markers():
    for fname, name in mt.BLOCKS:
        text = (ROOT / fname).read_text()
        assert mt.current_block(text, name) is not None, f"{fname} lacks block {name}"


def test_ppo_block_quotes_the_json():
    """The numbers in the PPO table are the JSON's (the bug this guards: 85.8 k quoted while the
    JSON held 157.8 k)."""
    ppo = json.loads((mt.RESULTS / mt.PPO_JSON).read_text())
    text = (ROOT / "benchmarks/README.md").read_text()
    block = mt.current_block(text, "ppo")
    assert mt.rate(ppo["env_steps_per_s"]) in block
    assert mt.rate(ppo["reference_env_steps_per_s"]) in block


def test_walk_forward_block_shows_each_candidate_against_its_anchor():
    """Every anchored run's candidate row quotes its pooled gap to its own anchor rule from the
    JSON (the learned tilt's worth), so a tilt that loses to the rule it starts from shows."""
    block = mt.block_walk_forward(mt.RESULTS)
    checked = 0
    for path in sorted(mt.RESULTS.glob(mt.WALK_FORWARD_GLOB)):
        run = json.loads(path.read_text())
        pooled = run.get("pooled") or {}
        anchor = (pooled.get("protocol") or {}).get("anchor")
        for name, rules in (pooled.get("candidates_vs_baselines") or {}).items():
            if anchor not in rules:
                continue
            p = rules[anchor]
            want = f"{p['mean']:+.3f} [{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}]"
            row = next(
                r for r in block.splitlines() if f"| {run['label']} |" in r and f"| {name} |" in r
            )
            assert want in row, (run["label"], name, want, row)
            checked += 1
    assert checked >= 3  # the committed anchored runs (d, e, f, g)


def test_replace_block_roundtrip_and_errors():
    text = "a\n<!-- make_tables:x begin -->\nold\n<!-- make_tables:x end -->\nb\n"
    new = mt.replace_block(text, "x", "| new |")
    assert new == "a\n<!-- make_tables:x begin -->\n| new |\n<!-- make_tables:x end -->\nb\n"
    assert mt.current_block(new, "x") == "| new |"
    assert mt.replace_block(new, "x", "| new |") == new  # idempotent
    with pytest.raises(ValueError, match="make_tables:y"):
        mt.replace_block(text, "y", "z")


def test_render_with_no_results(tmp_path):
    """Missing JSON renders as a pointer to the script, never as a number."""
    for fn in (mt.block_env_cpu, mt.block_ppo, mt.block_memory, mt.block_ynn):
        assert "No results yet" in fn(tmp_path)
    assert "No GPU numbers have been measured yet" in mt.block_gpu(tmp_path)
    assert mt.GPU_COMMAND in mt.block_readme_gpu(tmp_path)


def test_gpu_block_ignores_smoke_runs(tmp_path):
    (tmp_path / "gpu_suite-cpu-smoke.json").write_text(json.dumps({"smoke": True}))
    assert "No GPU numbers" in mt.block_gpu(tmp_path)


def test_ynn_verdict():
    rows = [
        {"num_envs": 4096, "num_assets": 2, "ynn_off_speedup": 2.0, "ynn_off_cpu_speedup": 1.8},
        {"num_envs": 64, "num_assets": 2, "ynn_off_speedup": 0.5, "ynn_off_cpu_speedup": 0.6},
        {"num_envs": 1024, "num_assets": 8, "ynn_off_speedup": 1.5, "ynn_off_cpu_speedup": 0.95},
    ]
    v = mt.ynn_verdict(rows)
    assert "helped (≥ 1.10× by wall and CPU time) at: 4k × 2;" in v
    assert "hurt at: 64 × 2;" in v  # the mixed 1k x 8 row counts as noise


@pytest.mark.parametrize(
    "x, want", [(8_979_028.9, "8.98 M"), (85_817.7, "85.8 k"), (1669.2, "1.67 k"), (150e6, "150 M")]
)
def test_rate_format(x, want):
    assert mt.rate(x) == want
