"""``jaxport report RUN_DIR``: PNG plots and a ``report.md`` that embeds them.

Per basket, ``equity_<PAIR>.png`` shows the test equity of EVERY policy the gate compared -- the
shipped one, each learned candidate (labelled "not shipped" when the gate refused it) and every
standard allocator (buy & hold of each asset, 1/N, inverse volatility, minimum variance, risk
parity, cash), the baseline the gate compared against marked (the fallback rule under ``--gate-rule
fallback``, else the best baseline on validation) -- with their drawdowns below (percent below
the running peak, a positive number; dates on the x axis). ``report.md`` has the same policies in
a table with units, and the gate's validation numbers that decided what shipped.
``forecast_volatility.png``: the generic forecaster's predicted daily volatility against realised
volatility on the test split, one titled panel per symbol. ``training_curves.png``: the forecaster's
train and validation loss per epoch; the universe policy's training objective per update and its
population's validation objective per member with the selected checkpoint marked (pair-scope runs:
one panel per basket and method). A walk-forward run adds ``walk_forward.png``. Labels and number
formats come from :mod:`jaxport.pipeline.labels`. The run is read through
:class:`jaxport.pipeline.rundir.RunDir`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jaxport.checkpoint import atomic_write_text
from jaxport.pipeline.labels import (
    STANDARD_ALLOCATORS,
    drawdown_pct,
    learned_label,
    policy_label,
    ratio,
    signed_pct,
    trade_cells,
)
from jaxport.pipeline.rundir import RunDir
from jaxport.pipeline.tracking import finite_points

#: Per-update RL metric shown for each candidate: the first of these with a finite point.
TRAINING_KEYS = ("objective", "mean_log_growth", "episode_return", "reward", "mean_reward")
#: y-axis labels (with units) of the per-update metrics.
METRIC_UNITS = {
    "objective": "training objective (per day)",
    "mean_log_growth": "mean log growth (per day)",
    "episode_return": "episode return (fraction)",
    "reward": "mean reward (per step)",
    "mean_reward": "mean reward (per step)",
}
OBJECTIVE_UNITS = "objective, per day (log growth - penalties)"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def drawdown_below_peak(curve) -> np.ndarray:
    """Depth below the running peak as a positive fraction (0 at a new high)."""
    curve = np.asarray(curve, dtype=float)
    return 1.0 - curve / np.maximum.accumulate(curve)


def _save(fig, path: Path, dpi: int) -> Path:
    from jaxport.checkpoint import atomic_write

    plt = _plt()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    plt.close(fig)
    return path


def curve_dates(curves: dict) -> np.ndarray | None:
    """``datetime64[D]`` dates of the equity curve's points (``None`` for files without them)."""
    dates = curves.get("curve_dates")
    if not dates or len(dates) != len(curves.get("equity_curve", [])):
        return None
    return np.asarray(dates, dtype="datetime64[D]")


def _gate_name(name: str, symbols) -> str:
    """The gate's baseline key (``buy_and_hold:0``) of a curve key (``buy_and_hold AAPL``)."""
    if name.startswith("buy_and_hold "):
        return f"buy_and_hold:{list(symbols).index(name.split(' ', 1)[1])}"
    return name


def gate_marked_baseline(gate: dict) -> tuple[str | None, str]:
    """The baseline the report marks, and how: the gate's bar when it was one rule (``--gate-rule
    fallback``: the learned policy had to beat that rule alone), else the best baseline by the
    validation objective."""
    bar = list(gate.get("bar") or [])
    if len(bar) == 1:
        return bar[0], "the gate's bar"
    return gate.get("best_baseline"), "best baseline on validation"


