// restore/scalar_decoder.cpp — constants, complex, bytearray, set/frozenset and float runs.
// Counterpart: snapshot/scalar_encoder.cpp and the fast paths of snapshot/heap_encoder.cpp.

#include <algorithm>
#include <cstring>

#include "core/cpython_internals.h"
#include "core/error.h"
#include "format/byte_planes.h"
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

// A Buffer op: bytes or a bytearray allocated once at its final size and filled straight from the
// op chunks (byte planes joined into it) or, out of line, from the buffer segments (read on a
// few threads, each into its place: format/segments.h), so a large buffer is never copied twice.
// In line, memory is touched only as data arrives: a damaged size runs out of op bytes, not of
// memory; out of line, the segments' headers are checked before the buffer is allocated.
void decode_buffer(HeapDecoder& d, uint8_t) {
  uint64_t at = d.in().offset() - 1;
  uint64_t flags = d.in().uvar(), width = d.in().uvar(), n = d.in().uvar();
  format::check_buffer_header(flags, width, n, at, d.in().raw_size(), d.in().stored_size());
  const uint64_t segments = flags & format::kBufferOutOfLine ? d.in().uvar() : 0;
  if (flags & format::kBufferOutOfLine) d.in().check_segments(segments, n);  // before allocating
  Ref out = Ref::steal(flags & format::kBufferReadOnly ? PyBytes_FromStringAndSize(nullptr, Py_ssize_t(n))
                                 : PyByteArray_FromStringAndSize(nullptr, Py_ssize_t(n)));
  if (!out) d.refused("Buffer of " + std::to_string(n) + " bytes");
  auto* dst = reinterpret_cast<uint8_t*>(flags & format::kBufferReadOnly ? PyBytes_AS_STRING(out.get())
                                                   : PyByteArray_AS_STRING(out.get()));
  // No MADV_HUGEPAGE on the new buffer: with the kernel's default THP defrag setting ("madvise")
  // it makes the page faults of a large buffer compact memory synchronously, which on a busy or
  // fragmented machine stalled a 1 GiB load for seconds (4x the time of the copy itself).
  if (flags & format::kBufferOutOfLine) {
    d.in().read_segments(segments, dst, n);  // straight from the file, checked, on a few threads
  } else if (width == 1) {
    d.in().raw(dst, size_t(n));
  } else {
    const uint64_t block = format::kPlaneBlockElements * width;
    for (uint64_t done = 0; done < n; done += block) {
      uint64_t k = std::min(block, n - done);
      std::string_view planes = d.in().view(size_t(k));
      format::join_planes(reinterpret_cast<const uint8_t*>(planes.data()), dst + done,
                          size_t(k / width), size_t(width));
    }
  }
  d.push(std::move(out));
}

void decode_set(HeapDecoder& d, uint8_t op) {
  switch (static_cast<Op>(op)) {
    case Op::EmptySet: return d.push(PySet_New(nullptr));
    case Op::AddItems: {
      uint64_t k = d.in().uvar();
      PyObject* set = d.container_below(k, &PySet_Type, "AddItems");
      std::vector<Ref> items;
      for (uint64_t i = 0; i < k; ++i) items.push_back(d.pop());
      std::vector<Ref>& order = d.set_items()[set];
      for (auto it = items.rbegin(); it != items.rend(); ++it) {
        if (PySet_Add(set, it->get()) < 0) d.refused("AddItems");
        order.push_back(*it);
      }
      return;
    }
    case Op::FrozenSet: {
      uint64_t n = d.in().uvar();
      d.need(n, "FrozenSet");
      Ref items = Ref::steal(PyTuple_New(Py_ssize_t(n)));
      if (!items) throw Error::python();
      for (uint64_t i = n; i-- > 0;) PyTuple_SET_ITEM(items.get(), Py_ssize_t(i), d.pop().release());
      Ref set = Ref::steal(PyFrozenSet_New(items.get()));
      if (set) {
        std::vector<Ref>& order = d.set_items()[set.get()];
        for (Py_ssize_t i = 0; i < Py_ssize_t(n); ++i)
          order.push_back(Ref::borrow(PyTuple_GET_ITEM(items.get(), i)));
      }
      return d.push(std::move(set));
    }
    default: d.corrupt("not a set op");
  }
}

