#include "engine/errors.h"

#include <map>

namespace stasis::engine {
namespace {
std::map<int, Ref>& classes() {
  static auto* m = new std::map<int, Ref>();  // lives as long as the interpreter: never destroyed
  return *m;
}
}  // namespace

PyObject* register_error_classes(PyObject*, PyObject* mapping) {
  return guarded([&]() -> Ref {
    if (!PyDict_Check(mapping)) {
      PyErr_SetString(PyExc_TypeError, "expected a dict {code: exception class}");
      throw Error::python();
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(mapping, &pos, &key, &value)) {
      long code = PyLong_AsLong(key);
      if (code == -1 && PyErr_Occurred()) throw Error::python();
      classes()[int(code)] = Ref::borrow(value);
    }
    return Ref::borrow(Py_None);
  });
}

void raise_python(const Error& error) {
  if (error.code() == ErrorCode::PythonError) {
    if (!PyErr_Occurred())
      PyErr_SetString(PyExc_SystemError, "stasis: a Python error was expected but none is set");
    return;
  }
  PyObject* cls = PyExc_RuntimeError;
  auto it = classes().find(int(error.code()));
  if (it != classes().end()) cls = it->second.get();
  if (PyErr_Occurred()) {
    // Keep a Python error raised underneath as the __cause__-like context of ours.
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    PyErr_SetString(cls, error.what());
    PyObject *t2, *v2, *tb2;
    PyErr_Fetch(&t2, &v2, &tb2);
    PyErr_NormalizeException(&t2, &v2, &tb2);
    if (v2 && v) PyException_SetContext(v2, v);  // steals v
    else Py_XDECREF(v);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    PyErr_Restore(t2, v2, tb2);
    return;
  }
  PyErr_SetString(cls, error.what());
}

}  // namespace stasis::engine
