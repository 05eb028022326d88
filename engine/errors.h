// engine/errors.h — the single translation of stasis::Error into Python exceptions, and the guard
// every Python entry point runs its body in (no C++ exception ever crosses into CPython).
// The exception classes live in stasis/errors.py; the package registers them at import time.
#pragma once

#include <Python.h>

#include "core/error.h"
#include "core/ref.h"

namespace stasis::engine {

// Called by stasis/__init__.py: {code: exception class}.
PyObject* register_error_classes(PyObject* self, PyObject* mapping);

// Sets the Python exception for `error` (unless it is PythonError, which is already set).
void raise_python(const Error& error);

template <typename F>
PyObject* guarded(F&& body) noexcept {
  try {
    Ref result = body();
    return result.release();
  } catch (const Error& e) {
    raise_python(e);
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::exception& e) {
    raise_python(Error(ErrorCode::Internal, std::string("internal error: ") + e.what()));
  }
  return nullptr;
}

}  // namespace stasis::engine
