// core/cpython_internals.h — the ONLY header in Stasis that includes CPython internals.
// Each accessor names the CPython 3.11 source it depends on and whether it returns a borrowed or a
// new reference. A port to another CPython version should diff this file (and its C shim) only.
// Facts used here are verified in shared/design/CPYTHON311.md (section numbers in comments).
// Checked against CPython 3.11.2 (Debian 12, what `make test` runs) and 3.11.7 (pyenv): every
// accessor compiles against both header sets, which are identical for the structs used here
// (CPYTHON311.md §9). What a 3.12 port revisits is listed at the end of this file; the Python twin
// (bytecode, line and exception tables) is compiler_hooks/bytecode.py.
#pragma once

#include <Python.h>

#include <cstring>
#include <frameobject.h>

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030C0000
#error "Stasis supports CPython 3.11 only (frame layout, tracing and generator internals differ)"
#endif

// In 3.11 pycore_frame.h and pycore_code.h have no Py_BUILD_CORE guard and compile as C++17
// (CPYTHON311.md §2 "Headers and linking").
#include "internal/pycore_code.h"
#include "internal/pycore_frame.h"
#include "opcode.h"  // YIELD_VALUE (never specialised in 3.11, so the raw opcode is exact)

namespace stasis::internals {

// Objects/frameobject.c: struct _frame::f_frame. Borrowed; valid while the frame object lives.
inline _PyInterpreterFrame* interpreter_frame(PyFrameObject* frame) { return frame->f_frame; }

// Last executed instruction in code units (f_lasti == 2 * this). pycore_frame.h _PyInterpreterFrame_LASTI.
inline int last_instruction(PyFrameObject* frame) {
  return _PyInterpreterFrame_LASTI(frame->f_frame);
}

// Value-stack depth, or -1 while the frame is executing (stacktop == -1; CPYTHON311.md §5).
inline int stack_depth(PyFrameObject* frame) {
  _PyInterpreterFrame* f = frame->f_frame;
  int nlocalsplus = f->f_code->co_nlocalsplus;
  return f->stacktop >= nlocalsplus ? f->stacktop - nlocalsplus : -1;
}

// True when the frame was entered from C (sorted(key=), dunder slots, __init__ via type.__call__).
// pycore_frame.h _PyInterpreterFrame::is_entry (CPYTHON311.md §5, G12).
inline bool entered_from_c(PyFrameObject* frame) { return frame->f_frame->is_entry; }

// The innermost interpreter frame of a thread (cpython/pystate.h PyThreadState::cframe->current_frame;
// pycore_frame.h). Borrowed; walk outwards with ->previous. Valid while the GIL is held and the
// thread cannot run. The updater reads f_code and the last instruction of every frame of every
// thread without creating frame objects (CPYTHON311.md section 4).
inline _PyInterpreterFrame* current_interpreter_frame(PyThreadState* tstate) {
  return tstate->cframe ? tstate->cframe->current_frame : nullptr;
}

// The frame that called `frame` on the same thread (pycore_frame.h _PyInterpreterFrame::previous),
// or null at the bottom. Borrowed.
inline _PyInterpreterFrame* calling_frame(_PyInterpreterFrame* frame) { return frame->previous; }

// The frame that called `frame`, skipping frames that have not reached their first traceable
// instruction yet (pycore_frame.h _PyFrame_IsIncomplete; Objects/frameobject.c PyFrame_GetBack
// does the same), or null at the bottom. Borrowed; creates no frame object.
inline _PyInterpreterFrame* calling_complete_frame(_PyInterpreterFrame* frame) {
  _PyInterpreterFrame* prev = frame->previous;
  while (prev && _PyFrame_IsIncomplete(prev)) prev = prev->previous;
  return prev;
}
// Whether an interpreter frame was entered from C (pycore_frame.h is_entry; CPYTHON311.md §5, G12).
inline bool frame_entered_from_c(_PyInterpreterFrame* frame) { return frame->is_entry; }
// Whether the frame belongs to a generator, coroutine or async generator (pycore_frame.h owner).
inline bool frame_of_generator(_PyInterpreterFrame* frame) { return frame->owner == FRAME_OWNED_BY_GENERATOR; }
// The frame's globals (pycore_frame.h f_globals). Borrowed.
inline PyObject* frame_globals(_PyInterpreterFrame* frame) { return frame->f_globals; }

// A thread's trace function and its argument (cpython/pystate.h PyThreadState::c_tracefunc,
// c_traceobj; set by _PyEval_SetTrace, which is exported). Borrowed.
inline Py_tracefunc thread_trace_function(PyThreadState* ts) { return ts->c_tracefunc; }
inline PyObject* thread_trace_object(PyThreadState* ts) { return ts->c_traceobj; }
// The thread's ident (cpython/pystate.h PyThreadState::thread_id).
inline unsigned long thread_ident(PyThreadState* ts) { return ts->thread_id; }

// The thread state of the thread with `ident` that runs Python code, or null. Thread states are
// added and removed with the GIL held, which the caller holds: the list is stable. A thread that
// was created but has not started yet carries its creator's ident until it starts
// (Modules/_threadmodule.c t_bootstrap), and no frame: those are skipped.
inline PyThreadState* find_thread_state(unsigned long ident) {
  if (ident == PyThread_get_thread_ident()) return PyThreadState_Get();
  for (PyThreadState* ts = PyInterpreterState_ThreadHead(PyInterpreterState_Get()); ts; ts = PyThreadState_Next(ts))
    if (ts->thread_id == ident && current_interpreter_frame(ts)) return ts;
  return nullptr;
}
// The frame's builtins and (module and class bodies) locals dict; borrowed, may be null.
inline PyObject* frame_builtins(_PyInterpreterFrame* frame) { return frame->f_builtins; }
inline PyObject* frame_locals_dict(_PyInterpreterFrame* frame) { return frame->f_locals; }

// Source line of an interpreter frame's last instruction (pycore_frame.h _PyInterpreterFrame_LASTI).
inline int interpreter_frame_line(_PyInterpreterFrame* frame) {
  return PyCode_Addr2Line(frame->f_code, _PyInterpreterFrame_LASTI(frame) * int(sizeof(_Py_CODEUNIT)));
}

// Switches 'line' events of one frame off or on for C trace functions too (Objects/frameobject.c
// struct _frame::f_trace_lines, checked by ceval.c maybe_call_line_trace).
inline void set_frame_line_events(PyFrameObject* frame, bool on) { frame->f_trace_lines = on; }

// Code object of a generator, coroutine or async generator (cpython/genobject.h
// _PyGenObject_HEAD gi_code). Borrowed.
inline PyCodeObject* generator_code(PyObject* gen) { return ((PyGenObject*)gen)->gi_code; }

// Generator/coroutine frame state (cpython/genobject.h gi_frame_state; CPYTHON311.md §6):
// -2 created, -1 suspended, 0 executing, 1 completed, 4 cleared.
inline int generator_state(PyObject* gen) { return ((PyGenObject*)gen)->gi_frame_state; }

// --- Generators and coroutines rebuilt without running code (CPYTHON311.md §6, §11.3) ----------
// Include/cpython/genobject.h _PyGenObject_HEAD: the frame lives inline in gi_iframe. Borrowed.
inline _PyInterpreterFrame* generator_frame(PyObject* gen) {
  return reinterpret_cast<_PyInterpreterFrame*>(reinterpret_cast<PyGenObject*>(gen)->gi_iframe);
}
inline void set_generator_state(PyObject* gen, int state) {
  reinterpret_cast<PyGenObject*>(gen)->gi_frame_state = static_cast<int8_t>(state);
}
// pycore_frame.h _PyInterpreterFrame::f_func: the function the frame runs. Borrowed.
inline PyObject* frame_function(_PyInterpreterFrame* f) { return reinterpret_cast<PyObject*>(f->f_func); }
inline PyCodeObject* frame_code(_PyInterpreterFrame* f) { return f->f_code; }
// Locals, cells and free variables (co_nlocalsplus slots, NULL when unbound), then the value stack
// up to stacktop. Borrowed slots; the frame owns them.
inline int frame_nlocalsplus(_PyInterpreterFrame* f) { return f->f_code->co_nlocalsplus; }
inline PyObject** frame_localsplus(_PyInterpreterFrame* f) { return f->localsplus; }
inline int frame_stacktop(_PyInterpreterFrame* f) { return f->stacktop; }
inline void set_frame_stacktop(_PyInterpreterFrame* f, int top) { f->stacktop = top; }
// The last executed instruction, in code units (pycore_frame.h _PyInterpreterFrame_LASTI); the
// eval loop resumes at prev_instr + 1.
inline int frame_lasti(_PyInterpreterFrame* f) { return _PyInterpreterFrame_LASTI(f); }
inline void set_frame_lasti(_PyInterpreterFrame* f, int lasti) { f->prev_instr = _PyCode_CODE(f->f_code) + lasti; }
// Number of code units, and whether the instruction at `index` is YIELD_VALUE (pycore_code.h).
inline int code_units(PyCodeObject* co) { return int(Py_SIZE(co)); }
inline bool is_yield_value(PyCodeObject* co, int index) {
  return _Py_OPCODE(_PyCode_CODE(co)[index]) == YIELD_VALUE;
}
// Whether an entry of `co`'s exception table (Objects/exception_handling_notes.txt) covers the
// instruction at `index`: an exception raised there — GeneratorExit thrown in by a generator's
// close() — runs a handler of the code. True when the table is malformed (the answer that runs
// nothing). No verification, no allocation.
inline bool exception_handler_covers(PyCodeObject* co, int index) {
  PyObject* table = co->co_exceptiontable;
  if (!PyBytes_Check(table)) return true;
  const auto* p = reinterpret_cast<const unsigned char*>(PyBytes_AS_STRING(table));
  Py_ssize_t n = PyBytes_GET_SIZE(table), at = 0;
  bool bad = false;
  auto varint = [&](bool first) -> long {
    if (at >= n || bool(p[at] & 128) != first) {
      bad = true;
      return 0;
    }
    long v = p[at] & 63;
    int len = 1;
    while (p[at] & 64) {
      ++at;
      if (at >= n || (p[at] & 128) || ++len > 5) {
        bad = true;
        return 0;
      }
      v = (v << 6) | (p[at] & 63);
    }
    ++at;
    return v;
  };
  while (at < n) {
    long start = varint(true), size = varint(false);
    varint(false);  // target
    varint(false);  // depth and lasti
    if (bad) return true;
    if (index >= start && index < start + size) return true;
  }
  return false;
}
// Whether a generator suspended at the YIELD_VALUE at `index` delegates to a sub-iterator there
// (`yield from`, `await`): the RESUME after the yield has an oparg of 2 or 3 (genobject.c
// _PyGen_yf); the sub-iterator is then the top of the frame's value stack, and close()/throw()
// call its close/throw. RESUME_QUICK is RESUME in code that has run.
inline bool delegates_at(PyCodeObject* co, int index) {
  if (index < 0 || index + 1 >= code_units(co) || !is_yield_value(co, index)) return false;
  _Py_CODEUNIT next = _PyCode_CODE(co)[index + 1];
  return (_Py_OPCODE(next) == RESUME || _Py_OPCODE(next) == RESUME_QUICK) && _Py_OPARG(next) >= 2;
}
// Whether the instruction at `index` calls a Python function through C without C state of its
// own, so that executing the instruction again rebuilds the callee's frame: CALL_FUNCTION_EX
// (`f(*args, **kwargs)`, through PyObject_Call) and BEFORE_WITH (a Python `__enter__`). 3.11 has
// no specialised forms of either.
inline bool is_call_function_ex(PyCodeObject* co, int index) {
  return _Py_OPCODE(_PyCode_CODE(co)[index]) == CALL_FUNCTION_EX;
}
// Whether the instruction at `index` is a call (PRECALL or CALL, specialised or not: a frame blocked
// in a C call shows either, CPYTHON311.md section 5).
// _PyOpcode_Deopt is not exported (CPYTHON311.md section 2): the exported PyCode_GetCode gives the
// de-specialised bytes (a cached copy). Python errors are cleared (false).
inline bool is_call(PyCodeObject* co, int index) {
  PyObject* bytes = PyCode_GetCode(co);
  if (!bytes) {
    PyErr_Clear();
    return false;
  }
  int op = 2 * index < PyBytes_GET_SIZE(bytes) ? static_cast<unsigned char>(PyBytes_AS_STRING(bytes)[2 * index]) : -1;
  Py_DECREF(bytes);
  return op == PRECALL || op == CALL;
}
// Whether the value of the call at `index` (PRECALL or CALL) is thrown away: the instruction after
// the CALL and its inline caches (PRECALL 1, CALL 4: Include/internal/pycore_code.h) is POP_TOP.
inline bool call_result_discarded(PyCodeObject* co, int index) {
  PyObject* bytes = PyCode_GetCode(co);
  if (!bytes) {
    PyErr_Clear();
    return false;
  }
  const unsigned char* code = reinterpret_cast<const unsigned char*>(PyBytes_AS_STRING(bytes));
  Py_ssize_t units = PyBytes_GET_SIZE(bytes) / 2;
  Py_ssize_t i = index;
  if (i < units && code[2 * i] == PRECALL) i += 2;
  bool discarded = i < units && code[2 * i] == CALL && i + 5 < units && code[2 * (i + 5)] == POP_TOP;
  Py_DECREF(bytes);
  return discarded;
}
// socket.SocketIO.readinto (Lib/socket.py), which io.BufferedReader (C) calls with `b`, a memoryview
// of the reader's own buffer that no Python object owns (Modules/_io/bufferedio.c,
// _bufferedreader_raw_read: PyMemoryView_FromBuffer of a Py_buffer whose obj is NULL).
inline bool is_socket_io_readinto(PyCodeObject* code) {
  if (PyUnicode_CompareWithASCIIString(code->co_qualname, "SocketIO.readinto") != 0) return false;
  Py_ssize_t n = PyUnicode_GetLength(code->co_filename);
  PyObject* tail = PyUnicode_Substring(code->co_filename, n >= 10 ? n - 10 : 0, n);
  if (!tail) {
    PyErr_Clear();
    return false;
  }
  bool is = PyUnicode_CompareWithASCIIString(tail, "/socket.py") == 0;
  Py_DECREF(tail);
  return is;
}
// A memoryview of memory no Python object owns (the buffer BufferedReader lends readinto).
inline bool is_ownerless_memoryview(PyObject* o) {
  return PyMemoryView_Check(o) && PyMemoryView_GET_BUFFER(o)->obj == nullptr;
}

inline bool is_reissuable_c_call(PyCodeObject* co, int index) {
  int op = _Py_OPCODE(_PyCode_CODE(co)[index]);
  return op == CALL_FUNCTION_EX || op == BEFORE_WITH;
}

// --- Watching for control to come back to an eval loop (Python/ceval.c 3.11) ---------------------
// Each C-level call of _PyEval_EvalFrameDefault (an eval loop) runs the frames entered from C and
// the Python frames they call inline; its _PyCFrame (cpython/pystate.h) lives on the thread's C
// stack, tstate->cframe is the innermost one, and each loop dispatches with its OWN
// cframe.use_tracing (255 = every instruction goes through DO_TRACING). A loop entered from C copies
// `tstate->cframe->use_tracing` and links `previous = tstate->cframe`; when it ends it sets
// `tstate->cframe = previous` and writes its use_tracing back there (RETURN_VALUE, YIELD_VALUE,
// RETURN_GENERATOR, exit_unwind).
//
// A LoopWatch makes one loop that is suspended in a C call (sorted(), coro.send(), sum(gen)) take
// the DO_TRACING path as soon as that call returns, while the loops that the call enters above it
// keep running untraced: the loop right above it is re-linked to `stand_in`, a copy that absorbs
// their write-backs (use_tracing 0) and stands in as tstate->cframe for the loops entered later,
// and the watched loop's own use_tracing is set to 255. A profile or trace function of the thread
// then sees the watched loop's first event (a call, a return, a C call, a line); until it runs,
// tstate->cframe is `stand_in` (its current_frame is the watched loop's innermost frame, right as
// long as that loop has not called a Python function inline: that call is itself an event).
// Verified on 3.11.2 with sorted(key=), coroutines driven by send() and sum(generator), on the main
// thread and other threads (bench/requests measures the speed).
struct LoopWatch {
  _PyCFrame stand_in{};             // never moves while the watch is on (allocated by the owner)
  _PyCFrame* loop = nullptr;        // the watched loop's cframe (on the thread's C stack)
  _Py_CODEUNIT* began_at = nullptr;  // its innermost frame's prev_instr when the watch began
};

// The cframe of the loop that runs `frame` on `ts` (null when none does) and, through `above`, the
// loop entered right above it (null when it is the innermost). GIL held, `ts` not running.
inline _PyCFrame* loop_of(PyThreadState* ts, _PyInterpreterFrame* frame, _PyCFrame** above) {
  *above = nullptr;
  for (_PyCFrame* c = ts->cframe; c; *above = c, c = c->previous)
    for (_PyInterpreterFrame* f = c->current_frame; f; f = f->previous) {
      if (f == frame) return c;
      if (f->is_entry) break;  // the rest belongs to loops below
    }
  return nullptr;
}

// Starts watching the loop that runs `frame` (its innermost frame need not be `frame`). False
// (nothing changed) when that loop is the thread's innermost one (nothing above it to leave
// untraced). The caller holds the GIL and `ts` is another thread, stopped (waiting for the GIL or
// blocked in C), with no trace or profile function: the loops above keep use_tracing 0.
inline bool begin_watch(PyThreadState* ts, _PyInterpreterFrame* frame, LoopWatch& w) {
  _PyCFrame* above = nullptr;
  _PyCFrame* loop = loop_of(ts, frame, &above);
  if (!loop || !above || !loop->current_frame) return false;
  w.loop = loop;
  w.began_at = loop->current_frame->prev_instr;
  w.stand_in.use_tracing = 0;
  w.stand_in.current_frame = loop->current_frame;
  w.stand_in.previous = loop->previous;
  above->previous = &w.stand_in;
  loop->use_tracing = 255;
  return true;
}

// Whether the loop that runs `frame` on `ts` has a loop entered above it (a C call of that loop
// entered Python code), so that begin_watch can watch it. GIL held, `ts` not running.
inline bool loop_has_loop_above(PyThreadState* ts, _PyInterpreterFrame* frame) {
  _PyCFrame* above = nullptr;
  return loop_of(ts, frame, &above) && above;
}

// On the watched thread, at one of its trace or profile events: whether the event comes from the
// watched loop (control came back to it). Then, and only then, tstate->cframe is `stand_in`.
inline bool watch_fired(PyThreadState* ts, const LoopWatch& w) { return ts->cframe == &w.stand_in; }

// Whether the watched loop ran an instruction since the watch began (without an event: bytecode
// that calls nothing). GIL held, the thread stopped.
inline bool watched_loop_ran(const LoopWatch& w) {
  return w.loop->current_frame && w.loop->current_frame->prev_instr != w.began_at;
}

// Ends a watch in whatever state it is (on the thread at an event, or from another thread with the
// thread stopped): `stand_in` is unlinked, the watched loop is tstate->cframe again when control
// is in it, and its use_tracing follows the thread's trace and profile functions, as CPython
// computes it (pycore_pystate.h _PyThreadState_UpdateTracingState).
inline void end_watch(PyThreadState* ts, LoopWatch& w) {
  if (!w.loop) return;
  if (ts->cframe == &w.stand_in) {
    ts->cframe = w.loop;
  } else {
    for (_PyCFrame* c = ts->cframe; c; c = c->previous)
      if (c->previous == &w.stand_in) {
        c->previous = w.loop;
        break;
      }
  }
  w.loop->use_tracing = (ts->c_tracefunc || ts->c_profilefunc) ? 255 : 0;
  w.loop = nullptr;
}

// The loops above a watched one that a trace function's events made trace themselves (an exception
// raised there calls the trace function, and CPython's PyThreadState_LeaveTracing then sets
// use_tracing on that loop): untraced again. GIL held, the thread stopped, and the thread's trace
// function is ours alone (the program has none).
inline void untrace_loops_above(PyThreadState* ts, LoopWatch& w) {
  for (_PyCFrame* c = ts->cframe; c && c != w.loop && c != &w.stand_in; c = c->previous) c->use_tracing = 0;
  w.stand_in.use_tracing = 0;
}

// A thread's profile function (cpython/pystate.h c_profilefunc, c_profileobj), and setting the
// trace or profile function of a thread WITHOUT touching any loop's use_tracing (unlike
// _PyEval_SetTrace/_PyEval_SetProfile, which also trace its innermost loop and audit). `obj` is
// kept with a new reference; the previous one is released.
inline Py_tracefunc thread_profile_function(PyThreadState* ts) { return ts->c_profilefunc; }
inline PyObject* thread_profile_object(PyThreadState* ts) { return ts->c_profileobj; }
inline void set_thread_profile_only(PyThreadState* ts, Py_tracefunc func, PyObject* obj) {
  PyObject* old = ts->c_profileobj;
  ts->c_profileobj = func ? Py_XNewRef(obj) : nullptr;
  ts->c_profilefunc = func;
  Py_XDECREF(old);
}
inline void set_thread_trace_only(PyThreadState* ts, Py_tracefunc func, PyObject* obj) {
  PyObject* old = ts->c_traceobj;
  ts->c_traceobj = func ? Py_XNewRef(obj) : nullptr;
  ts->c_tracefunc = func;
  Py_XDECREF(old);
}
// The innermost loop's use_tracing (for a thread at an event of ours: its current loop).
inline void set_current_loop_traced(PyThreadState* ts, bool on) { ts->cframe->use_tracing = on ? 255 : 0; }

// --- Set hash tables (Include/cpython/setobject.h PySetObject, setentry; Objects/setobject.c) ------
// A set's iteration order is its table order, which depends on the history of insertions and
// deletions, not only on the hashes: snapshot/heap_encoder.cpp records the layout and
// restore/scalar_decoder.cpp rebuilds it (SetLayout op).
struct SetLayoutView {
  setentry* table;
  Py_ssize_t mask, finger, fill, used;
};
inline SetLayoutView set_layout(PyObject* set) {
  auto* so = reinterpret_cast<PySetObject*>(set);
  return {so->table, so->mask, so->finger, so->fill, so->used};
}
inline bool is_set_dummy(PyObject* key) { return key == _PySet_Dummy; }
inline PyObject* set_dummy() { return _PySet_Dummy; }  // borrowed
inline setentry* set_small_table(PyObject* set) { return reinterpret_cast<PySetObject*>(set)->smalltable; }
// Installs `table` (mask + 1 entries; the set's own smalltable or PyMem memory) with its counts.
// Returns the previous table, which the caller frees (after dropping its references).
inline setentry* set_install_table(PyObject* set, setentry* table, Py_ssize_t mask, Py_ssize_t fill,
                                   Py_ssize_t used, Py_ssize_t finger) {
  auto* so = reinterpret_cast<PySetObject*>(set);
  setentry* old = so->table;
  so->table = table;
  so->mask = mask;
  so->fill = fill;
  so->used = used;
  so->finger = finger;
  return old;
}

// --- Stack capture and replay (snapshot/capture.cpp, restore/replay.cpp; CPYTHON311.md §2, §11) --
// Kind of localsplus slot i: CO_FAST_LOCAL / CO_FAST_CELL / CO_FAST_FREE bits (pycore_code.h).
inline int localsplus_kind(PyCodeObject* co, int i) { return _PyLocals_GetKind(co->co_localspluskinds, i); }
// Pushes a new reference onto a frame's value stack; only valid during a trace event of that
// frame, when stacktop is saved (ceval.c TARGET_DO_TRACING reloads stack_pointer afterwards).
inline void frame_stack_push(_PyInterpreterFrame* f, PyObject* value) {
  _PyFrame_StackPush(f, Py_NewRef(value));
}
// Makes the eval loop execute code unit `index` next: effective only at a 'line' or 'opcode'
// event of this frame on its own thread (ceval.c reloads next_instr from prev_instr there).
inline void jump_at_trace_event(PyFrameObject* frame, int index) {
  frame->f_frame->prev_instr = _PyCode_CODE(frame->f_frame->f_code) + index;
  frame->f_lineno = 0;
}

// Appends `k` references (stolen) to an exact list with one resize: Objects/listobject.c
// list_resize's growth pattern over cpython/listobject.h PyListObject::ob_item/allocated. The
// decoder fills lists in batches of up to 1000 values; PyList_Append per value was most of the
// cost of a batch. Returns false (MemoryError set, nothing stolen) when memory runs out.
inline bool list_extend_stealing(PyObject* list, PyObject* const* items, Py_ssize_t k) {
  auto* l = reinterpret_cast<PyListObject*>(list);
  Py_ssize_t n = Py_SIZE(l);
  Py_ssize_t want = n + k;
  if (want > l->allocated) {
    size_t grown = (size_t(want) + (size_t(want) >> 3) + 6) & ~size_t(3);
    auto** fresh = static_cast<PyObject**>(PyMem_Realloc(l->ob_item, grown * sizeof(PyObject*)));
    if (!fresh) {
      PyErr_NoMemory();
      return false;
    }
    l->ob_item = fresh;
    l->allocated = Py_ssize_t(grown);
  }
  if (k > 0) std::memcpy(l->ob_item + n, items, size_t(k) * sizeof(PyObject*));
  Py_SET_SIZE(l, want);
  return true;
}

// Modules/_io/textio.c `textio` (3.11; the struct is private to that file, so it is mirrored
// here): io.TextIOWrapper. A reader iterated with next() disables tell(); its position is the
// undecoded tail of the decoder plus the decoded characters it has not returned yet
// (decoded_chars[decoded_chars_used:]), which only these fields hold. text_io_view() trusts the
// mirror only after checking it against the live object: the type's size and dict/weaklist
// offsets, and the fields that the type also exposes (buffer, encoding, errors, _CHUNK_SIZE).
struct TextIO311 {
  PyObject_HEAD
  int ok;
  int detached;
  Py_ssize_t chunk_size;
  PyObject* buffer;
  PyObject* encoding;
  PyObject* encoder;
  PyObject* decoder;
  PyObject* readnl;
  PyObject* errors;
  const char* writenl;
  char line_buffering, write_through, readuniversal, readtranslate, writetranslate, seekable,
      has_read1, telling, finalizing;
  void* encodefunc;
  char encoding_start_of_stream;
  PyObject* decoded_chars;
  Py_ssize_t decoded_chars_used;
  PyObject* pending_bytes;
  Py_ssize_t pending_bytes_count;
  PyObject* snapshot;
  double b2cratio;
  PyObject* raw;
  PyObject* weakreflist;
  PyObject* dict;
};

struct TextIOView {
  PyObject* decoder = nullptr;        // borrowed; may be null (not readable)
  PyObject* decoded_chars = nullptr;  // borrowed; may be null
  Py_ssize_t decoded_chars_used = 0;
  bool telling = false;
  bool readuniversal = false;
  bool readtranslate = false;
  PyObject* readnl = nullptr;         // borrowed; may be null
};

// Fills `view` from io.TextIOWrapper `f` (exactly that type). Returns false, with no exception
// set, when the object does not have the layout above.
inline bool text_io_view(PyObject* f, TextIOView* view) {
  PyTypeObject* type = Py_TYPE(f);
  if (std::strcmp(type->tp_name, "_io.TextIOWrapper") != 0 || type->tp_basicsize != sizeof(TextIO311) ||
      type->tp_dictoffset != Py_ssize_t(offsetof(TextIO311, dict)) ||
      type->tp_weaklistoffset != Py_ssize_t(offsetof(TextIO311, weakreflist)))
    return false;
  auto* t = reinterpret_cast<TextIO311*>(f);
  if (t->ok != 1 || t->detached != 0) return false;
  auto same = [f](const char* attr, PyObject* field) {
    PyObject* v = PyObject_GetAttrString(f, attr);
    if (!v) {
      PyErr_Clear();
      return false;
    }
    bool ok = v == field;
    if (!ok && PyLong_Check(v)) ok = PyLong_AsSsize_t(v) == reinterpret_cast<TextIO311*>(f)->chunk_size;
    Py_DECREF(v);
    return ok;
  };
  if (!same("buffer", t->buffer) || !same("encoding", t->encoding) || !same("errors", t->errors) ||
      !same("_CHUNK_SIZE", nullptr))
    return false;
  if (t->decoded_chars && (!PyUnicode_Check(t->decoded_chars) || t->decoded_chars_used < 0 ||
                           t->decoded_chars_used > PyUnicode_GET_LENGTH(t->decoded_chars)))
    return false;
  view->decoder = t->decoder;
  view->decoded_chars = t->decoded_chars;
  view->decoded_chars_used = t->decoded_chars ? t->decoded_chars_used : 0;
  view->telling = t->telling != 0;
  view->readuniversal = t->readuniversal != 0;
  view->readtranslate = t->readtranslate != 0;
  view->readnl = t->readnl;
  return true;
}

}  // namespace stasis::internals

