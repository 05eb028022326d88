#include "updater/function_swap.h"

#include <string>

#include "core/cpython_internals.h"
#include "core/error.h"
#include "updater/update_errors.h"

namespace stasis::updater {
namespace {

// Re-enables the cyclic GC on scope exit if it was enabled (a collection could run finalizers,
// i.e. Python code that may release the GIL, in the middle of the commit).
class GcPause {
 public:
  GcPause() : was_enabled_(PyGC_Disable()) {}
  ~GcPause() {
    if (was_enabled_) PyGC_Enable();
  }

 private:
  int was_enabled_;
};

Ref freevars(PyObject* code) { return Ref::steal(check(PyObject_GetAttrString(code, "co_freevars"))); }

// The closure `fn` needs to run `code`: its current cells picked by free-variable name.
Ref closure_for(PyFunctionObject* fn, PyObject* code) {
  Ref want = freevars(code);
  Py_ssize_t n = PyTuple_GET_SIZE(want.get());
  if (n == 0) return Ref();
  Ref have = freevars(fn->func_code);
  if (PyObject_RichCompareBool(want.get(), have.get(), Py_EQ) == 1 && fn->func_closure)
    return Ref::borrow(fn->func_closure);
  Ref cells = Ref::steal(check(PyTuple_New(n)));
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* name = PyTuple_GET_ITEM(want.get(), i);
    Py_ssize_t j = 0, m = PyTuple_GET_SIZE(have.get());
    while (j < m && PyUnicode_Compare(PyTuple_GET_ITEM(have.get(), j), name) != 0) ++j;
    if (j == m || !fn->func_closure) {
      Ref qual = Ref::borrow(fn->func_qualname);
      throw Error(kUpdateRefused,
                  std::string("the new code of ") + PyUnicode_AsUTF8(qual.get()) + " uses the free variable '" +
                      PyUnicode_AsUTF8(name) + "', which the running function has no cell for (free variables may be "
                      "removed or reordered by an update, not added; add it as a global or redefine the enclosing function)");
    }
    PyObject* cell = PyTuple_GET_ITEM(fn->func_closure, j);
    Py_INCREF(cell);
    PyTuple_SET_ITEM(cells.get(), i, cell);
  }
  return cells;
}

Ref or_null(const Ref& r) { return (r && r.get() != Py_None) ? r : Ref(); }

struct PlannedFunction {
  PyFunctionObject* fn;
  Ref code, defaults, kwdefaults, closure;
};

// Moves `value` (may be null) into `*slot`, keeping the old reference alive in `graveyard` so no
// destructor runs before the whole commit is done.
void replace_slot(PyObject** slot, Ref value, std::vector<Ref>& graveyard) {
  graveyard.push_back(Ref::steal(*slot));
  *slot = value.release();
}

}  // namespace

PyObject* class_attr_name() {
  static PyObject* name = PyUnicode_InternFromString("__class__");  // immortal for our purposes
  return name;
}

// Sets obj.__class__ without the class's own __setattr__ (object_set_class: no Python code).
void set_class(PyObject* obj, PyObject* type) { check_status(PyObject_GenericSetAttr(obj, class_attr_name(), type)); }

// Undo records for the two phase-2 steps that can fail (a metaclass may refuse an attribute,
// e.g. an Enum's members); on failure everything already done is put back, newest first.
class Rollback {
 public:
  ~Rollback() {
    if (committed_) return;
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    for (auto it = attrs_.rbegin(); it != attrs_.rend(); ++it)
      if (PyObject_SetAttr(it->owner.get(), it->name.get(), it->value.get()) < 0) PyErr_Clear();
    for (auto it = classes_.rbegin(); it != classes_.rend(); ++it)
      if (PyObject_GenericSetAttr(it->first.get(), class_attr_name(), it->second.get()) < 0) PyErr_Clear();
    PyErr_Restore(t, v, tb);
  }
  void retyped(PyObject* obj, PyObject* old_type) { classes_.emplace_back(Ref::borrow(obj), Ref::borrow(old_type)); }
  // Records the current value of owner.name (from the type's or module's own dict; null if absent).
  void before_set(const AttrChange& a) {
    PyObject* dict = PyType_Check(a.owner.get()) ? ((PyTypeObject*)a.owner.get())->tp_dict
                     : PyModule_Check(a.owner.get()) ? PyModule_GetDict(a.owner.get()) : nullptr;
    PyObject* old = dict ? PyDict_GetItemWithError(dict, a.name.get()) : nullptr;
    if (PyErr_Occurred()) throw Error::python();
    attrs_.push_back({a.owner, a.name, Ref::borrow(old)});
  }
  void commit() { committed_ = true; }

