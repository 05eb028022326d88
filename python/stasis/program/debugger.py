"""`stasis debug SNAPSHOT`: pdb on a rebuilt program, stopped at its suspension point."""
from __future__ import annotations

import sys
import types


def start(frame: types.FrameType, snapshot: str) -> None:
    """Opens pdb on the rebuilt stack, at the suspension point, before the program goes on."""
    import pdb
    debugger = pdb.Pdb()
    debugger.reset()
    f = frame
    while f is not None:  # as pdb.set_trace(frame) does: trace every frame of the rebuilt stack
        f.f_trace = debugger.trace_dispatch
        debugger.botframe = f
        f = f.f_back
    debugger.set_step()
    sys.settrace(debugger.trace_dispatch)
    print(f"stasis debug: {snapshot} rebuilt; the program is at its suspension point "
          "(the snapshot is not changed; debug it again to replay from the same point)")
    debugger.interaction(frame, None)
