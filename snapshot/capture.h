// snapshot/capture.h — captures a thread's Python stack at a safe point, as frame records.
// A safe point is a 'line' event of the innermost frame where every frame from it down to the
// thread's base frame runs rewritten code, none was entered from C, and every caller is suspended
// at a resumable row of its resume table. The main thread's base frame runs the __main__ code
// (entered from C by exec); another thread's base is the frame threading.Thread._bootstrap_inner
// called (its run method), which replay re-enters through a fresh Thread bootstrap.
// Counterpart: restore/replay.h rebuilds the stack from the records by replaying calls.
//
// A frame record is a dict with the fields of format/program_schema.h (STASIS_FRAME_FIELDS):
//   code    the code object the frame runs
//   row     the resume row a caller is suspended in (None for the innermost frame)
//   offset  byte offset replay jumps to: the row's start, or for the innermost frame the
//           instruction its 'line' event was about to run
//   locals  {name: value} of bound fast locals; cell variables map to their cell object (so
//           closures made earlier keep sharing it); free variables are omitted (they come from
//           the function's closure); empty for module-level frames (their locals are globals)
//   stack   the value-stack entries replay pushes before jumping (structural values only)
#pragma once

#include <Python.h>
#include <frameobject.h>

#include <string>

#include "core/ref.h"

namespace stasis::snapshot {

// Records bottom (base) first, or an empty Ref with `why_not` saying which frame blocks capture.
// With build == false only checks (no allocation) and returns Py_None on success.
// With top_in_call, `top` is itself suspended in a call (stasis.checkpoint, a call blocked in C)
// and is recorded like a caller: at its resume row, so that replay issues the call again. A frame
// blocked in a C call has no saved stack pointer; its row says how many values lie below the call.
// With base_is_caller, the base frame is the one whose caller runs `base_code` (that caller and
// the frames below it are not recorded).
Ref capture_stack(PyFrameObject* top, PyObject* base_code, bool build, std::string& why_not,
                  bool top_in_call = false, bool base_is_caller = false);

// A frame entered from C only because its caller used `f(*args, **kwargs)` or `with`: resumable
// like a frame its caller called directly, since executing that instruction again calls it again.
// Not when `f` is a class: the frame is then its __init__, and calling the class again would make
// another instance.
bool called_by_reissuable_call(PyFrameObject* frame);

}  // namespace stasis::snapshot
