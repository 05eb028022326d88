#include "updater/control_watch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>

#include "core/cpython_internals.h"
#include "core/error.h"
#include "core/ref.h"

namespace stasis::updater::control_watch {
namespace {

struct Watcher {
  pthread_t thread{};
  pid_t owner_pid = 0;              // the process that started it; in any other, a forked child, it is gone
  int listen_fd = -1;               // borrowed: control.py's socket object owns it
  int wake_read = -1, wake_write = -1;
  PyObject* callback = nullptr;     // strong; the watcher thread touches it only with the GIL
  PyObject* owners = nullptr;       // strong: the set of Stasis's own thread idents
  unsigned long ident = 0;
  std::atomic<bool> stopping{false};
};

Watcher* current = nullptr;  // read and written with the GIL held

// The watcher thread. A plain function with no C++ objects and no noexcept: should CPython end the
// thread with pthread_exit (a finalizing interpreter asked for the GIL), the forced unwind passes
// through this frame without calling std::terminate. stop() normally joins it before that can happen.
extern "C" void* watch_main(void* arg) {
  Watcher* w = static_cast<Watcher*>(arg);
  struct pollfd fds[2];
  for (;;) {
    fds[0].fd = w->listen_fd;
    fds[0].events = POLLIN;
    fds[0].revents = 0;
    fds[1].fd = w->wake_read;
    fds[1].events = POLLIN;
    fds[1].revents = 0;
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents != 0 || w->stopping.load()) break;  // woken by stop(), or the pipe is gone
    if (fds[0].revents & POLLNVAL) break;                   // the socket was closed under us
    if (fds[0].revents == 0) continue;
    if (internals::runtime_finalizing()) break;
    PyGILState_STATE gil = PyGILState_Ensure();  // a thread state for this call only
    int again = 0;
    if (!w->stopping.load()) {  // stop() may have come while this thread waited for the GIL
      PyObject* result = PyObject_CallNoArgs(w->callback);
      if (result != nullptr) {
        again = PyObject_IsTrue(result);
        Py_DECREF(result);
      }
      if (result == nullptr || again < 0) {
        PyErr_WriteUnraisable(w->callback);  // a bug in the callback: stop rather than spin on the socket
        again = 0;
      }
    }
    PyGILState_Release(gil);  // deletes the thread state: none is left while idle
    if (again == 0) break;
  }
  return nullptr;
}

// Frees what the watcher held; its thread has ended (joined) or does not exist (forked child).
void release(Watcher* w) {
  if (w->wake_read >= 0) close(w->wake_read);
  if (w->wake_write >= 0) close(w->wake_write);
  if (PyObject* id = PyLong_FromUnsignedLong(w->ident)) {
    if (PySet_Discard(w->owners, id) < 0) PyErr_Clear();
    Py_DECREF(id);
  } else {
    PyErr_Clear();
  }
  Py_XDECREF(w->callback);
  Py_XDECREF(w->owners);
  delete w;
}

void forget_current() {
  Watcher* w = current;
  current = nullptr;
  if (w) release(w);
}

void stop_current() {
  Watcher* w = current;
  if (!w) return;
  if (w->owner_pid != getpid()) {  // a forked child whose at-fork hook did not run
    forget_current();
    return;
  }
  if (pthread_equal(pthread_self(), w->thread)) {
    PyErr_SetString(PyExc_RuntimeError, "the control watcher cannot stop itself");
    throw Error::python();
  }
  current = nullptr;
  w->stopping.store(true);
  char byte = 1;
  while (write(w->wake_write, &byte, 1) < 0 && errno == EINTR) {
  }
  // The watcher may be waiting for the GIL (a client connected): let it see `stopping` and leave.
  Py_BEGIN_ALLOW_THREADS
  pthread_join(w->thread, nullptr);
  Py_END_ALLOW_THREADS
  release(w);
}

}  // namespace

unsigned long start(int fd, PyObject* callback, PyObject* owners) {
  if (!PyCallable_Check(callback)) {
    PyErr_SetString(PyExc_TypeError, "callback must be callable");
    throw Error::python();
  }
  if (!PySet_Check(owners)) {
    PyErr_SetString(PyExc_TypeError, "owners must be a set");
    throw Error::python();
  }
  if (current && current->owner_pid != getpid()) forget_current();
  if (current) {
    PyErr_SetString(PyExc_RuntimeError, "the control channel is already watched in this process");
    throw Error::python();
  }
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) < 0) {
    PyErr_SetFromErrno(PyExc_OSError);
    throw Error::python();
  }
  auto* w = new Watcher;
  w->owner_pid = getpid();
  w->listen_fd = fd;
  w->wake_read = pipe_fds[0];
  w->wake_write = pipe_fds[1];
  w->callback = Ref::borrow(callback).release();
  w->owners = Ref::borrow(owners).release();
  int rc = pthread_create(&w->thread, nullptr, watch_main, w);
  if (rc != 0) {
    release(w);
    errno = rc;
    PyErr_SetFromErrno(PyExc_OSError);
    throw Error::python();
  }
  w->ident = static_cast<unsigned long>(w->thread);  // = threading.get_ident() in that thread
  current = w;
  // The GIL is still ours, so the watcher has run no Python code yet: its ident is Stasis's own
  // before its first thread state exists.
  Ref ident = Ref::steal(PyLong_FromUnsignedLong(w->ident));
  if (!ident || PySet_Add(owners, ident.get()) < 0) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    stop_current();
    PyErr_Restore(type, value, tb);
    throw Error::python();
  }
  return w->ident;
}

void stop() { stop_current(); }

void forget() { forget_current(); }

}  // namespace stasis::updater::control_watch
