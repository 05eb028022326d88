"""The exceptions of Stasis, rooted at StasisError.

Each class has a stable ``code`` that equals the C++ ``stasis::ErrorCode`` (core/error.h) and the
exit status of the ``stasis`` CLI when that error ends a command. Never renumber; only append.
"""
from __future__ import annotations

EXIT_SUSPENDED = 75  # the program was suspended and its snapshot is complete (EX_TEMPFAIL)
EXIT_USAGE = 64      # bad command line (EX_USAGE)


class StasisError(Exception):
    """Base class of every error Stasis raises itself."""

    code = 90


class SnapshotError(StasisError):
    """A snapshot file cannot be used."""

    code = 90


class NotASnapshotError(SnapshotError):
    """The file is not a Stasis snapshot at all."""

    code = 91


class TruncatedSnapshotError(SnapshotError):
    """The file is a snapshot that was cut short."""

    code = 92


class CorruptSnapshotError(SnapshotError):
    """A checksum or decoding check failed; the message says where."""

    code = 93


class IncompatibleSnapshotError(SnapshotError):
    """Another format version or CPython minor version wrote the snapshot."""

    code = 94


class SignatureError(SnapshotError):
    """A key was given and the snapshot is unsigned or its signature does not match."""

    code = 95


class UnsupportedObjectError(StasisError):
    """An object cannot be captured; the message names its type and its path from the root."""

    code = 96


class NotAvailableError(StasisError):
    """The feature exists in the interface but is not built yet."""

    code = 97


class SnapshotIOError(StasisError, OSError):
    """A snapshot or key file cannot be read or written."""

    code = 98


class NotSuspendableError(StasisError):
    """The program could not be brought to a safe point in time; it keeps running."""

    code = 99


class UpdateError(StasisError):
    """An update, revert or instrument request failed; nothing was changed."""

    code = 100


class NotQuiescentError(UpdateError):
    """The safe point was not reached in time; the message lists what was still active."""

    code = 101


class UpdateRefusedError(UpdateError):
    """The update is not allowed as written (free variables added, unknown target, not revertible...)."""

    code = 102


class ControlChannelError(StasisError):
    """The control socket of a process cannot be found, trusted or used."""

    code = 103


class SuspensionMissedError(NotSuspendableError):
    """The program ended after a suspension request that it could never honour (no safe point
    within --safe-point-timeout, or the capture kept failing): `stasis run`/`resume` exit with this
    status instead of the program's own, so that a job script can tell."""

    code = 104


class TakeoverError(StasisError):
    """`stasis restart`: the new process could not be started, or it ended or closed its channel
    before taking over; the old process goes on serving."""

    code = 105


ALL = (StasisError, NotASnapshotError, TruncatedSnapshotError, CorruptSnapshotError,
       IncompatibleSnapshotError, SignatureError, UnsupportedObjectError, NotAvailableError,
       SnapshotIOError, NotSuspendableError, UpdateError, NotQuiescentError, UpdateRefusedError,
       ControlChannelError, SuspensionMissedError, TakeoverError)

# The engine raises by code; StasisError stands for the internal-error code 90.
BY_CODE = {cls.code: cls for cls in ALL}
