"""Traced parameters of the portfolio environment: market data and trading/financing terms.

Everything numeric lives here (not in the env object) so one compiled step serves any dataset of the
same shape, and ``jax.vmap`` can run over different parameter sets.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import struct


@struct.dataclass
class EnvParams:
    """Market arrays and trading terms.

    Units: rates are fractions (``fee_rate=0.0005`` is 5 bps per unit of turnover);
    ``annual_financing_rate`` and ``short_borrow_rate`` are annual, charged per step as
    ``rate / periods_per_year``. Equity is measured in units of ``initial_equity``.
    """

    prices: jnp.ndarray  # [T, N] closes
    open_prices: jnp.ndarray  # [T, N] opens (== prices when not given)
    features: jnp.ndarray  # [T, N, F] causal features (row t uses data up to day t's close)
    leverage_cap: jnp.ndarray  # max gross exposure sum|w|, in multiples of equity
    annual_financing_rate: jnp.ndarray  # annual, on exposure beyond 1x equity
    periods_per_year: jnp.ndarray  # steps per year (252 for daily bars)
    fee_rate: jnp.ndarray  # per unit turnover, fraction
    slippage_rate: jnp.ndarray  # per unit turnover, fraction, added to fee_rate
    short_borrow_rate: jnp.ndarray  # annual, on short notional
    bankruptcy_fraction: jnp.ndarray  # episode ends when E' <= max(this, 1e-6) * E0
    initial_equity: jnp.ndarray  # E0
    episode_length: jnp.ndarray  # steps before truncation
    eval_start: jnp.ndarray  # fixed start day when >= 0, random start when < 0
    start_min: jnp.ndarray  # earliest start day (>= window - 1, past feature warm-up)

    @property
    def num_days(self) -> int:
        return self.prices.shape[-2]

    @property
    def max_steps_in_episode(self) -> jnp.ndarray:
        """gymnax's name for the truncation horizon."""
        return self.episode_length

    @classmethod
    def from_arrays(
        cls,
        prices,
        features,
        *,
        open_prices=None,
        leverage_cap: float = 2.0,
        annual_financing_rate: float = 0.0675,
        periods_per_year: float = 252.0,
        fee_rate: float = 0.0005,
        slippage_rate: float = 0.0,
        short_borrow_rate: float = 0.0,
        bankruptcy_fraction: float = 0.0,
        initial_equity: float = 1.0,
        episode_length: int | None = 252,
        eval_start: int = -1,
        start_min: int | None = None,
        window: int = 1,
    ) -> "EnvParams":
        """Build params from host arrays, checking shapes and values (``ValueError`` on bad input).

        ``episode_length=None`` means "until the end of the data" (for evaluation from
        ``eval_start``).
        ``start_min`` defaults to ``window - 1`` (first day with a full observation window).
        """
        prices = np.asarray(prices, dtype=np.float32)
        features = np.asarray(features, dtype=np.float32)
        if prices.ndim != 2:
            raise ValueError(f"prices must be [T, N], got shape {prices.shape}")
        T, N = prices.shape
        if features.ndim == 2:
            features = features[:, :, None]
        if features.ndim != 3 or features.shape[:2] != (T, N):
            raise ValueError(f"features must be [T, N, F] with T={T}, N={N}, got {features.shape}")
        if not np.all(np.isfinite(prices)) or np.any(prices <= 0):
            raise ValueError("prices must be finite and positive")
        if not np.all(np.isfinite(features)):
            raise ValueError("features contain NaN/inf")
        open_arr = prices if open_prices is None else np.asarray(open_prices, dtype=np.float32)
        if open_arr.shape != prices.shape:
            raise ValueError(f"open_prices must match prices {prices.shape}, got {open_arr.shape}")
        if not np.all(np.isfinite(open_arr)) or np.any(open_arr <= 0):
            raise ValueError("open_prices must be finite and positive")
        if leverage_cap <= 0:
            raise ValueError(f"leverage_cap must be > 0, got {leverage_cap}")
        if periods_per_year <= 0:
            raise ValueError(f"periods_per_year must be > 0, got {periods_per_year}")
        if min(fee_rate, slippage_rate, annual_financing_rate, short_borrow_rate) < 0:
            raise ValueError("fee, slippage, financing and borrow rates must be >= 0")
        if start_min is None:
            start_min = window - 1
        if start_min < window - 1:
            raise ValueError(
                f"start_min={start_min} is before the first full window ({window - 1})"
            )
        if start_min >= T - 1:
            raise ValueError(f"start_min={start_min} leaves no step in {T} days")
        if eval_start >= T - 1:
            raise ValueError(f"eval_start={eval_start} leaves no step in {T} days")
        if 0 <= eval_start < window - 1:
            raise ValueError(
                f"eval_start={eval_start} is before the first full window ({window - 1})"
            )
        if episode_length is None:
            first = eval_start if eval_start >= 0 else start_min
            episode_length = T - 1 - first
        if episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length}")
        f32 = lambda x: jnp.asarray(x, dtype=jnp.float32)  # noqa: E731
        i32 = lambda x: jnp.asarray(x, dtype=jnp.int32)  # noqa: E731
        return cls(
            prices=jnp.asarray(prices),
            open_prices=jnp.asarray(open_arr),
            features=jnp.asarray(features),
            leverage_cap=f32(leverage_cap),
            annual_financing_rate=f32(annual_financing_rate),
            periods_per_year=f32(periods_per_year),
            fee_rate=f32(fee_rate),
            slippage_rate=f32(slippage_rate),
            short_borrow_rate=f32(short_borrow_rate),
            bankruptcy_fraction=f32(bankruptcy_fraction),
            initial_equity=f32(initial_equity),
            episode_length=i32(episode_length),
            eval_start=i32(eval_start),
            start_min=i32(start_min),
        )
