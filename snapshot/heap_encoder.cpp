#include "snapshot/heap_encoder.h"

#include <cstring>
#include <limits>

#include "core/cpython_internals.h"
#include "core/error.h"
#include "snapshot/encoders.h"

namespace stasis::snapshot {
namespace {
using format::kBatch;  // values per Appends/SetItems/...: bounds the decoder's stack
constexpr uint64_t kFloatRun = 4096;    // floats per Floats op

// Only objects that can be reached twice need a memo id: a second path to an object in the graph
// means a second reference, so an object with a reference count of 1 is reached exactly once.
// `held` counts references the walker itself holds (a plan step's Ref).
inline bool may_be_shared(PyObject* obj, Py_ssize_t held = 0) { return Py_REFCNT(obj) - held > 1; }

std::string short_repr(PyObject* obj) {
  Ref r = Ref::steal(PyObject_Repr(obj));
  if (!r) {
    PyErr_Clear();
    return "<?>";
  }
  const char* s = PyUnicode_AsUTF8(r.get());
  if (!s) {
    PyErr_Clear();
    return "<?>";
  }
  std::string out(s);
  if (out.size() > 60) out = out.substr(0, 57) + "...";
  return out;
}
}  // namespace

void HeapEncoder::encode(PyObject* root) {
  root_ = root;
  save(root);
  while (!stack_.empty()) {
    Work& w = stack_.back();
    bool pushed = false;
    switch (w.kind) {
      case Kind::List: pushed = step_list(w); break;
      case Kind::Dict: pushed = step_dict(w); break;
      case Kind::ShapedDict: pushed = step_shaped_dict(w); break;
      case Kind::Set: pushed = step_set(w); break;
      case Kind::Plan: pushed = step_plan(w); break;
      case Kind::Tuple:
      case Kind::FrozenSet: {
        PyObject* items = w.kind == Kind::Tuple ? w.obj.get() : w.items.get();
        while (!pushed && w.next < PyTuple_GET_SIZE(items)) {
          PyObject* item = PyTuple_GET_ITEM(items, w.next++);
          pushed = save(item);
        }
        if (pushed) break;
        if (finish_tuple(w, w.kind == Kind::Tuple ? format::Op::Tuple : format::Op::FrozenSet) &&
            w.kind == Kind::FrozenSet)
          write_set_layout(w.obj.get());
        stack_.pop_back();
        break;
      }
    }
  }
  memo_keepalive_.clear();
}

bool HeapEncoder::step_list(Work& w) {
  PyObject* obj = w.obj.get();
  for (;;) {
    if (w.pending == kBatch) {
      out_.op(format::Op::Appends);
      out_.uvar(w.pending);
      w.pending = 0;
    }
    if (w.next >= PyList_GET_SIZE(obj)) break;
    PyObject* item = PyList_GET_ITEM(obj, w.next);
    if (Py_IS_TYPE(item, &PyFloat_Type)) {
      save_floats(obj, w);
      continue;
    }
    ++w.next;
    ++w.pending;
    if (save(item)) return true;  // stack_ may have grown: `w` is not used after a push
  }
  if (w.pending) {
    out_.op(format::Op::Appends);
    out_.uvar(w.pending);
  }
  stack_.pop_back();
  return false;
}

// A run of exact floats in a list: one Floats op with the doubles stored as 8 byte planes (all
// first bytes, then all second bytes...), which zstd compresses far better than interleaved.
void HeapEncoder::save_floats(PyObject* list, Work& w) {
  if (w.pending) {
    out_.op(format::Op::Appends);
    out_.uvar(w.pending);
    w.pending = 0;
  }
  Py_ssize_t end = w.next;
  Py_ssize_t size = PyList_GET_SIZE(list);
  while (end < size && uint64_t(end - w.next) < kFloatRun) {
    // Every item is a separate object: prefetch a few ahead (the type check is a cache miss each).
    if (end + 16 < size) __builtin_prefetch(PyList_GET_ITEM(list, end + 16));
    if (!Py_IS_TYPE(PyList_GET_ITEM(list, end), &PyFloat_Type)) break;
    ++end;
  }
  size_t n = size_t(end - w.next);
  values_.resize(n);
  uint64_t* v = values_.data();
  PyObject** items = &PyList_GET_ITEM(list, w.next);
  for (size_t i = 0; i < n; ++i) std::memcpy(&v[i], &reinterpret_cast<PyFloatObject*>(items[i])->ob_fval, 8);
  // Each value XOR the one before it: neighbouring floats share sign, exponent and high mantissa
  // bits, so the high planes become mostly zero bytes, which zstd compresses fast and small.
  for (size_t i = n; i-- > 1;) v[i] ^= v[i - 1];
  out_.op(format::Op::Floats);
  out_.uvar(n);
  uint8_t* p = out_.claim(n * 8);  // the planes are written straight into the chunk buffer
  for (size_t b = 0; b < 8; ++b) {  // one plane at a time: sequential writes the compiler vectorizes
    uint8_t* plane = p + b * n;
    for (size_t i = 0; i < n; ++i) plane[i] = uint8_t(v[i] >> (8 * b));
  }
  out_.count_objects(n);
  w.next = end;
}

bool HeapEncoder::step_dict(Work& w) {
  PyObject* obj = w.obj.get();
  for (;;) {
    if (w.value) {  // the key was written (and finished); now the value
      PyObject* value = w.value;
      w.value = nullptr;
      ++w.pending;
      if (save(value)) return true;
      continue;
    }
    if (w.pending == kBatch) {
      out_.op(format::Op::SetItems);
      out_.uvar(w.pending);
      w.pending = 0;
    }
    PyObject *key, *value;
    if (!PyDict_Next(obj, &w.next, &key, &value)) break;
    w.key = key;
    w.value = value;
    if (save(key)) return true;
  }
  if (w.pending) {
    out_.op(format::Op::SetItems);
    out_.uvar(w.pending);
  }
  stack_.pop_back();
  return false;
}

// Dicts whose keys are the same str objects in the same order as an earlier dict's share a shape:
// the keys are written once (a memoized tuple) and each such dict writes only its values.
const HeapEncoder::Shape* HeapEncoder::shape_of(PyObject* dict) {
  constexpr Py_ssize_t kMaxKeys = 32;
  constexpr size_t kMaxShapes = 1 << 16;
  Py_ssize_t n = PyDict_GET_SIZE(dict);
  if (n == 0 || n > kMaxKeys) return nullptr;
  PyObject* keys[kMaxKeys];
  PyObject *key, *value;
  Py_ssize_t pos = 0, i = 0;
  uint64_t h = uint64_t(n);
  while (PyDict_Next(dict, &pos, &key, &value)) {
    if (!PyUnicode_CheckExact(key)) return nullptr;
    keys[i++] = key;
    h = (h ^ (reinterpret_cast<uintptr_t>(key) >> 4)) * 0x100000001B3ull;
  }
  auto same = [&](const Shape* s) {
    if (!s || s->keys.size() != size_t(n)) return false;
    for (Py_ssize_t k = 0; k < n; ++k)
      if (s->keys[size_t(k)] != keys[k]) return false;
    return true;
  };
  if (same(last_shape_)) return last_shape_;
  auto it = shapes_.find(h);
  if (it == shapes_.end()) {
    if (shapes_.size() < kMaxShapes) {
      Shape s;
      s.keys.assign(keys, keys + n);
      shapes_.emplace(h, std::move(s));  // first sighting: remembered, written as a plain dict
    }
    return nullptr;
  }
  Shape& s = it->second;
  if (!same(&s)) return nullptr;  // a hash collision: plain dict
  if (!s.defined) {
    // Second sighting: write the keys tuple once and memoize it (the memo keeps the keys alive).
    Ref tuple = Ref::steal(PyTuple_New(n));
    if (!tuple) throw Error::python();
    for (Py_ssize_t k = 0; k < n; ++k) {
      PyTuple_SET_ITEM(tuple.get(), k, Py_NewRef(keys[k]));
      if (!memoized(keys[k])) {
        save_str(keys[k]);
        memoize_always(keys[k]);
      }
    }
    out_.op(format::Op::Tuple);
    out_.uvar(uint64_t(n));
    s.memo_id = out_.memo_count();
    memoize_always(tuple.get());
    out_.op(format::Op::Pop);
    out_.uvar(1);
    s.defined = true;
  }
  last_shape_ = &s;
  return &s;
}

bool HeapEncoder::step_shaped_dict(Work& w) {
  const Shape& shape = *w.shape;
  PyObject* obj = w.obj.get();
  for (;;) {
    PyObject *key, *value;
    if (!PyDict_Next(obj, &w.next, &key, &value)) break;
    // Python code run by an encoder (a __reduce__) may have changed the dict meanwhile.
    if (w.pending >= shape.keys.size() || shape.keys[w.pending] != key)
      throw Error(ErrorCode::UnsupportedObject, path_to_top() + ": a dict changed while it was being written");
    ++w.pending;
    w.key = key;
    if (save(value)) return true;
  }
  if (w.pending != shape.keys.size())
    throw Error(ErrorCode::UnsupportedObject, path_to_top() + ": a dict changed while it was being written");
  out_.op(w.build_after ? format::Op::ShapeDict : format::Op::ShapeValues);
  out_.uvar(shape.memo_id);
  out_.uvar(shape.keys.size());
  stack_.pop_back();
  return false;
}

bool HeapEncoder::step_set(Work& w) {
  PyObject* items = w.items.get();  // a snapshot of the set as a tuple
  for (;;) {
    if (w.pending == kBatch) {
      out_.op(format::Op::AddItems);
      out_.uvar(w.pending);
      w.pending = 0;
    }
    if (w.next >= PyTuple_GET_SIZE(items)) break;
    PyObject* item = PyTuple_GET_ITEM(items, w.next++);
    ++w.pending;
    if (save(item)) return true;
  }
  if (w.pending) {
    out_.op(format::Op::AddItems);
    out_.uvar(w.pending);
  }
  write_set_layout(w.obj.get());
  stack_.pop_back();
  return false;
}

// The set's table layout: its slots in table order (the order its items were written in), its
// dummy slots and its finger, so that the rebuilt set iterates, pops and grows exactly like this
// one (with the same hashes, i.e. the same PYTHONHASHSEED for str). Nothing for an untouched
// empty set.
void HeapEncoder::write_set_layout(PyObject* set) {
  internals::SetLayoutView v = internals::set_layout(set);
  if (v.fill == 0) return;
  out_.op(format::Op::SetLayout);
  out_.uvar(uint64_t(v.mask));
  out_.uvar(uint64_t(v.finger));
  out_.uvar(uint64_t(v.used));
  Py_ssize_t prev = 0;
  for (Py_ssize_t i = 0; i <= v.mask; ++i) {
    PyObject* key = v.table[i].key;
    if (key && !internals::is_set_dummy(key)) {
      out_.uvar(uint64_t(i - prev));
      prev = i;
    }
  }
  out_.uvar(uint64_t(v.fill - v.used));
  prev = 0;
  for (Py_ssize_t i = 0; i <= v.mask; ++i) {
    if (internals::is_set_dummy(v.table[i].key)) {
      out_.uvar(uint64_t(i - prev));
      prev = i;
    }
  }
}

bool HeapEncoder::step_plan(Work& w) {
  while (size_t(w.next) < w.steps.size()) {
    Step& s = w.steps[size_t(w.next++)];
    switch (s.kind) {
      case Step::Save: {
        Ref child = std::move(s.obj);
        w.label = s.label;
        if (save(child.get(), 1)) return true;
        break;
      }
      case Step::Emit:
        out_.op(s.op);
        if (s.has_arg) out_.uvar(s.arg);
        break;
      case Step::Memoize:  // the plan's object; the work item holds one reference
        if (may_be_shared(w.obj.get(), 1)) memoize_always(w.obj.get());
        break;
      case Step::MemoizeForce:
        memoize_always(s.obj.get());
        break;
      case Step::CellShell:
        if (!memoized(s.obj.get())) {
          out_.op(format::Op::Cell);
          memoize_always(s.obj.get());
        }
        break;
      case Step::Atomic: {
        PyObject* obj = w.obj.get();
        const uint64_t* id = memo_.find(obj);
        if (id) {  // a cycle led back to the object and wrote it in full: refer to that
          out_.op(format::Op::Pop);
          out_.uvar(s.arg);
          out_.op(format::Op::Ref);
          out_.uvar(*id);
          w.next = Py_ssize_t(w.steps.size());
          break;
        }
        out_.op(s.op);
        if (may_be_shared(obj, 1)) memoize_always(obj);
        break;
      }
    }
  }
  stack_.pop_back();
  return false;
}

void HeapEncoder::run(Plan plan) {
  Work w{std::move(plan.obj_), Kind::Plan};
  w.steps = std::move(plan.steps_);
  stack_.push_back(std::move(w));
  plan_pushed_ = true;
}

bool HeapEncoder::save(PyObject* obj, Py_ssize_t held) {
  out_.count_object();
  PyTypeObject* type = Py_TYPE(obj);
  // Value types first: never memoized (their identity is not observable in a meaningful way).
  if (type == &PyUnicode_Type) {
    if (memoized(obj)) return false;
    save_str(obj);
    if (may_be_shared(obj, held)) memoize_always(obj);
    return false;
  }
  if (type == &PyLong_Type) {
    save_int(obj);
    return false;
  }
  if (type == &PyFloat_Type) {
    // Big-endian: sign, exponent and high mantissa first, trailing zero bytes last — zstd finds
    // far longer matches in that order (a third smaller on typical data than little-endian).
    double d = PyFloat_AS_DOUBLE(obj);
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof bits);
    bits = __builtin_bswap64(bits);
    out_.op(format::Op::Float);
    out_.raw(&bits, sizeof bits);
    return false;
  }
  if (obj == Py_None) {
    out_.op(format::Op::None);
    return false;
  }
  if (type == &PyBool_Type) {
    out_.op(obj == Py_True ? format::Op::True : format::Op::False);
    return false;
  }
  if (memoized(obj)) return false;
  bool shared = may_be_shared(obj, held);
  if (type == &PyDict_Type) {
    if (const Shape* shape = shape_of(obj)) {
      // Unshared: nothing inside can refer back to it, so it is built after its values
      // (ShapeDict, the fastest to decode); shared: the shell first, for cycles (ShapeValues).
      if (shared) {
        out_.op(format::Op::EmptyDict);
        memoize_always(obj);
      }
      Work w{Ref::borrow(obj), Kind::ShapedDict};
      w.shape = shape;
      w.build_after = !shared;
      stack_.push_back(std::move(w));
      return true;
    }
    out_.op(format::Op::EmptyDict);
    if (shared) memoize_always(obj);
    stack_.push_back(Work{Ref::borrow(obj), Kind::Dict});
    return true;
  }
  if (type == &PyList_Type) {
    out_.op(format::Op::EmptyList);
    if (shared) memoize_always(obj);
    stack_.push_back(Work{Ref::borrow(obj), Kind::List});
    return true;
  }
  if (type == &PyTuple_Type) {
    if (PyTuple_GET_SIZE(obj) == 0) {
      out_.op(format::Op::Tuple);
      out_.uvar(0);
      return false;
    }
    stack_.push_back(Work{Ref::borrow(obj), Kind::Tuple});
    return true;
  }
  if (type == &PyBytes_Type) {
    out_.op(format::Op::Bytes);
    out_.uvar(uint64_t(PyBytes_GET_SIZE(obj)));
    out_.raw(PyBytes_AS_STRING(obj), size_t(PyBytes_GET_SIZE(obj)));
    if (shared) memoize_always(obj);
    return false;
  }
  if (type == &PySet_Type || type == &PyFrozenSet_Type) {
    Ref items = Ref::steal(PySequence_Tuple(obj));
    if (!items) throw Error::python();
    if (type == &PySet_Type) {
      out_.op(format::Op::EmptySet);
      if (shared) memoize_always(obj);
      Work w{Ref::borrow(obj), Kind::Set};
      w.items = std::move(items);
      stack_.push_back(std::move(w));
      return true;
    }
    Work w{Ref::borrow(obj), Kind::FrozenSet};
    w.items = std::move(items);
    stack_.push_back(std::move(w));
    return true;
  }
  held_ = held;
  return save_other(obj);
}

