// core/python_error.h — turns the Python exception that is set into text for a stasis::Error
// message ("ValueError: bad value"), clearing it. Used where a CPython failure is reported as one
// of Stasis's own error kinds (a refused value while decoding, an object that cannot be captured).
#pragma once

#include <Python.h>

#include <string>

#include "core/ref.h"

namespace stasis {

inline std::string take_python_error(const char* if_none = "unknown error") {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  if (!type) return if_none;
  PyErr_NormalizeException(&type, &value, &tb);
  Ref t = Ref::steal(type), v = Ref::steal(value), b = Ref::steal(tb);
  std::string text = reinterpret_cast<PyTypeObject*>(t.get())->tp_name;
  Ref msg = Ref::steal(v ? PyObject_Str(v.get()) : nullptr);
  const char* m = msg ? PyUnicode_AsUTF8(msg.get()) : nullptr;
  if (m && *m) text += std::string(": ") + m;
  PyErr_Clear();
  return text;
}

}  // namespace stasis
