// snapshot/crash_hook.h — the hot path of the crash hook (--snapshot-on-crash): the handlers that
// python/stasis/program/crash.py adds to the program's code call `hook` in every frame an
// exception leaves. Most exceptions are caught by a frame further out, and deciding that must cost
// little: each frame out to the thread's base frame is looked up in a table of *plans* — what an
// exception raised at one instruction of one code object meets in that frame (nothing, a handler
// that catches, `except` clauses to match, a `with` block) — which crash.py computes once per
// (code, instruction) and hands over with `set_plan`. `except` clauses are matched here (their
// type loaded from the frame's globals, builtins, locals or an attribute). Everything else — a
// frame without a plan yet, a `with` block to judge, an exception nothing catches (the capture),
// a thread with a capture pending — is left to the Python side (`configure`'s slow path), which
// decides again in full. Counterpart: crash.py (_on_exception is the slow path).
#pragma once

#include <Python.h>

namespace stasis::snapshot::crash_hook {

// Starts watching: `slow_path(exc, lasti, depth)` is called when the fast path cannot decide;
// `pending` and `given_up` are crash.py's {thread ident: ...} dicts (an exception already captured,
// or one no frame is to capture, whose outer frames need nothing); `main_base` is the main
// thread's base code (__main__), `bootstrap_inner` the code of Thread._bootstrap_inner (another
// thread's base frame is the one it called). Borrowed arguments, kept.
void configure(PyObject* slow_path, PyObject* pending, PyObject* given_up, PyObject* main_base,
               unsigned long main_ident, PyObject* bootstrap_inner);
// Stops watching: `hook` returns at once, plans are dropped.
void disable();
// The plan of `code` at byte offset `lasti` (crash.py `_Handlers.plan`: () passes; a tuple of
// steps: "catches", "async for", an int (a `with` block's handler depth), or a tuple of clauses,
// each a tuple of (opname, argval) loads). Throws Error on a plan it cannot read.
void set_plan(PyObject* code, int lasti, PyObject* plan);
// The handlers' callable: hook(exc, lasti, depth). New reference (None, or the slow path's result);
// never raises into the program's code (its own failures are cleared).
PyObject* hook(PyObject* const* args, Py_ssize_t nargs);

}  // namespace stasis::snapshot::crash_hook