// Every other type: the table of snapshot/encoders.cpp. An encoder either wrote the object
// itself (a leaf) or scheduled a plan with run().
bool HeapEncoder::save_other(PyObject* obj) {
  plan_pushed_ = false;
  encode_object(*this, obj);
  return plan_pushed_;
}

void HeapEncoder::save_int(PyObject* obj) {
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
  if (!overflow && v != std::numeric_limits<long long>::min()) {
    out_.op(format::Op::IntSmall);
    out_.svar(v);
    return;
  }
  PyErr_Clear();
  size_t nbits = internals::long_bit_length(obj);
  size_t nbytes = nbits / 8 + 1;  // room for the sign bit
  std::string buf(nbytes, '\0');
  if (internals::long_to_bytes(obj, reinterpret_cast<unsigned char*>(buf.data()), nbytes, true, true) < 0)
    throw Error::python();
  out_.op(format::Op::IntBig);
  out_.uvar(nbytes);
  out_.raw(buf.data(), nbytes);
}

void HeapEncoder::save_str(PyObject* obj) {
  out_.op(format::Op::Str);
  if (PyUnicode_IS_ASCII(obj)) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(obj);
    out_.uvar(uint64_t(n));
    out_.raw(PyUnicode_DATA(obj), size_t(n));
    return;
  }
  // Not PyUnicode_AsUTF8AndSize: it caches a UTF-8 copy inside every string it is asked about.
  Ref utf8 = Ref::steal(PyUnicode_AsEncodedString(obj, "utf-8", "surrogatepass"));
  if (!utf8) throw Error::python();
  out_.uvar(uint64_t(PyBytes_GET_SIZE(utf8.get())));
  out_.raw(PyBytes_AS_STRING(utf8.get()), size_t(PyBytes_GET_SIZE(utf8.get())));
}

