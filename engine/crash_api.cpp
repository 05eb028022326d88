#include "engine/crash_api.h"

#include "core/cpython_internals.h"
#include "engine/errors.h"
#include "snapshot/capture.h"
#include "snapshot/crash_capture.h"
#include "snapshot/crash_hook.h"

namespace stasis::engine {

PyObject* crash_frame_record(PyObject*, PyObject* args) {
  return guarded([&]() -> Ref {
    PyObject* frame;
    int offset, keep, depth, is_base;
    if (!PyArg_ParseTuple(args, "O!iiip:crash_frame_record", &PyFrame_Type, &frame, &offset, &keep, &depth,
                          &is_base))
      throw Error::python();
    return snapshot::crash_frame_record(reinterpret_cast<PyFrameObject*>(frame), offset, keep, depth,
                                        is_base);
  });
}

PyObject* frame_stack_value(PyObject*, PyObject* args) {
  return guarded([&]() -> Ref {
    PyObject* frame;
    int index;
    if (!PyArg_ParseTuple(args, "O!i:frame_stack_value", &PyFrame_Type, &frame, &index))
      throw Error::python();
    return snapshot::frame_stack_value(reinterpret_cast<PyFrameObject*>(frame), index);
  });
}

PyObject* frame_called_by_c(PyObject*, PyObject* frame) {
  if (!PyFrame_Check(frame)) {
    PyErr_SetString(PyExc_TypeError, "frame_called_by_c: a frame is needed");
    return nullptr;
  }
  auto* f = reinterpret_cast<PyFrameObject*>(frame);
  return PyBool_FromLong(internals::entered_from_c(f) && !snapshot::called_by_reissuable_call(f));
}

PyObject* crash_hook(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  return snapshot::crash_hook::hook(args, nargs);
}

PyObject* crash_hook_configure(PyObject*, PyObject* args) {
  return guarded([&]() -> Ref {
    PyObject *slow, *pending, *given_up, *base, *bootstrap;
    unsigned long main_ident;
    if (!PyArg_ParseTuple(args, "OO!O!OkO:crash_hook_configure", &slow, &PyDict_Type, &pending, &PyDict_Type,
                          &given_up, &base, &main_ident, &bootstrap))
      throw Error::python();
    snapshot::crash_hook::configure(slow, pending, given_up, base, main_ident, bootstrap);
    return Ref::borrow(Py_None);
  });
}

PyObject* crash_hook_disable(PyObject*, PyObject*) {
  snapshot::crash_hook::disable();
  Py_RETURN_NONE;
}

PyObject* crash_hook_plan(PyObject*, PyObject* args) {
  return guarded([&]() -> Ref {
    PyObject *code, *plan;
    int lasti;
    if (!PyArg_ParseTuple(args, "O!iO!:crash_hook_plan", &PyCode_Type, &code, &lasti, &PyTuple_Type, &plan))
      throw Error::python();
    snapshot::crash_hook::set_plan(code, lasti, plan);
    return Ref::borrow(Py_None);
  });
}

}  // namespace stasis::engine
