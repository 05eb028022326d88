"""The updater's exceptions. Codes continue stasis.errors (and core/error.h, see
updater/update_errors.h): stable, never renumbered, equal to the `stasis ctl` exit status."""
from __future__ import annotations

from ..errors import StasisError


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


ALL = (UpdateError, NotQuiescentError, UpdateRefusedError, ControlChannelError)
BY_CODE = {cls.code: cls for cls in ALL}
