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
  if (internals::frame_value_depth(f) != 0)
    throw Error(ErrorCode::Internal, "replay reached a frame whose value stack is not empty");
  if (PyTuple_GET_SIZE(stack) > code->co_stacksize)
    throw bad_record("more stack values than the code's stack size");
  // The eval loop uses the pushed values as the code expects them there, unchecked (FOR_ITER
  // calls an iterator's tp_iternext; a missing value is read from below the stack): the values
  // must be as many, and of the kinds, the verifier finds at the offset.
  std::string why = check_stack_at(code, int(offset / 2), stack, false);
  if (!why.empty()) {
    const char* q = PyUnicode_Check(code->co_qualname) ? PyUnicode_AsUTF8(code->co_qualname) : nullptr;
    if (!q) PyErr_Clear();
    throw bad_record(why + " (" + (q ? q : "?") + ", offset " + std::to_string(offset) + ")");
  }

  if (code->co_flags & CO_OPTIMIZED) {
    PyObject** slots = internals::frame_localsplus(f);
    for (int i = 0, n = internals::code_nlocalsplus(code); i < n; ++i) {
      int kind = internals::localsplus_kind(code, i);
      if (kind & CO_FAST_FREE) continue;  // from the function's closure: already the right cells
      PyObject* value = PyDict_GetItemWithError(locals, PyTuple_GET_ITEM(internals::code_localsplus_names(code), i));
      if (!value && PyErr_Occurred()) throw Error::python();
      if (kind & CO_FAST_CELL) {
        if (!value) continue;  // keep the fresh cell MAKE_CELL made
        if (!PyCell_Check(value)) throw bad_record("a cell variable's value is not a cell");
      }
      if (value == reinterpret_cast<PyObject*>(&PyMemoryView_Type) && internals::is_socket_io_readinto(code) &&
          slots[i] && internals::is_ownerless_memoryview(slots[i]))
        continue;  // the buffer the re-entered BufferedReader call lent (snapshot/capture.cpp)
      Py_XSETREF(slots[i], Py_XNewRef(value));  // unbound locals are cleared
    }
  }
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(stack); ++i)
    internals::frame_stack_push(f, PyTuple_GET_ITEM(stack, i));
  internals::jump_at_trace_event(frame, int(offset / 2));
}

}  // namespace stasis::restore

namespace stasis::restore {
namespace {

constexpr const char* kReplayName = "stasis.replay";

struct Replay {
  Ref frames;
  Ref then;
  Ref before;
  Ref caller;  // empty: the first record's frame is the first frame that matches
  Ref on_error;
  Py_ssize_t next = 0;
  Ref last;    // the frame object rebuilt last: the next record's frame is called by it
};

Replay* replay_of(PyObject* capsule) { return static_cast<Replay*>(PyCapsule_GetPointer(capsule, kReplayName)); }

// Reports a frame that cannot be rebuilt to the driver, which ends the resume: raising in the
// program instead would run its own exception handlers on a half-rebuilt stack.
int report(Replay* r, const Error& e) {
  if (e.code() == ErrorCode::PythonError) PyErr_Clear();
  PyEval_SetTrace(nullptr, nullptr);
  int status = e.code() == ErrorCode::PythonError ? int(ErrorCode::Internal) : int(e.code());
  if (r->on_error && r->on_error.get() != Py_None) {
    Ref done = Ref::steal(PyObject_CallFunction(r->on_error.get(), "is", status, e.what()));
    if (!done) return -1;
  }
  PyErr_Format(PyExc_SystemError, "stasis: cannot resume: %s", e.what());
  return -1;
}

int replay_trace(PyObject* capsule, PyFrameObject* frame, int what, PyObject*) {
  if (what != PyTrace_LINE) return 0;
  Replay* r = replay_of(capsule);
  if (!r) return -1;
  if (!r->frames) return 0;
  Py_ssize_t n = PyList_GET_SIZE(r->frames.get());
  if (r->next >= n) return 0;
  Ref keep = Ref::borrow(capsule);
  PyObject* record = PyList_GET_ITEM(r->frames.get(), r->next);
  try {
    Ref back = Ref::steal(reinterpret_cast<PyObject*>(PyFrame_GetBack(frame)));
    if (r->next > 0) {
      if (back.get() != r->last.get()) return 0;  // not called by the last rebuilt frame
    } else if (r->caller) {
      if (!back || reinterpret_cast<PyObject*>(internals::frame_code(internals::interpreter_frame(
                       reinterpret_cast<PyFrameObject*>(back.get())))) != r->caller.get())
        return 0;  // still in the thread's bootstrap
    }
    // Not the frame of this record (for a thread: _bootstrap_inner's calls before run()). A
    // record whose code changed is caught by frame_matches (same name and place, other bytecode).
    if (!frame_matches(frame, record)) return 0;
    if (r->next == 0 && r->before && r->before.get() != Py_None) {
      Ref done = Ref::steal(PyObject_CallNoArgs(r->before.get()));
      if (!done) throw Error::python();
    }
    restore_frame(frame, record);
  } catch (const Error& e) {
    return report(r, e);
  }
  // The record is spent: the frame holds its values now, and nothing else should.
  if (PyList_SetItem(r->frames.get(), r->next, Py_NewRef(Py_None)) < 0) return -1;
  r->last = Ref::borrow(reinterpret_cast<PyObject*>(frame));
  if (++r->next == n) {
    Ref then = r->then;
    r->last = Ref();
    r->frames = Ref();
    PyEval_SetTrace(nullptr, nullptr);  // the innermost frame runs on untraced, as before
    if (then && then.get() != Py_None) {
      Ref done = Ref::steal(PyObject_CallOneArg(then.get(), reinterpret_cast<PyObject*>(frame)));
      if (!done) return -1;
    }
  }
  return 0;
}

Ref install(const ReplayRequest& q) {
  if (!PyList_Check(q.frames) || PyList_GET_SIZE(q.frames) == 0)
    throw Error(ErrorCode::CorruptSnapshot, "no frames to rebuild");
  auto* r = new Replay{Ref::borrow(q.frames), Ref::borrow(q.then), Ref::borrow(q.before),
                       !q.caller_code || q.caller_code == Py_None ? Ref() : Ref::borrow(q.caller_code),
                       Ref::borrow(q.on_error)};
  Ref capsule = Ref::steal(PyCapsule_New(r, kReplayName, [](PyObject* c) { delete replay_of(c); }));
  if (!capsule) {
    delete r;
    throw Error::python();
  }
  PyEval_SetTrace(replay_trace, capsule.get());
  return capsule;
}

}  // namespace

void start_replay(const ReplayRequest& request) { install(request); }

Ref replay_code(PyObject* code, PyObject* globals, const ReplayRequest& request) {
  if (!PyCode_Check(code) || !PyDict_Check(globals)) throw Error(ErrorCode::Internal, "replay of code needs globals");
  Ref capsule = install(request);
  Replay* r = replay_of(capsule.get());
  Ref result = Ref::steal(PyEval_EvalCode(code, globals, globals));
  if (r->next < PyList_GET_SIZE(request.frames)) {
    Py_ssize_t next = r->next;
    PyEval_SetTrace(nullptr, nullptr);
    if (!result) throw Error::python();
    throw Error(ErrorCode::Internal, "replay ended before frame " + std::to_string(next) + " of " +
                                         std::to_string(PyList_GET_SIZE(request.frames)) + " was rebuilt");
  }
  return result;
}

}  // namespace stasis::restore
