// engine/net_api.h — Python entry points for services (python/stasis/handover.py,
// python/stasis/handlers/net.py): waking a thread out of a blocking system call without running
// any code of the program, and the read-ahead bytes of a socket file.
#pragma once
#include <Python.h>

namespace stasis::engine {
// interrupt_thread(ident): sends the thread a signal whose handler does nothing and is installed
// without SA_RESTART, so a blocking call (recv, accept) returns EINTR; CPython then issues the call
// again on the same descriptor number (PEP 475), with no Python code run in between.
PyObject* interrupt_thread(PyObject*, PyObject* arg);
// buffered_read_ahead(f, raw) -> bytes | None: the bytes an io.BufferedReader over `raw` has read
// and not yet handed out (None: not that layout). Taken without its lock: the threads are frozen.
PyObject* buffered_read_ahead(PyObject*, PyObject* args);
// buffered_preload(f, raw, data) -> bool: a new reader over `raw` starts with `data` read ahead.
PyObject* buffered_preload(PyObject*, PyObject* args);
}  // namespace stasis::engine
