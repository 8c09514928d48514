"""``jaxport report RUN_DIR``: PNG plots and a ``report.md`` that embeds them.

Plots: per pair, the test equity curve against buy-and-hold, equal weight and cash with the drawdown
underneath (dates on the x axis); the generic forecaster's predicted next-day volatility against
realised |returns| on the test split; in a walk-forward run, each fold's test equity vs 1/N and the
Sharpe gap to 1/N with its 95 % interval; training curves (forecaster losses, RL per-update metrics; a
metric that is undefined on some updates, like PPO's ``episode_return``, is drawn through the
updates where it is defined). The run is read through :class:`jaxport.pipeline.rundir.RunDir`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jaxport.checkpoint import atomic_write_text
from jaxport.pipeline.rundir import RunDir
from jaxport.pipeline.tracking import finite_points

#: Per-update RL metric shown for each candidate: the first of these with a finite point.
TRAINING_KEYS = ("objective", "mean_log_growth", "episode_return", "reward", "mean_reward")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _drawdown(curve: np.ndarray) -> np.ndarray:
    peak = np.maximum.accumulate(curve)
    return curve / peak - 1.0


def _save(fig, path: Path, dpi: int) -> Path:
    plt = _plt()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def curve_dates(curves: dict) -> np.ndarray | None:
    """``datetime64[D]`` dates of the equity curve's points (``None`` for files without them)."""
    dates = curves.get("curve_dates")
    if not dates or len(dates) != len(curves.get("equity_curve", [])):
        return None
    return np.asarray(dates, dtype="datetime64[D]")


def equity_figure(curves: dict, title: str):
    """The equity-vs-baselines figure (drawdown underneath) of one pair's test curves."""
    plt = _plt()
    eq = np.asarray(curves["equity_curve"], dtype=float)
    dates = curve_dates(curves)
    x = dates if dates is not None else np.arange(len(eq))
    fig, (ax, ax_dd) = plt.subplots(
        2, 1, figsize=(9, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.plot(x, eq, label=f"policy ({curves.get('algo', '?')})", lw=2)
    base = curves.get("baseline_curves", {})
    for sym, c in base.get("buy_and_hold", {}).items():
        ax.plot(x, np.asarray(c), label=f"buy & hold {sym}", lw=1, alpha=0.8)
    if "equal_weight" in base:
        ax.plot(
            x,
            np.asarray(base["equal_weight"]),
            label="equal weight, rebalanced daily",
            lw=1,
            ls="--",
        )
    if "cash" in base:
        ax.plot(x, np.asarray(base["cash"]), label="cash", lw=1, ls=":", color="grey")
    ax.set_ylabel("equity / initial")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    ax_dd.fill_between(x, _drawdown(eq), 0, color="tab:red", alpha=0.4)
    ax_dd.set_ylabel("drawdown")
    if dates is not None:
        ax_dd.set_xlabel("date (test split)")
        fig.autofmt_xdate()
    else:
        ax_dd.set_xlabel(f"test days from {curves.get('dates', {}).get('test_first', '?')}")
    ax_dd.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_equity(curves: dict, title: str, path: Path) -> Path:
    return _save(equity_figure(curves, title), path, dpi=110)


def training_panels(
    summary: dict, evaluations: dict[str, dict]
) -> list[tuple[str, dict[str, tuple[list, list]]]]:
    """``[(title, {label: (x, y)})]`` of the training-curves figure; only finite points are kept."""
    panels = []
    hist = summary.get("stages", {}).get("base", {}).get("training", {}).get("history")
    if hist and hist.get("epoch"):
        lines = {}
        for label, key in (("train", "train_loss"), ("validation", "val_loss")):
            y = np.asarray(hist.get(key, []), dtype=float)
            x = np.asarray(hist["epoch"][: len(y)])
            ok = np.isfinite(y)
            if ok.any():
                lines[label] = (x[ok].tolist(), y[ok].tolist())
        if lines:
            panels.append(("generic forecaster (NLL)", lines))
    for name, ev in evaluations.items():
        for algo, series in ev.get("training_curves", {}).items():
            for key in [k for k in TRAINING_KEYS if k in series] + sorted(series):
                x, y = finite_points(series[key])
                if y:
                    panels.append((f"{name} {algo}: {key} per update", {key: (x, y)}))
                    break
    return panels


def training_figure(panels):
    """The figure of :func:`training_panels` (one axis per panel; sparse series get markers)."""
    plt = _plt()
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels)), squeeze=False)
    for ax, (title, lines) in zip(axes[:, 0], panels):
        for label, (x, y) in lines.items():
            ax.plot(x, y, label=label, marker="o" if len(y) < 40 else None, ms=3)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("update")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_training(summary: dict, evaluations: dict[str, dict], path: Path) -> Path | None:
    panels = training_panels(summary, evaluations)
    if not panels:
        return None
    return _save(training_figure(panels), path, dpi=100)


