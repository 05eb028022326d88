// tests/unit/python_namespace.h — runs Python source in a fresh namespace for C++ unit tests.
#pragma once

#include <Python.h>
#include <gtest/gtest.h>

#include "core/ref.h"

namespace stasis::testing {

// Runs `source` in a fresh namespace (with builtins) and returns it; a failure is printed and
// fails the test.
inline Ref run_python(const char* source) {
  Ref ns = Ref::steal(PyDict_New());
  PyDict_SetItemString(ns.get(), "__builtins__", PyEval_GetBuiltins());
  Ref result = Ref::steal(PyRun_String(source, Py_file_input, ns.get(), ns.get()));
  if (!result) PyErr_Print();
  EXPECT_TRUE(result);
  return ns;
}

// A borrowed item of such a namespace.
inline PyObject* item(const Ref& ns, const char* name) { return PyDict_GetItemString(ns.get(), name); }

}  // namespace stasis::testing
