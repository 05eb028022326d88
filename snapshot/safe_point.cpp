#define PY_SSIZE_T_CLEAN
#include "snapshot/safe_point.h"

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/cpython_internals.h"
#include "core/error.h"
#include "format/program_schema.h"
#include "snapshot/capture.h"

namespace stasis::snapshot::safe_point {
namespace {

constexpr const char* kParkName = "stasis.park";
// How long an armed thread is only sampled before it is traced while it waits for the frames that
// keep it from a safe point to return.
constexpr std::chrono::milliseconds kEscalateAfter{200};

// One armed thread. All fields are only touched with the GIL held.
struct Park {
  unsigned long ident;
  Ref base_code;
  bool base_is_caller;
  long countdown;    // safe points still to pass; the thread parks at the one that brings it to 0
  Ref on_reached;    // called with no arguments when the countdown ends (starts the coordinator)
  Ref no_park_file;  // never park with the innermost frame in this file (threading.py: its frames
                     // hold _active_limbo_lock and Condition locks other threads need to start)
  PyObject* capsule = nullptr;  // the capsule owning this Park (borrowed: the registry holds it)
  bool parked = false;
  bool traced = false;          // the parking trace is installed on the thread
  // The innermost frame known to sit on a resumable chain (its own position aside), kept up to date
  // by 'call' and 'return' events while traced; null when unknown.
  _PyInterpreterFrame* top = nullptr;
  // A thread that armed itself (stasis.suspend(), a signal handler) is inside Stasis's own frames
  // when it starts being traced: the events of those frames (and what they call) are not the
  // program's, and are ignored until they have returned.
  int skip_depth = 0;
  // The program's own trace function on this thread, called first with every event.
  Py_tracefunc program_func = nullptr;
  Ref program_obj;
  Ref frames;        // records captured at the safe point (None: parked late, see freeze())
  long events = 0;   // trace events seen: a thread whose count does not move is not running Python
  std::string why;   // why its latest look was not a safe point

