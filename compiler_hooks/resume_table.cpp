#include "compiler_hooks/resume_table.h"

#include <cstring>

#include "core/cpython_internals.h"

namespace stasis::compiler_hooks {
namespace {

constexpr const char* kMarker = ".stasis-resume-table";
constexpr long kTableVersion = 1;

struct Cached {
  std::vector<ResumeRow> rows;  // row ids are borrowed from the table tuple, which the code owns
};

// The parsed table rides on the code object itself (co_extra, PEP 523): freed with the code, so
// asking about a code object never keeps it alive. Code without a table gets kNotRewritten, so
// the answer for it is one lookup too (the parking trace asks at every 'call' event).
Cached kNotRewritten;

void free_extra(void* extra) {
  if (extra && extra != &kNotRewritten) delete static_cast<Cached*>(extra);
}

// One slot index per interpreter; -1 when none is left (then the table is parsed again at each
// call: slow, still correct).
Py_ssize_t extra_index() {
  static Py_ssize_t index = internals::request_code_extra_index(free_extra);
  return index;
}

bool is_marker(PyObject* o) {
  return PyUnicode_Check(o) && PyUnicode_CompareWithASCIIString(o, kMarker) == 0;
}

bool parse(PyObject* rows, std::vector<ResumeRow>& out) {
  Py_ssize_t n = PyTuple_GET_SIZE(rows);
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* r = PyTuple_GET_ITEM(rows, i);
    if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 7) return false;
    PyObject* stack = PyTuple_GET_ITEM(r, 5);
    if (!PyTuple_Check(stack)) return false;
    ResumeRow row{};
    row.id = PyTuple_GET_ITEM(r, 0);
    row.reason = PyTuple_GET_ITEM(r, 6);
    row.start = int(PyLong_AsLong(PyTuple_GET_ITEM(r, 1)));
    row.begin = int(PyLong_AsLong(PyTuple_GET_ITEM(r, 2)));
    row.end = int(PyLong_AsLong(PyTuple_GET_ITEM(r, 3)));
    row.structural = int(PyTuple_GET_SIZE(stack));
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(stack); ++k) {
      PyObject* tag = PyTuple_GET_ITEM(stack, k);
      if (PyUnicode_Check(tag) && (PyUnicode_CompareWithASCIIString(tag, "exc") == 0 ||
                                   PyUnicode_CompareWithASCIIString(tag, "exc_prev") == 0 ||
                                   PyUnicode_CompareWithASCIIString(tag, "lasti") == 0))
        row.needs_exception_state = true;
    }
    if (PyErr_Occurred()) {
      PyErr_Clear();
      return false;
    }
    out.push_back(row);
  }
  return true;
}

// The table tuple of `code` (borrowed), or nullptr when it has none of this version.
PyObject* table_of(PyCodeObject* code) {
  PyObject* consts = code->co_consts;
  Py_ssize_t n = consts ? PyTuple_GET_SIZE(consts) : 0;
  if (n == 0) return nullptr;
  PyObject* last = PyTuple_GET_ITEM(consts, n - 1);
  if (PyTuple_Check(last) && PyTuple_GET_SIZE(last) == 3 && is_marker(PyTuple_GET_ITEM(last, 0)) &&
      PyLong_Check(PyTuple_GET_ITEM(last, 1)) && PyLong_AsLong(PyTuple_GET_ITEM(last, 1)) == kTableVersion &&
      PyTuple_Check(PyTuple_GET_ITEM(last, 2)))
    return last;
  return nullptr;
}

}  // namespace

bool is_rewritten(PyCodeObject* code) { return table_of(code) != nullptr; }

const std::vector<ResumeRow>* resume_table(PyCodeObject* code) {
  Py_ssize_t index = extra_index();
  void* extra = nullptr;
  if (index >= 0 && internals::code_extra(reinterpret_cast<PyObject*>(code), index, &extra) == 0 && extra)
    return extra == &kNotRewritten ? nullptr : &static_cast<Cached*>(extra)->rows;
  PyErr_Clear();
  auto* entry = new Cached{};
  PyObject* last = table_of(code);
  if (!last || !parse(PyTuple_GET_ITEM(last, 2), entry->rows)) {
    delete entry;
    entry = &kNotRewritten;
  }
  if (index < 0 || internals::set_code_extra(reinterpret_cast<PyObject*>(code), index, entry) < 0) {
    PyErr_Clear();
    // No slot: keep nothing (a leaked entry per call would grow without bound).
    thread_local Cached scratch;
    if (entry == &kNotRewritten) return nullptr;
    scratch.rows.swap(entry->rows);
    delete entry;
    return &scratch.rows;
  }
  return entry == &kNotRewritten ? nullptr : &entry->rows;
}

const ResumeRow* row_at(const std::vector<ResumeRow>& table, int lasti_bytes) {
  for (const ResumeRow& r : table)
    if (r.begin <= lasti_bytes && lasti_bytes <= r.end) return &r;
  return nullptr;
}

}  // namespace stasis::compiler_hooks
