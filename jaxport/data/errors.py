"""The data layer's error type, re-exported from :mod:`jaxport.errors` (home of all error types)."""

from jaxport.errors import DataError

__all__ = ["DataError"]
