/* core/cpython_internals_shim.c — the C half of core/cpython_internals.h.
 * pycore_pystate.h and friends need Py_BUILD_CORE and do not compile as C++ (pycore_atomic.h uses
 * <stdatomic.h>; CPYTHON311.md §2), so code that needs them lives here, behind plain C functions. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <pthread.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include "internal/pycore_dict.h"
#include "internal/pycore_pystate.h"
#include "internal/pycore_runtime.h"

/* Python/pystate.c: #define HEAD_LOCK(runtime) PyThread_acquire_lock((runtime)->interpreters.mutex,
 * WAIT_LOCK) — the macro is private to pystate.c, so it is repeated here. */
#define STASIS_HEAD_LOCK() PyThread_acquire_lock(_PyRuntime.interpreters.mutex, WAIT_LOCK)
#define STASIS_HEAD_UNLOCK() PyThread_release_lock(_PyRuntime.interpreters.mutex)

/* Python/ceval_gil.h take_gil: a thread that has waited `interval` for the GIL sets the
 * interpreter's gil_drop_request. Holding the GIL (and not running Python, so never dropping it),
 * watches that flag for `microseconds`: 1 as soon as another thread asks for the GIL, else 0. */
int stasis_internals_gil_wanted_within(long microseconds) {
  PyInterpreterState* interp = PyInterpreterState_Get();
  _PyTime_t end = _PyTime_GetMonotonicClock() + (_PyTime_t)microseconds * 1000;
  for (;;) {
    if (_Py_atomic_load_relaxed(&interp->ceval.gil_drop_request)) return 1;
    if (_PyTime_GetMonotonicClock() >= end) return 0;
    struct timespec pause = {0, 100000};  /* 0.1 ms; the GIL stays ours */
    nanosleep(&pause, NULL);
  }
}

/* Modules/gcmodule.c: every GC-tracked object sits in one of the interpreter's generation lists
 * (gc.generations[0..2] and gc.permanent_generation; pycore_gc.h / pycore_interp.h), linked
 * through the PyGC_Head that precedes it (FROM_GC(g) == (PyObject *)(g + 1)). Calls visit(obj, arg)
 * for each, stopping early when visit returns non-zero. Borrowed references; the caller holds the
 * GIL and visit must not allocate or untrack GC objects or run Python code (it would change the
 * lists being walked). Used by the updater's heap scan. */
int stasis_internals_visit_gc_objects(int (*visit)(PyObject *, void *), void *arg) {
  struct _gc_runtime_state *gcstate = &PyInterpreterState_Get()->gc;
  for (int i = 0; i <= NUM_GENERATIONS; ++i) {
    PyGC_Head *head = i < NUM_GENERATIONS ? &gcstate->generations[i].head
                                          : &gcstate->permanent_generation.head;
    for (PyGC_Head *g = (PyGC_Head *)head->_gc_next; g != head; g = (PyGC_Head *)g->_gc_next) {
      int rc = visit((PyObject *)(g + 1), arg);
      if (rc) return rc;
    }
  }
  return 0;
}

/* Every thread state of the current interpreter, walked under HEAD_LOCK (pystate.c) so that a
 * thread state created or deleted concurrently (which may happen without the GIL) cannot be read
 * half-linked. Calls visit(tstate, arg) until it returns non-zero. visit must not take the GIL,
 * allocate Python objects or run Python code; the caller holds the GIL. */
int stasis_internals_visit_thread_states(int (*visit)(PyThreadState *, void *), void *arg) {
  PyInterpreterState *interp = PyInterpreterState_Get();
  int rc = 0;
  STASIS_HEAD_LOCK();
  for (PyThreadState *ts = interp->threads.head; ts != NULL && rc == 0; ts = ts->next) rc = visit(ts, arg);
  STASIS_HEAD_UNLOCK();
  return rc;
}

/* Objects/dictobject.c: PyDict_Copy of a clean combined table clones its keys object with one
 * memcpy (clone_combined_dict_keys), so the copy's entries are the template's, in insertion order
 * (pycore_dict.h DK_UNICODE_ENTRIES). Their values (the template's) are replaced by `values`, whose
 * references are stolen. Returns NULL without an exception when the template does not have that
 * layout (the caller then keeps its references and inserts normally). */
PyObject* stasis_internals_dict_from_template(PyObject* tmpl, PyObject** values, Py_ssize_t n) {
  PyObject* d = PyDict_Copy(tmpl);
  if (!d) return NULL;
  PyDictObject* mp = (PyDictObject*)d;
  PyDictKeysObject* keys = mp->ma_keys;
  if (mp->ma_values != NULL || !DK_IS_UNICODE(keys) || keys->dk_nentries != n || mp->ma_used != n) {
    Py_DECREF(d);
    return NULL;
  }
  PyDictUnicodeEntry* ep = DK_UNICODE_ENTRIES(keys);
  int track = 0;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* old = ep[i].me_value;
    ep[i].me_value = values[i];
    Py_XDECREF(old);
    if (PyObject_IS_GC(values[i])) track = 1;
  }
  /* dictobject.c MAINTAIN_TRACKING: a dict holding containers must be tracked by the GC. */
  if (track && !PyObject_GC_IsTracked(d)) PyObject_GC_Track(d);
  return d;
}

/* Objects/genobject.c (3.11): the awaitable that `agen.__anext__()` / `agen.asend(v)` returns. The
 * struct is private to genobject.c; this mirror of it is checked by the type's name and size. */
typedef struct {
  PyObject_HEAD
  PyObject *ags_gen;
  PyObject *ags_sendval;
  int ags_state; /* AwaitableState: 0 init, 1 iter, 2 closed */
} stasis_asend;

