#include "engine/program_api.h"

#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/ref.h"
#include "engine/errors.h"
#include "restore/replay.h"
#include "snapshot/capture.h"

namespace stasis::engine {
namespace {

constexpr const char* kTriggerName = "stasis.trigger";
constexpr const char* kReplayName = "stasis.replay";

struct Trigger {
  Ref base_code;
  long remaining;
  Ref callback;
};

std::string& last_why() {
  static auto* s = new std::string();
  return *s;
}

int trigger_trace(PyObject* capsule, PyFrameObject* frame, int what, PyObject*) {
  if (what != PyTrace_LINE) return 0;
  auto* t = static_cast<Trigger*>(PyCapsule_GetPointer(capsule, kTriggerName));
  if (!t) return -1;
  try {
    std::string why;
    if (!snapshot::capture_stack(frame, t->base_code.get(), false, why)) {
      last_why() = why;
      return 0;
    }
    last_why().clear();
    if (--t->remaining > 0) return 0;
    Ref frames = snapshot::capture_stack(frame, t->base_code.get(), true, why);
    Ref callback = t->callback;
    Ref keep = Ref::borrow(capsule);  // the trigger dies with the tracer
    PyEval_SetTrace(nullptr, nullptr);
    Ref done = Ref::steal(PyObject_CallOneArg(callback.get(), frames.get()));
    return done ? 0 : -1;
  } catch (const Error& e) {
    PyEval_SetTrace(nullptr, nullptr);
    raise_python(e);
    return -1;
  }
}

struct Replay {
  Ref frames;
  Ref then;  // then(innermost frame), once that frame is rebuilt (next trigger, debugger), or None
  Py_ssize_t next = 0;
  std::vector<Ref> restored;
};

int replay_trace(PyObject* capsule, PyFrameObject* frame, int what, PyObject*) {
  if (what != PyTrace_LINE) return 0;
  auto* r = static_cast<Replay*>(PyCapsule_GetPointer(capsule, kReplayName));
  if (!r) return -1;
  Py_ssize_t n = PyList_GET_SIZE(r->frames.get());
  if (r->next >= n) return 0;
  PyObject* record = PyList_GET_ITEM(r->frames.get(), r->next);
  try {
    if (r->next > 0) {
      Ref back = Ref::steal(reinterpret_cast<PyObject*>(PyFrame_GetBack(frame)));
      if (back.get() != r->restored.back().get()) return 0;  // not called by the last rebuilt frame
    }
    if (!restore::frame_matches(frame, record)) return 0;
    restore::restore_frame(frame, record);
  } catch (const Error& e) {
    // The stack cannot be rebuilt. Raising here would run the program's own exception handlers
    // on a half-rebuilt stack; instead end the resume as Stasis errors end: one line, its status.
    // Nothing of the program has run yet, and the snapshot is untouched.
    std::fprintf(stderr, "stasis: error: cannot resume: %s\n", e.what());
    std::fflush(stderr);
    _exit(e.code() == ErrorCode::PythonError ? int(ErrorCode::Internal) : int(e.code()));
  }
  r->restored.push_back(Ref::borrow(reinterpret_cast<PyObject*>(frame)));
  if (++r->next == n) {
    Ref keep = Ref::borrow(capsule);
    Ref then = r->then;
    r->restored.clear();
    PyEval_SetTrace(nullptr, nullptr);  // the innermost frame runs on untraced, as before
    if (then && then.get() != Py_None) {
      Ref done = Ref::steal(PyObject_CallOneArg(then.get(), reinterpret_cast<PyObject*>(frame)));
      if (!done) return -1;
    }
  }
  return 0;
}

}  // namespace

PyObject* suspend_at_safe_point(PyObject*, PyObject* args) {
  return guarded([&]() -> Ref {
    PyObject *base, *callback;
    long n;
    unsigned long thread_id = 0;  // 0: the calling thread
    if (!PyArg_ParseTuple(args, "O!lO|k:suspend_at_safe_point", &PyCode_Type, &base, &n, &callback,
                          &thread_id))
      throw Error::python();
    PyThreadState* target = PyThreadState_Get();
    if (thread_id != 0) {
      // Thread states are added and removed with the GIL held, which we hold: the list is stable.
      target = nullptr;
      for (PyThreadState* ts = PyInterpreterState_ThreadHead(PyInterpreterState_Get()); ts;
           ts = PyThreadState_Next(ts))
        if (ts->thread_id == thread_id) target = ts;
      if (!target) throw Error(ErrorCode::Internal, "no Python thread " + std::to_string(thread_id));
    }
    if (n < 1) throw Error(ErrorCode::Internal, "the safe point count starts at 1");
    auto* t = new Trigger{Ref::borrow(base), n, Ref::borrow(callback)};
    Ref capsule = Ref::steal(PyCapsule_New(t, kTriggerName, [](PyObject* c) {
      delete static_cast<Trigger*>(PyCapsule_GetPointer(c, kTriggerName));
    }));
    if (!capsule) {
      delete t;
      throw Error::python();
    }
    // _PyEval_SetTrace (exported, cpython/ceval.h) switches that thread to the tracing path at its
    // next instruction, even while it is blocked in C (CPYTHON311.md §4).
    if (_PyEval_SetTrace(target, trigger_trace, capsule.get()) < 0) throw Error::python();
    return Ref::borrow(Py_None);
  });
}

PyObject* last_blocker(PyObject*, PyObject*) {
  return guarded([&]() -> Ref {
    return Ref::steal(PyUnicode_FromStringAndSize(last_why().data(), Py_ssize_t(last_why().size())));
  });
}

PyObject* capture_stack(PyObject*, PyObject* args) {
  return guarded([&]() -> Ref {
    PyObject *frame, *base;
    int in_call = 0;
    if (!PyArg_ParseTuple(args, "O!O!|p:capture_stack", &PyFrame_Type, &frame, &PyCode_Type, &base,
                          &in_call))
      throw Error::python();
    std::string why;
    Ref frames = snapshot::capture_stack(reinterpret_cast<PyFrameObject*>(frame), base, true, why,
                                         in_call != 0);
    if (!frames) throw Error(ErrorCode::NotSuspendable, "not at a safe point: " + why);
    return frames;
  });
}

PyObject* replay(PyObject*, PyObject* args) {
  return guarded([&]() -> Ref {
    PyObject *base, *globals, *frames, *then = Py_None;
    if (!PyArg_ParseTuple(args, "O!O!O!|O:replay", &PyCode_Type, &base, &PyDict_Type, &globals,
                          &PyList_Type, &frames, &then))
      throw Error::python();
    if (PyList_GET_SIZE(frames) == 0) throw Error(ErrorCode::CorruptSnapshot, "no frames to rebuild");
    auto* r = new Replay{Ref::borrow(frames), Ref::borrow(then)};
    Ref capsule = Ref::steal(PyCapsule_New(r, kReplayName, [](PyObject* c) {
      delete static_cast<Replay*>(PyCapsule_GetPointer(c, kReplayName));
    }));
    if (!capsule) {
      delete r;
      throw Error::python();
    }
    PyEval_SetTrace(replay_trace, capsule.get());
    Ref result = Ref::steal(PyEval_EvalCode(base, globals, globals));
    if (r->next < PyList_GET_SIZE(frames)) {
      PyEval_SetTrace(nullptr, nullptr);
      if (!result) throw Error::python();
      throw Error(ErrorCode::Internal, "replay ended before frame " + std::to_string(r->next) +
                                           " of " + std::to_string(PyList_GET_SIZE(frames)) +
                                           " was rebuilt");
    }
    if (!result) throw Error::python();
    return result;
  });
}

}  // namespace stasis::engine
