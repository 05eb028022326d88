#define PY_SSIZE_T_CLEAN
#include "engine/program_api.h"

#include <string>

#include "core/cpython_internals.h"
#include "core/error.h"
#include "core/ref.h"
#include "engine/errors.h"
#include "restore/replay.h"
#include "snapshot/capture.h"
#include "snapshot/safe_point.h"

namespace stasis::engine {
namespace {


Ref none() { return Ref::borrow(Py_None); }

}  // namespace

PyObject* arm_thread(PyObject*, PyObject* args, PyObject* kwargs) {
  return guarded([&]() -> Ref {
    static const char* kw[] = {"thread_id", "base_code", "base_is_caller", "countdown", "on_reached",
                               "no_park_file", "now", nullptr};
    snapshot::safe_point::ArmRequest r{0, nullptr, false, 1, Py_None, Py_None, false};
    int base_is_caller = 0, now = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "kO!|plOOp:arm_thread", const_cast<char**>(kw), &r.ident,
                                     &PyCode_Type, &r.base_code, &base_is_caller, &r.countdown, &r.on_reached,
                                     &r.no_park_file, &now))
      throw Error::python();
    r.base_is_caller = base_is_caller != 0;
    r.now = now != 0;
    return Ref::borrow(snapshot::safe_point::arm(r) ? Py_True : Py_False);
  });
}

PyObject* poll_threads(PyObject*, PyObject*) {
  return guarded([&]() -> Ref {
    snapshot::safe_point::poll();
    return none();
  });
}

PyObject* wait_for_park(PyObject*, PyObject* arg) {
  return guarded([&]() -> Ref {
    double seconds = PyFloat_AsDouble(arg);
    if (seconds < 0 && PyErr_Occurred()) throw Error::python();
    snapshot::safe_point::wait_for_park(seconds);
    return none();
  });
}

PyObject* park_states(PyObject*, PyObject*) {
  return guarded([&]() -> Ref { return snapshot::safe_point::states(); });
}

PyObject* settle(PyObject*, PyObject* arg) {
  return guarded([&]() -> Ref {
    double seconds = PyFloat_AsDouble(arg);
    if (seconds < 0 && PyErr_Occurred()) throw Error::python();
    return Ref::borrow(snapshot::safe_point::settle(seconds) ? Py_True : Py_False);
  });
}

PyObject* freeze(PyObject*, PyObject*) {
  return guarded([&]() -> Ref {
    snapshot::safe_point::freeze();
    return none();
  });
}

PyObject* thaw(PyObject*, PyObject*) {
  return guarded([&]() -> Ref {
    snapshot::safe_point::thaw();
    return none();
  });
}

PyObject* avoid_parked_points(PyObject*, PyObject*) {
  return guarded([&]() -> Ref {
    snapshot::safe_point::avoid_parked_points();
    return none();
  });
}

PyObject* forget_avoided(PyObject*, PyObject*) {
  return guarded([&]() -> Ref {
    snapshot::safe_point::forget_avoided();
    return none();
  });
}

PyObject* program_trace(PyObject*, PyObject*) {
  return guarded([&]() -> Ref { return snapshot::safe_point::program_trace(); });
}

PyObject* trace_replaced(PyObject*, PyObject*) {
  return guarded([&]() -> Ref {
    snapshot::safe_point::trace_replaced();
    return none();
  });
}

PyObject* profile_is_ours(PyObject*, PyObject*) {
  return guarded([&]() -> Ref { return Ref::borrow(snapshot::safe_point::profile_is_ours() ? Py_True : Py_False); });
}

PyObject* profile_replacing(PyObject*, PyObject*) {
  return guarded([&]() -> Ref {
    snapshot::safe_point::profile_replacing();
    return none();
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
    PyThreadState* ts = internals::find_thread_state(ident);
    PyObject* current = ts ? internals::thread_context(ts) : nullptr;
    if (!current) return none();
    Ref context = Ref::borrow(current);  // immutable (a HAMT): safe to read from here
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
    return none();
  });
}

PyObject* thread_states(PyObject*, PyObject*) {
  return guarded([&]() -> Ref {
    Ref out = Ref::steal(PyList_New(0));
    if (!out) throw Error::python();
    for (PyThreadState* ts = PyInterpreterState_ThreadHead(PyInterpreterState_Get()); ts;
         ts = PyThreadState_Next(ts)) {
      Ref item = Ref::steal(Py_BuildValue("(kO)", internals::thread_ident(ts),
                                          internals::current_interpreter_frame(ts) ? Py_True : Py_False));
      if (!item || PyList_Append(out.get(), item.get()) < 0) throw Error::python();
    }
    return out;
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
    Ref frames = snapshot::capture_stack(internals::interpreter_frame(reinterpret_cast<PyFrameObject*>(frame)),
                                         {base, base_is_caller != 0},
                                         in_call ? snapshot::TopState::InCall : snapshot::TopState::AtLine, why);
    if (!frames) throw Error(ErrorCode::NotSuspendable, "not at a safe point: " + why);
    return frames;
  });
}

PyObject* replay(PyObject*, PyObject* args, PyObject* kwargs) {
  return guarded([&]() -> Ref {
    static const char* kw[] = {"entry", "globals", "frames", "then", "before", "caller_code", "on_error", nullptr};
    PyObject *entry, *globals, *frames;
    restore::ReplayRequest q{nullptr, Py_None, Py_None, Py_None, Py_None};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO!|OOOO:replay", const_cast<char**>(kw), &entry, &globals,
                                     &PyList_Type, &frames, &q.then, &q.before, &q.caller_code, &q.on_error))
      throw Error::python();
    q.frames = frames;
    if (entry == Py_None) {
      // A thread's bootstrap is called by the caller, not from here: a daemon thread still running
      // at interpreter exit is ended by pthread_exit, which must not unwind through C++ frames.
      restore::start_replay(q);
      return none();
    }
    Ref result = restore::replay_code(entry, globals, q);
    if (!result) throw Error::python();
    return result;
  });
}

}  // namespace stasis::engine
