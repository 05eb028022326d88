// updater/control_watch.h — the control channel's idle listener. A raw pthread, with no Python
// thread state, poll()s the listening socket and a wake pipe. When a client connects it takes the
// GIL with PyGILState_Ensure (a thread state that lives only for that call), calls the callback
// (control.py's accept-one step) and releases it: while idle, the program's sys._current_frames(),
// threading and _thread._count() see no thread of Stasis. stop() joins it before the interpreter
// finalizes (atexit), so it never asks for the GIL of a finalizing interpreter; a forked child has
// no watcher (forget() drops the parent's state there, without joining).
// Counterpart: stasis/updater/control.py (through engine/updater_api.cpp).
#pragma once

#include <Python.h>

namespace stasis::updater::control_watch {

// Starts watching `fd` (the listening socket) and returns the watcher's ident; callback() runs
// with the GIL when fd is readable, and returns true to go on watching (false: the watcher ends).
// The ident is added to the set `owners` (stasis.internal_threads.idents) before the watcher can
// run any Python code, and leaves it at stop/forget. One watcher per process. Throws Error.
unsigned long start(int fd, PyObject* callback, PyObject* owners);
// Wakes the watcher and joins it (the GIL is released meanwhile); no-op if none.
void stop();
// In a forked child, drops the parent's watcher (its thread does not exist here).
void forget();

}  // namespace stasis::updater::control_watch