def policy_series(curves: dict, entry: dict | None = None) -> list[dict[str, Any]]:
    """Every policy of one basket's test curves, in legend order: ``[{key, name, label, role,
    equity}]`` (``name``: the policy's label; ``label``: the legend text, ``name`` with its mark).

    ``role``: ``shipped``, ``learned`` (a candidate the gate did not ship), ``best baseline`` (the
    baseline of :func:`gate_marked_baseline`, when it did not ship) or ``baseline``. A shipped
    baseline is listed once, as ``shipped``. ``entry`` (the summary's pair entry) holds the gate.
    """
    symbols = list(curves.get("symbols") or [])
    shipped = str(curves.get("shipped") or curves.get("algo") or "?")
    shipped_key = shipped.removeprefix("baseline:")
    best, mark = gate_marked_baseline((entry or {}).get("gate") or {})
    base = curves.get("baseline_curves", {})

    def series(key, name, role, equity, mark=""):
        label = f"{name} ({mark})" if mark else name
        return dict(key=key, name=name, label=label, role=role, equity=equity)

    rows: list[dict[str, Any]] = []
    if not shipped.startswith("baseline:"):
        name = (
            learned_label(shipped, True) if shipped in ("universe", "gradient", "ppo") else shipped
        )
        rows.append(series(shipped, name, "shipped", curves["equity_curve"], "shipped"))
    learned = dict(curves.get("learned_curves") or {})
    for algo in (entry or {}).get("candidates") or {}:
        learned.setdefault(algo, None)  # a run without stored curves: table row, no line
    for algo, eq in learned.items():
        if algo != shipped:
            rows.append(series(algo, learned_label(algo, False), "learned", eq))
    named = [(f"buy_and_hold {s}", c) for s, c in base.get("buy_and_hold", {}).items()]
    named += [(k, base[k]) for k in STANDARD_ALLOCATORS if k in base]
    for key, eq in named:
        name = policy_label(key, symbols)
        gate_key = _gate_name(key, symbols)
        if gate_key == shipped_key or key == shipped_key:
            rows.insert(0, series(key, name, "shipped", eq, "shipped"))
        elif gate_key == best:
            rows.append(series(key, name, "best baseline", eq, mark))
        else:
            rows.append(series(key, name, "baseline", eq))
    return rows


#: baseline colours: none is black (shipped) or red (learned)
_BASELINE_COLOURS = [
    "tab:blue",
    "tab:green",
    "tab:orange",
    "tab:purple",
    "tab:brown",
    "tab:cyan",
    "tab:olive",
    "tab:pink",
    "tab:gray",
]
_STYLE = {
    "shipped": dict(lw=2.4, color="black", zorder=5),
    "learned": dict(lw=1.6, color="tab:red", zorder=6),  # on top: it often tracks 1/N
    "best baseline": dict(lw=1.8, ls="--", zorder=3),
    "baseline": dict(lw=1.0, alpha=0.8),
}


