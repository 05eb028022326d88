// engine/crash_api.h — Python entry point of snapshot/crash_capture.h (--snapshot-on-crash).
#pragma once
#include <Python.h>

namespace stasis::engine {
// crash_frame_record(frame, offset, keep, depth, is_base) -> frame record
PyObject* crash_frame_record(PyObject*, PyObject* args);
}  // namespace stasis::engine
