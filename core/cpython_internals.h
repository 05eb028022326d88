// core/cpython_internals.h — the ONLY header in Stasis that includes CPython internals.
// Each accessor names the CPython 3.11 source it depends on and whether it returns a borrowed or a
// new reference. A port to another CPython version should diff this file (and its C shim) only.
// Facts used here are verified in shared/design/CPYTHON311.md (section numbers in comments).
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
inline bool is_reissuable_c_call(PyCodeObject* co, int index) {
  int op = _Py_OPCODE(_PyCode_CODE(co)[index]);
  return op == CALL_FUNCTION_EX || op == BEFORE_WITH;
}

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
