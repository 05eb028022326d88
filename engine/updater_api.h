// engine/updater_api.h — the updater's entry points in stasis._engine (listed in engine/module.cpp).
// Each runs in engine::guarded(); the Python side is stasis/updater/*.py.
#pragma once

#include <Python.h>

namespace stasis::engine::updater_api {

PyObject* scan(PyObject* self, PyObject* args);          // scan(codes, classes) -> (funcs, gens, [insts])
PyObject* active(PyObject* self, PyObject* codes);       // active(codes) -> [(kind, tid, code, line)]
PyObject* commit(PyObject* self, PyObject* args);        // commit(check, swaps, attrs, classes)
PyObject* profile_start(PyObject* self, PyObject* unused);
PyObject* profile_stop(PyObject* self, PyObject* unused);
PyObject* profile_enter(PyObject* self, PyObject* key);
PyObject* profile_exit(PyObject* self, PyObject* unused);
PyObject* profile_token(PyObject* self, PyObject* key);
PyObject* profile_async_token(PyObject* self, PyObject* key);
PyObject* line_trace_enter(PyObject* self, PyObject* spec);
PyObject* line_trace_exit(PyObject* self, PyObject* unused);

// updater_watch_start(fd, callback, owners) -> ident; updater_watch_stop(); updater_watch_forget():
// the control channel's idle listener (updater/control_watch.h).
PyObject* watch_start(PyObject* self, PyObject* args);
PyObject* watch_stop(PyObject* self, PyObject* unused);
PyObject* watch_forget(PyObject* self, PyObject* unused);

}  // namespace stasis::engine::updater_api
