// engine/describe_api.cpp — the description of a payload (format/describe.h) as read by Python.
// Only plain values cross: str, bytes, int, float, complex, tuples and lists of node ids. Nothing of
// the snapshot is imported, called or built as the object it describes.
#include "engine/describe_api.h"

#include "engine/errors.h"

namespace stasis::engine {
namespace {

constexpr const char* kCapsule = "stasis.description";

void destroy(PyObject* capsule) {
  delete static_cast<format::Description*>(PyCapsule_GetPointer(capsule, kCapsule));
}

const format::Description& view_of(PyObject* view) {
  auto* d = static_cast<format::Description*>(PyCapsule_GetPointer(view, kCapsule));
  if (!d) throw Error::python();
  return *d;
}

uint32_t node_id(const format::Description& d, unsigned long long id) {
  if (id >= d.nodes.size()) {
    PyErr_SetString(PyExc_IndexError, "no such node in the description");
    throw Error::python();
  }
  return uint32_t(id);
}

Ref checked(PyObject* o) {
  if (!o) throw Error::python();
  return Ref::steal(o);
}

Ref str_of(std::string_view s, bool cut) {
  // A prefix may end inside a character: decoded with replacement then.
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), Py_ssize_t(s.size()), "surrogatepass");
  if (!o && cut) {
    PyErr_Clear();
    o = PyUnicode_DecodeUTF8(s.data(), Py_ssize_t(s.size()), "replace");
  }
  if (!o) {
    PyErr_Clear();
    o = PyUnicode_DecodeUTF8(s.data(), Py_ssize_t(s.size()), "replace");
  }
  return checked(o);
}

Ref ids_of(const std::vector<uint32_t>& ids, size_t limit) {
  size_t n = std::min(ids.size(), limit);
  Ref list = checked(PyList_New(Py_ssize_t(n)));
  for (size_t i = 0; i < n; ++i) PyList_SET_ITEM(list.get(), Py_ssize_t(i), checked(PyLong_FromUnsignedLong(ids[i])).release());
  return list;
}

void set(PyObject* dict, const char* key, Ref value) {
  if (PyDict_SetItemString(dict, key, value.get()) < 0) throw Error::python();
}

}  // namespace

Ref make_view(format::Description&& d) {
  auto* owned = new format::Description(std::move(d));
  PyObject* capsule = PyCapsule_New(owned, kCapsule, destroy);
  if (!capsule) {
    delete owned;
    throw Error::python();
  }
  return Ref::steal(capsule);
}

PyObject* view_roots(PyObject*, PyObject* view) {
  return guarded([&]() -> Ref {
    const auto& d = view_of(view);
    return ids_of(d.roots, d.roots.size());
  });
}

PyObject* view_node(PyObject*, PyObject* args) {
  return guarded([&]() -> Ref {
    PyObject* view;
    unsigned long long id, limit;
    if (!PyArg_ParseTuple(args, "OKK:view_node", &view, &id, &limit)) throw Error::python();
    const auto& d = view_of(view);
    const format::DescNode& n = d.nodes[node_id(d, id)];
    Ref out = checked(PyDict_New());
    set(out.get(), "kind", checked(PyUnicode_FromString(format::desc_kind_name(n.kind))));
    const format::DescType& t = d.types[n.type];
    set(out.get(), "type", checked(Py_BuildValue("(NN)", str_of(t.module, false).release(),
                                                 str_of(t.qualname, false).release())));
    set(out.get(), "len", checked(PyLong_FromUnsignedLongLong(n.length)));
    set(out.get(), "truncated", Ref::borrow(n.truncated ? Py_True : Py_False));
    Ref value = Ref::borrow(Py_None);
    const format::DescBody& b = d.body_of(n);
    std::string_view text = d.text_of(n);
    using K = format::DescKind;
    switch (n.kind) {
      case K::True: value = Ref::borrow(Py_True); break;
      case K::False: value = Ref::borrow(Py_False); break;
      case K::Int: value = checked(PyLong_FromLongLong(n.ival)); break;
      case K::BigInt: case K::Bytes: case K::ByteArray:
        value = checked(PyBytes_FromStringAndSize(text.data(), Py_ssize_t(text.size())));
        break;
      case K::Float: value = checked(PyFloat_FromDouble(n.f)); break;
      case K::Complex: value = checked(PyComplex_FromDoubles(n.f, b.imag)); break;
      case K::Str: case K::Module: value = str_of(text, n.truncated); break;
      case K::Global:
        value = checked(Py_BuildValue("(NN)", str_of(text, false).release(), str_of(d.text(b.text2), false).release()));
        break;
      default: break;
    }
    set(out.get(), "value", value);
    auto its = d.items(n);
    set(out.get(), "items", ids_of(std::vector<uint32_t>(its.begin(), its.begin() + std::min<size_t>(its.size, size_t(limit))), size_t(limit)));
    set(out.get(), "pairs", ids_of(b.pairs, size_t(limit)));
    Ref refs = checked(PyList_New(4));
    for (int i = 0; i < 4; ++i) {
      PyObject* r = b.a[i] == format::kNoNode ? Py_NewRef(Py_None) : PyLong_FromUnsignedLong(b.a[i]);
      if (!r) throw Error::python();
      PyList_SET_ITEM(refs.get(), i, r);
    }
    set(out.get(), "refs", refs);
    return out;
  });
}

PyObject* view_held(PyObject*, PyObject* args) {
  return guarded([&]() -> Ref {
    PyObject* view;
    unsigned long long id, budget;
    if (!PyArg_ParseTuple(args, "OKK:view_held", &view, &id, &budget)) throw Error::python();
    const auto& d = view_of(view);
    auto h = d.held(node_id(d, id), budget);
    return checked(Py_BuildValue("(KKO)", (unsigned long long)h.bytes, (unsigned long long)h.objects,
                                 h.complete ? Py_True : Py_False));
  });
}

PyObject* view_heap(PyObject*, PyObject* view) {
  return guarded([&]() -> Ref {
    const auto& d = view_of(view);
    auto rows = d.heap();
    Ref list = checked(PyList_New(Py_ssize_t(rows.size())));
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto& t = d.types[rows[i].type];
      PyObject* row = Py_BuildValue("(NNKK)", str_of(t.module, false).release(), str_of(t.qualname, false).release(),
                                    (unsigned long long)rows[i].count, (unsigned long long)rows[i].bytes);
      if (!row) throw Error::python();
      PyList_SET_ITEM(list.get(), Py_ssize_t(i), row);
    }
    return list;
  });
}

}  // namespace stasis::engine
