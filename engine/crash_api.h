// engine/crash_api.h — Python entry point of snapshot/crash_capture.h (--snapshot-on-crash).
#pragma once
#include <Python.h>

namespace stasis::engine {
// crash_frame_record(frame, offset, keep, depth, is_base) -> frame record
PyObject* crash_frame_record(PyObject*, PyObject* args);
// frame_stack_value(frame, index) -> a value of an outer frame's stack (a `with` block's __exit__)
PyObject* frame_stack_value(PyObject*, PyObject* args);
// frame_called_by_c(frame) -> whether C code that may catch its exceptions called it (a callback, a
// slot, a generator's resumption; not a call through PyObject_Call such as f(*args))
PyObject* frame_called_by_c(PyObject*, PyObject* frame);
// crash_hook(exc, lasti, depth): what the crash handlers call (snapshot/crash_hook.h)
PyObject* crash_hook(PyObject*, PyObject* const* args, Py_ssize_t nargs);
// crash_hook_configure(slow_path, pending, given_up, main_base, main_ident, bootstrap_inner)
PyObject* crash_hook_configure(PyObject*, PyObject* args);
// crash_hook_disable()
PyObject* crash_hook_disable(PyObject*, PyObject*);
// crash_hook_plan(code, lasti, plan)
PyObject* crash_hook_plan(PyObject*, PyObject* args);
}  // namespace stasis::engine
