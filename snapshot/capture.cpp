#include "snapshot/capture.h"

#include "compiler_hooks/resume_table.h"
#include "core/error.h"
#include "format/program_schema.h"

namespace stasis::snapshot {
namespace {

using compiler_hooks::ResumeRow;

int lasti_bytes(_PyInterpreterFrame* f) { return internals::frame_lasti(f) * internals::kCodeUnitBytes; }

std::string text_of(PyObject* s, const char* if_none = "?") {
  const char* t = s && PyUnicode_Check(s) ? PyUnicode_AsUTF8(s) : nullptr;
  if (!t) PyErr_Clear();
  return t ? t : if_none;
}

// "qualname (file:line)" of a frame.
std::string where(_PyInterpreterFrame* f) {
  PyCodeObject* code = internals::frame_code(f);
  std::string s = text_of(code->co_qualname) + " (" + text_of(code->co_filename) + ":" +
                  std::to_string(PyCode_Addr2Line(code, lasti_bytes(f))) + ")";
  PyErr_Clear();
  return s;
}

std::string module_of(_PyInterpreterFrame* f) {
  PyObject* globals = internals::frame_globals(f);
  PyObject* name = globals && PyDict_Check(globals) ? PyDict_GetItemString(globals, "__name__") : nullptr;
  return text_of(name, "");
}

bool is_base_frame(_PyInterpreterFrame* f, const StackBase& base) {
  if (!base.is_caller) return reinterpret_cast<PyObject*>(internals::frame_code(f)) == base.code;
  _PyInterpreterFrame* caller = internals::calling_complete_frame(f);
  return caller && reinterpret_cast<PyObject*>(internals::frame_code(caller)) == base.code;
}

// A frame entered from C only because its caller used `f(*args, **kwargs)` or `with`: resumable
// like a frame its caller called directly, since executing that instruction again calls it again.
// Not when `f` is a class: the frame is then its __init__, and calling the class again would make
// another instance.
//
// Also socket.SocketIO.readinto, which io.BufferedReader (C) calls for a socket's makefile()
// reader (http.server's rfile.readline(), a client's response.read()): calling the reader's method
// again reads through the same buffered object, restored with the heap, and calls readinto again.
// What the C method had already taken out of the buffer into its own variables before it called
// readinto (the start of a line that arrived in pieces) is not in the heap; a thread waiting for
// a new request or response has taken nothing.
bool reenters_through_buffered_reader(_PyInterpreterFrame* f) {
  return internals::is_socket_io_readinto(internals::frame_code(f));
}

// The callable of the call that `caller` is suspended in (borrowed), or null: a call's operands sit
// right above its row's structural values, NULL or a method's self first, then the callable
// (LOAD_METHOD of a non-method pushes NULL and the attribute).
PyObject* callable_of_call(_PyInterpreterFrame* caller) {
  PyCodeObject* code = internals::frame_code(caller);
  int lasti = internals::frame_lasti(caller);
  const auto* table = compiler_hooks::resume_table(code);
  const ResumeRow* row = table ? compiler_hooks::row_at(*table, lasti * internals::kCodeUnitBytes) : nullptr;
  if (!row) return nullptr;
  return internals::call_callable(internals::frame_value_stack(caller) + row->structural);
}

// Also __init__ run by a class call whose result the caller throws away (socketserver's
// `self.RequestHandlerClass(request, client_address, self)`, whose __init__ handles the whole
// request): calling the class again makes a new instance with object.__new__, which runs nothing
// of the program's, and the rebuilt __init__ frame works on the restored instance, as before. Not
// when the class has a __new__ of its own, nor when the instance is used.
bool is_init_of_discarded_instance(_PyInterpreterFrame* f, _PyInterpreterFrame* caller) {
  PyCodeObject* code = internals::frame_code(f);
  if (PyUnicode_CompareWithASCIIString(code->co_name, "__init__") != 0) return false;
  PyCodeObject* caller_code = internals::frame_code(caller);
  int lasti = internals::frame_lasti(caller);
  if (!internals::call_result_discarded(caller_code, lasti)) return false;
  PyObject* callable = callable_of_call(caller);
  return callable && PyType_Check(callable) &&
         reinterpret_cast<PyTypeObject*>(callable)->tp_new == PyBaseObject_Type.tp_new;
}

// Also __call__ run by calling an instance (unittest's `test(result)` on suites and cases):
// the type's call slot calls the method and keeps nothing of its own, so calling the instance again
// enters the same method.
bool is_call_of_instance(_PyInterpreterFrame* f, _PyInterpreterFrame* caller) {
  PyCodeObject* code = internals::frame_code(f);
  if (PyUnicode_CompareWithASCIIString(code->co_name, "__call__") != 0) return false;
  PyObject* callable = callable_of_call(caller);
  if (!callable || PyType_Check(callable)) return false;
  Ref method = Ref::steal(PyObject_GetAttrString(reinterpret_cast<PyObject*>(Py_TYPE(callable)), "__call__"));
  if (!method) {
    PyErr_Clear();
    return false;
  }
  return PyFunction_Check(method.get()) && PyFunction_GET_CODE(method.get()) == reinterpret_cast<PyObject*>(code);
}

bool called_by_reissuable_call(_PyInterpreterFrame* f) {
  _PyInterpreterFrame* caller = internals::calling_complete_frame(f);
  if (!caller) return false;
  PyCodeObject* code = internals::frame_code(caller);
  int lasti = internals::frame_lasti(caller);
  if (internals::is_call(code, lasti) && reenters_through_buffered_reader(f)) return true;
  if (internals::is_call(code, lasti) && is_init_of_discarded_instance(f, caller)) return true;
  if (internals::is_call(code, lasti) && is_call_of_instance(f, caller)) return true;
  if (!internals::is_reissuable_c_call(code, lasti)) return false;
  if (!internals::is_call_function_ex(code, lasti)) return true;
  // In rewritten code the call's operands sit right above the row's structural values:
  // NULL, the callable, the argument tuple[, the keyword dict].
  const auto* table = compiler_hooks::resume_table(code);
  const ResumeRow* row = table ? compiler_hooks::row_at(*table, lasti * internals::kCodeUnitBytes) : nullptr;
  if (!row) return false;
  PyObject* callable = internals::frame_value_stack(caller)[row->structural + 1];
  return callable && !PyType_Check(callable);
}

// Why frame `f` (not a base) cannot be entered again by replaying its caller's call: it was
// entered from C, or its code is not rewritten.
std::string entry_blocker(_PyInterpreterFrame* f) {
  if (internals::frame_entered_from_c(f) && !called_by_reissuable_call(f)) {
    PyCodeObject* code = internals::frame_code(f);
    if (internals::frame_of_generator(f))
      return where(f) + " is a generator or coroutine resumed by C code (next(), a for loop over "
                        "it, send()), which replay cannot re-enter";
    _PyInterpreterFrame* caller = internals::calling_complete_frame(f);
    std::string by = caller ? " from " + where(caller) : "";
    if (PyUnicode_CompareWithASCIIString(code->co_name, "__init__") == 0)
      return where(f) + " is __init__ run by a class call" + by;
    return where(f) + " was called from C code" + by +
           " (a callback such as sort(key=) or map(), or a dunder method run by an operator)";
  }
  if (!compiler_hooks::resume_table(internals::frame_code(f))) {
    std::string module = module_of(f);
    return where(f) + " runs code that was not rewritten" +
           (module.empty() ? std::string() : " (module " + module + " is not in the selection; --rewrite adds it)");
  }
  return {};
}

// Why caller frame `f` (suspended in the call that made the frame above it) is not at a row that
// replay can issue again; sets `row` when it is.
std::string caller_blocker(_PyInterpreterFrame* f, const ResumeRow*& row) {
  const auto* table = compiler_hooks::resume_table(internals::frame_code(f));
  row = table ? compiler_hooks::row_at(*table, lasti_bytes(f)) : nullptr;
  if (!row) return where(f) + " is not at a resume point";
  if (row->start < 0) {
    std::string reason = text_of(row->reason, "");
    return where(f) + " is in a call that cannot be replayed" + (reason.empty() ? "" : ": " + reason);
  }
  if (row->needs_exception_state) return where(f) + " is inside an exception handler";
  return {};
}

// Whether the BufferedReader call that entered readinto frame `f` is a readline() of its Python
// caller: waiting for the next request, it has taken nothing out of the reader (what it had taken
// of a line that arrived in pieces is lost: README). Not read(n), which may hold part of the
// bytes asked for in a bytes object of its own, lent to readinto as `b`.
bool called_by_readline(_PyInterpreterFrame* f) {
  _PyInterpreterFrame* caller = internals::calling_complete_frame(f);
  PyObject* callable = caller ? callable_of_call(caller) : nullptr;
  if (!callable) return false;
  Ref name = Ref::steal(PyObject_GetAttrString(callable, "__name__"));
  if (!name) {
    PyErr_Clear();
    return false;
  }
  return PyUnicode_Check(name.get()) && PyUnicode_CompareWithASCIIString(name.get(), "readline") == 0;
}

// Builds one frame record; `top` frames keep their whole stack, callers their structural prefix.
// SocketIO.readinto entered from a BufferedReader (waiting for a kept-alive connection's next
// request): its buffer argument, a memoryview of the reader's own memory, is recorded as the type
// memoryview (FORMAT.md, "Frame records"); replay keeps the one the re-entered call passes.
Ref frame_record(_PyInterpreterFrame* f, PyObject* row_id, int offset, int keep) {
  PyCodeObject* code = internals::frame_code(f);
  Ref locals = Ref::steal(PyDict_New());
  if (!locals) throw Error::python();
  const bool lent_buffer = internals::frame_entered_from_c(f) && internals::is_socket_io_readinto(code) &&
                           called_by_readline(f);
  if (code->co_flags & CO_OPTIMIZED) {
    PyObject** slots = internals::frame_localsplus(f);
    for (int i = 0, n = internals::code_nlocalsplus(code); i < n; ++i) {
      int kind = internals::localsplus_kind(code, i);
      if ((kind & CO_FAST_FREE) || slots[i] == nullptr) continue;
      PyObject* name = PyTuple_GET_ITEM(internals::code_localsplus_names(code), i);
      PyObject* value = lent_buffer && internals::is_ownerless_memoryview(slots[i])
                            ? reinterpret_cast<PyObject*>(&PyMemoryView_Type)
                            : slots[i];
      if (PyDict_SetItem(locals.get(), name, value) < 0) throw Error::python();
    }
  }
  Ref stack = Ref::steal(PyTuple_New(keep));
  if (!stack) throw Error::python();
  PyObject** base = internals::frame_value_stack(f);
  for (int i = 0; i < keep; ++i) PyTuple_SET_ITEM(stack.get(), i, Py_NewRef(base[i]));
  namespace field = format::program::field;
  Ref record = Ref::steal(Py_BuildValue("{sOsOsisOsO}", field::code, code, field::row, row_id ? row_id : Py_None,
                                        field::offset, offset, field::locals, locals.get(), field::stack,
                                        stack.get()));
  if (!record) throw Error::python();
  return record;
}

}  // namespace

std::string line_blocker(_PyInterpreterFrame* f);

namespace {

// One walk serves judging (records == nullptr) and capturing.
std::string walk(_PyInterpreterFrame* top, const StackBase& base, TopState state, PyObject* records) {
  bool innermost = true;
  for (_PyInterpreterFrame* f = top; f; f = internals::calling_complete_frame(f)) {
    PyCodeObject* code = internals::frame_code(f);
    bool is_base = is_base_frame(f, base);
    if (!is_base) {
      std::string why = entry_blocker(f);
      if (!why.empty()) return why;
    } else if (!compiler_hooks::resume_table(code)) {
      return where(f) + " runs code that was not rewritten";
    }
    int depth = internals::frame_value_depth(f);
    int offset = lasti_bytes(f);
    PyObject* row_id = nullptr;
    int keep = depth;
    if (innermost && state == TopState::Running) {
      if (is_base) return {};
      innermost = false;
      continue;  // judged at its own next 'line' event
    }
    if (innermost && state == TopState::AtLine) {
      std::string why = line_blocker(f);
      if (!why.empty()) return why;
    } else {
      const ResumeRow* row = nullptr;
      std::string why = caller_blocker(f, row);
      if (!why.empty()) return why;
      // A frame suspended in a call made through C (a call blocked in C; CALL_FUNCTION_EX) is
      // still executing in the eval loop's terms: it has no saved stack pointer; the values below
      // the call are the row's.
      if (depth < 0) depth = row->structural;
      if (depth < row->structural) return where(f) + " has a shorter value stack than its resume row";
      offset = row->start;
      row_id = row->id;
      keep = row->structural;
    }
    if (depth < 0) return where(f) + " is executing (no saved value stack)";
    if (records) {
      Ref record = frame_record(f, row_id, offset, keep);
      if (PyList_Append(records, record.get()) < 0) throw Error::python();
    }
    if (is_base) return {};
    innermost = false;
  }
  return "the program's base frame is not on this thread's stack";
}

}  // namespace

std::string line_blocker(_PyInterpreterFrame* f) {
  // Replay does not restore the exception being handled (sys.exc_info(), a bare `raise`).
  Ref handled = Ref::steal(PyErr_GetHandledException());
  if (handled && handled.get() != Py_None) return where(f) + " is inside an exception handler";
  int depth = internals::frame_value_depth(f);
  if (depth < 0) return where(f) + " is executing (no saved value stack)";
  PyObject** values = internals::frame_value_stack(f);
  for (int i = 0; i < depth; ++i)
    if (values[i] == nullptr) return where(f) + " is in the middle of an expression";
  return {};
}

bool called_by_reissuable_call(PyFrameObject* frame) {
  return called_by_reissuable_call(internals::interpreter_frame(frame));
}

std::string stack_blocker(_PyInterpreterFrame* top, const StackBase& base, TopState state) {
  return walk(top, base, state, nullptr);
}

std::string callee_blocker(_PyInterpreterFrame* callee, const StackBase& base) {
  if (is_base_frame(callee, base)) return {};
  std::string why = entry_blocker(callee);
  if (!why.empty()) return why;
  _PyInterpreterFrame* caller = internals::calling_complete_frame(callee);
  if (!caller) return "the program's base frame is not on this thread's stack";
  const ResumeRow* row = nullptr;
  return caller_blocker(caller, row);
}

Ref capture_stack(_PyInterpreterFrame* top, const StackBase& base, TopState state, std::string& why_not) {
  Ref records = Ref::steal(PyList_New(0));
  if (!records) throw Error::python();
  why_not = walk(top, base, state, records.get());
  if (!why_not.empty()) return {};
  if (PyList_Reverse(records.get()) < 0) throw Error::python();
  return records;
}

}  // namespace stasis::snapshot
