"""`stasis debug SNAPSHOT`: pdb on a rebuilt program, stopped at its suspension point — or, for a
crash snapshot (--snapshot-on-crash), in the frame that raised, at the start of the statement that
raised, with the exception in `sys.last_value` (and `sys.last_type`, as after a post-mortem).
`c` lets the program go on from there; `q` ends the session (exit status 0)."""
from __future__ import annotations

import sys
import types
from typing import Any


def start(frame: types.FrameType, snapshot: str, crash: Any = None) -> None:
    """Opens pdb on the rebuilt stack, at the suspension point, before the program goes on."""
    import os
    import pdb

    class Debugger(pdb.Pdb):
        def set_quit(self) -> None:  # `q` (or end of input) ends the session, not only the debugger
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
    debugger = Debugger()
    debugger.reset()
    # As pdb.set_trace(frame) does: trace every frame of the rebuilt stack. The stack shown
    # (`where`, `up`) ends at the program's base frame, not in Stasis's own frames below it.
    ours = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    f = frame
    while f is not None and not f.f_code.co_filename.startswith(ours):
        f.f_trace = debugger.trace_dispatch
        debugger.botframe = f
        f = f.f_back
    debugger.set_step()
    sys.settrace(debugger.trace_dispatch)
    if crash is not None:
        if crash.exception is not None:
            sys.last_type, sys.last_value = type(crash.exception), crash.exception
        sys.stdout.write(f"stasis debug: {snapshot} is a crash snapshot of thread {crash.thread_name!r}:\n"
                         f"{crash.traceback}"
                         f"pdb is in the frame that raised it, at the start of the statement that raised it "
                         f"(running it raises it again); the exception is sys.last_value; `up`/`down` walk the "
                         f"stack. The snapshot is not changed: debug it again to start over.\n")
    else:
        print(f"stasis debug: {snapshot} rebuilt; the program is at its suspension point "
              "(the snapshot is not changed; debug it again to replay from the same point)")
    sys.stdout.flush()
    debugger.interaction(frame, None)
