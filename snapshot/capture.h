// snapshot/capture.h — decides whether a thread's Python stack is at a safe point, and captures it
// there as frame records. A safe point is a 'line' event of the innermost frame where every frame
// from it down to the thread's base frame runs rewritten code, none was entered from C (unless
// through a call that replay issues again), and every caller is suspended at a resumable row of
// its resume table. The main thread's base frame runs the __main__ code (entered from C by exec);
// another thread's base is the frame threading.Thread._bootstrap_inner called (its run method),
// which replay re-enters through a fresh Thread bootstrap.
// Counterparts: snapshot/safe_point.h waits for safe points (the parking trace) and asks here;
// restore/replay.h rebuilds the stack from the records by replaying calls.
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

#include "core/cpython_internals.h"
#include "core/ref.h"

namespace stasis::snapshot {

// Where a thread's recorded stack ends: the frame running `code` (the main thread's __main__), or
// with `is_caller` the frame whose caller runs `code` (a thread's run(), called by
// Thread._bootstrap_inner); that caller and the frames below it are not recorded.
struct StackBase {
  PyObject* code;  // borrowed
  bool is_caller;
};

// What the innermost frame is doing when its stack is judged.
enum class TopState {
  AtLine,   // at a 'line' event: no exception being handled, nothing half-evaluated on its stack
  InCall,   // suspended in a call that replay issues again (stasis.checkpoint, a call blocked in
            // C): recorded like a caller, at its resume row
  Running,  // anywhere in its code (a thread sampled between two instructions): only its code and
            // how it was entered count, and the frames below it are judged as callers
};

// Why the stack from `top` down to the base is not at a safe point in `state` ("" when it is):
// one line naming the first frame that blocks and the reason. Allocates nothing on success.
std::string stack_blocker(_PyInterpreterFrame* top, const StackBase& base, TopState state);

// Why the innermost frame `f`, at a 'line' event of its own thread, is not at a safe point even
// though the frames below it are resumable: an exception is being handled, or a value of an
// unfinished expression is on its stack ("" when it is at one).
std::string line_blocker(_PyInterpreterFrame* f);

// Why `callee`, just entered (its 'call' trace event), breaks the chain of resumable frames
// below it ("" when it does not): its code is not rewritten, it was entered from C, or its caller
// is not at a resumable row. The frames below the caller are not looked at. A base frame is
// always fine.
std::string callee_blocker(_PyInterpreterFrame* callee, const StackBase& base);

// The records, bottom (base) first, of the stack from `top` in `state` (AtLine or InCall), or an
// empty Ref with `why_not` saying which frame blocks capture.
Ref capture_stack(_PyInterpreterFrame* top, const StackBase& base, TopState state, std::string& why_not);

// Whether a frame entered from C is re-entered by issuing its caller's call again, so that it is
// resumable like a frame its caller called directly: the caller used `f(*args, **kwargs)` or
// `with` (not when `f` is a class: the frame is then its __init__, and calling the class again
// would make another instance). Used by snapshot/crash_capture.cpp too.
bool called_by_reissuable_call(PyFrameObject* frame);

// A frame entered from C only because its caller used `f(*args, **kwargs)` or `with`: resumable
// like a frame its caller called directly, since executing that instruction again calls it again.
// Not when `f` is a class: the frame is then its __init__, and calling the class again would make
// another instance.
bool called_by_reissuable_call(PyFrameObject* frame);

}  // namespace stasis::snapshot
