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

}  // namespace stasis
