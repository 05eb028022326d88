// snapshot/heap_encoder.h — walks a live object graph and writes it as ops (format/schema.h).
// Counterpart: restore/heap_decoder.h. Invariants: no recursion on the C stack (an explicit work
// stack), identity kept through the memo (every object that may be reached twice gets an id),
// and an unsupported object aborts the walk with UnsupportedObject naming the path from the root.
// The exact builtin containers have fast paths here; every other type is listed in the one table
// of snapshot/encoders.cpp, whose encoders describe an object as a Plan (a list of steps).
#pragma once

#include <Python.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/ref.h"
#include "format/payload.h"
#include "snapshot/pointer_map.h"

namespace stasis::snapshot {

// User handlers (stasis.register): {type: (key, save)}; borrowed, may be null.
struct SaveHandlers {
  PyObject* savers = nullptr;
};

class HeapEncoder;

// One step of an encoder's plan: save an object, write an op, or finish an atomic construction.
struct Step {
  enum Kind : uint8_t { Save, Emit, Memoize, MemoizeForce, Atomic, CellShell } kind;
  format::Op op = format::Op::None;
  bool has_arg = false;
  uint64_t arg = 0;
  Ref obj;
  const char* label = "";  // path element shown in UnsupportedObject errors (Save steps)
};

// What an encoder builds for one object: the steps run in order by the walker.
class Plan {
 public:
  explicit Plan(PyObject* obj) : obj_(Ref::borrow(obj)) {}
  // Writes `child` (recursively, through the walker). `label` is its path element, e.g. ".__dict__".
  Plan& save(PyObject* child, const char* label = "") {
    steps_.push_back(Step{Step::Save, format::Op::None, false, 0, Ref::borrow(child), label});
    return *this;
  }
  Plan& save(Ref child, const char* label = "") {
    steps_.push_back(Step{Step::Save, format::Op::None, false, 0, std::move(child), label});
    return *this;
  }
  Plan& op(format::Op o) {
    steps_.push_back(Step{Step::Emit, o, false, 0, Ref(), ""});
    return *this;
  }
  Plan& op(format::Op o, uint64_t arg) {
    steps_.push_back(Step{Step::Emit, o, true, arg, Ref(), ""});
    return *this;
  }
  // Gives the plan's object a memo id when it may be shared (after the op that made its shell).
  Plan& memoize() {
    steps_.push_back(Step{Step::Memoize, format::Op::None, false, 0, Ref(), ""});
    return *this;
  }
  // Gives `obj` a memo id even when it is not shared now (it is referred to later by Ref).
  Plan& memoize_always(PyObject* obj) {
    steps_.push_back(Step{Step::MemoizeForce, format::Op::None, false, 0, Ref::borrow(obj), ""});
    return *this;
  }
  // A closure cell: a Ref when it has a memo id by the time the step runs, else an empty cell
  // shell (Cell) that gets a memo id; its contents are written later (CellSet).
  Plan& cell_shell(PyObject* cell) {
    steps_.push_back(Step{Step::CellShell, format::Op::None, false, 0, Ref::borrow(cell), ""});
    return *this;
  }
  // Ends a construction from `values` values pushed by this plan: if the object got a memo id
  // meanwhile (a cycle led back to it), drop them and refer to it, and skip the rest of the plan;
  // else write `o` and memoize the object.
  Plan& atomic(format::Op o, uint64_t values) {
    steps_.push_back(Step{Step::Atomic, o, false, values, Ref(), ""});
    return *this;
  }
  PyObject* object() const { return obj_.get(); }

 private:
  friend class HeapEncoder;
  Ref obj_;
  std::vector<Step> steps_;
};

class HeapEncoder {
 public:
  explicit HeapEncoder(format::PayloadWriter& out, SaveHandlers handlers = {})
      : out_(out), handlers_(handlers) {}
  // Encodes the graph reachable from `root`; leaves exactly one value on the op machine's stack.
  void encode(PyObject* root);
  // Modules whose classes and functions are written by value even when importable: a suspended
  // program's own modules, which are not re-imported on resume (python/stasis/program/).
  void set_by_value_modules(std::vector<std::string> names) { by_value_modules_ = std::move(names); }
  bool by_value_module(const char* name) const {
    for (const auto& m : by_value_modules_)
      if (m == name) return true;
    return false;
  }
  // Whether this is a suspended program's snapshot (it has modules of its own), which loading may
  // let run the program's code (restore/heap_decoder.h Trust::Program); an object graph's may not.
  bool writes_program() const { return !by_value_modules_.empty(); }

