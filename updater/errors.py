"""The updater's exceptions: defined with every other Stasis error in stasis.errors (codes in
core/error.h), re-exported here. Stable codes, equal to the `stasis ctl` exit status."""
from __future__ import annotations

from ..errors import ControlChannelError, NotQuiescentError, UpdateError, UpdateRefusedError


ALL = (UpdateError, NotQuiescentError, UpdateRefusedError, ControlChannelError)
BY_CODE = {cls.code: cls for cls in ALL}
