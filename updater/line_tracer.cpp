#include "updater/line_tracer.h"

#include <vector>

#include "core/cpython_internals.h"
#include "core/error.h"
#include "core/ref.h"

namespace stasis::updater::line_tracer {
namespace {

struct Saved {
  Py_tracefunc func;
  stasis::Ref obj;
};
thread_local std::vector<Saved> saved;

int trace(PyObject* spec, PyFrameObject* frame, int what, PyObject* arg) {
  PyObject* code = PyTuple_GET_ITEM(spec, 0);
  PyCodeObject* frame_code = PyFrame_GetCode(frame);  // new reference
  bool ours = (PyObject*)frame_code == code;
  Py_DECREF(frame_code);
  if (!ours) {
    if (what == PyTrace_CALL) internals::set_frame_line_events(frame, false);  // callees: no line events
    return 0;
  }
  if (what != PyTrace_LINE && what != PyTrace_RETURN) return 0;
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);  // an exception may be unwinding ('return' with arg NULL)
  stasis::Ref result;
  if (what == PyTrace_LINE) {
    result = stasis::Ref::steal(PyObject_CallFunction(PyTuple_GET_ITEM(spec, 1), "Osi", (PyObject*)frame, "line",
                                                      PyFrame_GetLineNumber(frame)));
  } else {
    result = stasis::Ref::steal(PyObject_CallFunction(PyTuple_GET_ITEM(spec, 1), "OsO", (PyObject*)frame, "return",
                                                      arg ? arg : Py_None));
  }
  if (!result) PyErr_WriteUnraisable(PyTuple_GET_ITEM(spec, 1));
  PyErr_Restore(type, value, tb);
  return 0;
}

}  // namespace

void enter(PyObject* spec) {
  if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) != 2) {
    PyErr_SetString(PyExc_TypeError, "line tracer spec must be (code, callback)");
    throw Error::python();
  }
  PyThreadState* ts = PyThreadState_Get();
  saved.push_back(
      {internals::thread_trace_function(ts), stasis::Ref::borrow(internals::thread_trace_object(ts))});
  check_status(internals::set_thread_trace(ts, trace, spec));
}

void exit() {
  if (saved.empty()) return;
  Saved s = std::move(saved.back());
  saved.pop_back();
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  if (internals::set_thread_trace(PyThreadState_Get(), s.func, s.obj.get()) < 0)
    PyErr_WriteUnraisable(nullptr);
  PyErr_Restore(type, value, tb);
}

}  // namespace stasis::updater::line_tracer
