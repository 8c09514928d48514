"""PNGs of ``jaxport stress``: per basket, a fan chart of equity quantile bands (shipped policy vs
1/N, over trading days of the horizon; the learned candidate instead of the shipped policy when
1/N shipped) and histograms of max drawdown and of the per-path Sharpe
difference to 1/N. Matplotlib helpers are the report's (:mod:`jaxport.pipeline.report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jaxport.pipeline.report import _plt, _save

SHIPPED, EQUAL = "shipped", "equal_weight"
COLORS = {SHIPPED: "tab:blue", EQUAL: "tab:orange"}


def subject(name: str, paths: dict[str, dict], data: dict[str, Any]) -> str:
    """The policy compared with 1/N: the shipped one, or the learned candidate when what shipped
    IS 1/N (the same numbers on every path; the comparison would be empty)."""
    learned = data.get("learned_as", {}).get(name)
    same = np.array_equal(paths[SHIPPED]["total_return"], paths[EQUAL]["total_return"])
    return learned if same and learned in paths else SHIPPED


def _label(label: str, data: dict[str, Any], name: str) -> str:
    if label == SHIPPED:
        return f"shipped ({data.get('shipped_as', {}).get(name, '?')})"
    if label == EQUAL:
        return "1/N (equal weight)"
    return f"learned candidate ({label}; not shipped)"


def fan_figure(name: str, paths: dict[str, dict], data: dict[str, Any]):
    """Equity quantile bands (5-95 %, 25-75 %, median) of the shipped policy (or the learned
    candidate, see :func:`subject`) as shaded bands, and 1/N's as dashed lines on top (visible
    even where the bands coincide)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    main = subject(name, paths, data)
    for label in (main, EQUAL):
        curves = np.asarray(paths[label]["fan"], np.float64)
        days = np.arange(curves.shape[1])
        q = np.quantile(curves, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
        if label == EQUAL:
            color = COLORS[EQUAL]
            ax.plot(days, q[2], color=color, lw=1.5, ls="--", label=f"{_label(label, data, name)}")
            for k in (0, 1, 3, 4):
                ax.plot(days, q[k], color=color, lw=0.9, ls=":")
            continue
        color = COLORS[SHIPPED]
        ax.fill_between(days, q[0], q[4], color=color, alpha=0.15, lw=0)
        ax.fill_between(days, q[1], q[3], color=color, alpha=0.3, lw=0)
        ax.plot(days, q[2], color=color, lw=1.8, label=_label(label, data, name))
    ax.axhline(1.0, color="gray", lw=0.8, ls=":")
    ax.set_xlabel(f"trading days into the path (horizon {data['horizon']} days)")
    ax.set_ylabel("equity (multiple of initial equity E0)")
    n = len(paths[main]["fan"])
    first, last = (data.get("source_dates", {}).get(name) or ["?", "?"])[:2]
    ax.set_title(
        f"{name}: equity over {n} bootstrapped paths of the {data['source']} days "
        f"{first} to {last} (mean block {data['block_length']:.0f} d)\n"
        "median, 25-75 % and 5-95 % of paths per day (shaded; 1/N dashed/dotted)",
        fontsize=9,
    )
    ax.legend(loc="upper left", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def histogram_figure(name: str, paths: dict[str, dict], data: dict[str, Any]):
    """Max drawdown of the shipped policy and 1/N; per-path Sharpe difference shipped - 1/N."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    main = subject(name, paths, data)
    dd = {lab: 100 * np.asarray(paths[lab]["max_drawdown"], np.float64) for lab in (main, EQUAL)}
    bins = np.linspace(0, max(1e-9, max(v.max() for v in dd.values())), 50)
    for lab, v in dd.items():
        color = COLORS.get(lab, COLORS[SHIPPED])
        style = dict(histtype="step", lw=1.5) if lab == EQUAL else dict(alpha=0.5)
        ax1.hist(v, bins=bins, color=color, label=_label(lab, data, name), **style)
    ax1.set_xlabel(f"max drawdown over {data['horizon']} trading days (%)")
    ax1.set_ylabel("paths")
    ax1.legend(fontsize=8)
    diff = np.asarray(paths[main]["sharpe"], np.float64) - np.asarray(
        paths[EQUAL]["sharpe"], np.float64
    )
    who = "shipped" if main == SHIPPED else main
    ax2.hist(diff, bins=50, color="tab:green", alpha=0.7)
    ax2.axvline(0.0, color="black", lw=0.8)
    ax2.set_xlabel(f"Sharpe (annualised) of {who} minus 1/N's, same path")
    ax2.set_ylabel("paths")
    ax2.set_title(f"P({who} Sharpe > 1/N) = {np.mean(diff > 0):.0%}", fontsize=9)
    fig.suptitle(f"{name}: {data['paths']} bootstrapped paths ({data['source']} days)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_stress(name: str, paths: dict[str, dict], data: dict[str, Any], out: Path) -> list[Path]:
    """``stress_fan_<name>.png`` and ``stress_hist_<name>.png`` in ``out``."""
    if SHIPPED not in paths or EQUAL not in paths:
        return []
    return [
        _save(fan_figure(name, paths, data), out / f"stress_fan_{name}.png", 110),
        _save(histogram_figure(name, paths, data), out / f"stress_hist_{name}.png", 110),
    ]


__all__ = ["fan_figure", "histogram_figure", "plot_stress"]
