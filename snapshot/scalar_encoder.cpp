// snapshot/scalar_encoder.cpp — complex, bytearray, pickle.PickleBuffer, memoryview and
// mappingproxy. Counterpart: restore/scalar_decoder.cpp (Complex, ByteArray, Buffer); a memoryview
// is a Reduce of memoryview over the object that owns its buffer (or over a bytes copy of a 1-D
// unsigned-byte slice).
#include <algorithm>
#include <string>

#include "core/error.h"
#include "format/byte_planes.h"
#include "snapshot/encoders.h"

namespace stasis::snapshot {

void encode_complex(HeapEncoder& e, PyObject* obj) {
  double parts[2] = {PyComplex_RealAsDouble(obj), PyComplex_ImagAsDouble(obj)};
  e.out().op(format::Op::Complex);
  e.out().raw(parts, sizeof parts);
}

void encode_bytearray(HeapEncoder& e, PyObject* obj) {
  e.out().op(format::Op::ByteArray);
  e.out().uvar(uint64_t(PyByteArray_GET_SIZE(obj)));
  e.out().raw(PyByteArray_AS_STRING(obj), size_t(PyByteArray_GET_SIZE(obj)));
  e.memoize_leaf(obj);
}

// A pickle.PickleBuffer (what protocol-5 reducers hand out, and what the numpy handler saves an
// array's memory as) is written straight from the exporter's memory, without a Python copy: one
// Buffer op; a small one's items, when they are 2, 4 or 8 bytes wide, are stored as byte planes
// (block by block, each block transposed directly into the op chunk), a large one goes into
// buffer segments. It comes back as pickle brings an
// in-band PickleBuffer back: bytes for a read-only buffer, else a bytearray.
void encode_picklebuffer(HeapEncoder& e, PyObject* obj) {
  const Py_buffer* view = PyPickleBuffer_GetBuffer(obj);
  if (!view) e.unsupported(obj, "it was released");
  if (!PyBuffer_IsContiguous(view, 'A')) e.unsupported(obj, "its buffer is not contiguous");
  size_t n = size_t(view->len);
  size_t width = size_t(view->itemsize);
  if ((width != 2 && width != 4 && width != 8) || n % width != 0) width = 1;
  format::PayloadWriter& out = e.out();
  const auto* src = static_cast<const uint8_t*>(view->buf);
  constexpr size_t kLarge = size_t(1) << 20;  // small buffers stay with the objects around them
  const uint64_t readonly = view->readonly ? format::kBufferReadOnly : 0;
  if (n >= kLarge) {
    // Outside the op stream, in buffer segments packed on worker threads: each stored as it is
    // (straight from the exporter's memory) or as byte planes with the planes that compress well
    // compressed (format/segments.h); the op that follows says where.
    uint64_t at = out.segments(src, n, width);
    out.op(format::Op::Buffer);
    out.uvar(readonly | format::kBufferOutOfLine);
    out.uvar(1);
    out.uvar(n);
    out.uvar(at);
    e.memoize_leaf(obj);
    return;
  }
  out.op(format::Op::Buffer);
  out.uvar(readonly);
  out.uvar(width);
  out.uvar(n);
  if (width == 1) {
    out.raw(src, n);
  } else {
    const size_t block = format::kPlaneBlockElements * width;
    for (size_t done = 0; done < n; done += block) {
      size_t k = std::min(block, n - done);
      format::split_planes(src + done, out.claim(k), k / width, width);
    }
  }
  e.memoize_leaf(obj);
}

// A memoryview is restored over its owner (bytes or bytearray: the same object, so writes through
// the view reach it) when it spans the owner's whole buffer as unsigned bytes; a 1-D byte slice
// is restored over a bytes copy of its contents; other views are unsupported.
void encode_memoryview(HeapEncoder& e, PyObject* obj) {
  Py_buffer* view = PyMemoryView_GET_BUFFER(obj);
  PyObject* owner = view->obj;
  Ref memoryview = Ref::borrow(reinterpret_cast<PyObject*>(&PyMemoryView_Type));
  Plan plan(obj);
  if (!owner) e.unsupported(obj, "a memoryview of a buffer no Python object owns");
  bool whole = (PyBytes_CheckExact(owner) || PyByteArray_CheckExact(owner)) &&
               view->len == PyObject_Length(owner) && view->itemsize == 1 && view->ndim == 1 &&
               (!view->format || std::string(view->format) == "B") && view->strides && view->strides[0] == 1 &&
               view->buf == (PyBytes_CheckExact(owner) ? (void*)PyBytes_AS_STRING(owner)
                                                        : (void*)PyByteArray_AS_STRING(owner));
  if (whole) {
    Ref args = Ref::steal(PyTuple_Pack(1, owner));
    plan.save(memoryview, "").save(args, ".obj").atomic(format::Op::Reduce, 2);
    return e.run(std::move(plan));
  }
  // A slice or a view of another exporter: restored as a view of a bytes copy of its contents.
  if (view->ndim != 1 || view->itemsize != 1 || (view->format && std::string(view->format) != "B"))
    e.unsupported(obj, "a memoryview with format '" + std::string(view->format ? view->format : "B") +
                           "' over a " + Py_TYPE(owner)->tp_name + " that is not a whole bytes/bytearray");
  Ref bytes = Ref::steal(PyBytes_FromObject(obj));
  if (!bytes) e.unsupported(obj, "its contents cannot be copied");
  Ref args = Ref::steal(PyTuple_Pack(1, bytes.get()));
  plan.save(memoryview, "").save(args, ".obj").atomic(format::Op::Reduce, 2);
  e.run(std::move(plan));
}

// types.MappingProxyType (e.g. dataclass field metadata): restored over a dict copy of its
// mapping (the proxied mapping itself is not reachable through the C API).
void encode_mappingproxy(HeapEncoder& e, PyObject* obj) {
  Ref copy = Ref::steal(PyDict_New());
  if (!copy || PyDict_Merge(copy.get(), obj, 1) < 0) e.unsupported(obj, "its mapping cannot be copied");
  Ref args = Ref::steal(PyTuple_Pack(1, copy.get()));
  Plan plan(obj);
  plan.save(reinterpret_cast<PyObject*>(&PyDictProxy_Type)).save(args, ".<mapping>").atomic(format::Op::Reduce, 2);
  e.run(std::move(plan));
}

}  // namespace stasis::snapshot