extern "C" {
// core/cpython_internals_shim.c: pieces that need Py_BUILD_CORE headers, which only compile as C.
// Holding the GIL without running Python code, watches for `microseconds` whether another thread
// asks for the GIL (a thread waiting longer than the switch interval sets gil_drop_request).
int stasis_internals_gil_wanted_within(long microseconds);
// The parts of an `async_generator_asend` awaitable (borrowed): its async generator, the value it
// sends, its state (0 not started, 1 started, 2 closed). Returns 0 when `obj` is not one.
int stasis_internals_asend_parts(PyObject* obj, PyObject** gen, PyObject** sendval, int* state);
// A new dict with the keys of `tmpl` (a dict of n str keys, built by n inserts) and `values` (n
// references, stolen on success): a memcpy of tmpl's key table instead of n inserts. Returns NULL
// without an exception when tmpl has another layout (the caller keeps the references).
PyObject* stasis_internals_dict_from_template(PyObject* tmpl, PyObject** values, Py_ssize_t n);
// Calls visit(obj, arg) for every GC-tracked object of the current interpreter (all generations
// and the permanent one), borrowed, until visit returns non-zero (that value is returned).
// visit must not allocate, untrack or free GC objects nor run Python code. GIL held.
int stasis_internals_visit_gc_objects(int (*visit)(PyObject*, void*), void* arg);
// Calls visit(tstate, arg) for every thread state of the current interpreter under HEAD_LOCK,
// until visit returns non-zero. visit must not allocate Python objects or run Python code.
int stasis_internals_visit_thread_states(int (*visit)(PyThreadState*, void*), void* arg);
// In the child of a fork() by a thread holding the GIL: makes the GIL's locks and the interpreter
// locks new (their holders do not exist in the child) and clears requests of other threads, so
// that this thread can run Python code, drop and take the GIL. 0, or -1 on failure.
int stasis_internals_reinit_after_fork(void);
// An io.BufferedReader's (or BufferedRandom's) bytes read ahead and not yet consumed (borrowed, in
// its buffer): *data and *n. Returns 0 when `f` does not have that layout over `raw`. Read while the
// threads that use `f` cannot run (a suspension has frozen them): its lock is not taken.
int stasis_internals_buffered_read_ahead(PyObject* f, PyObject* raw, const char** data, Py_ssize_t* n);
// Puts `n` bytes in the empty buffer of a new reader over `raw`, as if read ahead from it. Returns
// 0 (nothing changed) when `f` has another layout, its buffer is smaller or not empty.
int stasis_internals_buffered_preload(PyObject* f, PyObject* raw, const char* data, Py_ssize_t n);
}

