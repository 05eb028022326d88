#define PY_SSIZE_T_CLEAN
#include "snapshot/safe_point.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
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
using Clock = std::chrono::steady_clock;
// A thread that poll() traced and that ran that long, traced, without reaching a safe point is
// untraced again (the tracing path costs 2.5-3.5x) and only sampled for a pause that doubles each
// time, from kPauseMin to kPauseMax: while a request waits the thread keeps at least about half
// its speed even where no safe point ever comes (watching, below, costs nothing).
constexpr std::chrono::milliseconds kTraceBudget{20};
constexpr std::chrono::milliseconds kPauseMin{20};
constexpr std::chrono::milliseconds kPauseMax{640};
// A watched thread whose innermost frame stood at the same instruction that long while another
// thread was parked is taken as waiting (in a join, a Condition, a Queue: maybe for the parked
// thread): see Parking::let_go.
constexpr std::chrono::milliseconds kStuck{20};

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
  // When poll() traced it, and its event count then (kTraceBudget); until when poll() only
  // samples it after a budget ran out, and the next pause.
  Clock::time_point traced_at{};
  long events_at_trace = 0;
  Clock::time_point paused_until{};
  std::chrono::milliseconds pause = kPauseMin;
  // Watching (core/cpython_internals.h LoopWatch): the thread runs untraced in code that a C call
  // of `top`'s eval loop entered (a callback of sorted(), a coroutine driven by send(), a generator
  // that sum() iterates), and the parking profile function (watch_profile) gets the loop's first
  // event when that call returns. `watch_lines`: the parking trace is on the thread too, for a
  // 'line' event of that loop (poll() adds it once the loop ran bytecode that called nothing).
  // `watch` is heap memory: the thread's loops point at its stand-in while it is on.
  std::unique_ptr<internals::LoopWatch> watch;
  bool watching = false;
  bool watch_lines = false;
  // Where poll() last saw the watched thread (innermost frame, instruction), and since when.
  _PyInterpreterFrame* seen_frame = nullptr;
  int seen_lasti = -1;
  Clock::time_point seen_since{};

  ~Park() {
    if (watching) (void)watch.release();  // a loop of a thread that never ended it may point at it
  }
};

// Shared by all armed threads; `armed` and the Park fields are only touched with the GIL held.
struct Parking {
  std::mutex mutex;
  std::condition_variable wake;
  unsigned long epoch = 0;  // bumped by thaw(); guarded by mutex
  unsigned long parks = 0;  // bumped by every thread that parks; guarded by mutex (wait_for_park)
  std::condition_variable parked;
  // How many armed threads are watched, and whether parked threads are let go; guarded by mutex,
  // and only changed with the GIL held (so a thread holding the GIL may read them without it).
  // While a thread is watched no capture can happen (the coordinator counts it as a blocker until
  // its watch ends). Other threads park meanwhile, ready for the moment it returns, unless it waits
  // while they are parked (poll() sees it stand still, kStuck): it may be waiting for them (it
  // joins them in a sort key, waits on a Condition they notify, reads a Queue they fill). Then
  // parked threads are let go (park_here) and no thread parks until that thread's watch ends
  // (`let_go_by`): they run on, untraced, and park at their next safe points after that.
  int watchers = 0;
  bool let_go = false;
  unsigned long let_go_by = 0;
  bool freezing = false;    // after the capture decision every event parks, safe point or not
  std::map<unsigned long, Ref> armed;  // thread ident -> capsule holding its Park
  std::vector<std::pair<Ref, long>> avoided;  // (code, offset) where a capture failed
};

Parking& parking() {
  static auto* p = new Parking();
  return *p;
}

Park* park_of(PyObject* capsule) { return static_cast<Park*>(PyCapsule_GetPointer(capsule, kParkName)); }

void count_watcher(Park* p, int delta) {
  Parking& g = parking();
  std::lock_guard<std::mutex> l(g.mutex);
  g.watchers += delta;
  if (g.watchers == 0 || (delta < 0 && g.let_go_by == p->ident)) g.let_go = false;
}

