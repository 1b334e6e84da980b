"""Exception types for user-facing errors.

Every error a user can cause (a bad config, an unknown name, a corrupt checkpoint, a missing data set) derives
from ``ValueError`` or ``FileNotFoundError`` so library callers can catch the built-in types, and the CLI turns
any :class:`TorchworksError` into a one-line message with exit code 2.
"""

from __future__ import annotations


class TorchworksError(Exception):
    """Base class of every error caused by user input (a message, never a traceback, in the CLI)."""


class UnknownNameError(TorchworksError, KeyError, ValueError):
    """A name that no registry entry has; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(TorchworksError, ValueError):
    """A registry already holds an entry under this name."""


class ConfigError(TorchworksError, ValueError):
    """A config file or an override that does not fit its schema."""


class CheckpointError(TorchworksError, ValueError):
    """A checkpoint that is corrupt, truncated, or belongs to another model."""


class DataError(TorchworksError, ValueError):
    """A data set that is missing, incomplete, or fails its checksum."""


class DataNotFoundError(TorchworksError, FileNotFoundError):
    """A data set found in none of the places searched; the message lists them and how to fix it."""


class ShapeError(TorchworksError, ValueError):
    """A tensor whose shape does not match what the function documents."""
