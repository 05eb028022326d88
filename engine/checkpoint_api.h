// engine/checkpoint_api.h — Python entry points for periodic checkpoints
// (python/stasis/program/periodic.py): the writer's fork and huge pages for the heap.
#pragma once
#include <Python.h>

namespace stasis::engine {
// fork_writer(timeout_seconds) -> pid | (0, files): fork() by the calling thread, which holds the
// GIL while every program thread is parked. The parent gets the child's pid. The child gets 0 and
// the open regular files (descriptor >= 3) as they were at the fork, [(fd, offset, size, flags)];
// it is this thread alone, still holding the GIL: the GIL and interpreter locks are made new, the
// cyclic GC is off, every signal is blocked but SIGALRM (default action, after timeout_seconds;
// 0 = none), and it is killed when the calling thread of the parent ends. It must leave with
// os._exit().
PyObject* fork_writer(PyObject*, PyObject* args);
// collapse_huge_pages(min_resident=448) -> (chunks, failed, unsupported): asks the kernel
// (MADV_COLLAPSE, Linux >= 6.1) to map each 2 MiB chunk of the private anonymous memory with at
// least min_resident of its 512 pages resident as one huge page, without the GIL. fork() then
// copies one page-table entry per chunk instead of 512. unsupported = 1 when the kernel refused
// (then never tried again in this process).
PyObject* collapse_huge_pages(PyObject*, PyObject* args);
// objects_of_types(types) -> [objects]: every GC-tracked object that is an instance of one of the
// types (a tuple), found by walking the collector's lists in C (the checkpoint writer looks for
// the program's buffered files this way).
PyObject* objects_of_types(PyObject*, PyObject* types);
}  // namespace stasis::engine
