"""``jaxport eval RUN_DIR``: rebuild every pair's test episode from the checkpoints alone and re-run
the evaluation (policy and baselines), checking it against the numbers in the summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jaxport.checkpoint import atomic_write_json
from jaxport.eval import portfolio_report
from jaxport.pipeline.rundir import RunDir

COMPARED = ("total_return", "sharpe", "max_drawdown", "num_trades", "fees", "financing")
TOLERANCE = 1e-4  # max |re-evaluated - summary| of the COMPARED metrics for a match


def summary_file(run_dir: str | Path) -> Path:
    """The summary file of a run directory (or the file itself)."""
    return RunDir(run_dir, require_summary=False).summary_path


def evaluate_run(run_dir: str | Path | RunDir, *, write: bool = True) -> dict[str, Any]:
    """Re-run each completed pair's test evaluation from its checkpoint; compare with the summary.

    Returns (and with ``write`` stores as ``RUN_DIR/evaluation.json``) ``{"summary", "pairs": {PAIR:
    {"status", "algo", "shipped", "policy_kind", "test", "baselines", "max_abs_diff_vs_summary",
    "matches_summary"}}}``; a walk-forward run adds ``"folds": [{"fold", "pairs": {same}}]``, each
    fold re-evaluated from its own checkpoints on its own test block.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    out: dict[str, Any] = {"summary": str(run.summary_path), "pairs": _evaluate_pairs(run)}
    if run.num_folds:
        out["folds"] = [
            {"fold": k, "pairs": _evaluate_pairs(run.fold(k))} for k in range(run.num_folds)
        ]
    if write:
        atomic_write_json(run.root / "evaluation.json", out)
    return out


def all_match(result: dict[str, Any]) -> bool:
    """Whether every completed pair (of the run and of every fold) matches the summary."""
    groups = [result["pairs"]] + [f["pairs"] for f in result.get("folds", [])]
    return all(e.get("matches_summary", True) for g in groups for e in g.values())


def _evaluate_pairs(run: RunDir) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, entry in run.pairs().items():
        if not entry.completed:
            out[name] = {"status": entry.status, "error": entry.error}
            continue
        pair = run.pair(name)
        policy = run.policy(name, env=pair.env)
        report = portfolio_report(pair.env, pair.test, policy, pair.symbols)
        stored = (entry.metrics or {}).get("test", {})
        diffs = {
            k: abs(float(report["test"][k]) - float(stored[k]))
            for k in COMPARED
            if k in report["test"] and k in stored
        }
        out[name] = {
            "status": "completed",
            "algo": entry.algo,
            "shipped": entry.shipped or entry.algo,
            "policy_kind": policy.kind,
            "test": report["test"],
            "baselines": report["baselines"],
            "max_abs_diff_vs_summary": max(diffs.values()) if diffs else None,
            "matches_summary": all(d <= TOLERANCE for d in diffs.values()),
        }
    return out
