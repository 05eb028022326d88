#include "snapshot/capture.h"

#include "compiler_hooks/resume_table.h"
#include "core/cpython_internals.h"
#include "core/error.h"
#include "format/program_schema.h"

namespace stasis::snapshot {
namespace {

std::string where(PyCodeObject* code, int lasti_bytes) {
  const char* q = PyUnicode_AsUTF8(code->co_qualname);
  const char* file = PyUnicode_AsUTF8(code->co_filename);
  std::string s = std::string(q ? q : "?") + " (" + (file ? file : "?") + ":" +
                  std::to_string(PyCode_Addr2Line(code, lasti_bytes)) + ")";
  PyErr_Clear();
  return s;
}

// Builds one frame record; `top` frames keep their whole stack, callers their structural prefix.
Ref frame_record(PyFrameObject* frame, PyCodeObject* code, PyObject* row_id, int offset, int keep) {
  _PyInterpreterFrame* f = internals::interpreter_frame(frame);
  Ref locals = Ref::steal(PyDict_New());
  if (!locals) throw Error::python();
  if (code->co_flags & CO_OPTIMIZED) {
    PyObject** slots = internals::frame_localsplus(f);
    for (int i = 0; i < code->co_nlocalsplus; ++i) {
      int kind = internals::localsplus_kind(code, i);
      if ((kind & CO_FAST_FREE) || slots[i] == nullptr) continue;
      PyObject* name = PyTuple_GET_ITEM(code->co_localsplusnames, i);
      if (PyDict_SetItem(locals.get(), name, slots[i]) < 0) throw Error::python();
    }
  }
  Ref stack = Ref::steal(PyTuple_New(keep));
  if (!stack) throw Error::python();
  PyObject** base = internals::frame_localsplus(f) + code->co_nlocalsplus;
  for (int i = 0; i < keep; ++i) PyTuple_SET_ITEM(stack.get(), i, Py_NewRef(base[i]));
  namespace field = format::program::field;
  Ref record = Ref::steal(Py_BuildValue("{sOsOsisOsO}", field::code, code, field::row, row_id ? row_id : Py_None,
                                        field::offset, offset, field::locals, locals.get(), field::stack,
                                        stack.get()));
  if (!record) throw Error::python();
  return record;
}

}  // namespace

bool called_by_reissuable_call(PyFrameObject* frame) {
  Ref back = Ref::steal(reinterpret_cast<PyObject*>(PyFrame_GetBack(frame)));
  if (!back) return false;
  _PyInterpreterFrame* caller = internals::interpreter_frame(reinterpret_cast<PyFrameObject*>(back.get()));
  PyCodeObject* code = internals::frame_code(caller);
  int lasti = internals::frame_lasti(caller);
  if (!internals::is_reissuable_c_call(code, lasti)) return false;
  if (!internals::is_call_function_ex(code, lasti)) return true;
  // In rewritten code the call's operands sit right above the row's structural values:
  // NULL, the callable, the argument tuple[, the keyword dict].
  const auto* table = compiler_hooks::resume_table(code);
  const compiler_hooks::ResumeRow* row = table ? compiler_hooks::row_at(*table, lasti * int(sizeof(_Py_CODEUNIT))) : nullptr;
  if (!row) return false;
  PyObject* callable = internals::frame_localsplus(caller)[code->co_nlocalsplus + row->structural + 1];
  return callable && !PyType_Check(callable);
}

Ref capture_stack(PyFrameObject* top, PyObject* base_code, bool build, std::string& why_not,
                  bool top_in_call, bool base_is_caller) {
  Ref records = build ? Ref::steal(PyList_New(0)) : Ref();
  if (build && !records) throw Error::python();
  Ref frame = Ref::borrow(reinterpret_cast<PyObject*>(top));
  bool innermost = !top_in_call;
  while (frame) {
    auto* fo = reinterpret_cast<PyFrameObject*>(frame.get());
    _PyInterpreterFrame* f = internals::interpreter_frame(fo);
    PyCodeObject* code = internals::frame_code(f);
    int lasti_bytes = internals::frame_lasti(f) * int(sizeof(_Py_CODEUNIT));
    bool is_base = !base_is_caller && reinterpret_cast<PyObject*>(code) == base_code;
    if (base_is_caller) {
      Ref caller = Ref::steal(reinterpret_cast<PyObject*>(PyFrame_GetBack(fo)));
      is_base = caller && reinterpret_cast<PyObject*>(internals::frame_code(internals::interpreter_frame(
                              reinterpret_cast<PyFrameObject*>(caller.get())))) == base_code;
    }
    if (!is_base && internals::entered_from_c(fo) && !called_by_reissuable_call(fo)) {
      why_not = where(code, lasti_bytes) + " was called from C code (a callback, a dunder method, "
                "__init__ through a class call, or a generator being iterated)";
      return {};
    }
    const auto* table = compiler_hooks::resume_table(code);
    if (!table) {
      why_not = where(code, lasti_bytes) + " is not rewritten code (add it with --rewrite)";
      return {};
    }
    int depth = internals::frame_stacktop(f) - code->co_nlocalsplus;
    // A frame suspended in a call made through C (a call blocked in C; CALL_FUNCTION_EX) is
    // still executing in the eval loop's terms: it has no saved stack pointer.
    bool called_through_c = depth < 0;
    int offset = lasti_bytes;
    PyObject* row_id = nullptr;
    int keep = depth;
    if (innermost) {
      // Replay does not restore the exception being handled (sys.exc_info(), a bare `raise`).
      Ref handled = Ref::steal(PyErr_GetHandledException());
      if (handled && handled.get() != Py_None) {
        why_not = where(code, lasti_bytes) + " is inside an exception handler";
        return {};
      }
      PyObject** values = internals::frame_localsplus(f) + code->co_nlocalsplus;
      for (int i = 0; i < depth; ++i)
        if (values[i] == nullptr) {
          why_not = where(code, lasti_bytes) + " is in the middle of an expression";
          return {};
        }
    } else {
      const compiler_hooks::ResumeRow* row = compiler_hooks::row_at(*table, lasti_bytes);
      if (!row || row->start < 0) {
        why_not = where(code, lasti_bytes) + " is not at a resume point";
        return {};
      }
      if (row->needs_exception_state) {
        why_not = where(code, lasti_bytes) + " is inside an exception handler";
        return {};
      }
      if (called_through_c) depth = row->structural;  // the values below the call are the row's
      if (depth < row->structural) {
        why_not = where(code, lasti_bytes) + " has a shorter value stack than its resume row";
        return {};
      }
      offset = row->start;
      row_id = row->id;
      keep = row->structural;
    }
    if (depth < 0) {
      why_not = where(code, lasti_bytes) + " is executing (no saved value stack)";
      return {};
    }
    if (build) {
      Ref record = frame_record(fo, code, row_id, offset, keep);
      if (!record || PyList_Append(records.get(), record.get()) < 0) throw Error::python();
    }
    if (is_base) {
      if (build && PyList_Reverse(records.get()) < 0) throw Error::python();
      return build ? records : Ref::borrow(Py_None);
    }
    innermost = false;
    frame = Ref::steal(reinterpret_cast<PyObject*>(PyFrame_GetBack(fo)));
  }
  why_not = "the program's base frame is not on this thread's stack";
  return {};
}

}  // namespace stasis::snapshot
