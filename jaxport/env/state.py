"""Per-episode state of the portfolio environment."""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct


@struct.dataclass
class EnvState:
    """State after the last step (all traced arrays; batch axes are added by ``vmap``).

    ``weights`` are exposures as fractions of current equity after the day's price drift
    (positive long, negative short). Money amounts are in units of ``EnvParams.initial_equity``'s
    currency (equity starts at ``initial_equity``).
    """

    t: jnp.ndarray  # int32, current day index into the data
    time: jnp.ndarray  # int32, steps since reset (gymnax's name)
    equity: jnp.ndarray  # float32, E
    weights: jnp.ndarray  # [N] float32, w
    open_trade_pnl: jnp.ndarray  # [N] float32, net profit so far of each asset's open trade
    gross_pnl: jnp.ndarray  # episode sum of E * w * r before costs (+ a bankruptcy write-off)
    fees: jnp.ndarray  # episode trading costs (fees + slippage; liquidation exit costs included)
    financing: jnp.ndarray  # episode financing + short borrow paid
    num_trades: jnp.ndarray  # int32, closed trades this episode
    winning_trades: jnp.ndarray  # int32, closed trades with net profit > 0
    last_reward: jnp.ndarray  # float32, reward of the last step (0 after reset)
