// engine/program_api.h — Python entry points for whole-program suspension: the safe-point trigger
// (a C trace function that captures the stack, snapshot/capture.h) and the stack rebuild by
// replay (restore/replay.h).
#pragma once
#include <Python.h>

namespace stasis::engine {
// suspend_at_safe_point(base_code, n, callback): at the n-th safe point of this thread, stop
// tracing and call callback(frames).
PyObject* suspend_at_safe_point(PyObject*, PyObject* args);
// last_blocker() -> str: why the most recent 'line' event was not a safe point ('' if none).
PyObject* last_blocker(PyObject*, PyObject*);
// capture_stack(frame, base_code, in_call=False) -> frames: capture from `frame`, which is at a
// 'line' event, or (in_call) suspended in a call that replay will issue again.
PyObject* capture_stack(PyObject*, PyObject* args);
// replay(base_code, globals, frames, then=None): run base_code in globals, rebuilding frames by
// replay; then(frame) is called with the innermost frame as soon as it is rebuilt.
PyObject* replay(PyObject*, PyObject* args);
}  // namespace stasis::engine
