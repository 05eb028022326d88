// restore/scalar_decoder.cpp — constants, complex, bytearray, set/frozenset and float runs.
// Counterpart: snapshot/scalar_encoder.cpp and the fast paths of snapshot/heap_encoder.cpp.
#include <cstring>

#include "core/cpython_internals.h"
#include "core/error.h"
#include "restore/decoders.h"

using stasis::format::Op;

namespace stasis::restore {

void decode_constant(HeapDecoder& d, uint8_t op) {
  switch (static_cast<Op>(op)) {
    case Op::Ellipsis: return d.push(Py_NewRef(Py_Ellipsis));
    case Op::NotImplemented: return d.push(Py_NewRef(Py_NotImplemented));
    case Op::DeadWeakRef: {  // a reference to an object that dies right away
      Ref target = Ref::steal(PySet_New(nullptr));
      if (!target) throw Error::python();
      Ref ref = Ref::steal(PyWeakref_NewRef(target.get(), nullptr));
      target.reset();
      return d.push(std::move(ref));
    }
    default: d.corrupt("not a constant op");
  }
}

void decode_complex(HeapDecoder& d, uint8_t) {
  double parts[2];
  d.in().raw(parts, sizeof parts);
  d.push(PyComplex_FromDoubles(parts[0], parts[1]));
}

void decode_bytearray(HeapDecoder& d, uint8_t) {
  uint64_t n = d.in().uvar();
  std::string_view b = d.in().view(n);
  d.push(PyByteArray_FromStringAndSize(b.data(), Py_ssize_t(b.size())));
}

void decode_set(HeapDecoder& d, uint8_t op) {
  switch (static_cast<Op>(op)) {
    case Op::EmptySet: return d.push(PySet_New(nullptr));
    case Op::AddItems: {
      uint64_t k = d.in().uvar();
      d.need(k + 1, "AddItems");
      PyObject* set = d.container_below(k, &PySet_Type, "AddItems");
      std::vector<Ref> items;
      for (uint64_t i = 0; i < k; ++i) items.push_back(d.pop());
      for (auto it = items.rbegin(); it != items.rend(); ++it)
        if (PySet_Add(set, it->get()) < 0) d.refused("AddItems");
      return;
    }
    case Op::FrozenSet: {
      uint64_t n = d.in().uvar();
      d.need(n, "FrozenSet");
      Ref items = Ref::steal(PyTuple_New(Py_ssize_t(n)));
      if (!items) throw Error::python();
      for (uint64_t i = n; i-- > 0;) PyTuple_SET_ITEM(items.get(), Py_ssize_t(i), d.pop().release());
      return d.push(PyFrozenSet_New(items.get()));
    }
    default: d.corrupt("not a set op");
  }
}

void decode_floats(HeapDecoder& d, uint8_t) {
  uint64_t n = d.in().uvar();
  if (n > (uint64_t(1) << 32)) d.corrupt("Floats claims " + std::to_string(n) + " values");
  PyObject* list = d.container_below(0, &PyList_Type, "Floats");
  std::string_view planes = d.in().view(n * 8);
  const auto* p = reinterpret_cast<const uint8_t*>(planes.data());
  Py_ssize_t base = PyList_GET_SIZE(list);
  Ref tail = Ref::steal(PyList_New(Py_ssize_t(n)));
  if (!tail) throw Error::python();
  uint64_t prev = 0;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t bits = 0;
    for (size_t b = 0; b < 8; ++b) bits |= uint64_t(p[b * n + i]) << (8 * b);
    bits ^= prev;  // each value was stored XOR the one before it
    prev = bits;
    double v;
    std::memcpy(&v, &bits, 8);
    PyObject* f = PyFloat_FromDouble(v);
    if (!f) throw Error::python();
    PyList_SET_ITEM(tail.get(), Py_ssize_t(i), f);
  }
  if (PyList_SetSlice(list, base, base, tail.get()) < 0) throw Error::python();
}

void decode_shape_values(HeapDecoder& d, uint8_t) {
  PyObject* keys = d.memo(d.in().uvar());
  uint64_t k = d.in().uvar();
  if (!PyTuple_CheckExact(keys) || uint64_t(PyTuple_GET_SIZE(keys)) != k)
    d.corrupt("ShapeValues names a shape that is not a tuple of " + std::to_string(k) + " keys");
  d.need(k + 1, "ShapeValues");
  PyObject* dict = d.container_below(k, &PyDict_Type, "ShapeValues");
  std::vector<PyObject*>& stack = d.stack();
  size_t base = stack.size() - k;
  for (uint64_t i = 0; i < k; ++i)
    if (PyDict_SetItem(dict, PyTuple_GET_ITEM(keys, Py_ssize_t(i)), stack[base + i]) < 0)
      d.refused("ShapeValues");
  for (size_t i = base; i < stack.size(); ++i) Py_DECREF(stack[i]);
  stack.resize(base);
}

// An unshared dict of a known shape, built after its values: a copy of the shape's template dict
// (one memcpy of its key table) whose values are the popped ones (core/cpython_internals.h).
void decode_shape_dict(HeapDecoder& d, uint8_t) {
  uint64_t id = d.in().uvar();
  uint64_t k = d.in().uvar();
  d.need(k, "ShapeDict");
  PyObject* tmpl = d.shape_template(id, k);
  std::vector<PyObject*>& stack = d.stack();
  size_t base = stack.size() - k;
  PyObject* dict = stasis_internals_dict_from_template(tmpl, stack.data() + base, Py_ssize_t(k));
  if (dict) {
    stack.resize(base);  // the references went into the dict
    return d.push(dict);
  }
  if (PyErr_Occurred()) throw Error::python();
  Ref fresh = Ref::steal(PyDict_New());  // another layout: insert one by one
  if (!fresh) throw Error::python();
  PyObject* keys = d.memo(id);
  for (uint64_t i = 0; i < k; ++i)
    if (PyDict_SetItem(fresh.get(), PyTuple_GET_ITEM(keys, Py_ssize_t(i)), stack[base + i]) < 0)
      d.refused("ShapeDict");
  for (size_t i = base; i < stack.size(); ++i) Py_DECREF(stack[i]);
  stack.resize(base);
  d.push(std::move(fresh));
}

}  // namespace stasis::restore
