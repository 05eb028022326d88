#include "restore/replay.h"

#include <string>

#include "core/cpython_internals.h"
#include "core/error.h"
#include "core/ref.h"
#include "format/program_schema.h"
#include "restore/code_verifier.h"

namespace stasis::restore {
namespace {
Error bad_record(const std::string& what) {
  return Error(ErrorCode::CorruptSnapshot, "frame record: " + what);
}

// The record's field `name` (borrowed), or nullptr when `record` is not a dict holding it.
PyObject* field_of(PyObject* record, const char* name) {
  if (!PyDict_Check(record)) return nullptr;
  PyObject* value = PyDict_GetItemString(record, name);
  return value;
}

PyObject* required(PyObject* record, const char* name) {
  PyObject* value = field_of(record, name);
  if (!value) throw bad_record(std::string("no '") + name + "' field");
  return value;
}
}  // namespace

namespace field = format::program::field;

bool frame_matches(PyFrameObject* frame, PyObject* record) {
  PyObject* want = field_of(record, field::code);
  if (!want) return false;
  PyCodeObject* live = internals::frame_code(internals::interpreter_frame(frame));
  if (reinterpret_cast<PyObject*>(live) == want) return true;
  if (!PyCode_Check(want)) return false;
  auto* rec = reinterpret_cast<PyCodeObject*>(want);
  if (live->co_firstlineno != rec->co_firstlineno ||
      PyObject_RichCompareBool(live->co_qualname, rec->co_qualname, Py_EQ) != 1 ||
      PyObject_RichCompareBool(live->co_filename, rec->co_filename, Py_EQ) != 1) {
    PyErr_Clear();
    return false;
  }
  Ref a = Ref::steal(PyCode_GetCode(live));
  Ref b = Ref::steal(PyCode_GetCode(rec));
  if (!a || !b) throw Error::python();
  if (PyObject_RichCompareBool(a.get(), b.get(), Py_EQ) == 1) return true;
  PyErr_Clear();
  const char* q = PyUnicode_AsUTF8(rec->co_qualname);
  const char* f = PyUnicode_AsUTF8(rec->co_filename);
  throw Error(ErrorCode::IncompatibleSnapshot,
              std::string("the code of ") + (q ? q : "?") + " (" + (f ? f : "?") +
                  ") changed since the snapshot was taken: resume with the version of that module "
                  "the program ran with");
}

void restore_frame(PyFrameObject* frame, PyObject* record) {
  _PyInterpreterFrame* f = internals::interpreter_frame(frame);
  PyCodeObject* code = internals::frame_code(f);
  PyObject* offset_value = required(record, field::offset);
  PyObject* locals = required(record, field::locals);
  PyObject* stack = required(record, field::stack);
  long offset = PyLong_Check(offset_value) ? PyLong_AsLong(offset_value) : -1;
  if (offset == -1 && PyErr_Occurred()) PyErr_Clear();
  if (offset < 0 || offset % 2 || offset / 2 >= internals::code_units(code))
    throw bad_record("offset " + std::to_string(offset) + " is outside the code");
  if (!is_instruction_start(code, int(offset / 2)))
    throw bad_record("offset " + std::to_string(offset) + " is not the start of an instruction the code accepts");
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
