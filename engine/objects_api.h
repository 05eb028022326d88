// engine/objects_api.h — Python entry points for object graphs (stasis.dump/load/dumps/loads,
// stasis.inspect). Bodies run in engine::guarded().
#pragma once
#include <Python.h>

namespace stasis::engine {
PyObject* dumps(PyObject*, PyObject* args, PyObject* kwargs);
PyObject* dump(PyObject*, PyObject* args, PyObject* kwargs);
PyObject* loads(PyObject*, PyObject* args, PyObject* kwargs);
PyObject* load(PyObject*, PyObject* args, PyObject* kwargs);
PyObject* payload_header(PyObject*, PyObject* args, PyObject* kwargs);
// register(type, key, save, load): the handlers of stasis.register.
PyObject* register_handler(PyObject*, PyObject* args);
PyObject* set_handler_finder(PyObject*, PyObject* finder);
PyObject* inspect(PyObject*, PyObject* args, PyObject* kwargs);
// text_reader_state(f) -> (decoder, pending text, telling, newline) of an io.TextIOWrapper
// (python/stasis/handlers/files.py: the position of a reader iterated with next()).
PyObject* text_reader_state(PyObject*, PyObject* f);
}  // namespace stasis::engine
