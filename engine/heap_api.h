// engine/heap_api.h — module state for the whole-program snapshot (issue 3): which globals of a
// module a snapshot keeps, and how they are put back after the module is re-imported.
// User modules keep all their globals (module metadata aside); library modules keep only state
// registered for them (register_module_state; random's global generator is built in). The values
// go through the heap encoder, which writes modules, and classes/functions importable by name, by
// reference. Bodies run in engine::guarded().
#pragma once
#include <Python.h>

namespace stasis::engine {
// module_state(module) -> ("user", name, {global: value}) | ("library", name, state or None)
PyObject* module_state(PyObject*, PyObject* module);
// restore_module_state(module, state): applies module_state() output to the re-imported module.
PyObject* restore_module_state(PyObject*, PyObject* args);
// register_module_state(name, save, load): save(module) -> state; load(module, state).
PyObject* register_module_state(PyObject*, PyObject* args);
// is_user_module(module) -> bool: has a source file outside the interpreter's library paths.
PyObject* is_user_module(PyObject*, PyObject* module);
}  // namespace stasis::engine
