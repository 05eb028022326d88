#include "restore/heap_decoder.h"

#include <cstring>
#include <string>

#include "core/cpython_internals.h"
#include "core/error.h"
#include "core/python_error.h"
#include "restore/decoders.h"

namespace stasis::restore {

using format::Op;

HeapDecoder::~HeapDecoder() {
  for (PyObject* o : stack_) Py_DECREF(o);
  for (PyObject* o : memo_) Py_DECREF(o);
}

void HeapDecoder::corrupt(const std::string& what) const {
  throw Error(ErrorCode::CorruptSnapshot, what + " (op at op byte " + std::to_string(op_at_) + ")");
}

void HeapDecoder::refused(const std::string& what) { corrupt(what + ": " + take_python_error()); }

PyObject* HeapDecoder::memo(uint64_t id) {
  if (id >= memo_.size()) corrupt("reference to undefined memo id " + std::to_string(id));
  return memo_[id];
}

PyObject* HeapDecoder::shape_template(uint64_t id, uint64_t k) {
  if (id == last_template_id_) {
    if (uint64_t(PyDict_GET_SIZE(last_template_)) != k) corrupt("a shape used with another key count");
    return last_template_;
  }
  auto it = templates_.find(id);
  if (it == templates_.end()) {
    PyObject* keys = memo(id);
    if (!PyTuple_CheckExact(keys)) corrupt("a shape that is not a tuple of keys");
    Ref tmpl = Ref::steal(PyDict_New());
    if (!tmpl) throw Error::python();
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(keys); ++i) {
      PyObject* key = PyTuple_GET_ITEM(keys, i);
      if (!PyUnicode_CheckExact(key)) corrupt("a shape key that is not a str");
      if (PyDict_SetItem(tmpl.get(), key, Py_None) < 0) refused("shape");
    }
    if (PyDict_GET_SIZE(tmpl.get()) != PyTuple_GET_SIZE(keys)) corrupt("a shape with repeated keys");
    it = templates_.emplace(id, std::move(tmpl)).first;
  }
  last_template_id_ = id;
  last_template_ = it->second.get();
  if (uint64_t(PyDict_GET_SIZE(last_template_)) != k) corrupt("a shape used with another key count");
  return last_template_;
}

Ref HeapDecoder::pop() {
  if (stack_.empty()) corrupt("an op needs a value, the stack is empty");
  PyObject* o = stack_.back();
  stack_.pop_back();
  return Ref::steal(o);
}

void HeapDecoder::need(size_t values, const char* op) {
  if (stack_.size() < values)
    corrupt(std::string(op) + " needs " + std::to_string(values) + " stack values, there are " +
            std::to_string(stack_.size()));
}

PyObject* HeapDecoder::peek(size_t below_top) {
  need(below_top + 1, "an op");
  return stack_[stack_.size() - 1 - below_top];
}

PyObject* HeapDecoder::container_below(size_t values, PyTypeObject* type, const char* op) {
  if (stack_.size() < values + 1)
    corrupt(std::string(op) + " needs " + std::to_string(values + 1) + " stack values, there are " +
            std::to_string(stack_.size()));
  PyObject* c = stack_[stack_.size() - values - 1];
  if (Py_TYPE(c) != type) corrupt(std::string(op) + " applied to a " + Py_TYPE(c)->tp_name);
  return c;
}

Ref HeapDecoder::decode() {
  try {
    return run();
  } catch (const Error&) {
    // Bytes not verified yet may be damaged: their error (zstd's, with the file offset) is the
    // cause, the op that failed on them only a symptom (whose Python exception, if any, goes).
    if (!in_.verified()) {
      try {
        in_.rethrow_payload_error();
      } catch (const Error&) {
        PyErr_Clear();
        throw;
      }
    }
    throw;
  }
}

