"""stasis.updater: patch, instrument and profile a live process, and revert (issue 6).

`stasis.update` (api.py) is the API of update files; control.py serves `stasis ctl` requests over a
per-user Unix socket; ctl.py is the client; layers.py keeps applied updates as revertible layers.
"""
from __future__ import annotations

from .. import _engine
from .errors import BY_CODE as _BY_CODE

_engine.register_error_classes(_BY_CODE)

from .errors import ControlChannelError, NotQuiescentError, UpdateError, UpdateRefusedError  # noqa: E402

_API = ("add_field", "apply_file", "convert", "instrument", "list_updates", "map_frame", "redefine", "revert")


def __getattr__(name: str):
    """The API (api.py) is imported on first use: the control channel (control.py), which every
    program under Stasis serves, imports this package, and most programs never get an update."""
    if name in _API:
        from . import api  # noqa: F401 -- which sets them all here (its end)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["redefine", "add_field", "convert", "instrument", "map_frame", "revert", "list_updates", "apply_file",
           "UpdateError", "NotQuiescentError", "UpdateRefusedError", "ControlChannelError"]
