#include "snapshot/heap_encoder.h"

#include <cstring>
#include <limits>

#include "core/error.h"

namespace stasis::snapshot {
namespace {
constexpr uint64_t kBatch = 1000;  // values per Appends/SetItems: bounds the decoder's stack

// Only objects that can be reached twice need a memo id: a second path to an object in the graph
// means a second reference, so an object with a reference count of 1 is reached exactly once.
inline bool may_be_shared(PyObject* obj) { return Py_REFCNT(obj) > 1; }

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
    PyObject* obj = w.obj.get();
    bool pushed = false;
    switch (w.kind) {
      case Kind::List: {
        while (!pushed) {
          if (w.pending == kBatch) {
            out_.op(format::Op::Appends);
            out_.uvar(w.pending);
            w.pending = 0;
          }
          if (w.next >= PyList_GET_SIZE(obj)) break;
          PyObject* item = PyList_GET_ITEM(obj, w.next++);
          ++w.pending;
          pushed = save(item);  // may grow stack_: `w` is not used after a push
        }
        if (pushed) continue;
        if (w.pending) {
          out_.op(format::Op::Appends);
          out_.uvar(w.pending);
        }
        stack_.pop_back();
        break;
      }
      case Kind::Tuple: {
        while (!pushed && w.next < PyTuple_GET_SIZE(obj)) {
          PyObject* item = PyTuple_GET_ITEM(obj, w.next++);
          pushed = save(item);
        }
        if (pushed) continue;
        finish_tuple(w);
        stack_.pop_back();
        break;
      }
      case Kind::Dict: {
        while (!pushed) {
          if (w.value) {  // the key was written (and finished); now the value
            PyObject* value = w.value;
            w.value = nullptr;
            ++w.pending;
            pushed = save(value);
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
          pushed = save(key);
        }
        if (pushed) continue;
        if (w.pending) {
          out_.op(format::Op::SetItems);
          out_.uvar(w.pending);
        }
        stack_.pop_back();
        break;
      }
    }
  }
}

bool HeapEncoder::save(PyObject* obj) {
  out_.count_object();
  PyTypeObject* type = Py_TYPE(obj);
  // Value types first: never memoized (their identity is not observable in a meaningful way).
  if (obj == Py_None) {
    out_.op(format::Op::None);
    return false;
  }
  if (type == &PyBool_Type) {
    out_.op(obj == Py_True ? format::Op::True : format::Op::False);
    return false;
  }
  if (type == &PyLong_Type) {
    save_int(obj);
    return false;
  }
  if (type == &PyFloat_Type) {
    double d = PyFloat_AS_DOUBLE(obj);
    out_.op(format::Op::Float);
    out_.raw(&d, sizeof d);  // x86-64 and aarch64 are little-endian, as the format requires
    return false;
  }
  if (memoized(obj)) return false;
  if (type == &PyUnicode_Type) {
    save_str(obj);
    memoize(obj);
    return false;
  }
  if (type == &PyBytes_Type) {
    out_.op(format::Op::Bytes);
    out_.uvar(uint64_t(PyBytes_GET_SIZE(obj)));
    out_.raw(PyBytes_AS_STRING(obj), size_t(PyBytes_GET_SIZE(obj)));
    memoize(obj);
    return false;
  }
  if (type == &PyList_Type) {
    out_.op(format::Op::EmptyList);
    memoize(obj);
    stack_.push_back(Work{Ref::borrow(obj), Kind::List});
    return true;
  }
  if (type == &PyDict_Type) {
    out_.op(format::Op::EmptyDict);
    memoize(obj);
    stack_.push_back(Work{Ref::borrow(obj), Kind::Dict});
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
  unsupported(obj);
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
  size_t nbits = _PyLong_NumBits(obj);
  size_t nbytes = nbits / 8 + 1;  // room for the sign bit
  std::string buf(nbytes, '\0');
  if (_PyLong_AsByteArray(reinterpret_cast<PyLongObject*>(obj),
                          reinterpret_cast<unsigned char*>(buf.data()), nbytes, 1, 1) < 0)
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

bool HeapEncoder::memoized(PyObject* obj) {
  if (!may_be_shared(obj)) return false;
  auto it = memo_.find(obj);
  if (it == memo_.end()) return false;
  out_.op(format::Op::Ref);
  out_.uvar(it->second);
  return true;
}

void HeapEncoder::memoize(PyObject* obj) {
  if (!may_be_shared(obj)) return;
  memo_.emplace(obj, out_.memo_count());
  out_.op(format::Op::Memo);
  out_.count_memo();
}

void HeapEncoder::finish_tuple(Work& w) {
  PyObject* obj = w.obj.get();
  Py_ssize_t n = PyTuple_GET_SIZE(obj);
  auto it = may_be_shared(obj) ? memo_.find(obj) : memo_.end();
  if (it != memo_.end()) {
    // The tuple was reached again through one of its own items (a cycle through a mutable
    // object) and was written in full there: drop the items written here and refer to it.
    out_.op(format::Op::Pop);
    out_.uvar(uint64_t(n));
    out_.op(format::Op::Ref);
    out_.uvar(it->second);
    return;
  }
  out_.op(format::Op::Tuple);
  out_.uvar(uint64_t(n));
  memoize(obj);
}

std::string HeapEncoder::path_to_top() const {
  std::string path = "root";
  for (const Work& w : stack_) {
    switch (w.kind) {
      case Kind::List:
      case Kind::Tuple: path += "[" + std::to_string(w.next - 1) + "]"; break;
      case Kind::Dict:
        if (w.value == nullptr && w.key) path += "[" + short_repr(w.key) + "]";
        else if (w.key) path += ".<key " + short_repr(w.key) + ">";
        break;
    }
  }
  return path;
}

void HeapEncoder::unsupported(PyObject* obj) {
  PyTypeObject* type = Py_TYPE(obj);
  PyObject* module = PyDict_GetItemString(type->tp_dict, "__module__");
  std::string name = type->tp_name;
  if (module && PyUnicode_Check(module) && !strchr(type->tp_name, '.')) {
    const char* m = PyUnicode_AsUTF8(module);
    if (m && std::strcmp(m, "builtins") != 0) name = std::string(m) + "." + name;
  }
  throw Error(ErrorCode::UnsupportedObject,
              path_to_top() + ": " + name + " is not supported");
}

}  // namespace stasis::snapshot
