#include "snapshot/crash_hook.h"

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/cpython_internals.h"
#include "core/error.h"
#include "core/ref.h"

namespace stasis::snapshot::crash_hook {
namespace {

// One instruction of an `except` clause that loads its exception type.
struct Load {
  enum Kind { Global, Name, Fast, Deref, Attr, Tuple } kind;
  Ref name;  // Global, Name, Attr
  int arg;   // Fast, Deref: the local slot; Tuple: the number of items
};

struct Step {
  enum Kind { Catches, AsyncFor, With, Clauses } kind;
  std::vector<std::vector<Load>> clauses;
};

struct Plan {
  Ref code;                 // keeps the key's code object alive (the table is keyed by its address)
  std::vector<Step> steps;  // empty: the exception passes through the frame
};

struct Key {
  PyObject* code;
  int lasti;
  bool operator==(const Key& o) const { return code == o.code && lasti == o.lasti; }
};
struct KeyHash {
  size_t operator()(const Key& k) const {
    return std::hash<std::uintptr_t>()(reinterpret_cast<std::uintptr_t>(k.code)) ^
           (size_t(k.lasti) * 0x9E3779B1u);
  }
};

struct State {
  bool enabled = false;
  Ref slow_path, pending, given_up, main_base, bootstrap_inner;
  unsigned long main_ident = 0;
  std::unordered_map<Key, Plan, KeyHash> plans;
};

// Never destroyed: its references must not be released after the interpreter has finalized.
State& state() {
  static State* s = new State();
  return *s;
}

enum class Verdict { Caught, NotCaught, AskPython };

// Whether C code that may catch exceptions called frame `f`: it was entered from C, and not by a
// call instruction that only passes through C (CALL_FUNCTION_EX's PyObject_Call, BEFORE_WITH's
// __enter__), which cannot catch anything.
bool called_by_c(_PyInterpreterFrame* f) {
  if (!internals::frame_entered_from_c(f)) return false;
  _PyInterpreterFrame* prev = internals::calling_complete_frame(f);
  return !(prev &&
           internals::is_reissuable_c_call(internals::frame_code(prev), internals::frame_lasti(prev)));
}

bool is_base(const State& s, _PyInterpreterFrame* f, bool main_thread) {
  if (main_thread) return reinterpret_cast<PyObject*>(internals::frame_code(f)) == s.main_base.get();
  _PyInterpreterFrame* prev = internals::calling_complete_frame(f);
  return prev && reinterpret_cast<PyObject*>(internals::frame_code(prev)) == s.bootstrap_inner.get();
}

// The exception type an `except` clause loads in frame `f`; null (no error set) when it cannot
// be told: the clause is then taken as catching.
Ref clause_type(const std::vector<Load>& loads, _PyInterpreterFrame* f) {
  std::vector<Ref> stack;
  for (const Load& l : loads) {
    switch (l.kind) {
      case Load::Global:
      case Load::Name: {
        PyObject* v = nullptr;
        if (l.kind == Load::Name && internals::frame_locals_dict(f) &&
            PyDict_Check(internals::frame_locals_dict(f)))
          v = PyDict_GetItemWithError(internals::frame_locals_dict(f), l.name.get());
        if (!v && !PyErr_Occurred() && internals::frame_globals(f))
          v = PyDict_GetItemWithError(internals::frame_globals(f), l.name.get());
        if (!v && !PyErr_Occurred() && internals::frame_builtins(f) &&
            PyDict_Check(internals::frame_builtins(f)))
          v = PyDict_GetItemWithError(internals::frame_builtins(f), l.name.get());
        if (!v) return {};
        stack.push_back(Ref::borrow(v));
        break;
      }
      case Load::Fast:
      case Load::Deref: {
        PyObject* v = internals::frame_localsplus(f)[l.arg];
        if (v && l.kind == Load::Deref && PyCell_Check(v)) v = PyCell_GET(v);
        if (!v) return {};
        stack.push_back(Ref::borrow(v));
        break;
      }
      case Load::Attr: {
        if (stack.empty()) return {};
        Ref v = Ref::steal(PyObject_GetAttr(stack.back().get(), l.name.get()));
        if (!v) return {};
        stack.back() = v;
        break;
      }
      case Load::Tuple: {
        if (l.arg < 0 || size_t(l.arg) > stack.size()) return {};
        Ref t = Ref::steal(PyTuple_New(l.arg));
        if (!t) return {};
        for (int i = 0; i < l.arg; ++i)
          PyTuple_SET_ITEM(t.get(), i, stack[stack.size() - l.arg + i].release());
        stack.resize(stack.size() - l.arg);
        stack.push_back(t);
        break;
      }
    }
  }
  return stack.size() == 1 ? stack.back() : Ref();
}

Verdict run_plan(const Plan& plan, _PyInterpreterFrame* f, PyObject* exc) {
  for (const Step& step : plan.steps) {
    switch (step.kind) {
      case Step::Catches: return Verdict::Caught;
      case Step::With: return Verdict::AskPython;
      case Step::AsyncFor:
        if (PyErr_GivenExceptionMatches(exc, PyExc_StopAsyncIteration)) return Verdict::Caught;
        break;
      case Step::Clauses:
        for (const auto& loads : step.clauses) {
          Ref kind = clause_type(loads, f);
          if (!kind) {
            PyErr_Clear();
            return Verdict::Caught;
          }
          int match = PyObject_IsInstance(exc, kind.get());
          if (match != 0) {  // a match, or an error (not a type): taken as catching
            PyErr_Clear();
            return Verdict::Caught;
          }
        }
        break;
    }
  }
  return Verdict::NotCaught;
}

// Whether the fast path can tell that `exc`, leaving frame `f`, is caught further out.
Verdict decide(State& s, PyObject* exc) {
  PyThreadState* tstate = PyThreadState_Get();
  unsigned long me = PyThread_get_thread_ident();
  Ref key = Ref::steal(PyLong_FromUnsignedLong(me));
  if (!key) return Verdict::AskPython;
  for (PyObject* dict : {s.given_up.get(), s.pending.get()}) {
    PyObject* entry = PyDict_GetItemWithError(dict, key.get());
    if (entry) {
      PyObject* seen = PyTuple_Check(entry) && PyTuple_GET_SIZE(entry) ? PyTuple_GET_ITEM(entry, 0) : entry;
      return seen == exc ? Verdict::Caught : Verdict::AskPython;  // already handled / learning to do
    }
    if (PyErr_Occurred()) return Verdict::AskPython;
  }
  _PyInterpreterFrame* f = internals::current_interpreter_frame(tstate);
  if (!f) return Verdict::AskPython;
  bool main_thread = me == s.main_ident;
  if (is_base(s, f, main_thread)) return Verdict::AskPython;
  if (called_by_c(f)) return Verdict::Caught;  // C code called it: it may catch; if not, its caller sees it
  for (_PyInterpreterFrame* g = internals::calling_complete_frame(f); g;
       g = internals::calling_complete_frame(g)) {
    Key k{reinterpret_cast<PyObject*>(internals::frame_code(g)),
          internals::frame_lasti(g) * internals::kCodeUnitBytes};
    auto it = s.plans.find(k);
    if (it == s.plans.end()) return Verdict::AskPython;
    if (!it->second.steps.empty()) {
      Verdict v = run_plan(it->second, g, exc);
      if (v != Verdict::NotCaught) return v;
    }
    if (is_base(s, g, main_thread)) return Verdict::AskPython;  // nothing catches it: the capture
    if (called_by_c(g)) return Verdict::Caught;
  }
  return Verdict::Caught;  // not on the program's stack
}

std::vector<Load> read_loads(PyObject* code, PyObject* clause) {
  if (!PyTuple_Check(clause)) throw Error(ErrorCode::Internal, "crash plan: a clause is not a tuple");
  auto* co = reinterpret_cast<PyCodeObject*>(code);
  std::vector<Load> out;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(clause); ++i) {
    PyObject* item = PyTuple_GET_ITEM(clause, i);
    const char* op = nullptr;
    PyObject* arg = nullptr;
    if (!PyArg_ParseTuple(item, "sO", &op, &arg)) throw Error::python();
    std::string name(op);
    Load l{Load::Global, Ref(), 0};
    if (name == "LOAD_GLOBAL" || name == "LOAD_NAME" || name == "LOAD_ATTR") {
      l.kind = name == "LOAD_GLOBAL" ? Load::Global : name == "LOAD_NAME" ? Load::Name : Load::Attr;
      if (!PyUnicode_Check(arg)) throw Error(ErrorCode::Internal, "crash plan: " + name + " of a non-name");
      l.name = Ref::borrow(arg);
    } else if (name == "LOAD_FAST" || name == "LOAD_DEREF") {
      l.kind = name == "LOAD_FAST" ? Load::Fast : Load::Deref;
      l.arg = -1;
      for (int j = 0; j < internals::code_nlocalsplus(co); ++j) {
        int eq = PyUnicode_Compare(PyTuple_GET_ITEM(internals::code_localsplus_names(co), j), arg);
        if (eq == 0) {
          l.arg = j;
          break;
        }
      }
      if (l.arg < 0) throw Error(ErrorCode::Internal, "crash plan: no local of that name");
    } else if (name == "BUILD_TUPLE") {
      l.kind = Load::Tuple;
      l.arg = int(PyLong_AsLong(arg));
    } else {
      throw Error(ErrorCode::Internal, "crash plan: unknown load " + name);
    }
    out.push_back(std::move(l));
  }
  return out;
}

}  // namespace