// Rebuilds the recorded hash table of the set on top: each item in its recorded slot, the dummy
// slots, the finger. Every item is then looked up through the set's own probing; if one is not
// found (its hash differs here, e.g. another PYTHONHASHSEED), the table built by plain insertion
// is kept — same contents, possibly another iteration order — so the layout never breaks a set.
void decode_set_layout(HeapDecoder& d, uint8_t) {
  PyObject* set = d.target(0, "SetLayout");
  if (!PyAnySet_CheckExact(set)) d.corrupt("SetLayout applied to a " + std::string(Py_TYPE(set)->tp_name));
  uint64_t mask = d.in().uvar(), finger = d.in().uvar(), n = d.in().uvar();
  if (mask > (uint64_t(1) << 40) || ((mask + 1) & mask) != 0 || mask + 1 < PySet_MINSIZE)
    d.corrupt("SetLayout with an impossible table mask " + std::to_string(mask));

  auto found = d.set_items().find(set);
  std::vector<Ref> items;
  if (found != d.set_items().end()) {
    items = std::move(found->second);
    d.set_items().erase(found);
  }
  if (items.size() != n) d.corrupt("SetLayout for " + std::to_string(n) + " items, the set has " +
                                   std::to_string(items.size()));
  std::vector<uint64_t> slots(n);
  uint64_t at = 0;
  for (uint64_t i = 0; i < n; ++i) {
    at += d.in().uvar();
    if (at > mask) d.corrupt("SetLayout slot outside the table");
    slots[i] = at;
  }
  uint64_t ndummies = d.in().uvar();
  if (ndummies > mask + 1) d.corrupt("SetLayout with more dummies than slots");
  // A set's table never holds more than 8 slots per entry it uses (setobject.c resizes to the
  // smallest power of two above 4 x used; deleting leaves a dummy, which the op lists): a larger
  // table is an allocation that no byte of the snapshot justifies.
  if (mask + 1 > PySet_MINSIZE && (mask + 1) / 16 > n + ndummies)
    d.corrupt("SetLayout of a table of " + std::to_string(mask + 1) + " slots for " + std::to_string(n) +
              " items and " + std::to_string(ndummies) + " dummies");
  // Grown as the deltas are read (a byte each at least): a count alone allocates nothing (a
  // 16-byte stream claiming 2^30 dummies made this an 8 GiB vector).
  std::vector<uint64_t> dummies;
  at = 0;
  for (uint64_t i = 0; i < ndummies; ++i) {
    at += d.in().uvar();
    if (at > mask) d.corrupt("SetLayout dummy slot outside the table");
    dummies.push_back(at);
  }
  if (finger > mask) d.corrupt("SetLayout finger outside the table");
  if (PySet_GET_SIZE(set) != Py_ssize_t(n)) return;  // equal items merged: keep plain insertion

  size_t size = size_t(mask + 1);
  std::vector<setentry> table(size, setentry{nullptr, 0});
  for (uint64_t i = 0; i < n; ++i) {
    Py_hash_t h = PyObject_Hash(items[i].get());
    if (h == -1) d.refused("SetLayout");
    if (table[slots[i]].key) return;  // two items in one slot: not a layout we can honour
    table[slots[i]] = setentry{items[i].get(), h};
  }
  for (uint64_t s : dummies) {
    if (table[s].key) return;
    table[s] = setentry{internals::set_dummy(), -1};
  }
  // Install: the new table holds its own references (the old one's are dropped with it).
  setentry* fresh = size == PySet_MINSIZE ? nullptr : PyMem_New(setentry, size);
  if (size != PySet_MINSIZE && !fresh) throw std::bad_alloc();
  std::vector<setentry> previous;
  internals::SetLayoutView old = internals::set_layout(set);
  previous.assign(old.table, old.table + old.mask + 1);
  bool old_small = old.table == internals::set_small_table(set);
  setentry* target = fresh ? fresh : internals::set_small_table(set);
  for (size_t i = 0; i < size; ++i) {
    target[i] = table[i];
    Py_XINCREF(target[i].key);
  }
  internals::set_install_table(set, target, Py_ssize_t(mask), Py_ssize_t(n + ndummies), Py_ssize_t(n),
                               Py_ssize_t(finger));
  bool ok = true;
  for (uint64_t i = 0; i < n && ok; ++i) ok = PySet_Contains(set, items[i].get()) == 1;
  PyErr_Clear();
  if (!ok) {  // put the plain table back
    for (size_t i = 0; i < size; ++i) Py_XDECREF(target[i].key);
    setentry* back = old_small ? internals::set_small_table(set) : nullptr;
    if (old_small) {
      std::copy(previous.begin(), previous.end(), back);
    } else {
      back = old.table;
    }
    internals::set_install_table(set, back, old.mask, old.fill, old.used, old.finger);
    if (fresh) PyMem_Free(fresh);
    return;
  }
  for (const setentry& e : previous) Py_XDECREF(e.key);
  if (!old_small) PyMem_Free(old.table);
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