// Watched thread `p` stands still while others are parked: they go on (park_here), no thread
// parks until its watch ends.
void let_go(Park* p) {
  Parking& g = parking();
  {
    std::lock_guard<std::mutex> l(g.mutex);
    if (g.let_go) return;
    g.let_go = true;
    g.let_go_by = p->ident;
  }
  g.wake.notify_all();
}

// Whether a thread that reached a safe point must not park there (Parking::let_go). GIL held.
bool letting_go() { return parking().let_go && !parking().freezing; }

Park* armed_park(unsigned long ident) {
  auto it = parking().armed.find(ident);
  return it == parking().armed.end() ? nullptr : park_of(it->second.get());
}


int park_trace(PyObject* capsule, PyFrameObject* frame, int what, PyObject* arg);
int watch_profile(PyObject* capsule, PyFrameObject* frame, int what, PyObject* arg);

// _PyEval_SetTrace (exported, cpython/ceval.h) switches that thread to the tracing path at its next
// instruction, even while it is blocked in C (CPYTHON311.md section 4), or back.
void install(Park* p, PyThreadState* ts) {
  if (internals::thread_trace_function(ts) != park_trace) {
    p->program_func = internals::thread_trace_function(ts);
    PyObject* obj = internals::thread_trace_object(ts);
    p->program_obj = obj ? Ref::borrow(obj) : Ref();
  }
  if (internals::set_thread_trace(ts, park_trace, p->capsule) < 0) throw Error::python();
  p->traced = true;
  p->top = nullptr;
}

void uninstall(Park* p, PyThreadState* ts) {
  p->traced = false;
  p->escalated = false;
  p->top = nullptr;
  if (internals::thread_trace_function(ts) == park_trace && internals::thread_trace_object(ts) == p->capsule &&
      internals::set_thread_trace(ts, p->program_func, p->program_obj.get()) < 0)
    throw Error::python();
}

// Traced by poll() (not by arm(): a thread that armed itself, a counting one, a retry): the budget
// starts now.
void install_by_poll(Park* p, PyThreadState* ts, _PyInterpreterFrame* top, bool escalated) {
  install(p, ts);
  p->top = top;
  p->escalated = escalated;
  p->traced_at = Clock::now();
  p->events_at_trace = p->events;
}

// --- watching ---------------------------------------------------------------------------------

// Whether the thread can be watched: it carries no trace or profile function (the program's own,
// or ours), so that the loops a C call enters run untraced.
bool can_watch(Park* p, PyThreadState* ts) {
  return !p->counting && !parking().freezing && !internals::thread_trace_function(ts) &&
         !internals::thread_profile_function(ts);
}

// Whether the loop that runs `frame` has a loop above it (a C call of it entered Python code).
bool watchable(PyThreadState* ts, _PyInterpreterFrame* frame) {
  return internals::loop_has_loop_above(ts, frame);
}

// Watches the loop that runs `resumable` (the innermost frame whose stack below is resumable; the
// loop's innermost frame may be above it). GIL held, `ts` another thread, stopped.
bool start_watch(Park* p, PyThreadState* ts, _PyInterpreterFrame* resumable) {
  if (!p->watch) p->watch = std::make_unique<internals::LoopWatch>();
  if (!internals::begin_watch(ts, resumable, *p->watch)) return false;
  internals::set_thread_profile_only(ts, watch_profile, p->capsule);
  internals::untrace_loops_above(ts, *p->watch);  // loops entered while the thread was traced
  p->watching = true;
  p->watch_lines = false;
  p->top = resumable;
  p->seen_frame = nullptr;
  p->seen_since = {};
  count_watcher(p, +1);
  return true;
}

// Ends the watch: our profile (and trace) functions off, the thread's loops as before. On the
// thread at one of its events, or from the coordinator with the thread stopped.
void stop_watch(Park* p, PyThreadState* ts) {
  if (!p->watching) return;
  if (internals::thread_profile_function(ts) == watch_profile) internals::set_thread_profile_only(ts, nullptr, nullptr);
  if (p->watch_lines && internals::thread_trace_function(ts) == park_trace)
    internals::set_thread_trace_only(ts, nullptr, nullptr);
  internals::end_watch(ts, *p->watch);
  p->watching = false;
  p->watch_lines = false;
  count_watcher(p, -1);
}

