// core/error.h — the one error type of the engine: a stable code, a message, and a context trail.
// Counterpart: engine/errors.cpp translates an Error into the Python exception of the same code, in
// exactly one place; stasis/errors.py defines those exception classes and the CLI exit statuses,
// which are the numeric values of ErrorCode. Codes are stable: never renumber, only append.
#pragma once

#include <exception>
#include <string>
#include <vector>

namespace stasis {

enum class ErrorCode : int {
  // A CPython error is already set (PyErr_Occurred()); unwind and let it propagate unchanged.
  PythonError = 1,
  Internal = 90,               // a bug in Stasis: StasisError
  NotASnapshot = 91,           // NotASnapshotError
  TruncatedSnapshot = 92,      // TruncatedSnapshotError
  CorruptSnapshot = 93,        // CorruptSnapshotError
  IncompatibleSnapshot = 94,   // IncompatibleSnapshotError
  BadSignature = 95,           // SignatureError
  UnsupportedObject = 96,      // UnsupportedObjectError
  NotAvailable = 97,           // NotAvailableError: a feature that is not built yet
  Io = 98,                     // SnapshotIOError: cannot read or write a file
  NotSuspendable = 99,         // NotSuspendableError: no safe point reached in time
  UpdateFailed = 100,          // UpdateError: an update, revert or instrument failed; nothing changed
  NotQuiescent = 101,          // NotQuiescentError: the update's safe point was not reached in time
  UpdateRefused = 102,         // UpdateRefusedError: the update is not allowed as written
  ControlChannel = 103,        // ControlChannelError: a process's control socket cannot be used
  SuspensionMissed = 104,      // SuspensionMissedError: the program ended after a request it never honoured
  Takeover = 105,              // TakeoverError: a restart's new process failed before taking over
};

const char* error_code_name(ErrorCode code) noexcept;

class Error : public std::exception {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  // "A Python exception is set; unwind": thrown after a failing CPython API call.
  static Error python() { return Error(ErrorCode::PythonError, "a Python exception is set"); }

  ErrorCode code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  // Outermost context last, e.g. {"decoding dict #1234", "reading payload"}.
  const std::vector<std::string>& context() const noexcept { return context_; }

  // Adds one line of context as the error unwinds through a layer.
  Error& add_context(std::string what) {
    context_.push_back(std::move(what));
    formatted_.clear();
    return *this;
  }

  // The message followed by the context trail, innermost first: "msg (while decoding ...; while ...)".
  const char* what() const noexcept override;

 private:
  ErrorCode code_;
  std::string message_;
  std::vector<std::string> context_;
  mutable std::string formatted_;
};

// Throws Error::python() when a CPython call signalled failure (null result).
template <typename T>
inline T* check(T* result) {
  if (result == nullptr) throw Error::python();
  return result;
}
inline int check_status(int status) {
  if (status < 0) throw Error::python();
  return status;
}

}  // namespace stasis
