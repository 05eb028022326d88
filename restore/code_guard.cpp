#include "restore/code_guard.h"

#include <vector>

#include "core/cpython_internals.h"

namespace stasis::restore {

namespace {
std::vector<CodeGuard*> g_active;  // guarded by the GIL
internals::EvalFrameFunc g_previous = nullptr;
}  // namespace

PyObject* guard_eval_frame(PyThreadState* tstate, _PyInterpreterFrame* frame, int throwflag) {
  PyObject* code = internals::interpreter_frame_code(frame);
  // An exception thrown into a frame no handler of which covers where it stands (close() of a
  // generator that did not start, or that is suspended outside any try block) unwinds it without
  // running one instruction: that is not running the snapshot's code, and refusing it would only
  // print "Exception ignored" when a generator of a failed load dies.
  if (throwflag && !internals::exception_handler_covers(reinterpret_cast<PyCodeObject*>(code), internals::frame_lasti(frame)))
    return g_previous(tstate, frame, throwflag);
  for (CodeGuard* g : g_active) {
    if (!g->guards(code) || code == g->allowed_) continue;
    if (g->refused_.empty()) {
      PyObject* q = reinterpret_cast<PyCodeObject*>(code)->co_qualname;
      const char* s = q && PyUnicode_Check(q) ? PyUnicode_AsUTF8(q) : nullptr;
      if (!s) PyErr_Clear();
      g->refused_ = s ? s : "?";
    }
    PyErr_Format(PyExc_RuntimeError,
                 "stasis: loading never runs code from the snapshot (%s was about to run)",
                 g->refused_.c_str());
    return nullptr;
  }
  return g_previous(tstate, frame, throwflag);
}

CodeGuard::CodeGuard() {
  if (g_active.empty()) {
    g_previous = internals::eval_frame_hook();
    internals::set_eval_frame_hook(guard_eval_frame);
  }
  g_active.push_back(this);
}

CodeGuard::~CodeGuard() {
  for (size_t i = 0; i < g_active.size(); ++i)
    if (g_active[i] == this) {
      g_active.erase(g_active.begin() + long(i));
      break;
    }
  if (g_active.empty()) internals::set_eval_frame_hook(g_previous);
}

}  // namespace stasis::restore
