"""``jaxport report RUN_DIR``: PNG plots and a ``report.md`` that embeds them.

Plots: per pair, the test equity curve against buy-and-hold, equal weight and cash with the drawdown
underneath; the generic forecaster's predicted next-day volatility against realised |returns| on the
test split; training curves (forecaster losses, RL per-update metrics).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from jaxport.checkpoint import atomic_write_text
from jaxport.pipeline.evaluate_run import summary_file
from jaxport.pipeline.summary import read_summary


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _drawdown(curve: np.ndarray) -> np.ndarray:
    peak = np.maximum.accumulate(curve)
    return curve / peak - 1.0


def plot_equity(curves: dict, title: str, path: Path) -> Path:
    plt = _plt()
    eq = np.asarray(curves["equity_curve"], dtype=float)
    fig, (ax, ax_dd) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot(eq, label=f"policy ({curves.get('algo', '?')})", lw=2)
    base = curves.get("baseline_curves", {})
    for sym, c in base.get("buy_and_hold", {}).items():
        ax.plot(np.asarray(c), label=f"buy & hold {sym}", lw=1, alpha=0.8)
    if "equal_weight" in base:
        ax.plot(np.asarray(base["equal_weight"]), label="50/50 rebalanced", lw=1, ls="--")
    if "cash" in base:
        ax.plot(np.asarray(base["cash"]), label="cash", lw=1, ls=":", color="grey")
    ax.set_ylabel("equity / initial")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    ax_dd.fill_between(np.arange(len(eq)), _drawdown(eq), 0, color="tab:red", alpha=0.4)
    ax_dd.set_ylabel("drawdown")
    ax_dd.set_xlabel(f"test days from {curves.get('dates', {}).get('test_first', '?')}")
    ax_dd.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_training(summary: dict, evaluations: dict[str, dict], path: Path) -> Path | None:
    plt = _plt()
    panels = []
    hist = summary.get("stages", {}).get("base", {}).get("training", {}).get("history")
    if hist and hist.get("epoch"):
        panels.append(("generic forecaster (NLL)", {"train": (hist["epoch"], hist["train_loss"]),
                                                      "validation": (hist["epoch"], hist["val_loss"])}))
    for name, ev in evaluations.items():
        for algo, series in ev.get("training_curves", {}).items():
            key = next((k for k in ("objective", "mean_log_growth", "episode_return", "mean_reward") if k in series),
                       None)
            if key is None and series:
                key = sorted(series)[0]
            if key:
                y = series[key]
                panels.append((f"{name} {algo}: {key}", {key: (list(range(len(y))), y)}))
    if not panels:
        return None
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)), squeeze=False)
    for ax, (title, lines) in zip(axes[:, 0], panels):
        for label, (x, y) in lines.items():
            ax.plot(x, y, label=label)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_volatility(summary: dict, root: Path, path: Path) -> Path | None:
    """Predicted next-day std of the close log-return vs realised |return| (20-day means), test split."""
    from jaxport.data import load_market, split_bounds
    from jaxport.forecast import Forecaster

    base = summary.get("stages", {}).get("base", {})
    if not base.get("checkpoint"):
        return None
    model = Forecaster.load(root / base["checkpoint"])
    if "close" not in model.config.targets:
        return None
    data = summary["data"]
    symbols = base.get("symbols") or data["symbols"]
    market = load_market(data["trainingdata_dir"], data["symbols"]).select(symbols)
    bounds = split_bounds(market, data.get("split_fractions", [0.7, 0.15, 0.15]))
    start = max(bounds.val_end - 1, model.config.context)
    fc = model.forecast_market(market, first_t=start)
    k = model.config.targets.index("close")
    dof = fc.dof[start:-1, :, k, 0]
    std = fc.scale[start:-1, :, k, 0] * np.sqrt(dof / (dof - 2.0))
    r = np.abs(np.diff(np.log(market.close), axis=0))[start:]
    plt = _plt()
    fig, axes = plt.subplots(len(symbols), 1, figsize=(9, 2.2 * len(symbols)), sharex=True, squeeze=False)
    kernel = np.ones(20) / 20
    for i, (ax, sym) in enumerate(zip(axes[:, 0], symbols)):
        ax.plot(np.convolve(r[:, i], kernel, mode="valid") * np.sqrt(np.pi / 2), label="realised (20d mean |r|·√(π/2))")
        ax.plot(np.convolve(std[:, i], kernel, mode="valid"), label="forecast std (20d mean)")
        ax.set_title(sym, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    axes[-1, 0].set_xlabel(f"test days from {market.dates[start + 1]}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _metrics_rows(entry: dict) -> list[str]:
    keys = ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar", "num_trades", "win_rate")
    m = entry["metrics"]
    rows = ["| strategy | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 1)]

    def row(label, metrics):
        cells = []
        for k in keys:
            v = metrics.get(k)
            cells.append("-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)))
        rows.append(f"| {label} | " + " | ".join(cells) + " |")

    row(f"policy ({entry['algo']})", m["test"])
    for sym, bm in m["baselines"].get("buy_and_hold", {}).items():
        row(f"buy & hold {sym}", bm)
    for name in ("equal_weight", "cash"):
        if name in m["baselines"]:
            row(name.replace("_", " "), m["baselines"][name])
    return rows


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write PNGs and ``report.md`` into ``out_dir`` (default ``RUN_DIR/report``); return report.md."""
    path = summary_file(run_dir)
    summary = read_summary(path)
    root = path.parent
    out = Path(out_dir) if out_dir else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# jaxport training report", "", f"Summary: `{path}`  ", f"Status: {summary.get('status')}", ""]
    base = summary.get("stages", {}).get("base", {})
    if base.get("metrics"):
        lines += ["## Forecaster (test split, next-day close log-return)", "",
                  "| model | NLL | CRPS | direction acc. |", "|---|---|---|---|"]
        t = base["metrics"]["test"]
        lines.append(f"| generic | {t.get('nll', float('nan')):.4f} | {t.get('crps', float('nan')):.5f} | "
                     f"{t.get('directional_accuracy', float('nan')):.3f} |")
        for name, m in base["metrics"]["baselines"].items():
            lines.append(f"| {name} | {m.get('nll', float('nan')):.4f} | {m.get('crps', float('nan')):.5f} | "
                         f"{m.get('directional_accuracy', float('nan')):.3f} |")
        lines.append("")
        vol = plot_volatility(summary, root, out / "forecast_volatility.png")
        if vol:
            lines += ["![forecast vs realised volatility](forecast_volatility.png)", ""]
    evaluations: dict[str, Any] = {}
    for name, entry in summary.get("stages", {}).get("portfolio", {}).items():
        lines += [f"## Portfolio {name}", ""]
        if entry.get("status") != "completed":
            lines += [f"Status: {entry.get('status')} — {entry.get('error', '')}", ""]
            continue
        curves = json.loads((root / entry["evaluation"]).read_text(encoding="utf-8"))
        evaluations[name] = curves
        png = plot_equity(curves, f"{name}: test split", out / f"equity_{name}.png")
        lines += _metrics_rows(entry) + ["", f"![equity {name}]({png.name})", ""]
    training = plot_training(summary, evaluations, out / "training_curves.png")
    if training:
        lines += ["## Training curves", "", "![training curves](training_curves.png)", ""]
    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    return report