// --- The frame-evaluation hook (PEP 523; cpython/pystate.h, Python/ceval.c 3.11) ---------------
// restore/code_guard.cpp installs one while an object graph loads, so that no code object from the
// snapshot can run. With a hook installed, 3.11's eval loop does not inline Python-to-Python
// calls (ceval.c CALL checks `tstate->interp->eval_frame == NULL`), so every frame, generator
// resumption included, passes through it. The hook returns NULL with an exception set to refuse
// a frame; its caller (_PyEval_Vector, gen_send_ex2) clears the frame.
namespace stasis::internals {
using EvalFrameFunc = _PyFrameEvalFunction;
inline EvalFrameFunc eval_frame_hook() { return _PyInterpreterState_GetEvalFrameFunc(PyInterpreterState_Get()); }
inline void set_eval_frame_hook(EvalFrameFunc f) { _PyInterpreterState_SetEvalFrameFunc(PyInterpreterState_Get(), f); }
// The code object an interpreter frame runs. Borrowed.
inline PyObject* interpreter_frame_code(_PyInterpreterFrame* f) { return reinterpret_cast<PyObject*>(f->f_code); }
}  // namespace stasis::internals

// --- Code objects, frames, thread states and objects: the fields and private functions the rest
// of Stasis used directly (issue 16.5). Checked against 3.11.2 and 3.11.7 like the rest of the file.
namespace stasis::internals {

// One code unit (cpython/code.h _Py_CODEUNIT: opcode and argument; read them with unit_opcode and
// unit_argument). Bytes per code unit: f_lasti and the resume tables count bytes, frames count units.
using CodeUnit = _Py_CODEUNIT;
constexpr int kCodeUnitBytes = int(sizeof(_Py_CODEUNIT));

// cpython/code.h PyCodeObject: locals, cells and free variables ("localsplus") in slot order, and
// how many there are. Borrowed tuple.
inline int code_nlocalsplus(PyCodeObject* co) { return co->co_nlocalsplus; }
inline PyObject* code_localsplus_names(PyCodeObject* co) { return co->co_localsplusnames; }
inline int code_nfreevars(PyCodeObject* co) { return co->co_nfreevars; }

// The value stack of an interpreter frame: the slots after its localsplus (pycore_frame.h), and
// its depth (-1 while the frame is executing: CPYTHON311.md §5). Borrowed slots.
inline PyObject** frame_value_stack(_PyInterpreterFrame* f) {
  return f->localsplus + f->f_code->co_nlocalsplus;
}
inline int frame_value_depth(_PyInterpreterFrame* f) { return f->stacktop - f->f_code->co_nlocalsplus; }
// Whether a frame has not reached its first traceable instruction yet (pycore_frame.h).
inline bool frame_incomplete(_PyInterpreterFrame* f) { return _PyFrame_IsIncomplete(f); }

// The operands of a call on the value stack, bottom first (Python/ceval.c 3.11, CPYTHON311.md §5).
// CALL (after PRECALL): [method, self] for LOAD_METHOD of a method, else [NULL, callable], then the
// arguments; the callable is the first non-NULL one. CALL_FUNCTION_EX: [NULL, callable, args tuple,
// kwargs dict if oparg & 1]. Borrowed.
inline PyObject* call_callable(PyObject* const* operands) { return operands[0] ? operands[0] : operands[1]; }
inline PyObject* call_function_ex_callable(PyObject* const* operands) { return operands[1]; }

// cpython/pystate.h PyThreadState::context: the thread's current contextvars.Context, or null.
// Borrowed; a Context is immutable (a HAMT), so another thread holding the GIL may read it.
inline PyObject* thread_context(PyThreadState* ts) { return ts->context; }
// Installs a C trace function on thread `ts` (cpython/ceval.h _PyEval_SetTrace, exported; any
// thread when the caller holds the GIL). 0, or -1 with an exception set.
inline int set_thread_trace(PyThreadState* ts, Py_tracefunc func, PyObject* obj) {
  return _PyEval_SetTrace(ts, func, obj);
}
// Whether the runtime is finalizing (cpython/pylifecycle.h _Py_IsFinalizing; public Py_IsFinalizing
// only from 3.13). Callable without the GIL.
inline bool runtime_finalizing() { return _Py_IsFinalizing() != 0; }

// Gives a dead object of a free list a reference count of 1 again, as PyObject_New would
// (Objects/object.c _Py_NewReference; tracemalloc and ref tracing see a new object).
inline void revive_object(PyObject* obj) { _Py_NewReference(obj); }
// The attribute `name` found on `type`'s MRO without calling descriptors or getattr hooks
// (Objects/typeobject.c _PyType_Lookup). Borrowed, or null, never with an exception set.
inline PyObject* type_lookup(PyTypeObject* type, PyObject* name) { return _PyType_Lookup(type, name); }
// Where `obj`'s instance dict pointer lives, or null (Objects/object.c _PyObject_GetDictPtr; for a
// managed dict it materializes the dict).
inline PyObject** object_dict_pointer(PyObject* obj) { return _PyObject_GetDictPtr(obj); }
// Whether instances of `type` are iterators (tp_iternext set and not object's placeholder
// _PyObject_NextNotImplemented).
inline bool is_iterator_type(PyTypeObject* type) {
  return type->tp_iternext != nullptr && type->tp_iternext != &_PyObject_NextNotImplemented;
}

// Integers as bytes (cpython/longobject.h): bits needed for |v| ((size_t)-1 with an exception set
// on overflow); two's complement or magnitude into `n` bytes (-1 with OverflowError when it does not
// fit); a new int from bytes.
inline size_t long_bit_length(PyObject* v) { return _PyLong_NumBits(v); }
inline int long_to_bytes(PyObject* v, unsigned char* out, size_t n, bool little_endian, bool is_signed) {
  return _PyLong_AsByteArray(reinterpret_cast<PyLongObject*>(v), out, n, little_endian, is_signed);
}
inline PyObject* long_from_bytes(const unsigned char* bytes, size_t n, bool little_endian, bool is_signed) {
  return _PyLong_FromByteArray(bytes, n, little_endian, is_signed);
}

// The code units of a code object as they run (cpython/code.h _PyCode_CODE: co_code_adaptive,
// specialised once the code has run; PyCode_GetCode gives the de-specialised copy) and the opcode
// and argument of one unit (_Py_OPCODE/_Py_OPARG). Borrowed; valid while the code object lives.
inline const _Py_CODEUNIT* code_units_as_run(PyCodeObject* co) { return _PyCode_CODE(co); }
inline int unit_opcode(_Py_CODEUNIT unit) { return _Py_OPCODE(unit); }
inline int unit_argument(_Py_CODEUNIT unit) { return _Py_OPARG(unit); }

// Per-code-object extra slots (PEP 523; cpython/ceval.h _PyEval_RequestCodeExtraIndex, cpython/code.h
// _PyCode_GetExtra/_PyCode_SetExtra, exported): an index per interpreter (-1 when none is left),
// then a void* per code object, freed by `free_extra` with the code object.
inline Py_ssize_t request_code_extra_index(freefunc free_extra) {
  return _PyEval_RequestCodeExtraIndex(free_extra);
}
inline int code_extra(PyObject* code, Py_ssize_t index, void** extra) {
  return _PyCode_GetExtra(code, index, extra);
}
inline int set_code_extra(PyObject* code, Py_ssize_t index, void* extra) {
  return _PyCode_SetExtra(code, index, extra);
}

}  // namespace stasis::internals

