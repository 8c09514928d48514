"""The ``jaxport report`` section of a stress result (``RUN_DIR/stress/stress.json`` and its PNGs,
written by ``jaxport stress``): a markdown table per basket and the fan chart and histograms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPORT_COLUMNS = (
    ("total_return", "q05", "return q05"),
    ("total_return", "q50", "return median"),
    ("total_return", "q95", "return q95"),
    ("max_drawdown", "q50", "max DD median"),
    (None, "prob_loss", "P(loss)"),
    (None, "prob_drawdown_gt_20", "P(DD > 20 %)"),
    (None, "prob_ruin", "P(ruin)"),
    (None, "prob_beats_equal_weight", "P(beats 1/N)"),
)


def stress_markdown(data: dict[str, Any], basket: str) -> list[str]:
    """A markdown table of one basket's stress statistics (percentages of E0 and of paths)."""
    head = "| policy | " + " | ".join(c[2] for c in REPORT_COLUMNS) + " |"
    lines = [head, "|---" * (len(REPORT_COLUMNS) + 1) + "|"]
    for label, s in data["baskets"][basket].items():
        cells = []
        for metric, key, _ in REPORT_COLUMNS:
            v = s[metric][key] if metric else s.get(key)
            cells.append(
                "-" if v is None else f"{100 * v:+.1f} %" if metric else f"{100 * v:.1f} %"
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def stress_report_lines(run_root: Path, out: Path) -> list[str]:
    """The ``jaxport report`` section for ``RUN_DIR/stress/`` when a stress result is there (its
    PNGs are copied next to report.md); ``[]`` otherwise."""
    import json
    import shutil

    folder = Path(run_root) / "stress"
    path = folder / "stress.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    lines = [
        f"## Stress test ({data['paths']} bootstrapped paths x {data['horizon']} days of "
        f"{data['source']} rows, mean block {data['block_length']:.0f} days)",
        "",
    ]
    for name in data.get("baskets", {}):
        lines += [f"### {name} (shipped: {data.get('shipped_as', {}).get(name, '?')})", ""]
        lines += stress_markdown(data, name) + [""]
        for png in (f"stress_fan_{name}.png", f"stress_hist_{name}.png"):
            if (folder / png).is_file():
                if Path(out).resolve() != folder.resolve():
                    shutil.copyfile(folder / png, Path(out) / png)
                lines += [f"![{png[:-4]}]({png})", ""]
    return lines