def equity_figure(curves: dict, title: str, entry: dict | None = None):
    """Test equity of every policy of :func:`policy_series` (top) and its drawdown below the
    running peak in percent (bottom, positive, axis pointing down); dates on the x axis."""
    plt = _plt()
    series = policy_series(curves, entry)
    n = len(curves["equity_curve"])
    dates = curve_dates(curves)
    x = dates if dates is not None else np.arange(n)
    fig, (ax, ax_dd) = plt.subplots(
        2, 1, figsize=(11, 7), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    palette = iter(_BASELINE_COLOURS * 3)
    for row in series:
        if row["equity"] is None:
            continue
        style = dict(_STYLE[row["role"]])
        if "color" not in style:
            style["color"] = next(palette)
        if row["key"] == "cash":
            style.update(color="grey", ls=":")
        eq = np.asarray(row["equity"], dtype=float)
        ax.plot(x, eq, label=row["label"], **style)
        ax_dd.plot(x, 100 * drawdown_below_peak(eq), **style)
    ax.set_ylabel("equity / initial equity (x)")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    ax_dd.set_ylabel("drawdown, % below peak")
    ax_dd.invert_yaxis()  # deeper drawdowns lower down; the numbers stay positive
    ax_dd.set_title("drawdown of each policy above (same colours)", fontsize=9)
    if dates is not None:
        ax_dd.set_xlabel("date (test split)")
        fig.autofmt_xdate()
    else:
        first = curves.get("dates", {}).get("test_first", "?")
        ax_dd.set_xlabel(f"trading days from {first} (test split)")
    ax_dd.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_equity(curves: dict, title: str, path: Path, entry: dict | None = None) -> Path:
    return _save(equity_figure(curves, title, entry), path, dpi=110)


def _forecaster_panel(summary: dict) -> dict | None:
    hist = summary.get("stages", {}).get("base", {}).get("training", {}).get("history")
    if not hist or not hist.get("epoch"):
        return None
    lines = {}
    for label, key in (("train", "train_loss"), ("validation", "val_loss")):
        y = np.asarray(hist.get(key, []), dtype=float)
        x = np.asarray(hist["epoch"][: len(y)])
        ok = np.isfinite(y)
        if ok.any():
            lines[label] = (x[ok].tolist(), y[ok].tolist())
    if not lines:
        return None
    return dict(
        title="generic forecaster: loss per epoch (train vs validation)",
        xlabel="epoch",
        ylabel="NLL (nats per forecast value)",
        lines=lines,
        integer_x=True,
    )


def _per_update_panel(subject: str, key: str, values) -> dict | None:
    """A panel of the training metric ``key`` of ``subject`` per update (finite points only, in
    the metric's units), or None when no point is finite."""
    x, y = finite_points(values)
    if not y:
        return None
    return dict(
        title=f"{subject}: {key} per update",
        xlabel="update (optimiser step)",
        ylabel=METRIC_UNITS.get(key, key),
        lines={key: (x, y)},
    )


def _universe_panels(summary: dict, evaluations: dict[str, dict]) -> list[dict]:
    """The universe policy's training objective per update (selected member; the same for every
    basket, drawn once) and the population's validation objective per member."""
    uni = summary.get("stages", {}).get("universe") or {}
    panels = []
    train = next(
        (
            ev["training_curves"]["universe"]
            for ev in evaluations.values()
            if "universe" in ev.get("training_curves", {})
        ),
        None,
    )
    if train:
        key = next((k for k in TRAINING_KEYS if k in train), None)
        panel = key and _per_update_panel("universe policy (selected member)", key, train[key])
        if panel:
            panels.append(panel)
    vc = uni.get("validation_curve") or {}
    if vc.get("updates"):
        best = int(uni.get("best_member") or 0)
        curves = vc.get("members_objective") or [vc.get("objective", [])]
        members = uni.get("members") or []
        lines = {}
        for m, ys in enumerate(curves):
            idx = best if len(curves) == 1 else m
            seed = members[idx].get("seed") if idx < len(members) else None
            label = f"member {idx}" + (f" (seed {seed})" if seed is not None else "")
            lines[label + (" - selected" if idx == best else "")] = (vc["updates"], ys)
        mark = None
        if best < len(members) and members[best].get("best_update") is not None:
            at = int(members[best]["best_update"])
            ys = curves[best if len(curves) > 1 else 0]
            if at in vc["updates"]:
                mark = (at, ys[vc["updates"].index(at)], "selected checkpoint")
        panels.append(
            dict(
                title="universe population: validation objective per member",
                xlabel="update (optimiser step)",
                ylabel="validation objective (per day,\nmean over baskets)",
                lines=lines,
                mark=mark,
            )
        )
    return panels


def training_panels(summary: dict, evaluations: dict[str, dict]) -> list[dict]:
    """The panels of ``training_curves.png``: ``[{title, xlabel, ylabel, lines: {label: (x, y)},
    mark: (x, y, label) | None}]``; only finite points are kept, no series is drawn twice."""
    panels = [p for p in [_forecaster_panel(summary)] if p]
    universe = _universe_panels(summary, evaluations)
    panels += universe
    for name, ev in evaluations.items():
        for algo, series in ev.get("training_curves", {}).items():
            if algo == "universe" and universe:
                continue  # one policy for every basket: drawn once above
            for key in [k for k in TRAINING_KEYS if k in series] + sorted(series):
                panel = _per_update_panel(f"{name} {algo}", key, series[key])
                if panel:
                    panels.append(panel)
                    break
    return panels


def training_figure(panels: list[dict]):
    """The figure of :func:`training_panels` (one axis per panel, each labelled with units;
    sparse series get markers; a panel's ``mark`` is a star)."""
    plt = _plt()
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3.0 * len(panels)), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels):
        for label, (x, y) in panel["lines"].items():
            bold = label.endswith("selected")
            ax.plot(
                x,
                y,
                label=label,
                marker="o" if len(y) < 40 else None,
                ms=3,
                lw=2.2 if bold else 1.2,
            )
        if panel.get("mark"):
            mx, my, mlabel = panel["mark"]
            ax.plot(
                [mx],
                [my],
                marker="*",
                ms=16,
                color="gold",
                mec="black",
                ls="",
                label=mlabel,
                zorder=6,
            )
        if panel.get("integer_x"):
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(panel["title"], fontsize=10)
        ax.set_xlabel(panel["xlabel"])
        ax.set_ylabel(panel["ylabel"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def plot_training(summary: dict, evaluations: dict[str, dict], path: Path) -> Path | None:
    panels = training_panels(summary, evaluations)
    if not panels:
        return None
    return _save(training_figure(panels), path, dpi=100)


def plot_volatility(run: RunDir, path: Path) -> Path | None:
    """Predicted daily volatility of the close log-return (forecast std, 20-day mean) vs realised
    volatility (20-day mean of |return| x sqrt(pi/2)), in percent per day, on the test split."""
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
        len(symbols), 1, figsize=(9, 2.4 * len(symbols) + 0.8), sharex=True, squeeze=False
    )
    for i, (ax, sym) in enumerate(zip(axes[:, 0], symbols)):
        realised = np.convolve(r[:, i], kernel, mode="valid") * np.sqrt(np.pi / 2)
        forecast = np.convolve(std[:, i], kernel, mode="valid")
        n = min(len(dates), len(realised), len(forecast))
        ax.plot(dates[:n], 100 * realised[:n], label="realised: 20-day mean |r| x sqrt(pi/2)")
        ax.plot(dates[:n], 100 * forecast[:n], label="forecast: 20-day mean of predicted std")
        ax.set_title(f"{sym}: next-day volatility of the close log-return", fontsize=9)
        ax.set_ylabel("% per day")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("date (test split)")
    fig.suptitle("generic forecaster: predicted vs realised daily volatility (test split)")
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
            label = f"fold {f['fold']}: {policy_label(f['shipped'])}"
            ax.plot(x, f["policy"], color=color, lw=2, label=label)
            if f["equal_weight"] is not None:
                ax.plot(x, f["equal_weight"], color=color, lw=1, ls="--", label="1/N")
        ax.set_title(f"{name}: test equity per fold (dashed: 1/N)", fontsize=10)
        ax.set_ylabel("equity / initial equity (x)")
        ax.set_xlabel("date (each fold's test block)")
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
    ax_gap.set_ylabel("basket")
    ax_gap.set_title("shipped minus 1/N, test Sharpe", fontsize=10)
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


#: report.md columns: (header with units, metric key or None for the trade cells)
TABLE_COLUMNS = (
    ("total return", "total_return"),
    ("CAGR (/yr)", "cagr"),
    ("Sharpe (ann.)", "sharpe"),
    ("Sortino (ann.)", "sortino"),
    ("max drawdown (below peak)", "max_drawdown"),
    ("Calmar", "calmar"),
    ("trades", None),
    ("win rate", None),
)


def _row_metrics(row: dict, entry: dict) -> dict:
    """Test metrics of one :func:`policy_series` row, from the summary's pair entry."""
    m = entry.get("metrics") or {}
    if row["role"] == "shipped":
        return m.get("test", {})
    if row["role"] == "learned":
        return ((entry.get("candidates") or {}).get(row["key"]) or {}).get("test", {})
    base = m.get("baselines", {})
    if row["key"].startswith("buy_and_hold "):
        return base.get("buy_and_hold", {}).get(row["key"].split(" ", 1)[1], {})
    return base.get(row["key"], {})


def metrics_table(entry: dict, curves: dict) -> list[str]:
    """Markdown table of every policy of the basket on the test split (percent, signs as in
    :mod:`jaxport.pipeline.labels`)."""
    head = "| policy | role | " + " | ".join(h for h, _ in TABLE_COLUMNS) + " |"
    rows = [head, "|---|---|" + "---:|" * len(TABLE_COLUMNS)]
    for row in policy_series(curves, entry):
        met = _row_metrics(row, entry)
        trades, win = trade_cells(met)
        cells = [
            signed_pct(met.get("total_return")),
            signed_pct(met.get("cagr")),
            ratio(met.get("sharpe")),
            ratio(met.get("sortino")),
            drawdown_pct(met.get("max_drawdown")),
            ratio(met.get("calmar")),
            trades,
            win,
        ]
        role = "learned, not shipped" if row["role"] == "learned" else row["role"]
        rows.append(f"| {row['name']} | {role} | " + " | ".join(cells) + " |")
    return rows


def gate_table(entry: dict, symbols) -> list[str]:
    """The validation numbers the gate compared (what shipped, and why)."""
    gate = entry.get("gate") or {}
    if not gate:
        return []
    rows = [
        "| candidate (validation split) | objective (per day) | Sharpe (ann.) | total return |",
        "|---|---:|---:|---:|",
    ]
    for algo, v in (gate.get("learned") or {}).items():
        shipped = algo == gate.get("shipped")
        label = learned_label(algo, shipped)
        rows.append(
            f"| {label} | {v.get('objective', float('nan')):.2e} | {ratio(v.get('sharpe'))} | "
            f"{signed_pct(v.get('total_return'))} |"
        )
    marked, mark = gate_marked_baseline(gate)
    for name, v in (gate.get("baselines") or {}).items():
        label = policy_label(name, symbols)
        if name == marked:
            label += f" ({mark.removesuffix(' on validation')})"
        rows.append(
            f"| {label} | {v.get('objective', float('nan')):.2e} | {ratio(v.get('sharpe'))} | "
            f"{signed_pct(v.get('total_return'))} |"
        )
    return rows


def _header(run: RunDir) -> list[str]:
    s = run.summary
    device = s.get("device") or {}
    commit = (s.get("git_commit") or "unknown")[:10]
    stamp = ""
    try:
        import datetime

        stamp = datetime.datetime.fromtimestamp(
            run.summary_path.stat().st_mtime, tz=datetime.timezone.utc
        ).strftime("%Y-%m-%d %H:%M UTC")
    except OSError:
        pass
    return [
        "# jaxport training report",
        "",
        f"Summary: `{run.summary_path}`  ",
        f"Status: {s.get('status')}; written {stamp}; commit {commit}; "
        f"device {device.get('device_kind', '?')} x{device.get('num_devices', '?')} "
        f"on {device.get('host', '?')}  ",
        "Units: returns, CAGR and drawdowns in percent (JSON files hold fractions); max drawdown is "
        "the depth below the running peak, a positive percent; Sharpe, Sortino and Calmar are "
        'annualised. "held": the policy never closed a position (buy & hold, 1/N, ...), so '
        "trade counts and win rates say nothing about it.",
        "",
    ]


def _forecaster_section(run: RunDir, out: Path) -> list[str]:
    base = run.summary.get("stages", {}).get("base", {})
    if not base.get("metrics"):
        return []
    lines = [
        "## Forecaster (test split, next-day close log-return)",
        "",
        "| model | NLL (nats, lower is better) | CRPS (log-return) | direction accuracy |",
        "|---|---:|---:|---:|",
    ]
    rows = [("generic (ours)", base["metrics"]["test"])] + list(
        base["metrics"]["baselines"].items()
    )
    for name, m in rows:
        acc = m.get("directional_accuracy")
        lines.append(
            f"| {name} | {m.get('nll', float('nan')):.4f} | {m.get('crps', float('nan')):.5f} | "
            f"{'-' if acc is None else f'{100 * acc:.1f} %'} |"
        )
    lines.append("")
    if plot_volatility(run, out / "forecast_volatility.png"):
        lines += ["![forecast vs realised volatility](forecast_volatility.png)", ""]
    return lines


def _pair_section(run: RunDir, name: str, entry: dict, out: Path) -> tuple[list[str], dict | None]:
    lines = [f"## Portfolio {name}", ""]
    if entry.get("status") != "completed":
        return lines + [f"Status: {entry.get('status')} - {entry.get('error', '')}", ""], None
    curves = run.evaluation(name)
    symbols = curves.get("symbols") or entry.get("symbols") or []
    shipped = entry.get("shipped") or entry.get("algo")
    lines += [
        f"Shipped: **{policy_label(shipped, symbols)}**"
        + ("" if str(shipped).startswith("baseline:") else " (learned)")
        + ". Why: "
        + str((entry.get("metrics") or {}).get("selection") or "no gate record")
        + "",
        "",
        "Test split:",
        "",
    ]
    lines += metrics_table(entry, curves) + [""]
    gate = gate_table(entry, symbols)
    if gate:
        lines += ["What the gate compared (validation split):", ""] + gate + [""]
    png = plot_equity(
        curves,
        f"{name}: test split, every policy the gate compared",
        out / f"equity_{name}.png",
        entry,
    )
    return lines + [f"![equity {name}]({png.name})", ""], curves


def write_report(run_dir: str | Path | RunDir, out_dir: str | Path | None = None) -> Path:
    """Write PNGs and ``report.md`` into ``out_dir`` (default ``RUN_DIR/report``); returns the
    report.md path."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    summary = run.summary
    out = Path(out_dir) if out_dir else run.root / "report"
    out.mkdir(parents=True, exist_ok=True)
    lines = _header(run) + _forecaster_section(run, out)
    evaluations: dict[str, Any] = {}
    for name, entry in summary.get("stages", {}).get("portfolio", {}).items():
        section, curves = _pair_section(run, name, entry, out)
        lines += section
        if curves is not None:
            evaluations[name] = curves
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
