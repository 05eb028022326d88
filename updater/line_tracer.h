// updater/line_tracer.h — line events for one instrumented function only. The function's wrapper
// calls enter(spec) before running the original code and exit() after it: enter installs a C trace
// function on the current thread (saving whatever tracer was there, e.g. a debugger), exit puts the
// saved one back. The tracer reports 'line' and 'return' events of frames running spec's code and
// switches line events off in every other frame, so only the instrumented function pays for them.
// Counterpart: stasis/updater/instrument.py builds the wrapper and the Python callback.
#pragma once

#include <Python.h>

namespace stasis::updater::line_tracer {

// spec: (code, callback); callback(frame, event: str, arg) with event "line" (arg: line number)
// or "return" (arg: the return value, None on an exception). Exceptions it raises are reported as
// unraisable and never reach the instrumented function.
void enter(PyObject* spec);
void exit();

}  // namespace stasis::updater::line_tracer
