// restore/code_guard.h — keeps the code objects a snapshot carries from running while an object
// graph loads (FORMAT.md, "Threat model"). Loading builds functions and classes by value but never
// calls them; yet a hostile snapshot can try to reach them indirectly — a class whose __hash__ is
// its own function, used as a dict key; a __setstate__, __iter__ or __del__ of its own; a weak
// reference's callback; a generator iterated by a constructor. The guard is a frame-evaluation
// hook (core/cpython_internals.h) installed from the first Code op until the load ends: any frame
// of a code object this load built is refused (an exception, and the load fails with
// CorruptSnapshotError), whatever path led to it. The only exception is the Generator op's call,
// whose code the verifier has shown to stop at RETURN_GENERATOR (restore/code_verifier.h).
#pragma once

#include <Python.h>

#include <string>
#include <unordered_set>

namespace stasis::restore {

class CodeGuard {
 public:
  CodeGuard();   // installs the hook (nested loads share it)
  ~CodeGuard();  // uninstalls it when the outermost load ends
  CodeGuard(const CodeGuard&) = delete;
  CodeGuard& operator=(const CodeGuard&) = delete;

  void add(PyObject* code) { codes_.insert(code); }
  bool guards(PyObject* code) const { return codes_.count(code) != 0; }
  // While `allowed` is set, frames of that one code object may run (the Generator op's prefix).
  void allow(PyObject* code) { allowed_ = code; }
  // The qualname of the first code object a frame of which was refused, or "".
  const std::string& refused() const { return refused_; }

 private:
  friend PyObject* guard_eval_frame(PyThreadState*, struct _PyInterpreterFrame*, int);
  std::unordered_set<PyObject*> codes_;
  PyObject* allowed_ = nullptr;
  std::string refused_;
};

}  // namespace stasis::restore
