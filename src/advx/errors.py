"""Typed errors. Every error says what went wrong and what to do about it.

All inherit from :class:`AdvxError`, so ``except advx.errors.AdvxError`` catches any of
them; each also inherits the closest built-in (``ValueError``, ``OSError``...) so callers
who already catch those keep working.
"""

from __future__ import annotations


class AdvxError(Exception):
    """Base class of every error advx raises on purpose."""


class InputError(AdvxError, ValueError):
    """An argument is malformed: NaN/inf values, out-of-bounds images, wrong shape or
    dtype, labels or targets out of range, negative eps, unknown option."""


class DataError(AdvxError, ValueError):
    """A data file is missing, truncated or corrupt; the message names the file."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A data set is not installed; the message says which package or directory to provide."""


class CheckpointError(AdvxError, ValueError):
    """A checkpoint directory is incomplete, tampered with, or does not match its metadata."""


class AccessError(AdvxError, TypeError):
    """An attack needs more access to the model than the target grants
    (e.g. a gradient attack on an HTTP endpoint that only returns labels)."""


class ModelModeError(AdvxError, RuntimeError):
    """The model is in a mode the operation cannot use (e.g. left in train mode)."""


class QueryBudgetExceeded(AdvxError, RuntimeError):
    """A target was queried for an example whose query budget is already spent."""


class RemoteError(AdvxError, RuntimeError):
    """An HTTP model endpoint answered with an error or a malformed response."""


class ConfigError(AdvxError, ValueError):
    """A configuration has unknown keys, wrong types or an unknown registry name."""


class AdvxWarning(UserWarning):
    """Base class of every warning advx issues on purpose."""


class EpsRangeWarning(AdvxWarning):
    """An linf eps larger than the input range (``eps > hi - lo``): the ball holds every
    valid input, so the attack is unconstrained. Usually a unit mix-up: ``eps=8`` meant
    for ``[0, 255]`` pixels on a model whose bounds are ``[0, 1]`` (use ``8/255``)."""