// ------------------------------------------------------------------------------------------------

// Waits (without the GIL) until thaw(): true. A `releasable` park (at a safe point, not after the
// capture decision) also ends when parked threads are let go (Parking::let_go): false, the thread
// is no longer parked and runs on. Woken by a let-go that ended again (no thread watched any more)
// before it had the GIL back, it has not moved since its capture and parks on where it is.
bool park_here(Park* p, bool releasable) {
  Parking& g = parking();
  unsigned long epoch;
  {
    std::lock_guard<std::mutex> l(g.mutex);
    epoch = g.epoch;
    ++g.parks;
  }
  p->parked = true;
  g.parked.notify_all();
  for (;;) {
    bool thawed;
    Py_BEGIN_ALLOW_THREADS
    {  // the mutex is let go before the GIL is taken back: GIL holders take it (count_watcher)
      std::unique_lock<std::mutex> l(g.mutex);
      g.wake.wait(l, [&] { return g.epoch != epoch || (releasable && g.let_go); });
      thawed = g.epoch != epoch;
    }
    Py_END_ALLOW_THREADS
    if (thawed) return true;
    if (letting_go()) {
      p->parked = false;
      p->frames = Ref();
      p->why = "let go: another thread waits in code called from C, maybe for this one";
      return false;
    }
  }
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

// The innermost frame below `f` whose stack below is resumable (it can become a safe point at its
// next 'line' event), or null.
_PyInterpreterFrame* resumable_below(_PyInterpreterFrame* f, const StackBase& base) {
  for (_PyInterpreterFrame* below = internals::calling_complete_frame(f); below;
       below = internals::calling_complete_frame(below))
    if (stack_blocker(below, base, TopState::Running).empty()) return below;
  return nullptr;
}

// The thread's stack cannot become a safe point from here. A counting thread only switches off
// 'line' events in this frame; another stays traced, waiting for the frames above the innermost
// resumable one below to return to it (within its budget: poll() watches it instead where it can),
// or without such a frame goes off the trace (the coordinator's next sample looks again).
void blocked(Park* p, PyFrameObject* frame, std::string why) {
  p->why = std::move(why);
  if (p->escalated) return;  // waiting for those frames to return
  if (p->counting) {
    if (!p->program_func) internals::set_frame_line_events(frame, false);
    return;
  }
  if (_PyInterpreterFrame* below = resumable_below(internals::interpreter_frame(frame), p->base())) {
    p->top = below;
    p->escalated = true;
    if (p->traced_at == Clock::time_point{}) {
      p->traced_at = Clock::now();
      p->events_at_trace = p->events;
    }
    return;
  }
  uninstall(p, PyThreadState_Get());
}

bool is_avoided(PyObject* code, long offset) {
  for (const auto& [c, o] : parking().avoided)
    if (c.get() == code && o == offset) return true;
  return false;
}

bool is_avoided(_PyInterpreterFrame* f) {
  if (parking().avoided.empty()) return false;
  return is_avoided(reinterpret_cast<PyObject*>(internals::frame_code(f)),
                    internals::frame_lasti(f) * long(internals::kCodeUnitBytes));
}

// Counts a safe point reached with `frames` captured; at the last one parks (and returns true once
// thawed; false when let go, park_here: it then parks at a later safe point, counting no further).
bool reach(Park* p, PyObject* capsule, Ref frames) {
  p->why.clear();
  if (--p->countdown > 0) return false;
  p->countdown = 1;
  p->frames = std::move(frames);
  Ref keep = Ref::borrow(capsule);  // thaw() drops the registry's reference while we wait
  if (p->on_reached && p->on_reached.get() != Py_None) {
    Ref on_reached = std::move(p->on_reached);  // once: a park let go must not start it again
    Ref done = Ref::steal(PyObject_CallNoArgs(on_reached.get()));
    if (!done) PyErr_WriteUnraisable(on_reached.get());
  }
  return park_here(p, true);
}

// At what would be its last safe point while parked threads are let go (Parking::let_go): the
// thread does not park. A thread counting safe points stays traced (no coordinator samples it yet);
// another runs on untraced, and poll() traces it again once no thread is watched.
bool declined(Park* p) {
  if (p->countdown > 1 || !letting_go()) return false;
  p->why = "not parked: another thread waits in code called from C, maybe for this one";
  if (!p->counting) uninstall(p, PyThreadState_Get());
  return true;
}

// Reached a safe point: count it, and at the last one capture the stack and park.
int at_safe_point(Park* p, PyObject* capsule, _PyInterpreterFrame* f, PyFrameObject* frame) {
  if (declined(p)) return 0;
  std::string why;
  Ref frames = p->countdown > 1 ? Ref::borrow(Py_None) : capture_stack(f, p->base(), TopState::AtLine, why);
  if (!frames) {  // the chain changed under a stale `top`: look again from scratch
    p->top = nullptr;
    blocked(p, frame, why);
    return 0;
  }
  // Thawed: run on as before. Let go: run on untraced until poll() traces it again (a counting
  // thread stays traced).
  if (reach(p, capsule, std::move(frames)) || !p->counting) uninstall(p, PyThreadState_Get());
  return 0;
}

// At a profile 'c_call' event of `f`, the frame the watch was waiting for: the call has not
// started, so its stack is recorded there as for a call blocked in C, which replay issues again.
// False when it cannot be (the caller then lets the thread run on untraced).
bool at_call(Park* p, PyObject* capsule, _PyInterpreterFrame* f) {
  if (in_no_park_file(p, f) || is_stasis_code(f) || declined(p)) return false;
  Ref handled = Ref::steal(PyErr_GetHandledException());
  if (handled && handled.get() != Py_None) {
    p->why = "a call inside an exception handler";
    return false;
  }
  std::string why;
  Ref frames = capture_stack(f, p->base(), TopState::InCall, why);
  if (!frames) {
    p->why = why;
    return false;
  }
  if (!parking().avoided.empty()) {
    PyObject* last = PyList_GET_ITEM(frames.get(), PyList_GET_SIZE(frames.get()) - 1);
    PyObject* offset = PyDict_GetItemString(last, format::program::field::offset);
    if (offset && is_avoided(PyDict_GetItemString(last, format::program::field::code), PyLong_AsLong(offset)))
      return false;
  }
  reach(p, capsule, std::move(frames));
  return true;
}

// One trace event of the program's thread, once the program's own trace function had it.
int on_event(Park* p, PyObject* capsule, PyFrameObject* frame, int what) {
  _PyInterpreterFrame* f = internals::interpreter_frame(frame);
  if (parking().freezing) {
    park_here(p, false);
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
        p->escalated = false;
      }
      return 0;
    }
    case PyTrace_RETURN:
      if (f == p->top) {
        p->top = internals::calling_complete_frame(f);
        p->escalated = false;
      }
      return 0;
    case PyTrace_LINE: {
      if (f != p->top && p->escalated) return 0;
      if (f != p->top) {
        std::string why = stack_blocker(f, p->base(), TopState::Running);
        if (!why.empty()) return blocked(p, frame, std::move(why)), 0;
        p->top = f;
      }
      p->escalated = false;
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
}

// Stasis failed here: leave the thread as it was before the request, and say why in its state (the
// coordinator reports it); the program's code never sees the error.
void failed(Park* p, const Error& e) {
  if (e.code() == ErrorCode::PythonError) PyErr_Clear();
  p->why = std::string("internal error while looking for a safe point: ") + e.what();
  try {
    PyThreadState* ts = PyThreadState_Get();
    stop_watch(p, ts);
    uninstall(p, ts);
  } catch (const Error&) {
    PyErr_Clear();
  }
}

// The watched loop's first event: the watch ends there. A C call by the frame the watch waited
// for is a safe point (at_call); otherwise, the thread is traced from here on as poll() would
// have traced it (the frames above `top` in that loop, if any, being waited for), except before
// another C call, whose callbacks would then run traced: the thread is then left to poll().
int watch_fired(Park* p, PyObject* capsule, PyFrameObject* frame, int what) {
  PyThreadState* ts = PyThreadState_Get();
  _PyInterpreterFrame* top = p->top;
  stop_watch(p, ts);
  ++p->events;
  _PyInterpreterFrame* f = internals::interpreter_frame(frame);
  if (what == PyTrace_C_CALL) {
    if (f == top) at_call(p, capsule, f);
    p->top = nullptr;
    return 0;
  }
  if (what == PyTrace_C_RETURN || what == PyTrace_C_EXCEPTION) what = -1;  // not one of on_event's
  install_by_poll(p, ts, top, f != top);
  return on_event(p, capsule, frame, what);
}

int watch_profile(PyObject* capsule, PyFrameObject* frame, int what, PyObject*) {
  Park* p = park_of(capsule);
  if (!p) return -1;
  Ref keep = Ref::borrow(capsule);
  try {
    if (!p->watching || !internals::watch_fired(PyThreadState_Get(), *p->watch)) return 0;  // another loop
    return watch_fired(p, capsule, frame, what);
  } catch (const Error& e) {
    failed(p, e);
    return 0;
  }
}

int park_trace(PyObject* capsule, PyFrameObject* frame, int what, PyObject* arg) {
  Park* p = park_of(capsule);
  if (!p) return -1;
  Ref keep = Ref::borrow(capsule);
  if (p->watching) {
    // Watching with 'line' events: only the watched loop's count (an exception raised in a loop
    // above it calls the trace function too).
    try {
      if (!internals::watch_fired(PyThreadState_Get(), *p->watch)) return 0;
      return watch_fired(p, capsule, frame, what);
    } catch (const Error& e) {
      failed(p, e);
      return 0;
    }
  }
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
      if (p->traced && internals::set_thread_trace(ts, park_trace, capsule) < 0) return -1;
    }
    if (rc != 0) return rc;
    if (!p->traced) return 0;
  }
  try {
    return on_event(p, capsule, frame, what);
  } catch (const Error& e) {
    failed(p, e);
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
  while (f && internals::frame_incomplete(f)) f = internals::calling_frame(f);
  return f;
}

