#include "restore/heap_decoder.h"

#include <cstring>
#include <string>

#include "core/cpython_internals.h"
#include "core/error.h"
#include "core/python_error.h"
#include "restore/code_guard.h"
#include "restore/effect_guard.h"
#include "restore/decoders.h"

namespace stasis::restore {

using format::Op;

HeapDecoder::HeapDecoder(format::PayloadReader& in, LoadHandlers handlers, Trust trust)
    : in_(in), handlers_(handlers), trust_(trust) {
  if (trust_ == Trust::Objects) effects_ = std::make_unique<EffectGuard>();
}

HeapDecoder::~HeapDecoder() {
  // A failed load's generators end as completed: finalizing a suspended or not started one would
  // close() it, which runs its frame (code from the stream) with GeneratorExit — and a crafted
  // frame there crashed (loads_fuzz). Completed, it is cleared without running anything.
  if (!decoded_)
    for (const Ref& gen : generators_)
      if (internals::generator_state(gen.get()) < 0) internals::set_generator_state(gen.get(), 1);
  generators_.clear();
  for (PyObject* o : stack_) Py_DECREF(o);
  for (PyObject* o : memo_) Py_DECREF(o);
  stack_.clear();
  memo_.clear();
  set_items_.clear();
  templates_.clear();
  // What this load built dies here (a failed load), while the guard still refuses its code: a
  // __del__ or a weak reference's callback of the snapshot's own never runs.
  if (guard_) PyErr_Clear();
}

void HeapDecoder::mark_foreign(PyObject* obj) {
  if (!foreign_.insert(obj).second) return;
  foreign_alive_.push_back(Ref::borrow(obj));
  if (PyList_Check(obj) || PyDict_Check(obj) || PyAnySet_Check(obj)) foreign_containers_.insert(obj);
}

void HeapDecoder::built_code(PyObject* code) {
  if (trust_ == Trust::Objects) {
    if (!guard_) guard_ = std::make_unique<CodeGuard>();
    guard_->add(code);
  }
}

bool HeapDecoder::derives_from_stream_class(PyTypeObject* type) const {
  if (stream_classes_.empty()) return false;
  PyObject* mro = type->tp_mro;
  if (!mro) return stream_classes_.count(reinterpret_cast<PyObject*>(type)) != 0;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(mro); ++i)
    if (stream_classes_.count(PyTuple_GET_ITEM(mro, i))) return true;
  return false;
}

void HeapDecoder::check_effects() {
  if (effects_ && !effects_->refused().empty()) {
    PyErr_Clear();
    corrupt("the snapshot made library code try " + effects_->refused() +
            ", which loading an object graph refuses (a CPython audit event)");
  }
}

void HeapDecoder::check_guard() {
  if (guard_ && !guard_->refused().empty()) {
    PyErr_Clear();
    corrupt("the snapshot tried to run its own code (" + guard_->refused() +
            ") while it was loaded; loading never runs code from the snapshot");
  }
}

PyObject* HeapDecoder::target(size_t below_top, const char* op) {
  PyObject* obj = peek(below_top);
  if (foreign(obj))
    corrupt(std::string(op) + " would change a " + Py_TYPE(obj)->tp_name +
            " that this load did not make (loading changes nothing that existed before it)");
  return obj;
}

void HeapDecoder::corrupt(const std::string& what) const {
  const char* name = format::op_name(op_);
  throw Error(ErrorCode::CorruptSnapshot, what + " (op " + (name ? name : "?") + " at op byte " +
                                             std::to_string(op_at_) + ")");
}

void HeapDecoder::refused(const std::string& what) {
  check_effects();  // a refused effect is the cause, whatever error it became
  corrupt(what + ": " + take_python_error());
}

PyObject* HeapDecoder::memo(uint64_t id) {
  if (id >= memo_.size()) corrupt("reference to undefined memo id " + std::to_string(id));
  return memo_[id];
}