int stasis_internals_asend_parts(PyObject *obj, PyObject **gen, PyObject **sendval, int *state) {
  PyTypeObject *t = Py_TYPE(obj);
  if (strcmp(t->tp_name, "async_generator_asend") != 0 || t->tp_basicsize != sizeof(stasis_asend))
    return 0;
  stasis_asend *a = (stasis_asend *)obj;
  *gen = a->ags_gen;
  *sendval = a->ags_sendval;
  *state = a->ags_state;
  return 1;
}

/* In the child of a fork() made by a thread that holds the GIL (python/stasis/program/periodic.py:
 * the checkpoint writer), without PyOS_AfterFork_Child, whose at-fork hooks would change the heap
 * the child is about to write (threading marks every other Thread stopped, random reseeds) and
 * whose _PyThreadState_DeleteExcept would clear the other threads' states. What the child must
 * not inherit is any lock or request of a thread that no longer exists; the same fields
 * Python/ceval_gil.h recreate_gil + take_gil and pystate.c _PyRuntimeState_ReInitThreads renew:
 * - the GIL's mutexes and condition variables (another thread may have held gil->mutex at the
 *   fork, inside take_gil), made new; the GIL stays taken by this thread;
 * - gil_drop_request (set by a thread that was waiting for the GIL): with it set, the child's next
 *   eval-breaker check would drop the GIL and wait on switch_cond for a thread that never comes;
 * - the pending-calls lock and the interpreters' HEAD lock, made new.
 * Condition variables use CLOCK_MONOTONIC as Python/thread_pthread.h init_condattr does (take_gil
 * computes its deadlines on that clock). Returns 0, or -1 when a lock cannot be made. */
int stasis_internals_reinit_after_fork(void) {
  PyThreadState *tstate = _PyThreadState_GET();
  PyInterpreterState *interp = tstate->interp;
  struct _gil_runtime_state *gil = &_PyRuntime.ceval.gil;
  pthread_condattr_t attr;
  if (pthread_condattr_init(&attr) != 0) return -1;
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  int rc = pthread_mutex_init(&gil->mutex, NULL) | pthread_cond_init(&gil->cond, &attr) |
           pthread_mutex_init(&gil->switch_mutex, NULL) | pthread_cond_init(&gil->switch_cond, &attr);
  pthread_condattr_destroy(&attr);
  if (rc != 0) return -1;
  _Py_atomic_store_relaxed(&gil->locked, 1);
  _Py_atomic_store_relaxed(&gil->last_holder, (uintptr_t)tstate);
  _Py_atomic_store_relaxed(&interp->ceval.gil_drop_request, 0);
  /* ceval.c COMPUTE_EVAL_BREAKER, for a thread that handles no signals or pending calls (not the
   * main thread): only the asynchronous-exception request remains. */
  _Py_atomic_store_relaxed(&interp->ceval.eval_breaker, interp->ceval.pending.async_exc);
  if (_PyThread_at_fork_reinit(&interp->ceval.pending.lock) < 0) return -1;
  if (_PyThread_at_fork_reinit(&_PyRuntime.interpreters.mutex) < 0) return -1;
  return 0;
}

/* Modules/_io/bufferedio.c (3.11): the layout of io.BufferedReader / BufferedWriter /
 * BufferedRandom objects, private to that file and unchanged from 3.8 to 3.13. A reader's unread
 * bytes are buffer[pos:read_end] while read_end != -1 (VALID_READ_BUFFER). The layout is trusted
 * only for objects whose type's basic size matches and whose `raw` is the given raw object. */
typedef off_t stasis_off_t; /* Modules/_io/_iomodule.h: Py_off_t is off_t outside Windows */
typedef struct {
  PyObject_HEAD
  PyObject *raw;
  int ok, detached, readable, writable;
  char finalizing;
  int fast_closed_checks;
  stasis_off_t abs_pos;
  char *buffer;
  stasis_off_t pos, raw_pos, read_end, write_pos, write_end;
  PyThread_type_lock lock;
  volatile unsigned long owner;
  Py_ssize_t buffer_size, buffer_mask;
  PyObject *dict, *weakreflist;
} stasis_buffered;

static stasis_buffered *stasis_buffered_of(PyObject *f, PyObject *raw) {
  PyTypeObject *t = Py_TYPE(f);
  if (t->tp_basicsize != (Py_ssize_t)sizeof(stasis_buffered)) return NULL;
  stasis_buffered *b = (stasis_buffered *)f;
  if (b->ok <= 0 || b->detached || b->raw != raw || !b->buffer) return NULL;
  return b;
}

int stasis_internals_buffered_read_ahead(PyObject *f, PyObject *raw, const char **data, Py_ssize_t *n) {
  stasis_buffered *b = stasis_buffered_of(f, raw);
  if (!b || !b->readable) return 0;
  *data = b->buffer + b->pos;
  *n = (b->read_end != -1 && b->read_end > b->pos) ? (Py_ssize_t)(b->read_end - b->pos) : 0;
  return 1;
}

int stasis_internals_buffered_preload(PyObject *f, PyObject *raw, const char *data, Py_ssize_t n) {
  stasis_buffered *b = stasis_buffered_of(f, raw);
  if (!b || !b->readable || n > b->buffer_size || (b->read_end != -1 && b->read_end != b->pos)) return 0;
  memcpy(b->buffer, data, (size_t)n);
  b->pos = 0;
  b->read_end = n;
  b->raw_pos = n;
  if (b->abs_pos != -1) b->abs_pos += n;
  return 1;
}
