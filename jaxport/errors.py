"""The user-error types of jaxport (importable without jax, pandas or torch).

Every error a user can cause is a :class:`JaxportError` whose message is ONE line naming the file,
setting or run directory and what is wrong. Library layers name settings as they appear in the
configuration (``data.trainingdata_dir``, ``rl.leverage_limit``, ``output_dir``), never CLI flags;
the ``jaxport`` command maps those names to its flags when it prints the message (exit code 2).
"""

from __future__ import annotations


class JaxportError(ValueError):
    """Base of jaxport's user errors; the message is normalised to one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class DataError(JaxportError):
    """Bad input data: a missing, unreadable or invalid CSV file or data folder."""


class ConfigError(JaxportError):
    """A bad setting: flag, TOML file, profile or argument value out of range."""


class CheckpointError(JaxportError):
    """A bad or incompatible run directory, summary or checkpoint."""


__all__ = ["CheckpointError", "ConfigError", "DataError", "JaxportError"]
