// snapshot/crash_capture.h — the record of a frame in which an exception is being raised, before
// its stack is unwound (stasis run/resume --snapshot-on-crash). The frame is executing: it runs
// the handler that python/stasis/program/crash.py adds to the program's code, which keeps the
// frame's loop iterators and `with` exits on its value stack (the handler's depth) and calls the
// crash hook. Its callers are captured as usual (snapshot/capture.h, suspended in their calls).
// Counterpart: restore/replay.h rebuilds the frame at `offset` — the start of the statement that
// raised — with its locals and those stack values, so that the statement runs again.
#pragma once

#include <Python.h>
#include <frameobject.h>

#include "core/ref.h"

namespace stasis::snapshot {

// A frame record (format/program_schema.h fields) of `frame`: its bound fast locals (cells as
// cell objects, free variables omitted), row None, `offset`, and the first `keep` values of its
// value stack, which must lie below `depth` (the values the running handler kept). `is_base`: the
// frame is the base of its thread's program stack (a module or thread body, always entered from C).
Ref crash_frame_record(PyFrameObject* frame, int offset, int keep, int depth, bool is_base);

// The value at `index` (from the bottom) of the value stack of `frame`, a frame further out than
// the one an exception is leaving (suspended in a call), inside a block whose exception-table entry
// keeps at least index + 1 values: the `__exit__` a `with` pushed, for the crash hook to ask
// whether it would swallow the exception. New reference, or None for an empty slot.
Ref frame_stack_value(PyFrameObject* frame, int index);

}  // namespace stasis::snapshot