def plot_volatility(run: RunDir, path: Path) -> Path | None:
    """Predicted next-day std of the close log-return vs realised |return| (20-day means), on the
    test split."""
    from jaxport.data import split_bounds

    summary = run.summary
    base = summary.get("stages", {}).get("base", {})
    if not base.get("checkpoint"):
        return None
    model = run.forecaster(base["checkpoint"])
    if "close" not in model.config.targets:
        return None
    data = summary["data"]
    symbols = base.get("symbols") or data["symbols"]
    market = run.market.select(symbols)
    bounds = split_bounds(market, data.get("split_fractions", [0.7, 0.15, 0.15]))
    start = max(bounds.val_end - 1, model.config.context)
    fc = model.forecast_market(market, first_t=start)
    k = model.config.targets.index("close")
    dof = fc.dof[start:-1, :, k, 0]
    std = fc.scale[start:-1, :, k, 0] * np.sqrt(dof / (dof - 2.0))
    r = np.abs(np.diff(np.log(market.close), axis=0))[start:]
    window = 20
    kernel = np.ones(window) / window
    # r[j] is the return into day start + 1 + j; a 20-day mean is dated by its last day
    dates = np.asarray(market.dates[start + window :], dtype="datetime64[D]")
    plt = _plt()
    fig, axes = plt.subplots(
        len(symbols), 1, figsize=(9, 2.2 * len(symbols)), sharex=True, squeeze=False
    )
    for i, (ax, sym) in enumerate(zip(axes[:, 0], symbols)):
        realised = np.convolve(r[:, i], kernel, mode="valid") * np.sqrt(np.pi / 2)
        forecast = np.convolve(std[:, i], kernel, mode="valid")
        n = min(len(dates), len(realised), len(forecast))
        ax.plot(dates[:n], realised[:n], label="realised (20d mean |r|·√(π/2))")
        ax.plot(dates[:n], forecast[:n], label="forecast std (20d mean)")
        ax.set_title(sym, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    axes[-1, 0].set_xlabel("date (test split)")
    fig.autofmt_xdate()
    fig.tight_layout()
    return _save(fig, path, dpi=100)


def walk_forward_series(run: RunDir) -> dict[str, dict[str, Any]]:
    """Per pair, what :func:`plot_walk_forward` draws: ``folds`` = ``[{fold, dates, policy,
    equal_weight, shipped}]`` (each fold's test equity / initial, ``dates`` ``None`` when the
    file has none) and ``gap`` = ``{mean, ci95}`` (annualised shipped-minus-1/N test Sharpe and its
    95 % interval, as in ``walk_forward.pairs``). Empty for a run without walk-forward folds."""
    wf = run.summary.get("walk_forward") or {}
    out: dict[str, dict[str, Any]] = {}
    for k in range(run.num_folds):
        fold = run.fold(k)
        for name, entry in fold.summary.get("stages", {}).get("portfolio", {}).items():
            if entry.get("status") != "completed":
                continue
            curves = fold.evaluation(name)
            base = curves.get("baseline_curves", {})
            out.setdefault(name, {"folds": [], "gap": None})["folds"].append(
                {
                    "fold": k,
                    "dates": curve_dates(curves),
                    "policy": np.asarray(curves["equity_curve"], dtype=float),
                    "equal_weight": (
                        np.asarray(base["equal_weight"], dtype=float)
                        if "equal_weight" in base
                        else None
                    ),
                    "shipped": entry.get("shipped") or curves.get("algo", "?"),
                }
            )
    for name, stats in (wf.get("pairs") or {}).items():
        gap = (stats or {}).get("sharpe_gap_vs_equal_weight")
        if gap and name in out:
            out[name]["gap"] = {"mean": float(gap["mean"]), "ci95": [float(v) for v in gap["ci95"]]}
    return out


def walk_forward_figure(series: dict[str, dict[str, Any]]):
    """Left: per pair, each fold's test equity of the shipped policy (solid) vs 1/N (dashed);
    right: per pair, the Sharpe gap to 1/N with its 95 % interval as an error bar."""
    plt = _plt()
    names = list(series)
    fig = plt.figure(figsize=(13, 3.2 * len(names) + 1))
    grid = fig.add_gridspec(len(names), 2, width_ratios=[3, 1])
    for i, name in enumerate(names):
        ax = fig.add_subplot(grid[i, 0])
        for j, f in enumerate(series[name]["folds"]):
            x = f["dates"] if f["dates"] is not None else np.arange(len(f["policy"]))
            color = f"C{j % 10}"
            ax.plot(x, f["policy"], color=color, lw=2, label=f"fold {f['fold']} {f['shipped']}")
            if f["equal_weight"] is not None:
                ax.plot(x, f["equal_weight"], color=color, lw=1, ls="--", label="1/N")
        ax.set_title(f"{name}: test equity per fold (dashed: 1/N)", fontsize=10)
        ax.set_ylabel("equity / initial")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    ax_gap = fig.add_subplot(grid[:, 1])
    gaps = [(n, series[n]["gap"]) for n in names if series[n]["gap"] is not None]
    if gaps:
        y = np.arange(len(gaps))
        mean = np.array([g["mean"] for _, g in gaps])
        lo = np.array([g["ci95"][0] for _, g in gaps])
        hi = np.array([g["ci95"][1] for _, g in gaps])
        ax_gap.errorbar(mean, y, xerr=[mean - lo, hi - mean], fmt="o", capsize=4)
        ax_gap.set_yticks(y, [n for n, _ in gaps])
    ax_gap.axvline(0.0, color="grey", lw=1)
    ax_gap.set_xlabel("Sharpe gap vs 1/N (annualised, 95 % CI)")
    ax_gap.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def plot_walk_forward(run: RunDir, path: Path) -> Path | None:
    """``walk_forward.png`` of a walk-forward run (``None`` for a plain run)."""
    series = walk_forward_series(run)
    if not series:
        return None
    return _save(walk_forward_figure(series), path, dpi=100)


def _metrics_rows(entry: dict) -> list[str]:
    keys = (
        "total_return",
        "cagr",
        "sharpe",
        "sortino",
        "max_drawdown",
        "calmar",
        "num_trades",
        "win_rate",
    )
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


def write_report(run_dir: str | Path | RunDir, out_dir: str | Path | None = None) -> Path:
    """Write PNGs and ``report.md`` into ``out_dir`` (default ``RUN_DIR/report``); returns the
    report.md path."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    summary = run.summary
    out = Path(out_dir) if out_dir else run.root / "report"
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# jaxport training report",
        "",
        f"Summary: `{run.summary_path}`  ",
        f"Status: {summary.get('status')}",
        "",
    ]
    base = summary.get("stages", {}).get("base", {})
    if base.get("metrics"):
        lines += [
            "## Forecaster (test split, next-day close log-return)",
            "",
            "| model | NLL | CRPS | direction acc. |",
            "|---|---|---|---|",
        ]
        t = base["metrics"]["test"]
        lines.append(
            f"| generic | {t.get('nll', float('nan')):.4f} | {t.get('crps', float('nan')):.5f} | "
            f"{t.get('directional_accuracy', float('nan')):.3f} |"
        )
        for name, m in base["metrics"]["baselines"].items():
            nll, crps = m.get("nll", float("nan")), m.get("crps", float("nan"))
            lines.append(
                f"| {name} | {nll:.4f} | {crps:.5f} | "
                f"{m.get('directional_accuracy', float('nan')):.3f} |"
            )
        lines.append("")
        vol = plot_volatility(run, out / "forecast_volatility.png")
        if vol:
            lines += ["![forecast vs realised volatility](forecast_volatility.png)", ""]
    evaluations: dict[str, Any] = {}
    for name, entry in summary.get("stages", {}).get("portfolio", {}).items():
        lines += [f"## Portfolio {name}", ""]
        if entry.get("status") != "completed":
            lines += [f"Status: {entry.get('status')} — {entry.get('error', '')}", ""]
            continue
        curves = run.evaluation(name)
        evaluations[name] = curves
        png = plot_equity(curves, f"{name}: test split", out / f"equity_{name}.png")
        lines += _metrics_rows(entry) + ["", f"![equity {name}]({png.name})", ""]
    if run.num_folds and plot_walk_forward(run, out / "walk_forward.png"):
        lines += [
            f"## Walk-forward ({run.num_folds} folds, shipped policy vs 1/N)",
            "",
            "![walk-forward](walk_forward.png)",
            "",
        ]
    from jaxport.pipeline.stress_report import stress_report_lines  # RUN_DIR/stress, if any

    lines += stress_report_lines(run.root, out)
    training = plot_training(summary, evaluations, out / "training_curves.png")
    if training:
        lines += ["## Training curves", "", "![training curves](training_curves.png)", ""]
    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    return report