Ref HeapDecoder::run() {
  while (!in_.at_end()) {
    op_at_ = in_.offset();
    uint8_t op = in_.byte();
    switch (static_cast<Op>(op)) {
      case Op::None: push(Py_NewRef(Py_None)); break;
      case Op::True: push(Py_NewRef(Py_True)); break;
      case Op::False: push(Py_NewRef(Py_False)); break;
      case Op::IntSmall: push(PyLong_FromLongLong(in_.svar())); break;
      case Op::IntBig: {
        uint64_t n = in_.uvar();
        std::string_view b = in_.view(n);
        push(_PyLong_FromByteArray(reinterpret_cast<const unsigned char*>(b.data()), b.size(), 1, 1));
        break;
      }
      case Op::Float: {  // big-endian since format version 3
        uint64_t bits;
        in_.raw(&bits, sizeof bits);
        bits = __builtin_bswap64(bits);
        double d;
        std::memcpy(&d, &bits, sizeof d);
        push(PyFloat_FromDouble(d));
        break;
      }
      case Op::Str: {
        uint64_t n = in_.uvar();
        std::string_view b = in_.view(n);
        push(PyUnicode_DecodeUTF8(b.data(), Py_ssize_t(b.size()), "surrogatepass"));
        break;
      }
      case Op::Bytes: {
        uint64_t n = in_.uvar();
        std::string_view b = in_.view(n);
        push(PyBytes_FromStringAndSize(b.data(), Py_ssize_t(b.size())));
        break;
      }
      case Op::Memo:
        if (stack_.empty()) corrupt("Memo with an empty stack");
        memo_.push_back(Py_NewRef(stack_.back()));
        break;
      case Op::Ref: {
        uint64_t id = in_.uvar();
        if (id >= memo_.size()) corrupt("Ref to undefined memo id " + std::to_string(id));
        push(Py_NewRef(memo_[id]));
        break;
      }
      case Op::EmptyList: push(PyList_New(0)); break;
      case Op::EmptyDict: push(PyDict_New()); break;
      case Op::Appends: {
        uint64_t k = in_.uvar();
        if (k > stack_.size()) corrupt("Appends of more values than the stack holds");
        PyObject* list = container_below(k, &PyList_Type, "Appends");
        size_t base = stack_.size() - k;
        if (!internals::list_extend_stealing(list, stack_.data() + base, Py_ssize_t(k)))
          throw Error::python();
        stack_.resize(base);  // the references went into the list
        break;
      }
      case Op::SetItems: {
        uint64_t k = in_.uvar();
        if (k > stack_.size() / 2) corrupt("SetItems of more pairs than the stack holds");
        PyObject* dict = container_below(2 * k, &PyDict_Type, "SetItems");
        for (size_t i = stack_.size() - 2 * k; i < stack_.size(); i += 2) {
          if (PyDict_SetItem(dict, stack_[i], stack_[i + 1]) < 0) refused("SetItems");
        }
        for (uint64_t i = 0; i < 2 * k; ++i) {
          Py_DECREF(stack_.back());
          stack_.pop_back();
        }
        break;
      }
      case Op::Tuple: {
        uint64_t n = in_.uvar();
        if (n > stack_.size()) corrupt("Tuple of more values than the stack holds");
        PyObject* t = PyTuple_New(Py_ssize_t(n));
        if (!t) throw Error::python();
        size_t base = stack_.size() - n;
        for (uint64_t i = 0; i < n; ++i) PyTuple_SET_ITEM(t, Py_ssize_t(i), stack_[base + i]);
        stack_.resize(base);
        stack_.push_back(t);
        break;
      }
      case Op::Pop: {
        uint64_t n = in_.uvar();
        if (n > stack_.size()) corrupt("Pop of more values than the stack holds");
        for (uint64_t i = 0; i < n; ++i) {
          Py_DECREF(stack_.back());
          stack_.pop_back();
        }
        break;
      }
      default: {
        Decoder decode = decoder_for(op);
        if (!decode) corrupt("unknown op " + std::to_string(op));
        // Ops that import, call or make code objects run on verified bytes only: until then the
        // decoder builds nothing but plain values (dropped, with no effect, if the check fails).
        if (!in_.verified() && !builds_plain_values(op)) in_.wait_verified();
        decode(*this, op);
        break;
      }
    }
  }
  if (stack_.size() != 1)
    throw Error(ErrorCode::CorruptSnapshot,
                "op stream ends with " + std::to_string(stack_.size()) + " values, expected 1");
  PyObject* root = stack_.back();
  stack_.pop_back();
  // Fix-up: the memo is released last; objects only it kept alive (referents of weak references
  // that nothing else holds) die now, as they would have in the writing process.
  for (PyObject* o : memo_) Py_DECREF(o);
  memo_.clear();
  return Ref::steal(root);
}

}  // namespace stasis::restore
