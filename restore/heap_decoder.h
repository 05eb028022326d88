// restore/heap_decoder.h — runs the op stream (format/schema.h) to rebuild an object graph.
// Counterpart: snapshot/heap_encoder.h. Restore runs in phases per object: the shell is created
// and memoized first (EmptyList/EmptyDict/EmptySet/NewObj/Cell/Function/Class/Generator + Memo),
// then filled (Appends/SetItems/Build/CellSet/FunctionState/ClassState/GeneratorFrame), so cycles
// link; objects held only by the memo (weak referents) are released at the end (fix-up).
// No recursion. Core ops are decoded here; every other op is listed in restore/decoders.cpp.
// Loading calls only what FORMAT.md, "What loading may import and call", lists.
#pragma once

#include <Python.h>

#include <string>
#include <unordered_map>
#include <vector>

#include "core/ref.h"
#include "format/payload.h"

namespace stasis::restore {

// Loaders of user handlers (stasis.register): {key: load}; borrowed, may be null.
struct Registry {
  PyObject* loaders = nullptr;
};

class HeapDecoder {
 public:
  explicit HeapDecoder(format::PayloadReader& in, Registry registry = {})
      : in_(in), registry_(registry) {}
  ~HeapDecoder();
  HeapDecoder(const HeapDecoder&) = delete;
  HeapDecoder& operator=(const HeapDecoder&) = delete;

  // Runs every op; returns the single root. Throws CorruptSnapshot naming the op byte on failure
  // (or the payload's own error when its bytes were not verified yet and are damaged).
  // The payload may be verified as it is read (format/payload.h): until it is, only the core ops
  // and the ops restore/decoders.cpp marks plain run; any other waits for the verification.
  Ref decode();

  // For the per-type decoders (restore/*_decoder.cpp).
  format::PayloadReader& in() { return in_; }
  const Registry& registry() const { return registry_; }
  // Steals; a nullptr (a CPython constructor refused the value) becomes CorruptSnapshot.
  void push(PyObject* obj) {
    if (!obj) refused("invalid value");
    stack_.push_back(obj);
  }
  void push(Ref obj) { push(obj.release()); }
  Ref pop();
  PyObject* peek(size_t below_top = 0);  // borrowed; CorruptSnapshot when the stack is too short
  void need(size_t values, const char* op);
  PyObject* container_below(size_t values, PyTypeObject* type, const char* op);
  [[noreturn]] void corrupt(const std::string& what) const;
  PyObject* memo(uint64_t id);  // borrowed; CorruptSnapshot for an undefined id
  std::vector<PyObject*>& stack() { return stack_; }  // owned references (for batch ops)
  // The template dict ({key: None}) of the shape whose keys tuple is memo[id]; borrowed.
  PyObject* shape_template(uint64_t id, uint64_t k);
  // Turns the Python exception that is set into CorruptSnapshot (a value CPython refused).
  [[noreturn]] void refused(const std::string& what);
  // Items of sets being built, in the order they were added, until SetLayout consumes them.
  std::unordered_map<PyObject*, std::vector<Ref>>& set_items() { return set_items_; }

 private:
  Ref run();
  format::PayloadReader& in_;
  Registry registry_;
  std::vector<PyObject*> stack_;  // owned references
  std::vector<PyObject*> memo_;   // owned references
  std::unordered_map<uint64_t, Ref> templates_;  // shape templates by memo id
  uint64_t last_template_id_ = UINT64_MAX;
  PyObject* last_template_ = nullptr;
  std::unordered_map<PyObject*, std::vector<Ref>> set_items_;
  uint64_t op_at_ = 0;
};

}  // namespace stasis::restore
