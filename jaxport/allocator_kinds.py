"""The names of the standard allocators, in one place (importable without jax, pandas or torch).

The rules themselves live in :mod:`jaxport.eval.allocators` (JAX) and
:class:`torch_compat.models.AllocatorPolicy` (Torch twin); the jax-free layers (``jaxport.pipeline
.labels``, ``jaxport train --help``) and the Torch twin read the names from here, so a plain-Torch
consumer needs no JAX to check an allocator name.
"""

from __future__ import annotations

#: Every allocator rule, in the order tables and legends list them.
ALLOCATOR_KINDS = (
    "equal_weight",
    "inverse_volatility",
    "minimum_variance",
    "risk_parity",
    "volatility_timing",
    "vol_managed_equal_weight",
    "equal_minimum_variance",
    "buy_and_hold",
    "cash",
)
#: The standard allocators the gate compares: every rule over the whole basket (all kinds but the
#: single-asset ``buy_and_hold``), in :data:`ALLOCATOR_KINDS` order.
STANDARD_ALLOCATORS = tuple(k for k in ALLOCATOR_KINDS if k != "buy_and_hold")

__all__ = ["ALLOCATOR_KINDS", "STANDARD_ALLOCATORS"]
