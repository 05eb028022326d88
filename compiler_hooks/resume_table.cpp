#include "compiler_hooks/resume_table.h"

#include <cstring>
#include <unordered_map>

namespace stasis::compiler_hooks {
namespace {

constexpr const char* kMarker = ".stasis-resume-table";
constexpr long kTableVersion = 1;

struct Cached {
  PyObject* table;  // strong reference: keeps the borrowed row ids alive
  std::vector<ResumeRow> rows;
};

// Code objects are immortal enough for our use: entries hold a reference to their table tuple and
// are keyed by the code object, which holds that same tuple. Never shrinks (one entry per
// rewritten code object that was ever on a captured stack).
std::unordered_map<PyCodeObject*, Cached*>& cache() {
  static auto* m = new std::unordered_map<PyCodeObject*, Cached*>();
  return *m;
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
  auto it = cache().find(code);
  if (it != cache().end()) return it->second ? &it->second->rows : nullptr;
  Cached* entry = nullptr;
  if (PyObject* last = table_of(code)) {
    entry = new Cached{Py_NewRef(last), {}};
    if (!parse(PyTuple_GET_ITEM(last, 2), entry->rows)) {
      Py_DECREF(entry->table);
      delete entry;
      entry = nullptr;
    }
  }
  Py_INCREF(code);  // the key must stay valid: cached code objects are kept alive
  cache().emplace(code, entry);
  return entry ? &entry->rows : nullptr;
}

const ResumeRow* row_at(const std::vector<ResumeRow>& table, int lasti_bytes) {
  for (const ResumeRow& r : table)
    if (r.begin <= lasti_bytes && lasti_bytes <= r.end) return &r;
  return nullptr;
}

}  // namespace stasis::compiler_hooks
