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
    {"status", "algo", "shipped", "label", "policy_kind", "test", "baselines",
    "max_abs_diff_vs_summary", "matches_summary", "learned": {ALGO: {"label", "policy_kind",
    "test", "max_abs_diff_vs_summary", "matches_summary"}}}}}`` (``learned``: every learned
    candidate the gate did not ship, re-evaluated from its own checkpoint and compared with
    ``candidates.<ALGO>.test``); a walk-forward run adds ``"folds": [{"fold", "pairs": {same}}]``, each
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
    """Whether every completed pair (of the run and of every fold), and each of its learned
    candidates, matches the summary."""
    groups = [result["pairs"]] + [f["pairs"] for f in result.get("folds", [])]
    entries = [e for g in groups for e in g.values()]
    entries += [c for e in entries for c in (e.get("learned") or {}).values()]
    return all(e.get("matches_summary", True) for e in entries)


def _compare(report_test: dict, stored: dict) -> dict:
    diffs = {
        k: abs(float(report_test[k]) - float(stored[k]))
        for k in COMPARED
        if k in report_test and k in stored
    }
    return {
        "max_abs_diff_vs_summary": max(diffs.values()) if diffs else None,
        "matches_summary": all(d <= TOLERANCE for d in diffs.values()),
    }


def _evaluate_learned(run: RunDir, name: str, entry, pair) -> dict[str, Any]:
    """Every learned candidate of the pair that the gate did not ship, on the test split."""
    from jaxport.eval import evaluate_policy
    from jaxport.pipeline.labels import learned_label

    out: dict[str, Any] = {}
    for algo, _ in run.learned_checkpoints(name):
        policy = run.learned_policy(name, algo, env=pair.env)
        test = evaluate_policy(pair.env, pair.test, policy)["metrics"]
        stored = ((entry.candidates or {}).get(algo) or {}).get("test", {})
        out[algo] = {
            "label": learned_label(algo, False),
            "policy_kind": policy.kind,
            "test": test,
            **_compare(test, stored),
        }
    return out


def _evaluate_pairs(run: RunDir) -> dict[str, Any]:
    from jaxport.pipeline.labels import policy_label

    out: dict[str, Any] = {}
    for name, entry in run.pairs().items():
        if not entry.completed:
            out[name] = {"status": entry.status, "error": entry.error}
            continue
        pair = run.pair(name)
        policy = run.policy(name, env=pair.env)
        report = portfolio_report(pair.env, pair.test, policy, pair.symbols)
        shipped = entry.shipped or entry.algo
        out[name] = {
            "status": "completed",
            "algo": entry.algo,
            "shipped": shipped,
            "label": policy_label(shipped, pair.symbols),
            "policy_kind": policy.kind,
            "test": report["test"],
            "baselines": report["baselines"],
            **_compare(report["test"], (entry.metrics or {}).get("test", {})),
            "learned": _evaluate_learned(run, name, entry, pair),
        }
    return out
