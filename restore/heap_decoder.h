// restore/heap_decoder.h — runs the op stream (format/schema.h) to rebuild an object graph.
// Counterpart: snapshot/heap_encoder.h. Phases per container: the shell is created and memoized
// first (EmptyList/EmptyDict + Memo), then filled (Appends/SetItems), so cycles link. No recursion.
// Loading calls no Python code named by the snapshot (see FORMAT.md, "What loading may call").
#pragma once

#include <Python.h>

#include <vector>

#include "core/ref.h"
#include "format/payload.h"

namespace stasis::restore {

class HeapDecoder {
 public:
  explicit HeapDecoder(format::PayloadReader& in) : in_(in) {}
  ~HeapDecoder();
  HeapDecoder(const HeapDecoder&) = delete;
  HeapDecoder& operator=(const HeapDecoder&) = delete;

  // Runs every op; returns the single root. Throws CorruptSnapshot naming the op byte on failure.
  Ref decode();

 private:
  void push(PyObject* obj);  // steals; throws Error::python() on nullptr
  PyObject* container_below(size_t values, PyTypeObject* type, const char* op);
  [[noreturn]] void corrupt(const std::string& what) const;

  format::PayloadReader& in_;
  std::vector<PyObject*> stack_;  // owned references
  std::vector<PyObject*> memo_;   // owned references
  uint64_t op_at_ = 0;
};

}  // namespace stasis::restore
