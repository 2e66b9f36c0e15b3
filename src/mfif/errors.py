"""Exceptions raised by mfif.

Every problem the user can fix (a missing file, sources of different sizes, a bad option) is a
:class:`UsageError`. The command-line interface prints its message on one line and exits with
status 2; the Python API lets it propagate. Subclassing :class:`ValueError` keeps it catchable by
generic code.
"""


class UsageError(ValueError):
    """Invalid input or option that the caller can fix; the message names the culprit."""


class RunFailed(RuntimeError):
    """A run that could not complete through no fault of its input: Dask workers that kept dying
    on a task, a scheduler that went away. Nothing is left behind as if complete; the
    command-line interface prints the message on one line and exits with status 1."""


class AlignmentError(UsageError):
    """A frame of a stack could not be registered to the reference frame."""