  // For the type encoders (snapshot/*_encoder.cpp).
  format::PayloadWriter& out() { return out_; }
  const SaveHandlers& handlers() const { return handlers_; }
  void run(Plan plan);                   // schedules a plan (the walker continues with it)
  void save_str_value(const char* s);    // writes a str op for a C string (never memoized)
  // Memoizes a leaf an encoder just wrote, when it may be shared (reference count above one).
  void memoize_leaf(PyObject* obj) {
    if (Py_REFCNT(obj) - held_ > 1) memoize_always(obj);
  }
  // Per-walk cache of facts about types (object_encoder.cpp: is it a plain class?).
  std::unordered_map<PyTypeObject*, int>& type_facts() { return type_facts_; }
  // Per-walk index of a library module's globals that are instances of Python classes, by module
  // and by type (global_encoder.cpp: sentinels such as numpy's _Unspecified are written by
  // reference); a type's entry is null when its module has none to offer.
  using ModuleInstances = std::unordered_map<PyObject*, std::string>;
  std::unordered_map<std::string, ModuleInstances>& module_instances() { return module_instances_; }
  std::unordered_map<PyTypeObject*, const ModuleInstances*>& module_instances_by_type() {
    return module_instances_by_type_;
  }
  bool is_memoized(PyObject* obj) const { return memo_.find(obj) != nullptr; }
  [[noreturn]] void unsupported(PyObject* obj, const std::string& why = "");
  static std::string type_name(PyTypeObject* type);

 private:
  std::unordered_map<std::string, ModuleInstances> module_instances_;
  std::unordered_map<PyTypeObject*, const ModuleInstances*> module_instances_by_type_;
  enum class Kind : uint8_t { List, Tuple, Dict, ShapedDict, Set, FrozenSet, Plan };
  // A dict shape: the key objects (in order) of dicts written with ShapeValues, and the memo id of
  // the tuple of those keys in the op stream.
  struct Shape {
    std::vector<PyObject*> keys;  // borrowed: the memo keeps the keys tuple alive
    uint64_t memo_id = 0;
    bool defined = false;         // seen once: defined (written) the second time it is seen
  };

  struct Work {
    Ref obj;
    Kind kind;
    Py_ssize_t next = 0;     // next index (list, tuple), PyDict_Next/_PySet_NextEntry position
    uint64_t pending = 0;    // values pushed since the last Appends/SetItems/AddItems
    PyObject* key = nullptr; // dict: the key whose value is being encoded (borrowed from the dict)
    PyObject* value = nullptr;
    Ref items;               // set/frozenset: its items as a tuple (table order)
    std::vector<Step> steps; // Plan
    const Shape* shape = nullptr;  // ShapedDict: pending counts the values written
    bool build_after = false;      // ShapedDict: ShapeDict builds it after its values (unshared)
    const char* label = "";
  };

  // Writes a leaf or a Ref, or pushes Work (returns true). `held`: references the walker holds.
  bool save(PyObject* obj, Py_ssize_t held = 0);
  bool save_other(PyObject* obj);
  bool step_list(Work& w);
  bool step_dict(Work& w);
  bool step_shaped_dict(Work& w);
  const Shape* shape_of(PyObject* dict);
  bool step_set(Work& w);
  bool step_plan(Work& w);
  void save_str(PyObject* obj);
  void save_int(PyObject* obj);
  void save_floats(PyObject* list, Work& w);
  bool memoized(PyObject* obj);
  void memoize_always(PyObject* obj);
  bool finish_tuple(Work& work, format::Op op);  // false: written earlier, referred to
  void write_set_layout(PyObject* set);
  std::string path_to_top() const;

  format::PayloadWriter& out_;
  SaveHandlers handlers_;
  std::vector<std::string> by_value_modules_;
  std::vector<Work> stack_;
  PointerMap memo_;
  std::vector<Ref> memo_keepalive_;
  std::vector<uint64_t> values_;  // scratch for Floats
  std::unordered_map<uint64_t, Shape> shapes_;  // by hash of the key pointers
  const Shape* last_shape_ = nullptr;
  PyObject* root_ = nullptr;
  bool plan_pushed_ = false;
  Py_ssize_t held_ = 0;
  std::unordered_map<PyTypeObject*, int> type_facts_;  // references the walker holds on the object being saved
};

}  // namespace stasis::snapshot
