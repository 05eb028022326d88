#include "engine/net_api.h"

#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "core/cpython_internals.h"

namespace stasis::engine {
namespace {

// A real-time signal of Stasis's own: its handler returns at once (the point is the EINTR it
// causes). SIGRTMAX - 2 keeps clear of the lowest ones, which threading libraries take.
int interrupt_signal() { return SIGRTMAX - 2; }

void do_nothing(int) {}

bool install_handler() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] {
    struct sigaction action;
    std::memset(&action, 0, sizeof action);
    action.sa_handler = do_nothing;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: the interrupted call returns EINTR
    ok = sigaction(interrupt_signal(), &action, nullptr) == 0;
  });
  return ok;
}

}  // namespace

PyObject* interrupt_thread(PyObject*, PyObject* arg) {
  unsigned long ident = PyLong_AsUnsignedLong(arg);
  if (ident == static_cast<unsigned long>(-1) && PyErr_Occurred()) return nullptr;
  if (!install_handler()) return PyErr_SetFromErrno(PyExc_OSError);
  int rc = pthread_kill(static_cast<pthread_t>(ident), interrupt_signal());
  if (rc != 0) {
    errno = rc;
    return PyErr_SetFromErrno(PyExc_OSError);
  }
  Py_RETURN_NONE;
}

PyObject* buffered_read_ahead(PyObject*, PyObject* args) {
  PyObject *f, *raw;
  if (!PyArg_ParseTuple(args, "OO:buffered_read_ahead", &f, &raw)) return nullptr;
  const char* data = nullptr;
  Py_ssize_t n = 0;
  if (!stasis_internals_buffered_read_ahead(f, raw, &data, &n)) Py_RETURN_NONE;
  return PyBytes_FromStringAndSize(data, n);
}

PyObject* buffered_preload(PyObject*, PyObject* args) {
  PyObject *f, *raw;
  Py_buffer data;
  if (!PyArg_ParseTuple(args, "OOy*:buffered_preload", &f, &raw, &data)) return nullptr;
  int ok = stasis_internals_buffered_preload(f, raw, static_cast<const char*>(data.buf), data.len);
  PyBuffer_Release(&data);
  return PyBool_FromLong(ok);
}

}  // namespace stasis::engine
