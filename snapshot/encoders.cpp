// snapshot/encoders.cpp — THE table of supported types on the snapshot side. Exact builtin
// containers and scalars (None, bool, int, float, str, bytes, list, tuple, dict, set, frozenset)
// have fast paths in heap_encoder.cpp; everything else is chosen here, in this order.
// Counterpart: restore/decoders.cpp lists the ops that rebuild each kind.
#include "snapshot/encoders.h"

#include "core/cpython_internals.h"

namespace stasis::snapshot {
namespace {

using Encoder = void (*)(HeapEncoder&, PyObject*);
struct ExactType {
  PyTypeObject* type;
  Encoder encode;
};

// Exact types with their own encoder (subclasses go through the general rules below).
const ExactType kExactTypes[] = {
    {&PyComplex_Type, encode_complex},            // Complex
    {&PyByteArray_Type, encode_bytearray},        // ByteArray
    {&PyPickleBuffer_Type, encode_picklebuffer},  // Buffer (byte planes, no Python copy)
    {&PyMemoryView_Type, encode_memoryview},      // Reduce(memoryview, (owner,)) + cast
    {&PyFunction_Type, encode_function},          // Global, or Code + Function + FunctionState
    {&PyCode_Type, encode_code},                  // Code
    {&PyCell_Type, encode_cell},                  // Cell + CellSet
    {&PyMethod_Type, encode_method},              // Reduce(types.MethodType, (func, self))
    {&PyStaticMethod_Type, encode_staticmethod},  // Reduce(staticmethod, (func,))
    {&PyClassMethod_Type, encode_classmethod},    // Reduce(classmethod, (func,))
    {&PyProperty_Type, encode_property},          // Reduce(property, (fget, fset, fdel, doc))
    {&PyDictProxy_Type, encode_mappingproxy},     // Reduce(types.MappingProxyType, (dict copy,))
    {&PyGen_Type, encode_generator},              // Generator + GeneratorFrame
    {&PyCoro_Type, encode_generator},             // Generator + GeneratorFrame
    {&PyAsyncGen_Type, encode_generator},         // Generator + GeneratorFrame
    {&_PyWeakref_RefType, encode_weakref},        // WeakRef / DeadWeakRef
    {&PyModule_Type, encode_module},              // Module
};

}  // namespace

void encode_object(HeapEncoder& e, PyObject* obj) {
  PyTypeObject* type = Py_TYPE(obj);
  if (obj == Py_Ellipsis) return e.out().op(format::Op::Ellipsis);
  if (obj == Py_NotImplemented) return e.out().op(format::Op::NotImplemented);
  // 1. A handler registered with stasis.register (user types, open files, locks, ...).
  if (encode_registered(e, obj)) return;
  // 2. Exact types with their own encoder.
  for (const ExactType& t : kExactTypes)
    if (type == t.type) return t.encode(e, obj);
  // 3. Classes: by reference when importable under their name, else by value.
  if (PyType_Check(obj)) {
    if (encode_global(e, obj)) return;
    return encode_class(e, obj);
  }
  // 4. Builtin functions of a module: by reference (bound builtin methods reduce to getattr).
  if (PyCFunction_Check(obj) && (!PyCFunction_GET_SELF(obj) || PyModule_Check(PyCFunction_GET_SELF(obj))))
    if (encode_global(e, obj)) return;
  // 5. Modules (subclasses of ModuleType).
  if (PyModule_Check(obj)) return encode_module(e, obj);
  // 6. In a program's snapshot, an instance a library module binds as its own global: by
  //    reference (sentinels compared by identity).
  if (encode_module_instance(e, obj)) return;
  // 7. Instances of plain Python classes: __dict__ and __slots__ without calling anything.
  if (encode_plain_instance(e, obj)) return;
  // 8. Everything else: copyreg's dispatch table or __reduce_ex__(5), as pickle does; this covers
  //    exceptions (plus cause/context), builtin iterators, datetime, Decimal, collections, ...
  encode_reduce(e, obj);
}

}  // namespace stasis::snapshot
