// engine/program_api.h — Python entry points for whole-program suspension: arming threads for a
// safe point (the parking trace, snapshot/safe_point.h, which captures the stack with
// snapshot/capture.h and parks the thread), and rebuilding stacks by replay (restore/replay.h).
#pragma once
#include <Python.h>

namespace stasis::engine {
// arm_thread(thread_id, base_code, base_is_caller=False, countdown=1, on_reached=None,
// no_park_file=None, now=False) -> bool:
// that thread parks at its countdown-th safe point after capturing its frames; on_reached() is
// called then. False when the thread is already armed.
PyObject* arm_thread(PyObject*, PyObject* args, PyObject* kwargs);
// poll_threads(): samples the armed threads that are not traced yet and traces those whose stack
// could reach a safe point (snapshot/safe_point.h poll).
PyObject* poll_threads(PyObject*, PyObject*);
// avoid_parked_points(): the places where the parked threads stand are no safe points any more
// (a capture failed there); forget_avoided(): the request ended (snapshot/safe_point.h).
PyObject* avoid_parked_points(PyObject*, PyObject*);
PyObject* forget_avoided(PyObject*, PyObject*);
// wait_for_park(seconds): sleeps without the GIL until an armed thread parks or `seconds` pass.
PyObject* wait_for_park(PyObject*, PyObject* arg);
// program_trace() -> (armed, function): the program's own trace function on this thread while the
// parking trace is installed there (sys.gettrace() under Stasis).
PyObject* program_trace(PyObject*, PyObject*);
// trace_replaced(): after the program's sys.settrace() on this thread (sys.settrace under Stasis).
PyObject* trace_replaced(PyObject*, PyObject*);
// profile_is_ours() -> bool: the calling thread is being watched (sys.getprofile under Stasis).
PyObject* profile_is_ours(PyObject*, PyObject*);
// profile_replacing(): before the program's sys.setprofile() on this thread (ends its watch).
PyObject* profile_replacing(PyObject*, PyObject*);
// park_states() -> {ident: (parked, frames | None, trace_events, why_not_safe, traced)} of armed threads.
PyObject* park_states(PyObject*, PyObject*);
// thread_states() -> [(ident, has_python_frames)] of every thread state of the interpreter. A
// thread that was created but has not started yet shows its creator's ident, and no frames.
PyObject* thread_states(PyObject*, PyObject*);
// settle(seconds) -> bool: holds the GIL for `seconds` without running Python code; when no other
// thread asked for the GIL meanwhile, every thread that is not parked is blocked in a C call it
// has not finished, and freeze() takes effect at once (True). False: some thread wants to run.
PyObject* settle(PyObject*, PyObject* arg);
// asend_parts(obj) -> (async generator, send value, state) of an async_generator_asend awaitable.
PyObject* asend_parts(PyObject*, PyObject* obj);
// thread_context_value(ident, name): the value of the context variable called `name` in that
// thread's current contextvars context (decimal's context lives there), or None.
PyObject* thread_context_value(PyObject*, PyObject* args);
// freeze(): from now on every armed thread parks at its next trace event, safe point or not.
PyObject* freeze(PyObject*, PyObject*);
// thaw(): disarms every thread and lets parked ones continue (the suspension was abandoned).
PyObject* thaw(PyObject*, PyObject*);
// capture_stack(frame, base_code, in_call=False, base_is_caller=False) -> frames: capture from
// `frame`, which is at a 'line' event, or (in_call) suspended in a call replay will issue again.
PyObject* capture_stack(PyObject*, PyObject* args);
// replay(entry, globals, frames, then=None, before=None, caller_code=None, on_error=None): run entry (code, in
// globals) rebuilding frames by replay; with entry None, only install the replay trace on this
// thread (the caller then calls the thread's bootstrap). before() runs when the first record's
// frame is entered (called by caller_code, when given), then(frame) with the innermost frame as
// soon as it is rebuilt, on_error(status, message) when a frame cannot be rebuilt (it ends the
// resume). Each record of `frames` is replaced by None once its frame is rebuilt.
PyObject* replay(PyObject*, PyObject* args, PyObject* kwargs);
}  // namespace stasis::engine