void configure(PyObject* slow_path, PyObject* pending, PyObject* given_up, PyObject* main_base,
               unsigned long main_ident, PyObject* bootstrap_inner) {
  if (!PyDict_Check(pending) || !PyDict_Check(given_up))
    throw Error(ErrorCode::Internal, "crash hook: pending and given_up must be dicts");
  State& s = state();
  s.slow_path = Ref::borrow(slow_path);
  s.pending = Ref::borrow(pending);
  s.given_up = Ref::borrow(given_up);
  s.main_base = Ref::borrow(main_base);
  s.bootstrap_inner = Ref::borrow(bootstrap_inner);
  s.main_ident = main_ident;
  s.enabled = true;
}

void disable() {
  State& s = state();
  s.enabled = false;
  s.plans.clear();
  s.slow_path.reset();
  s.pending.reset();
  s.given_up.reset();
  s.main_base.reset();
  s.bootstrap_inner.reset();
}

void set_plan(PyObject* code, int lasti, PyObject* plan) {
  if (!PyCode_Check(code) || !PyTuple_Check(plan))
    throw Error(ErrorCode::Internal, "crash plan: (code, tuple) needed");
  Plan p{Ref::borrow(code), {}};
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(plan); ++i) {
    PyObject* item = PyTuple_GET_ITEM(plan, i);
    Step step{Step::Catches, {}};
    if (PyUnicode_Check(item)) {
      step.kind = PyUnicode_CompareWithASCIIString(item, "async for") == 0 ? Step::AsyncFor : Step::Catches;
    } else if (PyLong_Check(item)) {
      step.kind = Step::With;
    } else if (PyTuple_Check(item)) {
      step.kind = Step::Clauses;
      for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(item); ++j)
        step.clauses.push_back(read_loads(code, PyTuple_GET_ITEM(item, j)));
    } else {
      throw Error(ErrorCode::Internal, "crash plan: unknown step");
    }
    p.steps.push_back(std::move(step));
  }
  state().plans[Key{code, lasti}] = std::move(p);
}

PyObject* hook(PyObject* const* args, Py_ssize_t nargs) {
  State& s = state();
  if (!s.enabled || nargs != 3) Py_RETURN_NONE;
  PyObject* exc = args[0];
  if (!PyObject_TypeCheck(exc, reinterpret_cast<PyTypeObject*>(PyExc_Exception))) Py_RETURN_NONE;
  Verdict v = decide(s, exc);
  if (PyErr_Occurred()) PyErr_Clear();
  if (v == Verdict::Caught) Py_RETURN_NONE;
  Ref slow = s.slow_path;  // the slow path may disable the hook
  PyObject* r = PyObject_Vectorcall(slow.get(), args, nargs, nullptr);
  if (!r) {
    PyErr_Clear();
    Py_RETURN_NONE;
  }
  return r;
}

}  // namespace stasis::snapshot::crash_hook
