"""What starts a suspension request of a running program: `--suspend-after N` (the N-th safe
point), the suspension signal (`--signal`, SIGUSR1 by default; `stasis suspend PID` sends it), the
`--quota` timer. `stasis.suspend()` and `stasis.checkpoint()` ask from the program itself
(session.py). Also the record `stasis suspend PID` reads to find a process's signal and path."""
from __future__ import annotations

import os
import signal as _signal
import threading
import time
from typing import TYPE_CHECKING

from .. import _engine, internal_threads
from ..errors import StasisError
from .options import signal_number

if TYPE_CHECKING:
    from .session import Session


def install(session: "Session") -> None:
    o = session.options
    if o.suspend_after is not None:
        if o.suspend_after < 1:
            raise StasisError("--suspend-after counts safe points from 1")
        # The main thread parks at its N-th safe point and starts the coordinator from there.
        session.note_request("suspend-after")
        _engine.arm_thread(threading.main_thread().ident, session.base_code, countdown=o.suspend_after,
                           on_reached=session.start_coordinator, no_park_file=threading.__file__)
    signum = signal_number(o.signal)
    _signal.signal(signum, lambda _n, _f: session.request("signal"))
    if o.quota is not None:
        def quota(seconds: float) -> None:
            time.sleep(seconds)
            session.request("quota")
        internal_threads.start(quota, o.quota)
    write_pid_record(session)


def pid_dir() -> str:
    """Per-user directory (mode 0700, in the runtime directory, stasis/runtime_dir.py) of records
    of processes running under Stasis; records of processes that no longer exist are removed."""
    from .. import runtime_dir
    path = os.path.join(runtime_dir.runtime_dir(), "pids")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    runtime_dir.clean_stale(path)
    return path


def write_pid_record(session: "Session") -> None:
    """Lets `stasis suspend PID` find the signal and the snapshot path of this process."""
    try:
        with open(os.path.join(pid_dir(), f"{os.getpid()}.txt"), "w") as f:
            f.write(f"{signal_number(session.options.signal)}\n{session.path}\n")
    except OSError:
        pass  # `stasis suspend` then falls back to SIGUSR1 and cannot print the path
