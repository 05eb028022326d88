// snapshot/encoders.h — the per-type encoders behind HeapEncoder's fast paths. The table that
// picks one for an object is in snapshot/encoders.cpp (one screen, every supported type); the
// decoders of the same types are listed in restore/decoders.cpp.
#pragma once

#include <Python.h>

#include "snapshot/heap_encoder.h"

namespace stasis::snapshot {

// Writes `obj` (a leaf) or schedules its plan; throws UnsupportedObject naming the path.
void encode_object(HeapEncoder& e, PyObject* obj);

// snapshot/scalar_encoder.cpp
void encode_complex(HeapEncoder& e, PyObject* obj);
void encode_bytearray(HeapEncoder& e, PyObject* obj);
void encode_picklebuffer(HeapEncoder& e, PyObject* obj);
void encode_memoryview(HeapEncoder& e, PyObject* obj);
void encode_mappingproxy(HeapEncoder& e, PyObject* obj);
// snapshot/global_encoder.cpp: classes, functions and modules by reference
bool encode_global(HeapEncoder& e, PyObject* obj);  // false: not importable under its name
// A program's reference to an instance a library module binds as a global of its own (a sentinel
// such as numpy's `_Unspecified`, which code compares by identity): by reference, as the module
// is imported again on resume. False for anything else, and always for an object graph's dump.
bool encode_module_instance(HeapEncoder& e, PyObject* obj);
// Whether encode_global would write `obj` by reference (its module and qualname find it, and its
// module is not one written by value).
bool findable_by_name(HeapEncoder& e, PyObject* obj);
void encode_module(HeapEncoder& e, PyObject* obj);
// snapshot/function_encoder.cpp
void encode_function(HeapEncoder& e, PyObject* obj);
void encode_code(HeapEncoder& e, PyObject* obj);
void encode_cell(HeapEncoder& e, PyObject* obj);
void encode_method(HeapEncoder& e, PyObject* obj);
void encode_staticmethod(HeapEncoder& e, PyObject* obj);
void encode_classmethod(HeapEncoder& e, PyObject* obj);
void encode_property(HeapEncoder& e, PyObject* obj);
// snapshot/class_encoder.cpp
void encode_class(HeapEncoder& e, PyObject* obj);
// Whether `type` was made by a class statement or type(...): such classes share one deallocator
// (typeobject.c subtype_dealloc). Heap types of C extensions (_csv.writer, ...) do not: their
// instances hold C state that no attribute shows, and they cannot be rebuilt as Python classes.
bool is_python_class(PyTypeObject* type);
// snapshot/object_encoder.cpp: instances, the reduce protocol, exceptions, registered handlers
bool encode_registered(HeapEncoder& e, PyObject* obj);  // false: no handler for its type
bool encode_plain_instance(HeapEncoder& e, PyObject* obj);  // false: not a plain instance
void encode_reduce(HeapEncoder& e, PyObject* obj);
// snapshot/generator_encoder.cpp
void encode_generator(HeapEncoder& e, PyObject* obj);
// snapshot/weakref_encoder.cpp
void encode_weakref(HeapEncoder& e, PyObject* obj);

}  // namespace stasis::snapshot