 private:
  bool committed_ = false;
  std::vector<std::pair<Ref, Ref>> classes_;
  std::vector<AttrChange> attrs_;
};

// Gives instances their pending classes.
void retype_instances(const HeapMatches& m, PyObject* retype, Rollback& rollback) {
  for (const auto& list : m.instances)
    for (const Ref& obj : list) {
      PyObject* type = (PyObject*)Py_TYPE(obj.get());
      PyObject* to = PyDict_GetItemWithError(retype, type);  // types hash by identity
      if (!to) {
        if (PyErr_Occurred()) throw Error::python();
        continue;
      }
      Ref keep_type = Ref::borrow(type);
      set_class(obj.get(), to);
      rollback.retyped(obj.get(), type);
    }
}

CommitResult commit(const CodeSet& check_codes, const std::vector<CodeSwap>& swaps,
                    const std::vector<AttrChange>& attrs, const std::vector<PyTypeObject*>& classes,
                    PyObject* retype) {
  GcPause pause;
  CodeSet all_from = check_codes;
  for (const auto& s : swaps) all_from.insert(s.from.begin(), s.from.end());
  CommitResult result;
  result.matches = scan_heap(all_from, classes);

  if (!check_codes.empty()) {
    std::vector<Ref> parked;
    for (const Ref& g : result.matches.generators)
      if (check_codes.count((PyObject*)internals::generator_code(g.get()))) parked.push_back(g);
    result.busy = active_uses(check_codes, parked);
    if (!result.busy.empty()) return result;
  }

  // Phase 1: compute every new value (may throw; nothing has changed yet).
  std::vector<PlannedFunction> plan;
  for (const Ref& f : result.matches.functions) {
    auto* fn = reinterpret_cast<PyFunctionObject*>(f.get());
    const CodeSwap* swap = nullptr;
    for (const auto& s : swaps)
      if (s.from.count(fn->func_code)) {
        swap = &s;
        break;
      }
    if (!swap) continue;
    PlannedFunction p{fn, swap->code, or_null(swap->defaults), or_null(swap->kwdefaults), Ref()};
    if (swap->orig_code) {
      // Hidden function running the wrapped code with this function's globals and cells.
      Ref orig = Ref::steal(check(PyFunction_NewWithQualName(swap->orig_code.get(), fn->func_globals, fn->func_qualname)));
      Ref cells = closure_for(fn, swap->orig_code.get());
      if (cells) check_status(PyFunction_SetClosure(orig.get(), cells.get()));
      Ref consts = Ref::steal(check(PyObject_GetAttrString(swap->code.get(), "co_consts")));
      Ref list = Ref::steal(check(PySequence_List(consts.get())));
      check_status(PyList_SetItem(list.get(), swap->orig_slot, orig.release()));
      Ref tuple = Ref::steal(check(PyList_AsTuple(list.get())));
      Ref replace = Ref::steal(check(PyObject_GetAttrString(swap->code.get(), "replace")));
      Ref kwargs = Ref::steal(check(Py_BuildValue("{s:O}", "co_consts", tuple.get())));
      Ref empty = Ref::steal(check(PyTuple_New(0)));
      p.code = Ref::steal(check(PyObject_Call(replace.get(), empty.get(), kwargs.get())));
      result.installed_codes.push_back(p.code);
    }
    p.closure = closure_for(fn, p.code.get());
    plan.push_back(std::move(p));
  }

  // Phase 2: assign. Only instance retyping and attribute changes can fail; they come first and
  // are undone if either fails.
  Rollback rollback;
  if (retype && retype != Py_None) retype_instances(result.matches, retype, rollback);
  for (const auto& a : attrs) {
    rollback.before_set(a);
    check_status(PyObject_SetAttr(a.owner.get(), a.name.get(), a.value.get()));
  }
  rollback.commit();
  std::vector<Ref> graveyard;  // old values die after every swap is done
  for (auto& p : plan) {
    PyFunctionObject* fn = p.fn;
    replace_slot(&fn->func_code, p.code, graveyard);
    replace_slot(&fn->func_defaults, p.defaults, graveyard);
    replace_slot(&fn->func_kwdefaults, p.kwdefaults, graveyard);
    replace_slot(&fn->func_closure, p.closure, graveyard);
    fn->func_version = 0;  // invalidates call-site specialisations that cached the old code
  }
  return result;
}

}  // namespace stasis::updater
