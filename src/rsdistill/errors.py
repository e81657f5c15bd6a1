"""Errors that reach the user as one line.

Anything the user can fix (a wrong path, a bad option, a corrupt file) raises a
subclass of :class:`RsdistillError`; the CLI prints its message on one line and
exits non-zero instead of showing a traceback.
"""


class RsdistillError(Exception):
    """An error caused by the user's input; its message says what to do."""


class DataError(RsdistillError):
    """The dataset could not be found, read or decoded."""


class ConfigError(RsdistillError):
    """An option or config value is invalid."""


class CheckpointError(RsdistillError):
    """A checkpoint is missing, unreadable or incompatible."""


class TrainingError(RsdistillError):
    """Training cannot continue (for example, a non-finite loss)."""


class ExportError(RsdistillError):
    """An exported model does not reproduce its checkpoint (nothing is written)."""


class WriteError(RsdistillError):
    """A file could not be written (read-only folder, full disk); the message names the
    file and the cause. Its ``__cause__`` is the failure underneath (an OSError, or
    torch.save's RuntimeError around one)."""


class BusyError(RsdistillError):
    """A run directory is in use by another rsdistill process."""
