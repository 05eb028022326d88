#include "restore/replay.h"

#include <string>

#include "core/cpython_internals.h"
#include "core/error.h"
#include "core/ref.h"

namespace stasis::restore {
namespace {
Error bad_record(const std::string& what) {
  return Error(ErrorCode::CorruptSnapshot, "frame record: " + what);
}
}  // namespace

bool frame_matches(PyFrameObject* frame, PyObject* record) {
  return PyTuple_Check(record) && PyTuple_GET_SIZE(record) == 5 &&
         reinterpret_cast<PyObject*>(internals::frame_code(internals::interpreter_frame(frame))) ==
             PyTuple_GET_ITEM(record, 0);
}

void restore_frame(PyFrameObject* frame, PyObject* record) {
  _PyInterpreterFrame* f = internals::interpreter_frame(frame);
  PyCodeObject* code = internals::frame_code(f);
  long offset = PyLong_AsLong(PyTuple_GET_ITEM(record, 2));
  PyObject* locals = PyTuple_GET_ITEM(record, 3);
  PyObject* stack = PyTuple_GET_ITEM(record, 4);
  if (offset < 0 || offset % 2 || offset / 2 >= internals::code_units(code))
    throw bad_record("offset " + std::to_string(offset) + " is outside the code");
  if (!PyDict_Check(locals) || !PyTuple_Check(stack))
    throw bad_record("locals must be a dict and stack a tuple");
  if (internals::frame_stacktop(f) != code->co_nlocalsplus)
    throw Error(ErrorCode::Internal, "replay reached a frame whose value stack is not empty");
  if (PyTuple_GET_SIZE(stack) > code->co_stacksize)
    throw bad_record("more stack values than the code's stack size");

  if (code->co_flags & CO_OPTIMIZED) {
    PyObject** slots = internals::frame_localsplus(f);
    for (int i = 0; i < code->co_nlocalsplus; ++i) {
      int kind = internals::localsplus_kind(code, i);
      if (kind & CO_FAST_FREE) continue;  // from the function's closure: already the right cells
      PyObject* value = PyDict_GetItemWithError(locals, PyTuple_GET_ITEM(code->co_localsplusnames, i));
      if (!value && PyErr_Occurred()) throw Error::python();
      if (kind & CO_FAST_CELL) {
        if (!value) continue;  // keep the fresh cell MAKE_CELL made
        if (!PyCell_Check(value)) throw bad_record("a cell variable's value is not a cell");
      }
      Py_XSETREF(slots[i], Py_XNewRef(value));  // unbound locals are cleared
    }
  }
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(stack); ++i)
    internals::frame_stack_push(f, PyTuple_GET_ITEM(stack, i));
  internals::jump_at_trace_event(frame, int(offset / 2));
}

}  // namespace stasis::restore