  StackBase base() const { return {base_code.get(), base_is_caller}; }
  bool counting = false;  // counts safe points for --suspend-after: stays traced
  // Traced although the innermost frames cannot become a safe point, waiting for them to return
  // to `top` (see poll()): events of other frames are ignored.
  bool escalated = false;
  std::chrono::steady_clock::time_point armed_at = std::chrono::steady_clock::now();
};

// Shared by all armed threads; `armed` and the Park fields are only touched with the GIL held.
struct Parking {
  std::mutex mutex;
  std::condition_variable wake;
  unsigned long epoch = 0;  // bumped by thaw(); guarded by mutex
  unsigned long parks = 0;  // bumped by every thread that parks; guarded by mutex (wait_for_park)
  std::condition_variable parked;
  bool freezing = false;    // after the capture decision every event parks, safe point or not
  std::map<unsigned long, Ref> armed;  // thread ident -> capsule holding its Park
  std::vector<std::pair<Ref, long>> avoided;  // (code, offset) where a capture failed
};

Parking& parking() {
  static auto* p = new Parking();
  return *p;
}

Park* park_of(PyObject* capsule) { return static_cast<Park*>(PyCapsule_GetPointer(capsule, kParkName)); }

Park* armed_park(unsigned long ident) {
  auto it = parking().armed.find(ident);
  return it == parking().armed.end() ? nullptr : park_of(it->second.get());
}


int park_trace(PyObject* capsule, PyFrameObject* frame, int what, PyObject* arg);

// _PyEval_SetTrace (exported, cpython/ceval.h) switches that thread to the tracing path at its next
// instruction, even while it is blocked in C (CPYTHON311.md section 4), or back.
void install(Park* p, PyThreadState* ts) {
  if (internals::thread_trace_function(ts) != park_trace) {
    p->program_func = internals::thread_trace_function(ts);
    PyObject* obj = internals::thread_trace_object(ts);
    p->program_obj = obj ? Ref::borrow(obj) : Ref();
  }
  if (_PyEval_SetTrace(ts, park_trace, p->capsule) < 0) throw Error::python();
  p->traced = true;
  p->top = nullptr;
}

void uninstall(Park* p, PyThreadState* ts) {
  p->traced = false;
  p->escalated = false;
  p->top = nullptr;
  if (internals::thread_trace_function(ts) == park_trace && internals::thread_trace_object(ts) == p->capsule &&
      _PyEval_SetTrace(ts, p->program_func, p->program_obj.get()) < 0)
    throw Error::python();
}

void park_here(Park* p) {
  Parking& g = parking();
  unsigned long epoch;
  {
    std::lock_guard<std::mutex> l(g.mutex);
    epoch = g.epoch;
    ++g.parks;
  }
  p->parked = true;
  g.parked.notify_all();
  Py_BEGIN_ALLOW_THREADS
  std::unique_lock<std::mutex> l(g.mutex);
  g.wake.wait(l, [&] { return g.epoch != epoch; });
  Py_END_ALLOW_THREADS
}

// no_park_file is one file name or a tuple of them (program/freeze.py no_park_files says why each).
bool in_no_park_file(Park* p, _PyInterpreterFrame* f) {
  if (!p->no_park_file) return false;
  PyObject* file = internals::frame_code(f)->co_filename;
  if (file == p->no_park_file.get()) return true;
  int eq = PyTuple_Check(p->no_park_file.get()) ? PySequence_Contains(p->no_park_file.get(), file)
                                                 : PyObject_RichCompareBool(file, p->no_park_file.get(), Py_EQ);
  if (eq < 0) PyErr_Clear();
  return eq == 1;
}

// Whether the frame runs a function of Stasis's own package (module "stasis" or "stasis.*").
bool is_stasis_code(_PyInterpreterFrame* f) {
  PyObject* globals = internals::frame_globals(f);
  PyObject* name = globals && PyDict_CheckExact(globals) ? PyDict_GetItemString(globals, "__name__") : nullptr;
  if (!name || !PyUnicode_Check(name)) return false;
  Py_ssize_t n = 0;
  const char* s = PyUnicode_AsUTF8AndSize(name, &n);
  if (!s) {
    PyErr_Clear();
    return false;
  }
  return (n == 6 && std::strncmp(s, "stasis", 6) == 0) || (n > 7 && std::strncmp(s, "stasis.", 7) == 0);
}

// The thread's stack cannot become a safe point from here: off the thread (the coordinator's next
// sample looks again), or for a counting thread no more 'line' events in this frame.
void blocked(Park* p, PyFrameObject* frame, std::string why) {
  p->why = std::move(why);
  if (p->escalated) return;  // waiting for those frames to return
  if (p->counting) {
    if (!p->program_func) internals::set_frame_line_events(frame, false);
    return;
  }
  uninstall(p, PyThreadState_Get());
}

bool is_avoided(_PyInterpreterFrame* f) {
  const auto& avoided = parking().avoided;
  if (avoided.empty()) return false;
  PyObject* code = reinterpret_cast<PyObject*>(internals::frame_code(f));
  long offset = internals::frame_lasti(f) * long(sizeof(_Py_CODEUNIT));
  for (const auto& [c, o] : avoided)
    if (c.get() == code && o == offset) return true;
  return false;
}

// Reached a safe point: count it, and at the last one capture the stack and park.
int at_safe_point(Park* p, PyObject* capsule, _PyInterpreterFrame* f, PyFrameObject* frame) {
  p->why.clear();
  if (--p->countdown > 0) return 0;
  std::string why;
  Ref frames = capture_stack(f, p->base(), TopState::AtLine, why);
  if (!frames) {  // the chain changed under a stale `top`: look again from scratch
    ++p->countdown;
    p->top = nullptr;
    blocked(p, frame, why);
    return 0;
  }
  p->frames = frames;
  Ref keep = Ref::borrow(capsule);  // thaw() drops the registry's reference while we wait
  if (p->on_reached && p->on_reached.get() != Py_None) {
    Ref done = Ref::steal(PyObject_CallNoArgs(p->on_reached.get()));
    if (!done) PyErr_WriteUnraisable(p->on_reached.get());
  }
  park_here(p);
  uninstall(p, PyThreadState_Get());  // thawed: run on as before the request
  return 0;
}

int park_trace(PyObject* capsule, PyFrameObject* frame, int what, PyObject* arg) {
  Park* p = park_of(capsule);
  if (!p) return -1;
  Ref keep = Ref::borrow(capsule);
  ++p->events;
  if (p->program_func) {
    PyThreadState* ts = PyThreadState_Get();
    int rc = p->program_func(p->program_obj.get(), frame, what, arg);
    if (internals::thread_trace_function(ts) != park_trace || internals::thread_trace_object(ts) != capsule) {
      // The program's trace function took itself off (sysmodule.c trace_trampoline does on an
      // error) or put another one: that one is the program's now, and the parking trace goes back.
      p->program_func = internals::thread_trace_function(ts);
      PyObject* obj = internals::thread_trace_object(ts);
      p->program_obj = obj ? Ref::borrow(obj) : Ref();
      if (p->traced && _PyEval_SetTrace(ts, park_trace, capsule) < 0) return -1;
    }
    if (rc != 0) return rc;
    if (!p->traced) return 0;
  }
  try {
    _PyInterpreterFrame* f = internals::interpreter_frame(frame);
    if (parking().freezing) {
      park_here(p);
      uninstall(p, PyThreadState_Get());
      return 0;
    }
    if (p->skip_depth > 0) {
      if (what == PyTrace_CALL) ++p->skip_depth;
      else if (what == PyTrace_RETURN) --p->skip_depth;
      return 0;
    }
    switch (what) {
      case PyTrace_CALL: {
        // Generators resumed by a caller on the chain come here too, and are judged the same way.
        if (p->top && internals::calling_complete_frame(f) == p->top) {
          std::string why = callee_blocker(f, p->base());
          if (!why.empty() && is_stasis_code(f)) {
            p->skip_depth = 1;  // Stasis's own functions (sys.gettrace under Stasis): transparent
            return 0;
          }
          if (!why.empty()) return blocked(p, frame, std::move(why)), 0;
          p->top = f;
        }
        return 0;
      }
      case PyTrace_RETURN:
        if (f == p->top) p->top = internals::calling_complete_frame(f);
        return 0;
      case PyTrace_LINE: {
        if (f != p->top && p->escalated) return 0;
        if (f != p->top) {
          std::string why = stack_blocker(f, p->base(), TopState::Running);
          if (!why.empty()) return blocked(p, frame, std::move(why)), 0;
          p->top = f;
        }
        if (in_no_park_file(p, f)) {
          const char* name = PyUnicode_AsUTF8(internals::frame_code(f)->co_filename);
          if (!name) PyErr_Clear();
          p->why = std::string("inside ") + (name ? name : "a file no thread parks in");
          return 0;
        }
        std::string why = line_blocker(f);
        if (!why.empty()) {
          p->why = std::move(why);
          return 0;
        }
        if (is_avoided(f)) return 0;
        return at_safe_point(p, capsule, f, frame);
      }
      default:
        return 0;
    }
  } catch (const Error& e) {
    // Stasis failed here: leave the thread as it was before the request, and say why in its state
    // (the coordinator reports it); the program's code never sees the error.
    if (e.code() == ErrorCode::PythonError) PyErr_Clear();
    p->why = std::string("internal error while looking for a safe point: ") + e.what();
    try {
      uninstall(p, PyThreadState_Get());
    } catch (const Error&) {
      PyErr_Clear();
    }
    return 0;
  }
}

// A capsule that owns `p` (deleted with the capsule).
Ref owned_capsule(Park* p) {
  Ref capsule = Ref::steal(PyCapsule_New(p, kParkName, [](PyObject* c) { delete park_of(c); }));
  if (!capsule) {
    delete p;
    throw Error::python();
  }
  p->capsule = capsule.get();
  return capsule;
}

_PyInterpreterFrame* innermost_complete(PyThreadState* ts) {
  _PyInterpreterFrame* f = internals::current_interpreter_frame(ts);
  while (f && _PyFrame_IsIncomplete(f)) f = f->previous;
  return f;
}

}  // namespace

bool arm(const ArmRequest& r) {
  if (r.countdown < 1) throw Error(ErrorCode::Internal, "the safe point count starts at 1");
  Parking& g = parking();
  if (g.armed.count(r.ident)) return false;
  PyThreadState* ts = internals::find_thread_state(r.ident);
  if (!ts) throw Error(ErrorCode::Internal, "no Python thread " + std::to_string(r.ident));
  auto* p = new Park{r.ident, Ref::borrow(r.base_code), r.base_is_caller, r.countdown, Ref::borrow(r.on_reached),
                     r.no_park_file == Py_None ? Ref() : Ref::borrow(r.no_park_file)};
  Ref capsule = owned_capsule(p);
  // Without a coordinator to sample it (--suspend-after: on_reached starts the coordinator), the
  // thread stays traced until its safe point.
  p->counting = r.countdown > 1 || r.on_reached != Py_None;
  g.armed[r.ident] = capsule;
  if (r.ident == PyThread_get_thread_ident()) {
    install(p, ts);
    p->skip_depth = 1;  // the frame calling arm (and its callers in Stasis) returns first
  } else if (p->counting || g.freezing || r.now) {
    install(p, ts);
  }
  return true;
}

void poll() {
  Parking& g = parking();
  for (auto& [ident, capsule] : g.armed) {
    Park* p = park_of(capsule.get());
    if (!p || p->parked || p->traced) continue;
    PyThreadState* ts = internals::find_thread_state(ident);
    _PyInterpreterFrame* top = ts ? innermost_complete(ts) : nullptr;
    if (!top) continue;
    // The thread holds no GIL now: it stands between two instructions of `top` (or is blocked in a
    // call), so the frames below `top` are suspended in their calls and can be judged.
    std::string why = stack_blocker(top, p->base(), TopState::Running);
    if (why.empty()) {
      install(p, ts);
      p->top = top;
      continue;
    }
    p->why = std::move(why);
    // Its safe points may only come in short moments that samples miss (a coroutine driven by
    // send() from C, where all the work happens, returning to its caller now and then). After a
    // while, trace it until the frames above the innermost resumable one return to it: slower
    // (CPython's tracing path) while those frames run, but the request is honoured.
    if (std::chrono::steady_clock::now() - p->armed_at < kEscalateAfter) continue;
    for (_PyInterpreterFrame* below = internals::calling_complete_frame(top); below;
         below = internals::calling_complete_frame(below)) {
      if (!stack_blocker(below, p->base(), TopState::Running).empty()) continue;
      install(p, ts);
      p->top = below;
      p->escalated = true;
      break;
    }
  }
}

Ref states() {
  Ref out = Ref::steal(PyDict_New());
  if (!out) throw Error::python();
  for (auto& [ident, capsule] : parking().armed) {
    Park* p = park_of(capsule.get());
    Ref key = Ref::steal(PyLong_FromUnsignedLong(ident));
    Ref value = Ref::steal(Py_BuildValue("(OOls#O)", p->parked ? Py_True : Py_False,
                                         p->frames ? p->frames.get() : Py_None, p->events, p->why.data(),
                                         Py_ssize_t(p->why.size()), p->traced ? Py_True : Py_False));
    if (!key || !value || PyDict_SetItem(out.get(), key.get(), value.get()) < 0) throw Error::python();
  }
  return out;
}

bool settle(double seconds) {
  if (stasis_internals_gil_wanted_within(long(seconds * 1e6))) return false;
  freeze();  // no Python code ran since the watch: nothing moved
  return true;
}

void freeze() {
  Parking& g = parking();
  g.freezing = true;
  for (auto& [ident, capsule] : g.armed) {
    Park* p = park_of(capsule.get());
    if (p->parked || p->traced) continue;
    if (PyThreadState* ts = internals::find_thread_state(ident)) install(p, ts);
  }
}

void thaw() {
  Parking& g = parking();
  std::map<unsigned long, Ref> armed;
  armed.swap(g.armed);
  g.freezing = false;
  for (auto& [ident, capsule] : armed) {
    Park* p = park_of(capsule.get());
    if (p->parked) continue;  // disarms itself when it wakes
    if (PyThreadState* ts = internals::find_thread_state(ident)) uninstall(p, ts);
  }
  {
    std::lock_guard<std::mutex> l(g.mutex);
    ++g.epoch;
  }
  g.wake.notify_all();
}

void avoid_parked_points() {
  Parking& g = parking();
  for (auto& [ident, capsule] : g.armed) {
    Park* p = park_of(capsule.get());
    if (!p->parked || !p->frames || !PyList_Check(p->frames.get()) || PyList_GET_SIZE(p->frames.get()) == 0) continue;
    PyObject* top = PyList_GET_ITEM(p->frames.get(), PyList_GET_SIZE(p->frames.get()) - 1);
    PyObject* code = PyDict_Check(top) ? PyDict_GetItemString(top, format::program::field::code) : nullptr;
    PyObject* offset = PyDict_Check(top) ? PyDict_GetItemString(top, format::program::field::offset) : nullptr;
    if (code && offset && PyLong_Check(offset)) g.avoided.emplace_back(Ref::borrow(code), PyLong_AsLong(offset));
  }
}

void forget_avoided() { parking().avoided.clear(); }

void wait_for_park(double seconds) {
  Parking& g = parking();
  PyThreadState* saved = PyEval_SaveThread();
  {
    std::unique_lock<std::mutex> l(g.mutex);
    unsigned long parks = g.parks;
    g.parked.wait_for(l, std::chrono::duration<double>(seconds), [&] { return g.parks != parks; });
  }
  // The program may have ended meanwhile: taking the GIL back would then end this thread with
  // pthread_exit (ceval_gil.h take_gil), whose forced unwinding through the engine's noexcept
  // entry point aborts the process. A thread of Stasis waits for the process to end instead.
  while (_Py_IsFinalizing()) std::this_thread::sleep_for(std::chrono::seconds(1));
  PyEval_RestoreThread(saved);
}

Ref program_trace() {
  PyThreadState* ts = PyThreadState_Get();
  if (internals::thread_trace_function(ts) != park_trace) return Ref::steal(Py_BuildValue("(OO)", Py_False, Py_None));
  Park* p = park_of(internals::thread_trace_object(ts));
  if (!p) throw Error::python();
  PyObject* fn = p->program_obj ? p->program_obj.get() : Py_None;
  return Ref::steal(Py_BuildValue("(OO)", Py_True, fn));
}

void trace_replaced() {
  Park* p = armed_park(PyThread_get_thread_ident());
  if (!p || !p->traced) return;
  PyThreadState* ts = PyThreadState_Get();
  if (internals::thread_trace_function(ts) == park_trace) return;
  p->program_func = internals::thread_trace_function(ts);
  PyObject* obj = internals::thread_trace_object(ts);
  p->program_obj = obj ? Ref::borrow(obj) : Ref();
  if (_PyEval_SetTrace(ts, park_trace, p->capsule) < 0) throw Error::python();
  p->skip_depth = 1;  // the sys.settrace wrapper calling this returns first
}

}  // namespace stasis::snapshot::safe_point
