"""One vocabulary (issue #23): one label per policy, max drawdown always a positive percent,
signed returns, trade statistics only where a position was closed; whole lines when redirected."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jaxport.pipeline.labels import (
    drawdown_pct,
    learned_label,
    policy_label,
    signed_pct,
    trade_cells,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "name",
    ["equal_weight", "baseline:equal_weight"],
)
def test_one_label_for_1_over_n(name):
    assert policy_label(name) == "1/N"


def test_buy_and_hold_names_the_asset_whatever_the_source():
    symbols = ["AAPL", "AMZN"]
    assert policy_label("buy_and_hold:1", symbols) == "buy & hold AMZN"  # the gate's key
    assert policy_label("buy_and_hold.AAPL") == "buy & hold AAPL"  # the summary's path
    assert policy_label("buy_and_hold AAPL") == "buy & hold AAPL"  # the report's curve key
    assert policy_label("baseline:minimum_variance") == "minimum variance"
    assert learned_label("universe", True) == "learned (universe)"
    assert learned_label("universe", False) == "learned (universe, not shipped)"


@given(st.floats(-1.0, 1.0, allow_nan=False))
def test_max_drawdown_is_a_positive_percent_without_sign(x):
    text = drawdown_pct(x)
    assert text.endswith(" %") and not text.startswith(("+", "-"))
    assert float(text[:-2]) == pytest.approx(100 * abs(x), abs=0.006)


@given(st.floats(-0.99, 10.0, allow_nan=False))
def test_returns_carry_their_sign(x):
    text = signed_pct(x)
    assert text[0] in "+-" and float(text[:-2]) == pytest.approx(100 * x, abs=0.006)


def test_missing_numbers_are_a_dash():
    assert drawdown_pct(None) == signed_pct(float("nan")) == "-"


def test_trade_statistics_only_where_a_position_closed():
    held = {"num_trades": 2, "num_closed_trades": 0, "win_rate": 1.0}  # 1/N: two open positions
    assert trade_cells(held) == ("held", "-")
    traded = {"num_trades": 3, "num_closed_trades": 2, "win_rate": 2 / 3}
    assert trade_cells(traded) == ("3", "67 %")


def test_redirected_console_writes_whole_lines():
    """Not a terminal and no COLUMNS: the console is wide, so progress lines and table rows are not
    cut at 80 columns ("stage 1: generic fore…")."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["PYTHONPATH"] = str(REPO)
    code = "from jaxport.cli.common import console, REDIRECTED_WIDTH as W; print(console.width, W)"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    width, wanted = proc.stdout.split()
    assert int(width) == int(wanted) >= 200


def test_every_allocator_the_gate_compares_has_a_label_and_a_place_in_tables():
    """The report's tables and equity plots list STANDARD_ALLOCATORS: it must hold every allocator
    the gate compares (default_allocators), each with its own label, none left to a raw name."""
    from jaxport.eval import default_allocators
    from jaxport.pipeline.labels import POLICY_LABELS, STANDARD_ALLOCATORS

    gate_names = {a.name for a in default_allocators(3) if a.kind != "buy_and_hold"}
    assert gate_names == set(STANDARD_ALLOCATORS)
    labels = [policy_label(name) for name in STANDARD_ALLOCATORS]
    assert all(name in POLICY_LABELS for name in STANDARD_ALLOCATORS)
    assert len(set(labels)) == len(labels)
