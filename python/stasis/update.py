"""The API of Stasis update files: `from stasis.update import redefine, add_field, convert, instrument`.
See stasis.updater.api for the semantics (this module only re-exports it)."""
from __future__ import annotations

from .updater import (ControlChannelError, NotQuiescentError, UpdateError, UpdateRefusedError, add_field,
                      convert, instrument, list_updates, redefine, revert)

__all__ = ["redefine", "add_field", "convert", "instrument", "revert", "list_updates",
           "UpdateError", "NotQuiescentError", "UpdateRefusedError", "ControlChannelError"]
