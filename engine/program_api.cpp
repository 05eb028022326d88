#define PY_SSIZE_T_CLEAN
#include "engine/program_api.h"

#include <unistd.h>

#include <condition_variable>
#include <map>
#include <mutex>

#include <cstdio>
#include <string>
#include <vector>

#include "core/cpython_internals.h"
#include "core/error.h"
#include "core/ref.h"
#include "engine/errors.h"
#include "restore/replay.h"
#include "snapshot/capture.h"

namespace stasis::engine {
namespace {

constexpr const char* kParkName = "stasis.park";
constexpr const char* kReplayName = "stasis.replay";

// One thread armed for a suspension. Its trace function counts events, checks each 'line' event
// for a safe point and, at the chosen one, records the thread's frames and parks it: the thread
// waits, without the GIL, until thaw() (the suspension was abandoned) or the process ends.
struct Park {
  unsigned long ident;
  Ref base_code;
  bool base_is_caller;
  long countdown;   // safe points still to pass; the thread parks at the one that brings it to 0
  Ref on_reached;   // called with no arguments when the countdown ends (starts the coordinator)
  Ref no_park_file; // never park with the innermost frame in this file (threading.py: its frames
                    // hold _active_limbo_lock and Condition locks other threads need to start)
  bool parked = false;
  Ref frames;       // records captured at the safe point (None: parked late, see freeze())
  long events = 0;  // trace events seen: a thread whose count does not move is not running Python
  std::string why;  // why its latest 'line' event was not a safe point
};

// Shared by all armed threads; `armed` and the Park fields are only touched with the GIL held.
struct Parking {
  std::mutex mutex;
  std::condition_variable wake;
  unsigned long epoch = 0;  // bumped by thaw(); guarded by mutex
  bool freezing = false;    // after the capture decision every event parks, safe point or not
  std::map<unsigned long, Ref> armed;  // thread ident -> capsule holding its Park
};

Parking& parking() {
  static auto* p = new Parking();
  return *p;
}

void park_here(Park* p) {
  Parking& g = parking();
  unsigned long epoch;
  {
    std::lock_guard<std::mutex> l(g.mutex);
    epoch = g.epoch;
  }
  p->parked = true;
  Py_BEGIN_ALLOW_THREADS
  std::unique_lock<std::mutex> l(g.mutex);
  g.wake.wait(l, [&] { return g.epoch != epoch; });
  Py_END_ALLOW_THREADS
}

int park_trace(PyObject* capsule, PyFrameObject* frame, int what, PyObject*) {
  auto* p = static_cast<Park*>(PyCapsule_GetPointer(capsule, kParkName));
  if (!p) return -1;
  ++p->events;
  bool late = parking().freezing;
  try {
    if (!late) {
      if (what != PyTrace_LINE) return 0;
      std::string why;
      if (p->no_park_file && PyObject_RichCompareBool(internals::frame_code(internals::interpreter_frame(
                                 frame))->co_filename, p->no_park_file.get(), Py_EQ) == 1) {
        p->why = "inside threading.py";
        return 0;
      }
      if (!snapshot::capture_stack(frame, p->base_code.get(), false, why, false, p->base_is_caller)) {
        p->why = why;
        return 0;
      }
      p->why.clear();
      if (--p->countdown > 0) return 0;
      p->frames = snapshot::capture_stack(frame, p->base_code.get(), true, why, false, p->base_is_caller);
    }
  } catch (const Error& e) {
    PyEval_SetTrace(nullptr, nullptr);
    raise_python(e);
    return -1;
  }
  Ref keep = Ref::borrow(capsule);  // thaw() drops the registry's reference while we wait
  if (!late && p->on_reached && p->on_reached.get() != Py_None) {
    Ref done = Ref::steal(PyObject_CallNoArgs(p->on_reached.get()));
    if (!done) PyErr_WriteUnraisable(p->on_reached.get());
  }
  park_here(p);
  PyEval_SetTrace(nullptr, nullptr);  // thawed: run on untraced, as before the request
  return 0;
}

// A capsule that owns `p` (deleted with the capsule), named `name` (a string literal).
template <typename T, const char* const& Name>
Ref owned_capsule(T* p) {
  Ref capsule = Ref::steal(PyCapsule_New(p, Name, [](PyObject* c) {
    delete static_cast<T*>(PyCapsule_GetPointer(c, Name));
  }));
  if (!capsule) {
    delete p;
    throw Error::python();
  }
  return capsule;
}

PyThreadState* thread_state(unsigned long ident) {
  if (ident == PyThread_get_thread_ident()) return PyThreadState_Get();
  // Thread states are added and removed with the GIL held, which we hold: the list is stable. A
  // thread that was created but has not started yet carries its creator's ident until it starts
  // (Modules/_threadmodule.c t_bootstrap), and no frame: skip those.
  for (PyThreadState* ts = PyInterpreterState_ThreadHead(PyInterpreterState_Get()); ts;
       ts = PyThreadState_Next(ts))
    if (ts->thread_id == ident && internals::current_interpreter_frame(ts)) return ts;
  return nullptr;
}

struct Replay {
  Ref frames;
  Ref then;    // then(innermost frame), once that frame is rebuilt (next trigger, debugger), or None
  Ref before;  // before(), once, when the first record's frame is entered, before it is rebuilt
  Ref caller;  // the code that calls the first record's frame (a thread's bootstrap), or empty
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
    Ref back = Ref::steal(reinterpret_cast<PyObject*>(PyFrame_GetBack(frame)));
    if (r->next > 0) {
      if (back.get() != r->restored.back().get()) return 0;  // not called by the last rebuilt frame
    } else if (r->caller) {
      if (!back || reinterpret_cast<PyObject*>(internals::frame_code(internals::interpreter_frame(
                       reinterpret_cast<PyFrameObject*>(back.get())))) != r->caller.get())
        return 0;  // still in the thread's bootstrap
    }
    // Not the frame of this record (for a thread: _bootstrap_inner's calls before run()). A
    // record whose code changed is caught by frame_matches (same name and place, other bytecode).
    if (!restore::frame_matches(frame, record)) return 0;
    if (r->next == 0 && r->before && r->before.get() != Py_None) {
      Ref done = Ref::steal(PyObject_CallNoArgs(r->before.get()));
      if (!done) throw Error::python();
    }
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

PyObject* arm_thread(PyObject*, PyObject* args, PyObject* kwargs) {
  return guarded([&]() -> Ref {
    static const char* kw[] = {"thread_id", "base_code", "base_is_caller", "countdown", "on_reached",
                               "no_park_file", nullptr};
    unsigned long ident;
    PyObject *base, *on_reached = Py_None, *no_park_file = Py_None;
    int base_is_caller = 0;
    long countdown = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "kO!|plOO:arm_thread", const_cast<char**>(kw), &ident,
                                     &PyCode_Type, &base, &base_is_caller, &countdown, &on_reached,
                                     &no_park_file))
      throw Error::python();
    if (countdown < 1) throw Error(ErrorCode::Internal, "the safe point count starts at 1");
    Parking& g = parking();
    if (g.armed.count(ident)) return Ref::borrow(Py_False);
    PyThreadState* target = thread_state(ident);
    if (!target) throw Error(ErrorCode::Internal, "no Python thread " + std::to_string(ident));
    auto* p = new Park{ident, Ref::borrow(base), base_is_caller != 0, countdown, Ref::borrow(on_reached),
                       no_park_file == Py_None ? Ref() : Ref::borrow(no_park_file)};
    Ref capsule = owned_capsule<Park, kParkName>(p);
    // _PyEval_SetTrace (exported, cpython/ceval.h) switches that thread to the tracing path at its
    // next instruction, even while it is blocked in C (CPYTHON311.md section 4).
    if (_PyEval_SetTrace(target, park_trace, capsule.get()) < 0) throw Error::python();
    g.armed[ident] = capsule;
    return Ref::borrow(Py_True);
  });
}

PyObject* park_states(PyObject*, PyObject*) {
  return guarded([&]() -> Ref {
    Ref out = Ref::steal(PyDict_New());
    if (!out) throw Error::python();
    for (auto& [ident, capsule] : parking().armed) {
      auto* p = static_cast<Park*>(PyCapsule_GetPointer(capsule.get(), kParkName));
      Ref key = Ref::steal(PyLong_FromUnsignedLong(ident));
      Ref value = Ref::steal(Py_BuildValue("(OOls#)", p->parked ? Py_True : Py_False,
                                           p->frames ? p->frames.get() : Py_None, p->events,
                                           p->why.data(), Py_ssize_t(p->why.size())));
      if (!key || !value || PyDict_SetItem(out.get(), key.get(), value.get()) < 0) throw Error::python();
    }
    return out;
  });
}

PyObject* settle(PyObject*, PyObject* arg) {
  return guarded([&]() -> Ref {
    double seconds = PyFloat_AsDouble(arg);
    if (seconds < 0 && PyErr_Occurred()) throw Error::python();
    if (stasis_internals_gil_wanted_within(long(seconds * 1e6))) return Ref::borrow(Py_False);
    parking().freezing = true;  // no Python code ran since the watch: nothing moved
    return Ref::borrow(Py_True);
  });
}

PyObject* asend_parts(PyObject*, PyObject* obj) {
  return guarded([&]() -> Ref {
    PyObject *gen, *sendval;
    int state;
    if (!stasis_internals_asend_parts(obj, &gen, &sendval, &state))
      throw Error(ErrorCode::Internal, "not an async_generator_asend object");
    return Ref::steal(Py_BuildValue("(OOi)", gen ? gen : Py_None, sendval ? sendval : Py_None, state));
  });
}

PyObject* thread_context_value(PyObject*, PyObject* args) {
  return guarded([&]() -> Ref {
    unsigned long ident;
    PyObject* name;
    if (!PyArg_ParseTuple(args, "kU:thread_context_value", &ident, &name)) throw Error::python();
    PyThreadState* ts = thread_state(ident);
    if (!ts || !ts->context) return Ref::borrow(Py_None);
    Ref context = Ref::borrow(ts->context);  // immutable (a HAMT): safe to read from here
    Ref keys = Ref::steal(PyObject_GetIter(context.get()));
    if (!keys) throw Error::python();
    while (Ref var = Ref::steal(PyIter_Next(keys.get()))) {
      Ref var_name = Ref::steal(PyObject_GetAttrString(var.get(), "name"));
      if (!var_name) throw Error::python();
      if (PyObject_RichCompareBool(var_name.get(), name, Py_EQ) == 1) {
        Ref value = Ref::steal(PyObject_GetItem(context.get(), var.get()));
        if (!value) throw Error::python();
        return value;
      }
    }
    if (PyErr_Occurred()) throw Error::python();
    return Ref::borrow(Py_None);
  });
}

PyObject* thread_states(PyObject*, PyObject*) {
  return guarded([&]() -> Ref {
    Ref out = Ref::steal(PyList_New(0));
    if (!out) throw Error::python();
    for (PyThreadState* ts = PyInterpreterState_ThreadHead(PyInterpreterState_Get()); ts;
         ts = PyThreadState_Next(ts)) {
      Ref item = Ref::steal(Py_BuildValue("(kO)", ts->thread_id,
                                          internals::current_interpreter_frame(ts) ? Py_True : Py_False));
      if (!item || PyList_Append(out.get(), item.get()) < 0) throw Error::python();
    }
    return out;
  });
}

PyObject* freeze(PyObject*, PyObject*) {
  return guarded([&]() -> Ref {
    parking().freezing = true;
    return Ref::borrow(Py_None);
  });
}

PyObject* thaw(PyObject*, PyObject*) {
  return guarded([&]() -> Ref {
    Parking& g = parking();
    std::map<unsigned long, Ref> armed;
    armed.swap(g.armed);
    g.freezing = false;
    for (auto& [ident, capsule] : armed) {
      auto* p = static_cast<Park*>(PyCapsule_GetPointer(capsule.get(), kParkName));
      if (p->parked) continue;  // disarms itself when it wakes
      PyThreadState* ts = thread_state(ident);
      if (ts && ts->c_traceobj == capsule.get() && _PyEval_SetTrace(ts, nullptr, nullptr) < 0)
        throw Error::python();
    }
    {
      std::lock_guard<std::mutex> l(g.mutex);
      ++g.epoch;
    }
    g.wake.notify_all();
    return Ref::borrow(Py_None);
  });
}

PyObject* capture_stack(PyObject*, PyObject* args) {
  return guarded([&]() -> Ref {
    PyObject *frame, *base;
    int in_call = 0, base_is_caller = 0;
    if (!PyArg_ParseTuple(args, "O!O!|pp:capture_stack", &PyFrame_Type, &frame, &PyCode_Type, &base,
                          &in_call, &base_is_caller))
      throw Error::python();
    std::string why;
    Ref frames = snapshot::capture_stack(reinterpret_cast<PyFrameObject*>(frame), base, true, why,
                                         in_call != 0, base_is_caller != 0);
    if (!frames) throw Error(ErrorCode::NotSuspendable, "not at a safe point: " + why);
    return frames;
  });
}

PyObject* replay(PyObject*, PyObject* args, PyObject* kwargs) {
  return guarded([&]() -> Ref {
    static const char* kw[] = {"entry", "globals", "frames", "then", "before", "caller_code", nullptr};
    PyObject *entry, *globals, *frames, *then = Py_None, *before = Py_None, *caller = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO!|OOO:replay", const_cast<char**>(kw), &entry,
                                     &globals, &PyList_Type, &frames, &then, &before, &caller))
      throw Error::python();
    if (PyList_GET_SIZE(frames) == 0) throw Error(ErrorCode::CorruptSnapshot, "no frames to rebuild");
    bool run_code = PyCode_Check(entry);
    if (run_code && !PyDict_Check(globals)) throw Error(ErrorCode::Internal, "replay of code needs globals");
    if (!run_code && entry != Py_None) throw Error(ErrorCode::Internal, "replay entry: code or None");
    auto* r = new Replay{Ref::borrow(frames), Ref::borrow(then), Ref::borrow(before),
                         caller == Py_None ? Ref() : Ref::borrow(caller)};
    Ref capsule = owned_capsule<Replay, kReplayName>(r);
    PyEval_SetTrace(replay_trace, capsule.get());
    // A thread's bootstrap is called by the caller, not from here: a daemon thread still running
    // at interpreter exit is ended by pthread_exit, which must not unwind through C++ frames.
    if (!run_code) return Ref::borrow(Py_None);
    Ref result = Ref::steal(PyEval_EvalCode(entry, globals, globals));
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
