// updater/profiler.h — function-level timing for the functions `stasis ctl PID profile` wraps.
// Each wrapped function calls enter(key) before and exit() after its original code; per thread a
// call tree of wrapped functions accumulates calls, total and child time. Functions that are not
// wrapped never reach this code (no global profile hook, so no cost outside the pattern).
// Counterpart: stasis/updater/profile.py turns the tree into folded stacks, a table and an SVG.
#pragma once

#include <Python.h>

#include "core/ref.h"

namespace stasis::updater::profiler {

void start();                 // discards previous data and starts a session
Ref stop();                   // ends the session: [(thread_id, (key, ...), calls, total_ns, self_ns), ...]
void enter(PyObject* key);    // key: the function's qualified name (kept alive by the wrapper)
void exit();

}  // namespace stasis::updater::profiler
