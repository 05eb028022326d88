// core/python_import.h — `module.name`, imported: a new reference, or Error::python() when the
// import or the attribute fails. Shared by snapshot/ (the reducers it recognises) and restore/
// (the reducers it may call), which must agree on the same objects.
#pragma once

#include <Python.h>

#include "core/error.h"
#include "core/ref.h"

namespace stasis {

inline Ref import_attr(const char* module, const char* name) {
  Ref m = Ref::steal(PyImport_ImportModule(module));
  if (!m) throw Error::python();
  Ref a = Ref::steal(PyObject_GetAttrString(m.get(), name));
  if (!a) throw Error::python();
  return a;
}

// Whether `obj` is one of the typing module's own objects (typing.List, Optional[int], a TypeVar of
// typing): these are named by Global and rebuilt by subscripting (operator.getitem), which both
// sides allow for them only (FORMAT.md "What loading may import and call").
inline bool is_typing_object(PyObject* obj) {
  Ref m = Ref::steal(PyObject_GetAttrString(reinterpret_cast<PyObject*>(Py_TYPE(obj)), "__module__"));
  if (!m) {
    PyErr_Clear();
    return false;
  }
  return PyUnicode_Check(m.get()) && PyUnicode_CompareWithASCIIString(m.get(), "typing") == 0;
}

}  // namespace stasis
