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

}  // namespace stasis::internals

extern "C" {
// core/cpython_internals_shim.c: pieces that need Py_BUILD_CORE headers, which only compile as C.
// Returns the number of thread states of the current interpreter, walked under HEAD_LOCK.
int stasis_internals_thread_count(void);
}
