// engine/net_api.h — Python entry points for services (python/stasis/handover.py): waking a thread
// out of a blocking system call without running any code of the program.
#pragma once
#include <Python.h>

namespace stasis::engine {
// interrupt_thread(ident): sends the thread a signal whose handler does nothing and is installed
// without SA_RESTART, so a blocking call (recv, accept) returns EINTR; CPython then issues the call
// again on the same descriptor number (PEP 475), with no Python code run in between.
PyObject* interrupt_thread(PyObject*, PyObject* arg);
}  // namespace stasis::engine
