// core/cpython_internals.h — the ONLY header in Stasis that includes CPython internals.
// Each accessor names the CPython 3.11 source it depends on and whether it returns a borrowed or a
// new reference. A port to another CPython version should diff this file (and its C shim) only.
// Facts used here are verified in shared/design/CPYTHON311.md (section numbers in comments).
#pragma once

#include <Python.h>
#include <frameobject.h>

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030C0000
#error "Stasis supports CPython 3.11 only (frame layout, tracing and generator internals differ)"
#endif

// In 3.11 pycore_frame.h and pycore_code.h have no Py_BUILD_CORE guard and compile as C++17
// (CPYTHON311.md §2 "Headers and linking").
#include "internal/pycore_code.h"
#include "internal/pycore_frame.h"

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

// Generator/coroutine frame state (cpython/genobject.h gi_frame_state; CPYTHON311.md §6):
// -2 created, -1 suspended, 0 executing, 1 completed, 4 cleared.
inline int generator_state(PyObject* gen) { return ((PyGenObject*)gen)->gi_frame_state; }

// Locals, cells and free variables (co_nlocalsplus slots, NULL when unbound), then the value stack
// up to stacktop. Borrowed slots; the frame owns them.
inline PyObject** frame_localsplus(_PyInterpreterFrame* f) { return f->localsplus; }
inline int frame_stacktop(_PyInterpreterFrame* f) { return f->stacktop; }
inline PyCodeObject* frame_code(_PyInterpreterFrame* f) { return f->f_code; }
// The last executed instruction, in code units (pycore_frame.h _PyInterpreterFrame_LASTI).
inline int frame_lasti(_PyInterpreterFrame* f) { return _PyInterpreterFrame_LASTI(f); }
inline int code_units(PyCodeObject* co) { return int(Py_SIZE(co)); }

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

}  // namespace stasis::internals

extern "C" {
// core/cpython_internals_shim.c: pieces that need Py_BUILD_CORE headers, which only compile as C.
// Returns the number of thread states of the current interpreter, walked under HEAD_LOCK.
int stasis_internals_thread_count(void);
}
