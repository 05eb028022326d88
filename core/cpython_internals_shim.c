/* core/cpython_internals_shim.c — the C half of core/cpython_internals.h.
 * pycore_pystate.h and friends need Py_BUILD_CORE and do not compile as C++ (pycore_atomic.h uses
 * <stdatomic.h>; CPYTHON311.md §2), so code that needs them lives here, behind plain C functions. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include "internal/pycore_pystate.h"
#include "internal/pycore_runtime.h"

/* Python/pystate.c: #define HEAD_LOCK(runtime) PyThread_acquire_lock((runtime)->interpreters.mutex,
 * WAIT_LOCK) — the macro is private to pystate.c, so it is repeated here. */
#define STASIS_HEAD_LOCK() PyThread_acquire_lock(_PyRuntime.interpreters.mutex, WAIT_LOCK)
#define STASIS_HEAD_UNLOCK() PyThread_release_lock(_PyRuntime.interpreters.mutex)

int stasis_internals_thread_count(void) {
  PyInterpreterState* interp = PyInterpreterState_Get();
  int count = 0;
  STASIS_HEAD_LOCK();
  for (PyThreadState* ts = interp->threads.head; ts != NULL; ts = ts->next) ++count;
  STASIS_HEAD_UNLOCK();
  return count;
}
