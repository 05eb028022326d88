// updater/api.h — the updater's entry points in stasis._engine (listed in engine/module.cpp).
// Each runs in engine::guarded(); the Python side is stasis/updater/*.py.
#pragma once

#include <Python.h>

namespace stasis::updater::api {

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

}  // namespace stasis::updater::api
