"""Every kind of policy and forecaster jaxport stores, restores and runs, listed in one place.

Jumanji-style entry points: each kind names ``"module:attribute"`` where its spec is defined, and
:func:`resolve` imports that module the first time the kind is used. Importing this module imports
nothing, and no module registers anything as a side effect of being imported; a kind that is not
in these tables exists only after an explicit :func:`jaxport.rl.codec.register_policy` call.

- :data:`POLICY_KINDS`: policy kind -> its :class:`~jaxport.rl.codec.PolicySpec` (how the codec
  stores, restores and runs it). A kind ending in ``":"`` serves every kind with that prefix
  (``baseline:equal_weight``).
- :data:`FORECASTER_KINDS`: what produces forecast features -> its class or function.

To add a kind: define its spec (a module-level constant) next to the policy, and add one line
here.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Learned policies (``ppo``, ``gradient_*``, ``universe``) and the standard allocators
#: (``baseline:<name>``).
POLICY_KINDS: dict[str, str] = {
    "ppo": "jaxport.rl.policy_kinds:PPO_POLICY",
    "gradient_mlp": "jaxport.rl.policy_kinds:GRADIENT_MLP_POLICY",
    "gradient_transformer": "jaxport.rl.policy_kinds:GRADIENT_TRANSFORMER_POLICY",
    "universe": "jaxport.rl.universe:UNIVERSE_POLICY",
    "baseline:": "jaxport.eval.allocators:BASELINE_POLICY",
}

#: The generic/specialist patch transformer (checkpoint kind ``forecaster``), its out-of-sample
#: cross-fitted block models, and the statistical fallback.
FORECASTER_KINDS: dict[str, str] = {
    "forecaster": "jaxport.forecast.forecaster:Forecaster",
    "crossfit": "jaxport.forecast.crossfit:FittedCrossFit",
    "statistical": "jaxport.forecast.toto_features:statistical_forecast",
}


def resolve(entry_point: str) -> Any:
    """The object an entry point ``"package.module:attribute"`` names (imports the module)."""
    module, _, attribute = entry_point.partition(":")
    return getattr(importlib.import_module(module), attribute)


__all__ = ["FORECASTER_KINDS", "POLICY_KINDS", "resolve"]