// poll() for a watching thread: the watch stays on (it costs the thread nothing) unless the
// program put a profile function of its own on the thread meanwhile (cProfile's enable(): the
// watched loop's events are then its, so the watch ends here). Once the watched loop has run
// bytecode without an event (an inline loop that calls nothing, or calls only a class or an
// operator), its 'line' events are wanted too: the parking trace goes on, and any loop above that
// an exception raised there made trace itself is untraced again.
void poll_watching(Park* p, PyThreadState* ts) {
  if (internals::thread_profile_function(ts) != watch_profile) {
    stop_watch(p, ts);
    return;
  }
  if (!p->watch_lines && !internals::thread_trace_function(ts) && internals::watched_loop_ran(*p->watch)) {
    internals::set_thread_trace_only(ts, park_trace, p->capsule);
    p->watch_lines = true;
  }
  if (p->watch_lines && internals::thread_trace_function(ts) == park_trace)
    internals::untrace_loops_above(ts, *p->watch);
}

// poll() for a thread it traced: untraced again (and paused) once it ran its budget, traced, without
// reaching a safe point. A thread that sent no event meanwhile is blocked in a call and costs
// nothing traced (the coordinator may take its stack as it is there).
void poll_traced(Park* p, PyThreadState* ts) {
  if (p->counting || p->traced_at == Clock::time_point{} || p->skip_depth > 0) return;
  Clock::time_point now = Clock::now();
  if (now - p->traced_at < kTraceBudget || p->events == p->events_at_trace) return;
  uninstall(p, ts);
  p->traced_at = {};
  p->paused_until = now + p->pause;
  p->pause = std::min(p->pause * 2, kPauseMax);
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
  Clock::time_point now = Clock::now();
  bool any_parked = false;
  for (auto& [ident, capsule] : g.armed) any_parked = any_parked || park_of(capsule.get())->parked;
  for (auto& [ident, capsule] : g.armed) {
    Park* p = park_of(capsule.get());
    if (!p || p->parked) continue;
    PyThreadState* ts = internals::find_thread_state(ident);
    if (!ts) continue;
    if (p->watching) {
      poll_watching(p, ts);
      if (p->watching) {
        // Standing still while others are parked (blocked in a call, not running Python code): it
        // may wait for a parked thread.
        _PyInterpreterFrame* f = innermost_complete(ts);
        int lasti = f ? internals::frame_lasti(f) : -1;
        if (!any_parked || f != p->seen_frame || lasti != p->seen_lasti || p->seen_since == Clock::time_point{}) {
          p->seen_frame = f;
          p->seen_lasti = lasti;
          p->seen_since = now;
        } else if (now - p->seen_since >= kStuck) {
          let_go(p);
        }
        continue;
      }
    }
    if (p->traced) {
      poll_traced(p, ts);
      if (p->traced && !(p->escalated && p->top && !p->program_func && !internals::thread_profile_function(ts) &&
                         watchable(ts, p->top)))
        continue;
      if (p->traced) uninstall(p, ts);  // waiting for a return into a loop that can be watched instead
    }
    _PyInterpreterFrame* top = innermost_complete(ts);
    if (!top) continue;
    // The thread holds no GIL now: it stands between two instructions of `top` (or is blocked in a
    // call), so the frames below `top` are suspended in their calls and can be judged.
    std::string why = stack_blocker(top, p->base(), TopState::Running);
    // While parked threads are let go no thread parks (Parking::let_go): tracing this one would
    // only slow it down. It is traced again at the first poll after the watch.
    bool paused = now < p->paused_until || g.let_go;
    if (why.empty()) {
      if (!paused) install_by_poll(p, ts, top, false);
      else if (g.let_go) p->why = "not parked: another thread waits in code called from C, maybe for this one";
      continue;
    }
    p->why = std::move(why);
    // Its safe points may only come in short moments that samples miss: between two send()s of a
    // coroutine driven from C, after sorted() called its key function for the last time. Watch
    // the loop of the innermost resumable frame below: the thread runs on untraced, and the first
    // event of that loop comes when it gets control back. When that loop is the innermost one (the
    // frames above run in it, called inline), trace the thread instead, waiting for them to return.
    if (_PyInterpreterFrame* below = resumable_below(top, p->base())) {
      if (can_watch(p, ts) && start_watch(p, ts, below)) continue;
      if (!paused) install_by_poll(p, ts, below, true);
    }
  }
}

