"""Packages whose public names are imported on first use (PEP 562), so importing the package stays
light (``import jaxport.pipeline`` does not start jax)."""

from __future__ import annotations

import importlib
import sys
from typing import Callable


def lazy_exports(
    package: str, where: dict[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package`` whose name ``n`` lives in the submodule
    ``where[n]`` (relative to the package). Use in the package's ``__init__``::

        __getattr__, __dir__, __all__ = lazy_exports(__name__, {"Pipeline": "run", ...})
    """

    def __getattr__(name: str):
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__, sorted(where)


__all__ = ["lazy_exports"]