void HeapEncoder::save_str_value(const char* s) {
  size_t n = std::strlen(s);
  out_.op(format::Op::Str);
  out_.uvar(n);
  out_.raw(s, n);
}

bool HeapEncoder::memoized(PyObject* obj) {
  if (Py_REFCNT(obj) <= 1) return false;
  const uint64_t* id = memo_.find(obj);
  if (!id) return false;
  out_.op(format::Op::Ref);
  out_.uvar(*id);
  return true;
}

void HeapEncoder::memoize_always(PyObject* obj) {
  if (memo_.find(obj)) return;
  memo_.insert(obj, out_.memo_count());
  // The memo holds a reference: an object an encoder created (a reduce result) must not die and
  // let another object reuse its address while the walk runs.
  memo_keepalive_.push_back(Ref::borrow(obj));
  out_.op(format::Op::Memo);
  out_.count_memo();
}

bool HeapEncoder::finish_tuple(Work& w, format::Op op) {
  PyObject* obj = w.obj.get();
  Py_ssize_t n = PyTuple_GET_SIZE(op == format::Op::Tuple ? obj : w.items.get());
  const uint64_t* id = memo_.find(obj);
  if (id) {
    // The tuple was reached again through one of its own items (a cycle through a mutable
    // object) and was written in full there: drop the items written here and refer to it.
    out_.op(format::Op::Pop);
    out_.uvar(uint64_t(n));
    out_.op(format::Op::Ref);
    out_.uvar(*id);
    return false;
  }
  out_.op(op);
  out_.uvar(uint64_t(n));
  if (may_be_shared(obj, 1)) memoize_always(obj);  // the work item holds one reference
  return true;
}