Ref states() {
  Ref out = Ref::steal(PyDict_New());
  if (!out) throw Error::python();
  for (auto& [ident, capsule] : parking().armed) {
    Park* p = park_of(capsule.get());
    Ref key = Ref::steal(PyLong_FromUnsignedLong(ident));
    // A watching thread is not reported as traced: it sends no events while it runs untraced, and
    // it cannot be blocked in a call that replay issues again (the call it waits in runs Python).
    Ref value = Ref::steal(Py_BuildValue("(OOls#OO)", p->parked ? Py_True : Py_False,
                                         p->frames ? p->frames.get() : Py_None, p->events, p->why.data(),
                                         Py_ssize_t(p->why.size()), p->traced ? Py_True : Py_False,
                                         p->watching ? Py_True : Py_False));
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
    if (PyThreadState* ts = internals::find_thread_state(ident)) {
      stop_watch(p, ts);
      install(p, ts);
    }
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
    if (PyThreadState* ts = internals::find_thread_state(ident)) {
      stop_watch(p, ts);
      uninstall(p, ts);
    } else if (p->watching) {
      // Its thread is gone (ended at interpreter exit without running its loops' ends): nothing
      // points at the stand-in any more, except memory of a thread that no longer runs.
      (void)p->watch.release();
      p->watching = false;
      count_watcher(p, -1);
    }
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
  while (internals::runtime_finalizing()) std::this_thread::sleep_for(std::chrono::seconds(1));
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
  if (internals::set_thread_trace(ts, park_trace, p->capsule) < 0) throw Error::python();
  p->skip_depth = 1;  // the sys.settrace wrapper calling this returns first
}

bool profile_is_ours() { return internals::thread_profile_function(PyThreadState_Get()) == watch_profile; }

void profile_replacing() {
  Park* p = armed_park(PyThread_get_thread_ident());
  if (p && p->watching) stop_watch(p, PyThreadState_Get());
}

}  // namespace stasis::snapshot::safe_point
