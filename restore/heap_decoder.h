// restore/heap_decoder.h — runs the op stream (format/schema.h) to rebuild an object graph.
// Counterpart: snapshot/heap_encoder.h. Restore runs in phases per object: the shell is created
// and memoized first (EmptyList/EmptyDict/EmptySet/NewObj/Cell/Function/Class/Generator + Memo),
// then filled (Appends/SetItems/Build/CellSet/FunctionState/ClassState/GeneratorFrame), so cycles
// link; objects held only by the memo (weak referents) are released at the end (fix-up).
// No recursion. Core ops are decoded here; every other op is listed in restore/decoders.cpp.
// Loading calls only what FORMAT.md, "What loading may import and call", lists, and changes only
// what it built itself: the decoder keeps apart the objects it found (imported modules, classes
// and functions by reference, attributes, shared results of calls: "foreign") from those it made,
// and every op that fills or changes an object refuses a foreign one. An object graph (Trust::
// Objects) is built without running any code that came from the snapshot (restore/code_guard.h);
// a program's own snapshot (Trust::Program) may run the program's code, as resuming it does.
#pragma once

#include <Python.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/ref.h"
#include "format/payload.h"

namespace stasis::restore {

class CodeGuard;
class EffectGuard;

// Loaders of user handlers (stasis.register): {key: load}; borrowed, may be null. `finder`
// (borrowed, may be null): called with a key no loader has, it registers the built-in handlers of
// the library module that key belongs to (numpy's, in a process that has not imported numpy) and
// says whether it did.
struct LoadHandlers {
  PyObject* loaders = nullptr;
  PyObject* finder = nullptr;
};

// What a snapshot is trusted to do while it loads (FORMAT.md, "Threat model").
enum class Trust {
  Objects,  // stasis.load/loads: no code from the snapshot runs
  Program,  // stasis resume: the program's own code (its classes and functions) may run
};

class HeapDecoder {
 public:
  explicit HeapDecoder(format::PayloadReader& in, LoadHandlers handlers = {}, Trust trust = Trust::Objects);
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
  const LoadHandlers& handlers() const { return handlers_; }
  bool program() const { return trust_ == Trust::Program; }
  // Steals; a nullptr (a CPython constructor refused the value) becomes CorruptSnapshot.
  void push(PyObject* obj) {
    if (!obj) refused("invalid value");
    if (stack_.size() >= format::kMaxStack) {
      Py_DECREF(obj);
      corrupt("the value stack holds " + std::to_string(stack_.size()) +
              " values, the most a snapshot may leave unconsumed (format/schema.h kMaxStack)");
    }
    stack_.push_back(obj);
  }
  void push(Ref obj) { push(obj.release()); }
  // A generator or coroutine this load made (restore/generator_decoder.cpp).
  void made_generator(PyObject* gen) { generators_.push_back(Ref::borrow(gen)); }
  Ref pop();
  PyObject* peek(size_t below_top = 0);  // borrowed; CorruptSnapshot when the stack is too short
  // CorruptSnapshot unless the stack holds count x per + extra values (no overflow for any count).
  void need(uint64_t count, uint64_t per, uint64_t extra, const char* op);
  void need(size_t values, const char* op) { need(values, 1, 0, op); }
  // The container of exactly `type` below `values` values, which this load made (not foreign).
  PyObject* container_below(uint64_t values, PyTypeObject* type, const char* op);
  // The object `below_top` values down that an op is about to fill or change: refused when this
  // load did not make it (a module, a class or function by reference, an attribute of one...).
  PyObject* target(size_t below_top, const char* op);

  // --- what this load found and what it built --------------------------------------------------
  // `obj` existed before this load, or may be shared with what did (a call's result that
  // something else also holds): no op may change it.
  void mark_foreign(PyObject* obj);
  // Marks a call's result foreign when something besides the decoder holds it.
  void mark_if_shared(PyObject* obj) {
    if (Py_REFCNT(obj) > 1) mark_foreign(obj);
  }
  bool foreign(PyObject* obj) const { return !foreign_.empty() && foreign_.count(obj) != 0; }
  // A code object, function or class this load built from the snapshot's own bytes.
  void built_code(PyObject* code);
  void built_function(PyObject* func) { stream_functions_.insert(func); }
  void built_class(PyObject* cls) { stream_classes_.insert(cls); }
  bool stream_function(PyObject* f) const { return stream_functions_.count(f) != 0; }
  bool stream_class(PyObject* cls) const { return stream_classes_.count(cls) != 0; }
  // Whether `type` is or derives from a class this load built.
  bool derives_from_stream_class(PyTypeObject* type) const;
  // The guard that keeps the snapshot's code from running while an object graph loads (null for a
  // program, or before the first Code op).
  CodeGuard* guard() { return guard_.get(); }
  // The audit hook that refuses effects while an object graph loads (restore/effect_guard.h;
  // null for a program).
  EffectGuard* effects() { return effects_.get(); }
  // After a call into Python: CorruptSnapshot if the call tried to run code from the snapshot
  // (the guard refused it, even if something swallowed that refusal).
  void check_guard();
  // After an op: CorruptSnapshot if something it ran tried an effect the audit hook refused.
  void check_effects();
  // Whether the Python exception that is set is one of Stasis's own (stasis.errors).
  static bool stasis_error_set();
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
  [[noreturn]] void rethrow_as_snapshot_error();
  format::PayloadReader& in_;
  LoadHandlers handlers_;
  Trust trust_;
  std::unordered_set<PyObject*> foreign_;             // see mark_foreign
  std::unordered_set<PyObject*> foreign_containers_;  // the lists, dicts and sets among them
  std::vector<Ref> foreign_alive_;                    // keeps them alive (their ids stay theirs)
  std::unordered_set<PyObject*> stream_functions_, stream_classes_;
  std::unique_ptr<CodeGuard> guard_;
  std::vector<Ref> generators_;  // made by this load: ended unrun if the load fails
  bool decoded_ = false;
  std::unique_ptr<EffectGuard> effects_;
  std::vector<PyObject*> stack_;  // owned references
  std::vector<PyObject*> memo_;   // owned references
  std::unordered_map<uint64_t, Ref> templates_;  // shape templates by memo id
  uint64_t last_template_id_ = UINT64_MAX;
  PyObject* last_template_ = nullptr;
  std::unordered_map<PyObject*, std::vector<Ref>> set_items_;
  uint64_t op_at_ = 0;
  uint8_t op_ = 0;
};

}  // namespace stasis::restore
