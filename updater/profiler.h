// updater/profiler.h — function-level timing for the functions `stasis ctl PID profile` wraps.
// Each profiled function either has a prologue calling enter_token(key), whose token dies with the
// frame, or (when its code cannot take a prologue) a wrapper calling enter(key)/exit(); per thread a
// call tree of wrapped functions accumulates calls, total and child time. Functions that are not
// wrapped never reach this code (no global profile hook, so no cost outside the pattern).
// Counterpart: stasis/updater/profile.py turns the tree into folded stacks, a table and an SVG.
#pragma once

#include <Python.h>

#include "core/ref.h"

namespace stasis::updater::profiler {

void start();                 // discards previous data and starts a session
// Ends the session: [(thread_id, (key, ...), calls, total_ns, self_ns, is_async), ...]
Ref stop();
void enter(PyObject* key);    // key: the function's qualified name (kept alive by the wrapper)
void exit();
// For prologues injected into a function's code (stasis/updater/instrument.py inject_profile):
// opens a call and returns a token whose deallocation closes it (None outside a session).
Ref enter_token(PyObject* key);
// For generator and coroutine functions: a token that records one call (wall time from the first
// resumption to the end, awaits included) outside the call trees when the frame ends.
Ref enter_async_token(PyObject* key);

}  // namespace stasis::updater::profiler
