// core/ref.h — the one owned-reference type for PyObject*.
// Ref owns exactly one strong reference (or none). Functions that create references return Ref;
// parameters borrow (PyObject* or const Ref&). Python-facing entry points end with release().
// Invariant: a Ref's destructor decrements with the GIL held (all Stasis code runs with the GIL).
#pragma once

#include <Python.h>

#include <utility>

namespace stasis {

class Ref {
 public:
  Ref() noexcept = default;
  Ref(std::nullptr_t) noexcept {}

  // Takes over a new reference (a result of a CPython API call); nullptr stays empty.
  static Ref steal(PyObject* obj) noexcept { return Ref(obj); }
  // Adds a reference to a borrowed pointer.
  static Ref borrow(PyObject* obj) noexcept {
    Py_XINCREF(obj);
    return Ref(obj);
  }

  Ref(const Ref& other) noexcept : obj_(other.obj_) { Py_XINCREF(obj_); }
  Ref(Ref&& other) noexcept : obj_(std::exchange(other.obj_, nullptr)) {}
  Ref& operator=(Ref other) noexcept {
    std::swap(obj_, other.obj_);
    return *this;
  }
  ~Ref() { Py_XDECREF(obj_); }

  PyObject* get() const noexcept { return obj_; }
  explicit operator bool() const noexcept { return obj_ != nullptr; }
  // Gives up ownership: the caller now owns the reference (used when returning to CPython).
  [[nodiscard]] PyObject* release() noexcept { return std::exchange(obj_, nullptr); }
  void reset() noexcept { Py_CLEAR(obj_); }

  bool operator==(const Ref& other) const noexcept { return obj_ == other.obj_; }

 private:
  explicit Ref(PyObject* obj) noexcept : obj_(obj) {}
  PyObject* obj_ = nullptr;
};

}  // namespace stasis
