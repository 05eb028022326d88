"""Whole-program suspension and resume, one module per concern:

- options.py        the options of `stasis run` / `stasis resume`
- session.py        the program running under Stasis: requests, the coordinator that writes the
                    snapshot, stasis.suspend() / stasis.checkpoint()
- triggers.py       what requests a suspension: --suspend-after, the signals, the quota timer
- periodic.py       checkpoints written by a forked child while the program runs (--checkpoint-every,
                    stasis.checkpoint()); writer.py is that child (and pending file bytes at resume)
- batch.py          `stasis run --resume-if-present`: one command line for every start of a batch job
- freeze.py         bringing every thread to a capturable state (the freeze protocol)
- layout.py         the program snapshot's records (schema: format/program_schema.h)
- process_state.py  hash seed, signal handlers, atexit, library-module state, asyncio set-up
- resume.py         `stasis resume`: metadata, heap, process state, then the stacks by replay
- restart.py        starting the resumed program's threads again
- debugger.py       `stasis debug`: pdb at the suspension point
- inspect_view.py   `stasis inspect` of a program: threads, frames, locals, heap, from a description
                    of the records that builds nothing (format/describe.h)
- progress.py       what run/resume say on stderr: the suspension line, progress on a terminal

Counterparts: snapshot/capture.cpp (which stack is a safe point, frame records),
snapshot/safe_point.cpp (the parking trace), restore/replay.cpp (the replay trace, rebuilding
frames), engine/program_api.cpp (their bindings), compiler_hooks/runner.py (runs the script and
calls Session.execute).
"""
from __future__ import annotations

from .options import Options
from .resume import resume
from .session import checkpoint, current, run, suspend
from .triggers import pid_dir

__all__ = ["Options", "run", "resume", "checkpoint", "suspend", "current", "pid_dir"]
