// snapshot/heap_encoder.h — walks a live object graph and writes it as ops (format/schema.h).
// Counterpart: restore/heap_decoder.h. Invariants: no recursion on the C stack (an explicit work
// stack), identity kept through the memo (every object that may be reached twice gets an id),
// and an unsupported object aborts the walk with UnsupportedObject naming the path from the root.
#pragma once

#include <Python.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/ref.h"
#include "format/payload.h"

namespace stasis::snapshot {

class HeapEncoder {
 public:
  explicit HeapEncoder(format::PayloadWriter& out) : out_(out) {}
  // Encodes the graph reachable from `root`; leaves exactly one value on the op machine's stack.
  void encode(PyObject* root);

 private:
  enum class Kind : uint8_t { List, Tuple, Dict };
  struct Work {
    Ref obj;
    Kind kind;
    Py_ssize_t next = 0;     // next index (list, tuple) or PyDict_Next position (dict)
    uint64_t pending = 0;    // values pushed since the last Appends/SetItems
    PyObject* key = nullptr; // dict: the key whose value is being encoded (borrowed from the dict)
    PyObject* value = nullptr;
  };

  bool save(PyObject* obj);  // writes a leaf or a Ref, or pushes Work for a container (returns true)
  void save_str(PyObject* obj);
  void save_int(PyObject* obj);
  bool memoized(PyObject* obj);
  void memoize(PyObject* obj);
  void finish_tuple(Work& work);
  [[noreturn]] void unsupported(PyObject* obj);
  std::string path_to_top() const;

  format::PayloadWriter& out_;
  std::vector<Work> stack_;
  std::unordered_map<PyObject*, uint64_t> memo_;
  PyObject* root_ = nullptr;
};

}  // namespace stasis::snapshot
