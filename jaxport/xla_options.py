"""Per-compile XLA options for jaxport's own programs (measured best; never process-wide XLA_FLAGS).

On the CPU backend jaxport's env, bench and stress programs run faster with XLA's YNNPACK fusions
off (``xla_cpu_experimental_ynn_fusion_type=""``; measured in benchmarks/env_throughput.py,
benchmarks/env_liquidation_cost.py and benchmarks/rl_xla_options.py, see benchmarks/README.md).
:func:`tuned_jit` jits a function with :func:`compiler_options` for the backend in use, decided
when the program is first called (so importing jaxport never initialises a backend). GPU/TPU get
no option; a CPU option this jaxlib does not know is dropped after a one-off probe compile, so an
option can never break a compile. ``JAXPORT_XLA_DEFAULTS=1`` in the environment (read when a
program is first called) gives XLA's defaults everywhere, for A/B benchmarks.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

import jax

#: environment variable that turns the tuned options off (``1``/``true``/``yes``)
DEFAULTS_ENV_VAR = "JAXPORT_XLA_DEFAULTS"

#: options given to every jaxport program compiled for the CPU backend
CPU_OPTIONS: dict[str, Any] = {"xla_cpu_experimental_ynn_fusion_type": ""}


def defaults_requested() -> bool:
    """True when ``JAXPORT_XLA_DEFAULTS`` asks for XLA's default options."""
    return os.environ.get(DEFAULTS_ENV_VAR, "").strip().lower() in ("1", "true", "yes")


@functools.cache
def _cpu_knows(name: str, value: Any) -> bool:
    """Whether this jaxlib's CPU compiler accepts option ``name`` (one tiny probe compile)."""
    try:
        x = jax.device_put(0.0, jax.devices("cpu")[0])
        jax.jit(lambda v: v + 1.0, compiler_options={name: value})(x).block_until_ready()
    except Exception:  # noqa: BLE001 - an unknown option or a missing CPU backend: drop it
        return False
    return True


def compiler_options(backend: str | None = None, *, ignore_env: bool = False) -> dict[str, Any]:
    """jaxport's per-compile XLA options for ``backend`` (default: ``jax.default_backend()``).

    ``{}`` on every backend but ``"cpu"``, under ``JAXPORT_XLA_DEFAULTS=1`` (unless
    ``ignore_env``), and for any CPU option this jaxlib does not know.
    """
    if not ignore_env and defaults_requested():
        return {}
    if (backend or jax.default_backend()) != "cpu":
        return {}
    return {k: v for k, v in CPU_OPTIONS.items() if _cpu_knows(k, v)}


def applied_options() -> dict[str, Any]:
    """What :func:`tuned_jit` programs get in this process, for run provenance / summaries."""
    backend = jax.default_backend()
    return {
        "backend": backend,
        "compiler_options": compiler_options(backend),
        "xla_defaults_requested": defaults_requested(),
    }


def _inside_a_trace(args, kwargs) -> bool:
    """Whether this call happens while JAX traces another function (jit, vmap, grad, scan)."""
    try:
        from jax._src.core import trace_state_clean
    except ImportError:  # pragma: no cover - a jax without it: look for tracers instead
        leaves = jax.tree.leaves((args, kwargs))
        return any(isinstance(x, jax.core.Tracer) for x in leaves)
    return not trace_state_clean()


class TunedJit:
    """``jax.jit(fn, compiler_options=compiler_options(), **jit_kwargs)``, built on first use.

    Calls and attributes (``lower``, ``trace``, ...) go to the jitted function; as a class
    attribute it binds like a method (``self`` is passed first, e.g. as a static argument).
    Called inside another trace it is a plain ``jax.jit`` (XLA compiles only the top-level
    program, with the top-level program's options).
    """

    def __init__(self, fn: Callable, jit_kwargs: dict[str, Any]):
        functools.update_wrapper(self, fn)
        self._fn = fn
        self._jit_kwargs = jit_kwargs
        self._jitted: Callable | None = None
        self._nested: Callable | None = None  # no options: called inside another trace

    @property
    def jitted(self):
        """The underlying ``jax.jit`` function (options resolved on first access)."""
        if self._jitted is None:
            opts = compiler_options()
            self._jitted = jax.jit(self._fn, compiler_options=opts or None, **self._jit_kwargs)
        return self._jitted

    def __call__(self, *args, **kwargs):
        if _inside_a_trace(args, kwargs):  # XLA takes options only for a top-level program
            if self._nested is None:
                self._nested = jax.jit(self._fn, **self._jit_kwargs)
            return self._nested(*args, **kwargs)
        return self.jitted(*args, **kwargs)

    def __getattr__(self, name: str):
        """``lower``, ``trace``, ``eval_shape``, ``_cache_size``... of the jitted function."""
        if name.startswith("__") or name in ("_fn", "_jit_kwargs", "_jitted", "_nested"):
            raise AttributeError(name)
        return getattr(self.jitted, name)

    def __get__(self, obj, objtype=None):
        return self if obj is None else functools.partial(self, obj)


def tuned_jit(fn: Callable | None = None, **jit_kwargs) -> Any:
    """``jax.jit`` with jaxport's per-compile options; usable as ``@tuned_jit`` or
    ``@tuned_jit(static_argnums=...)`` (``jit_kwargs`` are ``jax.jit``'s)."""
    if fn is None:
        return functools.partial(tuned_jit, **jit_kwargs)
    return TunedJit(fn, jit_kwargs)
