"""One vocabulary for what the user reads: one label per policy, one format per kind of number.

JSON files hold fractions (``0.355``); human output (the CLI's tables, ``report.md``, plots) shows
percent with a sign convention:

- returns, CAGR and gaps carry their sign: ``+28.73 %`` / ``-4.10 %``;
- max drawdown is the depth below the running peak, always a positive percent (``35.54 %``), and
  its column or axis says so ("max drawdown, % below peak");
- Sharpe, Sortino and Calmar are annualised ratios, printed with two decimals.

Policy names (the gate's ``baseline:<name>``, the summary's ``buy_and_hold:<i>`` or
``buy_and_hold.<SYM>``, the learned ``universe`` / ``gradient`` / ``ppo``) all map to the same label
via :func:`policy_label`, e.g. ``equal_weight`` -> ``1/N``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from jaxport.allocator_kinds import STANDARD_ALLOCATORS

#: Labels of the standard allocators and the learned candidates.
POLICY_LABELS = {
    "equal_weight": "1/N",
    "inverse_volatility": "inverse volatility",
    "minimum_variance": "minimum variance",
    "risk_parity": "risk parity",
    "volatility_timing": "volatility timing",
    "vol_managed_equal_weight": "vol-managed 1/N",
    "equal_minimum_variance": "1/N + min-variance mix",
    "cash": "cash",
    "universe": "learned (universe)",
    "gradient": "learned (gradient)",
    "ppo": "learned (PPO)",
}
#: Suffix of a learned candidate that the gate did not ship.
NOT_SHIPPED = "not shipped"


def policy_label(name: str | None, symbols: Sequence[str] | None = None) -> str:
    """The one label of a policy name from anywhere in a run (see the module docstring).

    ``buy_and_hold:<i>`` needs ``symbols`` to name the asset (else ``buy & hold #i``).
    """
    if not name:
        return "?"
    name = str(name).removeprefix("baseline:")
    for sep in (":", ".", " "):
        if name.startswith(f"buy_and_hold{sep}"):
            ref = name[len("buy_and_hold") + 1 :]
            if ref.isdigit() and symbols is not None and int(ref) < len(symbols):
                ref = symbols[int(ref)]
            elif ref.isdigit():
                ref = f"#{ref}"
            return f"buy & hold {ref}"
    return POLICY_LABELS.get(name, name.replace("_", " "))


def learned_label(algo: str, shipped: bool) -> str:
    """``learned (universe)`` when shipped, ``learned (universe, not shipped)`` otherwise."""
    base = POLICY_LABELS.get(algo, f"learned ({algo})")
    return base if shipped else base[:-1] + f", {NOT_SHIPPED})"


def scales_text(scales: Sequence[float]) -> str:
    """Tilt scales as the user reads them: ``0, 0.5, 1``."""
    return ", ".join(f"{float(x):g}" for x in scales)


def _num(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def signed_pct(fraction: Any, digits: int = 2) -> str:
    """``0.2873`` -> ``+28.73 %`` (``-`` when missing or not finite)."""
    v = _num(fraction)
    return "-" if v is None else f"{100 * v:+.{digits}f} %"


def drawdown_pct(fraction: Any, digits: int = 2) -> str:
    """Max drawdown as a positive percent below the peak: ``0.355`` or ``-0.355`` -> ``35.50 %``."""
    v = _num(fraction)
    return "-" if v is None else f"{100 * abs(v):.{digits}f} %"


def ratio(value: Any, digits: int = 2) -> str:
    """An annualised ratio (Sharpe, Sortino, Calmar): ``0.6514`` -> ``0.65``."""
    v = _num(value)
    return "-" if v is None else f"{v:.{digits}f}"


def trade_cells(metrics: dict) -> tuple[str, str]:
    """``(trades, win rate)`` for a table. A trade opens when an asset's exposure leaves zero and
    closes when it returns to zero or flips sign; a policy that never closes one (buy & hold, and
    every long-only allocator that stays invested, 1/N included) has only its open positions, and
    a "win rate" of those says nothing, so it shows ``held`` and ``-``."""
    closed = _num(metrics.get("num_closed_trades"))
    trades = _num(metrics.get("num_trades"))
    if trades is None:
        return "-", "-"
    if closed is not None and closed == 0:
        return "held", "-"
    win = _num(metrics.get("win_rate"))
    return f"{int(trades)}", "-" if win is None else f"{100 * win:.0f} %"


__all__ = [
    "scales_text",
    "NOT_SHIPPED",
    "POLICY_LABELS",
    "STANDARD_ALLOCATORS",
    "drawdown_pct",
    "learned_label",
    "policy_label",
    "ratio",
    "signed_pct",
    "trade_cells",
]