std::string HeapEncoder::path_to_top() const {
  std::string path = "root";
  for (const Work& w : stack_) {
    switch (w.kind) {
      case Kind::List:
      case Kind::Tuple: path += "[" + std::to_string(w.next - 1) + "]"; break;
      case Kind::Set:
      case Kind::FrozenSet: path += ".<item " + std::to_string(w.next - 1) + ">"; break;
      case Kind::ShapedDict:
        if (w.key) path += "[" + short_repr(w.key) + "]";
        break;
      case Kind::Dict:
        if (w.value == nullptr && w.key) path += "[" + short_repr(w.key) + "]";
        else if (w.key) path += ".<key " + short_repr(w.key) + ">";
        break;
      case Kind::Plan: path += w.label; break;
    }
  }
  return path;
}

std::string HeapEncoder::type_name(PyTypeObject* type) {
  std::string name = type->tp_name;
  if (type->tp_dict && !std::strchr(type->tp_name, '.')) {
    PyObject* module = PyDict_GetItemString(type->tp_dict, "__module__");
    if (module && PyUnicode_Check(module)) {
      const char* m = PyUnicode_AsUTF8(module);
      if (m && std::strcmp(m, "builtins") != 0) name = std::string(m) + "." + name;
      if (!m) PyErr_Clear();
    }
  }
  return name;
}

void HeapEncoder::unsupported(PyObject* obj, const std::string& why) {
  PyErr_Clear();
  throw Error(ErrorCode::UnsupportedObject, path_to_top() + ": " + type_name(Py_TYPE(obj)) +
                                                " is not supported" +
                                                (why.empty() ? "" : " (" + why + ")"));
}

}  // namespace stasis::snapshot
