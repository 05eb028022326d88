// tests/unit/error_code_of.h — runs a callable and returns the ErrorCode of the stasis::Error it
// throws, so rejection tests can assert the exact kind. "No error" reads as PythonError.
#pragma once

#include <functional>

#include "core/error.h"

namespace stasis::testing {

inline ErrorCode code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::PythonError;  // no error was thrown
}

}  // namespace stasis::testing
