// engine/checkpoint_api.cpp — what periodic checkpoints (python/stasis/program/periodic.py) need
// from C: a fork() by the thread that holds the GIL, whose child can run Python code to write the
// snapshot while the parent goes on; and huge pages for the heap, so that fork() copies few page
// tables.
#include "engine/checkpoint_api.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/cpython_internals.h"
#include "core/error.h"
#include "core/ref.h"
#include "engine/errors.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25  // Linux 6.1 (uapi/asm-generic/mman-common.h)
#endif

namespace stasis::engine {
namespace {

// Exit status of a writer whose parent was gone before it could start (periodic.py knows it).
constexpr int kParentGone = 3;

bool g_collapse_unsupported = false;  // MADV_COLLAPSE refused once (kernel < 6.1, THP off): stop

struct Mapping {
  uintptr_t start, end;
};

// Private anonymous writable mappings (the malloc heap, pymalloc arenas, large allocations):
// /proc/self/maps lines without a path, or with [heap]. Thread stacks ([stack] or anonymous) are
// mostly not resident and are filtered by residency below.
std::vector<Mapping> anonymous_mappings() {
  std::vector<Mapping> out;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    std::istringstream fields(line);
    std::string range, perms, offset, dev, inode, path;
    fields >> range >> perms >> offset >> dev >> inode >> path;
    if (perms.size() < 4 || perms[0] != 'r' || perms[1] != 'w' || perms[3] != 'p') continue;
    if (!path.empty() && path != "[heap]") continue;
    auto dash = range.find('-');
    if (dash == std::string::npos) continue;
    out.push_back(
        {std::stoul(range.substr(0, dash), nullptr, 16), std::stoul(range.substr(dash + 1), nullptr, 16)});
  }
  return out;
}

// The open regular files of the process (descriptors 3 and up): descriptor, offset, size, status
// flags. Read while every program thread is parked, just before the fork: the child shares each
// file's offset with the parent, which moves it again as soon as it goes on, so the child must
// know the offsets as they were at the fork.
struct OpenFile {
  int fd;
  off_t offset, size;
  int flags;
};

std::vector<OpenFile> open_regular_files() {
  std::vector<OpenFile> out;
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return out;
  int own = dirfd(dir);
  while (dirent* e = readdir(dir)) {
    char* end;
    long fd = std::strtol(e->d_name, &end, 10);
    if (*end || end == e->d_name || fd < 3 || fd == own) continue;
    struct stat st;
    if (fstat(int(fd), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    int flags = fcntl(int(fd), F_GETFL);
    off_t offset = lseek(int(fd), 0, SEEK_CUR);
    if (flags < 0 || offset < 0) continue;
    out.push_back({int(fd), offset, st.st_size, flags});
  }
  closedir(dir);
  return out;
}

}  // namespace

PyObject* fork_writer(PyObject*, PyObject* args) {
  return guarded([&]() -> Ref {
    unsigned int timeout = 0;
    if (!PyArg_ParseTuple(args, "I:fork_writer", &timeout)) throw Error::python();
    // Every signal stays blocked in the child (inherited mask): Slurm's SIGTERM to the whole job,
    // the suspension signal, ^C in a terminal are for the program, not for its writer. The
    // parent's mask is put back at once.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    std::vector<OpenFile> files = open_regular_files();
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) {
      int saved = errno;
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      if (pid < 0) {
        errno = saved;
        PyErr_SetFromErrno(PyExc_OSError);
        throw Error::python();
      }
      return Ref::steal(PyLong_FromLong(pid));
    }
    // The child: one thread (this one), holding the GIL. It dies with this thread of the parent
    // (the checkpointer, which lives as long as the program), so a program killed meanwhile does
    // not leave a writer behind that would replace a newer snapshot later.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(kParentGone);
    if (stasis_internals_reinit_after_fork() < 0) {
      std::fprintf(stderr, "stasis: checkpoint writer: cannot set up the interpreter's locks\n");
      _exit(1);
    }
    // A collection would run finalizers (__del__, weakref callbacks) of the program's garbage in
    // the child: program code with effects outside the process. The child only reads the heap.
    PyGC_Disable();
    if (timeout) {  // a writer stuck on a lock that a parked thread held at the fork ends
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      sigaction(SIGALRM, &dfl, nullptr);
      sigset_t alarm_only;
      sigemptyset(&alarm_only);
      sigaddset(&alarm_only, SIGALRM);
      pthread_sigmask(SIG_UNBLOCK, &alarm_only, nullptr);
      alarm(timeout);
    }
    // Nothing may raise from here on: the caller would take the child for the parent.
    Ref table = Ref::steal(PyList_New(0));
    for (const OpenFile& f : files) {
      Ref item = Ref::steal(Py_BuildValue("(iLLi)", f.fd, (long long)f.offset, (long long)f.size, f.flags));
      if (!table || !item || PyList_Append(table.get(), item.get()) < 0) table = Ref();
    }
    Ref result = table ? Ref::steal(Py_BuildValue("(iO)", 0, table.get())) : Ref();
    if (!result) {
      std::fprintf(stderr, "stasis: checkpoint writer: out of memory\n");
      _exit(1);
    }
    return result;
  });
}

namespace {

struct Collapse {
  Py_ssize_t chunks = 0, failed = 0;
  int unsupported = 0;
};

// The work of collapse_huge_pages, without the GIL. Nothing escapes it.
Collapse collapse_without_gil(int min_resident) noexcept {
  Collapse out;
  try {
    constexpr uintptr_t kHuge = uintptr_t(2) << 20;
    const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
    const size_t per_chunk = kHuge / page;
    std::vector<unsigned char> resident;
    for (const Mapping& m : anonymous_mappings()) {
      uintptr_t start = (m.start + kHuge - 1) & ~(kHuge - 1), end = m.end & ~(kHuge - 1);
      if (end <= start) continue;
      resident.assign((end - start) / page, 0);
      if (mincore(reinterpret_cast<void*>(start), end - start, resident.data()) != 0)
        continue;  // unmapped meanwhile
      for (uintptr_t chunk = start; chunk < end; chunk += kHuge) {
        const unsigned char* r = resident.data() + (chunk - start) / page;
        size_t n = 0;
        for (size_t i = 0; i < per_chunk; ++i) n += r[i] & 1;
        if (n < size_t(min_resident)) continue;
        if (madvise(reinterpret_cast<void*>(chunk), kHuge, MADV_COLLAPSE) == 0) {
          ++out.chunks;
        } else if (errno == EINVAL || errno == EPERM) {
          out.unsupported = 1;  // no MADV_COLLAPSE in this kernel, or THP disabled
          return out;
        } else {
          ++out.failed;  // EAGAIN/ENOMEM: busy or no huge page free now; next time
        }
      }
    }
  } catch (...) {  // out of memory reading /proc/self/maps: nothing collapsed this time
  }
  return out;
}

}  // namespace

// Not `guarded` (noexcept, catch-all): the GIL is taken again at the end, and a thread that asks
// for it while the interpreter finalizes is ended by CPython with pthread_exit, whose forced
// unwind must pass through this frame (a catch-all or noexcept frame would call std::terminate).
PyObject* collapse_huge_pages(PyObject*, PyObject* args) {
  int min_resident = 448;  // of 512 pages: collapse only chunks this full (bounds the growth)
  if (!PyArg_ParseTuple(args, "|i:collapse_huge_pages", &min_resident)) return nullptr;
  Collapse done;
  if (!g_collapse_unsupported) {
    Py_BEGIN_ALLOW_THREADS done = collapse_without_gil(min_resident);
    Py_END_ALLOW_THREADS
  }
  if (done.unsupported) g_collapse_unsupported = true;
  return Py_BuildValue("(nni)", done.chunks, done.failed, done.unsupported);
}

}  // namespace stasis::engine

namespace stasis::engine {

PyObject* objects_of_types(PyObject*, PyObject* types) {
  return guarded([&]() -> Ref {
    if (!PyTuple_Check(types)) throw Error(ErrorCode::Internal, "objects_of_types takes a tuple of types");
    struct Walk {
      PyObject* types;
      std::vector<PyObject*> found;
    } walk{types, {}};
    // No allocation of Python objects while the GC lists are walked: pointers first.
    stasis_internals_visit_gc_objects(
        [](PyObject* obj, void* arg) -> int {
          auto* w = static_cast<Walk*>(arg);
          for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(w->types); ++i) {
            if (PyObject_TypeCheck(obj, reinterpret_cast<PyTypeObject*>(PyTuple_GET_ITEM(w->types, i)))) {
              w->found.push_back(obj);
              break;
            }
          }
          return 0;
        },
        &walk);
    Ref out = Ref::steal(PyList_New(Py_ssize_t(walk.found.size())));
    if (!out) throw Error::python();
    for (size_t i = 0; i < walk.found.size(); ++i)
      PyList_SET_ITEM(out.get(), Py_ssize_t(i), Py_NewRef(walk.found[i]));
    return out;
  });
}

}  // namespace stasis::engine
