// snapshot/function_encoder.cpp — functions (by reference when importable, else by value), code
// objects (structurally: the co_* fields, never marshal), closure cells, bound methods and the
// method wrappers (staticmethod, classmethod, property).
// Counterpart: restore/function_decoder.cpp.
// A function by value: code, globals (its module, by reference), name, qualname and closure cells
// build the function (Function); the cells are written as empty shells first and filled after the
// function has its memo id, so a closure that refers to the function itself links; then
// FunctionState sets defaults, kwdefaults, annotations, __dict__, __doc__ and __module__.
#include "core/error.h"
#include "snapshot/encoders.h"

namespace stasis::snapshot {
namespace {

Ref attr(PyObject* obj, const char* name) {
  Ref r = Ref::steal(PyObject_GetAttrString(obj, name));
  if (!r) throw Error::python();
  return r;
}

Ref none_if_null(PyObject* obj) { return Ref::borrow(obj ? obj : Py_None); }

Ref class_ref(PyTypeObject* type) { return Ref::borrow(reinterpret_cast<PyObject*>(type)); }

// The module whose dict is `globals`, or an empty Ref.
Ref module_of_globals(PyObject* globals) {
  PyObject* name = PyDict_GetItemString(globals, "__name__");  // borrowed
  if (!name) return Ref();
  Ref module = Ref::steal(PyImport_GetModule(name));
  if (!module) {
    PyErr_Clear();
    return Ref();
  }
  if (!PyModule_Check(module.get()) || PyModule_GetDict(module.get()) != globals) return Ref();
  return module;
}

}  // namespace

void encode_function(HeapEncoder& e, PyObject* obj) {
  if (encode_global(e, obj)) return;
  auto* f = reinterpret_cast<PyFunctionObject*>(obj);
  Plan plan(obj);
  plan.save(f->func_code, ".__code__");
  Ref module = module_of_globals(f->func_globals);
  if (module) plan.save(module, ".__globals__");
  else plan.save(f->func_globals, ".__globals__");
  plan.save(f->func_name, ".__name__").save(f->func_qualname, ".__qualname__");
  // Closure: new cells as shells (Cell, memo id), memoized ones by Ref; filled after the function.
  std::vector<PyObject*> fill;
  Py_ssize_t ncells = f->func_closure ? PyTuple_GET_SIZE(f->func_closure) : 0;
  if (f->func_closure) {
    for (Py_ssize_t i = 0; i < ncells; ++i) {
      PyObject* cell = PyTuple_GET_ITEM(f->func_closure, i);
      plan.cell_shell(cell);
      // Filled here unless another function already wrote it (filling twice is harmless: the
      // same contents; a walk that reaches this cell first through the globals is covered).
      if (!e.is_memoized(cell)) fill.push_back(cell);
    }
    plan.op(format::Op::Tuple, uint64_t(ncells));
  } else {
    plan.save(Py_None);
  }
  // Atomic: a function whose globals are a dict by value may be reached again through them; the
  // inner occurrence then writes it in full and this one refers to it.
  plan.atomic(format::Op::Function, 5);
  for (PyObject* cell : fill) {
    PyObject* contents = PyCell_GET(cell);
    if (!contents) continue;  // an empty cell (a variable not yet assigned) stays empty
    plan.save(cell).save(contents, ".__closure__.cell_contents").op(format::Op::CellSet).op(format::Op::Pop, 1);
  }
  plan.save(none_if_null(f->func_defaults), ".__defaults__")
      .save(none_if_null(f->func_kwdefaults), ".__kwdefaults__")
      .save(f->func_annotations ? attr(obj, "__annotations__") : Ref::borrow(Py_None), ".__annotations__")
      .save(none_if_null(f->func_dict), ".__dict__")
      .save(none_if_null(f->func_doc), ".__doc__")
      .save(none_if_null(f->func_module), ".__module__")
      .op(format::Op::FunctionState);
  e.run(std::move(plan));
}

// The 18 arguments of types.CodeType in CPython 3.11, in order (FORMAT.md, Code).
void encode_code(HeapEncoder& e, PyObject* obj) {
  static const char* kFields[] = {
      "co_argcount", "co_posonlyargcount", "co_kwonlyargcount", "co_nlocals", "co_stacksize",
      "co_flags", "co_code", "co_consts", "co_names", "co_varnames", "co_filename", "co_name",
      "co_qualname", "co_firstlineno", "co_linetable", "co_exceptiontable", "co_freevars",
      "co_cellvars"};
  Ref fields = Ref::steal(PyTuple_New(18));
  if (!fields) throw Error::python();
  for (int i = 0; i < 18; ++i) PyTuple_SET_ITEM(fields.get(), i, attr(obj, kFields[i]).release());
  Plan plan(obj);
  plan.save(fields, ".<code fields>").atomic(format::Op::Code, 1);
  e.run(std::move(plan));
}

void encode_cell(HeapEncoder& e, PyObject* obj) {
  Plan plan(obj);
  plan.op(format::Op::Cell).memoize();
  if (PyObject* contents = PyCell_GET(obj))
    plan.save(contents, ".cell_contents").op(format::Op::CellSet);
  e.run(std::move(plan));
}

void encode_method(HeapEncoder& e, PyObject* obj) {
  Ref args = Ref::steal(PyTuple_Pack(2, PyMethod_GET_FUNCTION(obj), PyMethod_GET_SELF(obj)));
  Plan plan(obj);
  plan.save(class_ref(&PyMethod_Type)).save(args, ".<method>").atomic(format::Op::Reduce, 2);
  e.run(std::move(plan));
}

static void encode_wrapper(HeapEncoder& e, PyObject* obj, PyTypeObject* type) {
  Ref func = attr(obj, "__func__");
  Ref args = Ref::steal(PyTuple_Pack(1, func.get()));
  Plan plan(obj);
  plan.save(class_ref(type)).save(args, ".__func__").atomic(format::Op::Reduce, 2);
  e.run(std::move(plan));
}
void encode_staticmethod(HeapEncoder& e, PyObject* obj) { encode_wrapper(e, obj, &PyStaticMethod_Type); }
void encode_classmethod(HeapEncoder& e, PyObject* obj) { encode_wrapper(e, obj, &PyClassMethod_Type); }

void encode_property(HeapEncoder& e, PyObject* obj) {
  Ref args = Ref::steal(PyTuple_Pack(4, attr(obj, "fget").get(), attr(obj, "fset").get(),
                                     attr(obj, "fdel").get(), attr(obj, "__doc__").get()));
  Plan plan(obj);
  plan.save(class_ref(&PyProperty_Type)).save(args, ".<property>").atomic(format::Op::Reduce, 2);
  e.run(std::move(plan));
}

}  // namespace stasis::snapshot