// --- 3.12 port: accessors to revisit ---------------------------------------------------------------
// Found by compiling this header and its shim against pyenv's 3.12.1 and 3.13.0 headers (the version
// check removed) and reading what changed; "compiles" means the field or function still exists,
// not that it means the same: each of those is to be verified again as CPYTHON311.md verified 3.11.
// * Do not compile with 3.12:
//   - is_call, call_result_discarded: PRECALL is gone (CALL alone; its caches change too).
//   - frame_function: _PyInterpreterFrame::f_func is f_funcobj.
//   - entered_from_c, frame_entered_from_c: is_entry is gone (3.12 pushes a shim frame owned by
//     the C stack, FRAME_OWNED_BY_CSTACK, under a frame entered from C).
//   - generator_code: PyGenObject::gi_code is gone (the code is the frame's f_code).
//   - loop_of, loop_has_loop_above (is_entry), LoopWatch with begin_watch, end_watch,
//     untrace_loops_above, set_current_loop_traced: _PyCFrame::use_tracing is gone (tracing is
//     instrumentation of the code, not a per-loop flag): watching a loop needs another mechanism.
// * Compile with 3.12, semantics to re-verify:
//   - last_instruction, frame_lasti, set_frame_lasti, jump_at_trace_event: prev_instr still
//     exists, but 'line' events come from sys.monitoring (PEP 669, INSTRUMENTED_LINE): whether
//     setting prev_instr during a line event still moves the eval loop (CPYTHON311.md §2).
//   - thread_trace_function, thread_trace_object, set_thread_trace: legacy tracing is layered on
//     sys.monitoring; c_tracefunc/_PyEval_SetTrace remain.
//   - stack_depth, frame_stacktop, set_frame_stacktop, frame_value_stack, frame_value_depth,
//     frame_stack_push: stacktop remains; YIELD_VALUE/SEND/FOR_ITER (END_FOR, END_SEND) leave
//     different values on the stack, so the generator and replay code that uses them changes.
//   - call_callable, call_function_ex_callable: 3.12 keeps [NULL|method, callable|self, args]
//     (checked with dis); 3.13 swaps the first two.
//   - is_yield_value, is_call_function_ex, is_reissuable_c_call: opcodes still exist; YIELD_VALUE
//     takes an argument and specialised forms differ.
//   - code_units_as_run, unit_opcode, unit_argument: _Py_CODEUNIT is a union (op.code, op.arg);
//     the macros remain. restore/code_verifier.cpp's opcode table is 3.11's and must be redone.
//   - code_extra, set_code_extra, request_code_extra_index: renamed PyUnstable_* (old names kept).
//   - current_interpreter_frame: cframe remains in 3.12 (gone in 3.13: tstate->current_frame).
//   - code_nlocalsplus, code_localsplus_names, code_nfreevars, localsplus_kind (also 3.13): comprehensions
//     are inlined (PEP 709), so a function's localsplus gains hidden slots (CO_FAST_HIDDEN) that
//     capture and replay must skip or carry, and ".0" comprehension code objects no longer exist.
//   - frame_incomplete, calling_frame, CodeUnit (also 3.13): the incomplete-frame rule changes with
//     the shim frames of FRAME_OWNED_BY_CSTACK.
//   - thread_context, type_lookup, object_dict_pointer, long_from_bytes (also 3.13): unchanged
//     signatures; object_dict_pointer meets inline values (managed dicts) more often.
// * Break in 3.13 (compile with 3.12): current_interpreter_frame (cframe), interpreter_frame,
//   frame_code & co. (f_code is f_executable), set_frame_lasti & co. (prev_instr is instr_ptr),
//   set_thread_trace (_PyEval_SetTrace not exported), runtime_finalizing (Py_IsFinalizing is public),
//   is_iterator_type (_PyObject_NextNotImplemented), set_dummy/is_set_dummy (_PySet_Dummy),
//   long_to_bytes (_PyLong_AsByteArray takes with_exceptions); the C shim (_PyTime_t, the GIL's
//   gil_drop_request, HEAD_LOCK's mutex type).