PyObject* HeapDecoder::shape_template(uint64_t id, uint64_t k) {
  if (last_template_ && id == last_template_id_) {  // (no shape yet: id 2^64-1 is no cache hit)
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

void HeapDecoder::need(uint64_t count, uint64_t per, uint64_t extra, const char* op) {
  uint64_t have = stack_.size();
  // count x per + extra <= have, computed so that no count wraps around
  bool ok = extra <= have && count <= (have - extra) / per;
  if (!ok)
    corrupt(std::string(op) + " needs " +
            (count <= (UINT64_MAX - extra) / per ? std::to_string(count * per + extra)
                                                 : std::to_string(count) + " x " + std::to_string(per)) +
            " stack values, there are " + std::to_string(have));
}

PyObject* HeapDecoder::peek(size_t below_top) {
  need(below_top + 1, "an op");
  return stack_[stack_.size() - 1 - below_top];
}

PyObject* HeapDecoder::container_below(uint64_t values, PyTypeObject* type, const char* op) {
  need(values, 1, 1, op);
  PyObject* c = stack_[stack_.size() - size_t(values) - 1];
  if (Py_TYPE(c) != type) corrupt(std::string(op) + " applied to a " + Py_TYPE(c)->tp_name);
  if (!foreign_containers_.empty() && foreign_containers_.count(c))
    corrupt(std::string(op) + " would change a " + Py_TYPE(c)->tp_name +
            " that this load did not make (loading changes nothing that existed before it)");
  return c;
}

// Whether the Python exception that is set is one of Stasis's own (stasis.errors): a handler's
// SnapshotIOError stands; any other exception from a constructor or a handler is the snapshot's
// fault and becomes CorruptSnapshotError naming the op.
bool HeapDecoder::stasis_error_set() {
  PyObject* type = PyErr_Occurred();
  if (!type || !PyType_Check(type)) return false;
  PyObject* module = PyDict_GetItemString(reinterpret_cast<PyTypeObject*>(type)->tp_dict, "__module__");
  return module && PyUnicode_Check(module) && PyUnicode_CompareWithASCIIString(module, "stasis.errors") == 0;
}

void HeapDecoder::rethrow_as_snapshot_error() {
  try {
    throw;
  } catch (const Error& e) {
    if (e.code() != ErrorCode::PythonError) throw;
    check_effects();
    if (stasis_error_set()) throw;
    if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt) || PyErr_ExceptionMatches(PyExc_SystemExit)) throw;
    if (PyErr_ExceptionMatches(PyExc_MemoryError)) {
      PyErr_Clear();
      corrupt("out of memory while building op " + std::string(format::op_name(op_) ? format::op_name(op_) : "?"));
    }
    refused(std::string("op ") + (format::op_name(op_) ? format::op_name(op_) : "?"));
  } catch (const std::bad_alloc&) {
    PyErr_Clear();
    corrupt("out of memory while building op " + std::string(format::op_name(op_) ? format::op_name(op_) : "?"));
  }
}

Ref HeapDecoder::decode() {
  try {
    try {
      Ref root = run();
      decoded_ = true;
      return root;
    } catch (...) {
      rethrow_as_snapshot_error();
    }
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
  uint8_t previous = 0;
  while (!in_.at_end()) {
    op_at_ = in_.offset();
    uint8_t op = in_.byte();
    op_ = op;
    switch (static_cast<Op>(op)) {
      case Op::None: push(Py_NewRef(Py_None)); break;
      case Op::True: push(Py_NewRef(Py_True)); break;
      case Op::False: push(Py_NewRef(Py_False)); break;
      case Op::IntSmall: push(PyLong_FromLongLong(in_.svar())); break;
      case Op::IntBig: {
        uint64_t n = in_.uvar();
        std::string_view b = in_.view(n);
        push(internals::long_from_bytes(reinterpret_cast<const unsigned char*>(b.data()), b.size(), true, true));
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
        // The writer gives an object one memo id, right after the op that made it: a Memo after
        // a Memo would only grow the table (8 bytes per op byte) with no object to show for it.
        if (previous == static_cast<uint8_t>(Op::Memo)) corrupt("a second Memo of the same value");
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
        PyObject* list = container_below(k, &PyList_Type, "Appends");
        size_t base = stack_.size() - k;
        if (!internals::list_extend_stealing(list, stack_.data() + base, Py_ssize_t(k)))
          throw Error::python();
        stack_.resize(base);  // the references went into the list
        break;
      }
      case Op::SetItems: {
        uint64_t k = in_.uvar();
        need(k, 2, 1, "SetItems");
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
        if (guard_) check_guard();
        break;
      }
    }
    if (effects_ && !effects_->refused().empty()) check_effects();
    previous = op;
  }
  op_ = 0;
  op_at_ = in_.offset();
  if (stack_.size() != 1)
    throw Error(ErrorCode::CorruptSnapshot,
                "op stream ends with " + std::to_string(stack_.size()) + " values, expected 1");
  PyObject* root = stack_.back();
  stack_.pop_back();
  // Fix-up: the memo is released last; objects only it kept alive (referents of weak references
  // that nothing else holds) die now, as they would have in the writing process.
  Ref result = Ref::steal(root);
  for (PyObject* o : memo_) Py_DECREF(o);
  memo_.clear();
  set_items_.clear();
  if (guard_) check_guard();
  check_effects();
  return result;
}

}  // namespace stasis::restore
