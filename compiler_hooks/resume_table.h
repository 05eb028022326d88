// compiler_hooks/resume_table.h — the C++ view of a rewritten code object's resume-point table.
// The rewriter (compiler_hooks/resume_points.py) appends it as the last entry of co_consts:
// ('.stasis-resume-table', 1, ((id, start, begin, end, line, stack_tags, reason), ...)).
// Counterparts: snapshot/capture.cpp (finds the row a suspended caller is in) and
// restore/replay.cpp (jumps to the row's start). Offsets are in bytes, as f_lasti.
#pragma once

#include <Python.h>

#include <string>
#include <vector>

namespace stasis::compiler_hooks {

struct ResumeRow {
  PyObject* id;       // borrowed from the table tuple (str)
  PyObject* reason;   // borrowed: why the row is not resumable ('' when it is)
  int start;          // replay begins here (bytes); -1: not resumable
  int begin, end;     // f_lasti lies in [begin, end] while suspended at this site
  int structural;     // values on the stack at `start` (for-iterators, with-exits, ...)
  bool needs_exception_state;  // an exc/exc_prev/lasti value: replaying needs exc_info too
};

// The table of `code`, parsed once per code object and kept in the code object's co_extra slot
// (so nothing is pinned: it is freed with the code); nullptr when the code was not rewritten (or
// has an unknown table version). Borrowed; valid while `code` lives.
const std::vector<ResumeRow>* resume_table(PyCodeObject* code);

// Whether `code` carries a table (it was rewritten). Cheap, uncached, keeps nothing alive: for
// paths that only need to know (compiler_hooks/hidden_locals.cpp).
bool is_rewritten(PyCodeObject* code);

// The row whose [begin, end] holds `lasti_bytes`, or nullptr.
const ResumeRow* row_at(const std::vector<ResumeRow>& table, int lasti_bytes);

}  // namespace stasis::compiler_hooks
