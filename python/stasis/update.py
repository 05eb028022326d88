"""The API of Stasis update files: `from stasis.update import redefine, add_field, convert, instrument`
(and `map_frame` in patches of suspended programs). See stasis.updater.api for the semantics (this
module only re-exports it)."""
from __future__ import annotations

from .updater import (ControlChannelError, NotQuiescentError, UpdateError, UpdateRefusedError, add_field,
                      convert, instrument, list_updates, map_frame, redefine, revert)

__all__ = ["redefine", "add_field", "convert", "instrument", "map_frame", "revert", "list_updates",
           "UpdateError", "NotQuiescentError", "UpdateRefusedError", "ControlChannelError"]
