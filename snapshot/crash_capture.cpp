#include "snapshot/crash_capture.h"

#include <string>

#include "core/cpython_internals.h"
#include "core/error.h"
#include "format/program_schema.h"
#include "snapshot/capture.h"

namespace stasis::snapshot {

Ref crash_frame_record(PyFrameObject* frame, int offset, int keep, int depth, bool is_base) {
  _PyInterpreterFrame* f = internals::interpreter_frame(frame);
  PyCodeObject* code = internals::frame_code(f);
  if (keep < 0 || keep > depth || depth > code->co_stacksize)
    throw Error(ErrorCode::Internal, "crash record: " + std::to_string(keep) + " stack values asked, " +
                                         std::to_string(depth) + " kept by the handler");
  if (offset < 0 || offset % 2 || offset / 2 >= internals::code_units(code))
    throw Error(ErrorCode::Internal,
                "crash record: offset " + std::to_string(offset) + " is outside the code");
  if (!is_base && internals::entered_from_c(frame) && !called_by_reissuable_call(frame))
    throw Error(ErrorCode::NotSuspendable, "it was called from C code (a callback or a dunder method)");
  Ref locals = Ref::steal(PyDict_New());
  if (!locals) throw Error::python();
  PyObject** slots = internals::frame_localsplus(f);
  if (code->co_flags & CO_OPTIMIZED) {
    for (int i = 0; i < internals::code_nlocalsplus(code); ++i) {
      int kind = internals::localsplus_kind(code, i);
      if ((kind & CO_FAST_FREE) || slots[i] == nullptr) continue;
      if (PyDict_SetItem(locals.get(), PyTuple_GET_ITEM(internals::code_localsplus_names(code), i),
                         slots[i]) < 0)
        throw Error::python();
    }
  }
  Ref stack = Ref::steal(PyTuple_New(keep));
  if (!stack) throw Error::python();
  PyObject** values = internals::frame_value_stack(f);
  for (int i = 0; i < keep; ++i) {
    if (!values[i])
      throw Error(ErrorCode::Internal, "crash record: an empty stack slot under the handler's depth");
    PyTuple_SET_ITEM(stack.get(), i, Py_NewRef(values[i]));
  }
  namespace field = format::program::field;
  Ref record = Ref::steal(Py_BuildValue("{sOsOsisOsO}", field::code, code, field::row, Py_None, field::offset,
                                        offset, field::locals, locals.get(), field::stack, stack.get()));
  if (!record) throw Error::python();
  return record;
}

Ref frame_stack_value(PyFrameObject* frame, int index) {
  _PyInterpreterFrame* f = internals::interpreter_frame(frame);
  PyCodeObject* code = internals::frame_code(f);
  if (index < 0 || index >= code->co_stacksize)
    throw Error(ErrorCode::Internal,
                "frame_stack_value: index " + std::to_string(index) + " is outside the stack");
  PyObject* value = internals::frame_value_stack(f)[index];
  return Ref::borrow(value ? value : Py_None);
}

}  // namespace stasis::snapshot
