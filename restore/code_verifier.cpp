#include "restore/code_verifier.h"

#include <opcode.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "core/cpython_internals.h"
#include "core/error.h"
#include "core/ref.h"

namespace stasis::restore {
namespace {

// --- The opcode set of this interpreter (Lib/opcode.py): base opcodes and inline caches --------
struct Opcodes {
  bool base[256] = {};
  uint8_t caches[256] = {};
};

const Opcodes& opcodes() {
  static Opcodes* t = [] {
    auto* o = new Opcodes;
    Ref mod = Ref::steal(PyImport_ImportModule("opcode"));
    if (!mod) throw Error::python();
    Ref opmap = Ref::steal(PyObject_GetAttrString(mod.get(), "opmap"));
    Ref caches = Ref::steal(PyObject_GetAttrString(mod.get(), "_inline_cache_entries"));
    if (!opmap || !caches || !PyDict_Check(opmap.get())) throw Error::python();
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(opmap.get(), &pos, &k, &v)) {
      long op = PyLong_AsLong(v);
      if (op >= 0 && op < 256) o->base[op] = true;
    }
    Ref seq = Ref::steal(PySequence_Fast(caches.get(), "caches"));
    if (!seq) throw Error::python();
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq.get()) && i < 256; ++i)
      o->caches[i] = uint8_t(PyLong_AsLong(PySequence_Fast_GET_ITEM(seq.get(), i)));
    PyErr_Clear();
    o->base[CACHE] = false;  // only as a cache entry, never as an instruction
    return o;
  }();
  return *t;
}

// --- Abstract values --------------------------------------------------------------------------
enum Tag : uint8_t {
  kAny,      // maybe NULL: only SWAP and the slots that expect NULL may take it
  kNull,     // NULL (PUSH_NULL, LOAD_GLOBAL's low bit, LOAD_METHOD)
  kObj,      // some object
  kIter,     // an iterator (GET_ITER): FOR_ITER calls its tp_iternext unchecked
  kList,     // an exact list being built (LIST_APPEND, LIST_EXTEND write into it unchecked)
  kSet,      // an exact set being built (SET_UPDATE)
  kDict,     // an exact dict being built (MAP_ADD)
  kTuple,    // an exact tuple (MATCH_KEYS, MATCH_CLASS, defaults of MAKE_FUNCTION)
  kExc,      // an exception instance (handler entry): RERAISE, PUSH_EXC_INFO, WITH_EXCEPT_START
  kPrevExc,  // an exception or None (PUSH_EXC_INFO's saved one): POP_EXCEPT
  kLasti,    // the int of a handler with lasti: RERAISE jumps to it
  kCell,     // a cell (LOAD_CLOSURE)
  kClosure,  // a tuple of n cells (BUILD_TUPLE of LOAD_CLOSUREs)
  kCode,     // the code object co_consts[n]
};

struct Kind {
  Tag tag = kAny;
  int32_t n = 0;
  bool operator==(const Kind& o) const { return tag == o.tag && n == o.n; }
  bool operator!=(const Kind& o) const { return !(*this == o); }
  bool object() const { return tag != kAny && tag != kNull; }
};

Kind merge(Kind a, Kind b) {
  if (a == b) return a;
  if (a.object() && b.object()) return Kind{kObj, 0};
  return Kind{kAny, 0};
}

const char* tag_name(Tag t) {
  switch (t) {
    case kAny: return "a value that may be NULL";
    case kNull: return "NULL";
    case kObj: return "an object";
    case kIter: return "an iterator";
    case kList: return "a list";
    case kSet: return "a set";
    case kDict: return "a dict";
    case kTuple: return "a tuple";
    case kExc: return "an exception";
    case kPrevExc: return "a saved exception";
    case kLasti: return "an instruction offset";
    case kCell: return "a cell";
    case kClosure: return "a closure";
    case kCode: return "a code object";
  }
  return "?";
}

struct Instr {
  int op = 0;
  int arg = 0;
  int start = 0;  // code unit of the first EXTENDED_ARG, or of the op itself
  int at = 0;     // code unit of the op
  int next = 0;   // code unit after its caches
};

class Verifier {
 public:
  // raw: the code units as they will run (_PyCode_CODE: for a code object just built from the
  // snapshot, its bytes exactly); else the deoptimised view (co_code), for code of this process
  // that may have run and been specialised since.
  Verifier(PyCodeObject* co, bool raw) : co_(co), raw_(raw) {}

  std::string run() {
    try {
      decode();
      check_flags_and_prefix();
      parse_exception_table();
      check_location_table();
      flow();
    } catch (const std::string& why) {
      return why;
    }
    return "";
  }

  // After run(): the input stack of the instruction at `unit` (its op, or its first EXTENDED_ARG:
  // a jump back to a loop head lands there), if it was reached.
  const std::vector<Kind>* stack_at(int unit) const {
    if (starts(unit)) {
      size_t i = size_t(start_of_[size_t(unit)]);
      return reached_[i] ? &in_[i] : nullptr;
    }
    auto it = std::lower_bound(instrs_.begin(), instrs_.end(), unit,
                               [](const Instr& i, int u) { return i.at < u; });
    if (it == instrs_.end() || it->at != unit) return nullptr;
    size_t i = size_t(it - instrs_.begin());
    return reached_[i] ? &in_[i] : nullptr;
  }
  const Instr* instr_at(int unit) const {
    for (const Instr& i : instrs_)
      if (i.at == unit) return &i;
    return nullptr;
  }
  bool starts(int unit) const { return unit >= 0 && unit < int(start_of_.size()) && start_of_[size_t(unit)] >= 0; }
  bool generator_prefix() const { return return_generator_; }
  int iterator_argument() const { return iter_arg_; }

 private:
  [[noreturn]] void fail(const std::string& why, int unit = -1) const {
    std::string where = unit >= 0 ? " (at code unit " + std::to_string(unit) + ")" : "";
    throw std::string(why + where);
  }

  // --- instructions ------------------------------------------------------------------------------
  void decode() {
    const Opcodes& t = opcodes();
    int n = internals::code_units(co_);
    const internals::CodeUnit* code = internals::code_units_as_run(co_);
    if (!raw_) {
      deopt_ = Ref::steal(PyCode_GetCode(co_));
      if (!deopt_ || !PyBytes_Check(deopt_.get()) || PyBytes_GET_SIZE(deopt_.get()) != Py_ssize_t(n) * 2) {
        PyErr_Clear();
        fail("cannot read the code's bytes");
      }
      code = reinterpret_cast<const internals::CodeUnit*>(PyBytes_AS_STRING(deopt_.get()));
    }
    start_of_.assign(size_t(n), -1);
    int ext = 0, ext_start = -1, ext_count = 0;
    for (int u = 0; u < n;) {
      int op = internals::unit_opcode(code[u]);
      int arg = internals::unit_argument(code[u]);
      if (op == EXTENDED_ARG) {
        if (ext_count == 3) fail("more than three EXTENDED_ARG in a row", u);
        if (ext_start < 0) ext_start = u;
        ext = (ext << 8) | arg;
        ++ext_count;
        ++u;
        continue;
      }
      if (!t.base[op]) fail("opcode " + std::to_string(op) + " is not a base opcode of CPython 3.11", u);
      Instr in;
      in.op = op;
      in.arg = (ext << 8) | arg;
      in.at = u;
      in.start = ext_start >= 0 ? ext_start : u;
      in.next = u + 1 + t.caches[op];
      if (in.next > n) fail("the code ends inside an instruction's inline cache", u);
      for (int c = u + 1; c < in.next; ++c)
        if (code[c] != 0) fail("an inline cache entry is not zero", c);
      if (op < HAVE_ARGUMENT && (arg != 0 || ext_count)) fail("an argument on an opcode that takes none", u);
      start_of_[size_t(in.start)] = int(instrs_.size());
      instrs_.push_back(in);
      ext = 0;
      ext_start = -1;
      ext_count = 0;
      u = in.next;
    }
    if (ext_count) fail("the code ends with EXTENDED_ARG");
    if (instrs_.empty()) fail("empty code");
  }

  int index_of_start(int unit, int from) const {
    if (unit < 0 || unit >= int(start_of_.size()) || start_of_[size_t(unit)] < 0)
      fail("a jump to code unit " + std::to_string(unit) + ", which is not the start of an instruction", from);
    return start_of_[size_t(unit)];
  }

  // --- frame prefix and flags ---------------------------------------------------------------------
  int nfree() const { return internals::code_nfreevars(co_); }
  int nlocalsplus() const { return internals::code_nlocalsplus(co_); }
  int slot_kind(int i) const { return internals::localsplus_kind(co_, i); }

  void check_flags_and_prefix() {
    // A comprehension's code takes its iterator as argument ".0" (the caller ran GET_ITER), and
    // runs FOR_ITER on it: that slot holds an iterator, and nothing may store anything else there.
    PyObject* names = internals::code_localsplus_names(co_);
    if (co_->co_argcount >= 1 && PyTuple_GET_SIZE(names) >= 1) {
      PyObject* first = PyTuple_GET_ITEM(names, 0);
      if (PyUnicode_Check(first) && PyUnicode_CompareWithASCIIString(first, ".0") == 0) iter_arg_ = 0;
    }
    int gen_flags = co_->co_flags & (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR);
    if (gen_flags & (gen_flags - 1)) fail("co_flags mark the code as more than one of generator, coroutine, async generator");
    size_t i = 0;
    std::vector<bool> made(size_t(nlocalsplus()), false);
    if (nfree() > 0) {
      if (instrs_[0].op != COPY_FREE_VARS || instrs_[0].arg != nfree())
        fail("code with free variables does not start with COPY_FREE_VARS " + std::to_string(nfree()));
      i = 1;
    }
    for (; i < instrs_.size() && instrs_[i].op == MAKE_CELL; ++i) {
      int slot = instrs_[i].arg;
      if (slot >= nlocalsplus() || !(slot_kind(slot) & CO_FAST_CELL) || made[size_t(slot)])
        fail("MAKE_CELL of a slot that is not an unmade cell variable", instrs_[i].at);
      made[size_t(slot)] = true;
    }
    for (int s = 0; s < nlocalsplus(); ++s)
      if ((slot_kind(s) & CO_FAST_CELL) && !made[size_t(s)])
        fail("cell variable " + std::to_string(s) + " has no MAKE_CELL in the frame prefix");
    if (i < instrs_.size() && instrs_[i].op == RETURN_GENERATOR) {
      return_generator_ = true;
      ++i;
    }
    if (bool(gen_flags) != return_generator_)
      fail(gen_flags ? "co_flags say generator or coroutine, and the code does not start with RETURN_GENERATOR"
                     : "the code starts with RETURN_GENERATOR, and co_flags do not say generator or coroutine");
    prefix_end_ = int(i);  // instructions [0, prefix_end_) run once, at the start of the frame
    for (size_t j = i; j < instrs_.size(); ++j) {
      int op = instrs_[j].op;
      if (op == COPY_FREE_VARS || op == MAKE_CELL || op == RETURN_GENERATOR)
        fail(std::string("a frame-prefix instruction outside the frame prefix"), instrs_[j].at);
      if (op == YIELD_VALUE && !gen_flags) fail("YIELD_VALUE in code that is not a generator or coroutine", instrs_[j].at);
    }
  }

  // --- exception table (Objects/exception_handling_notes.txt, ceval.c get_exception_handler) -------
  struct Handler {
    int start, end, target, depth;
    bool lasti;
  };

  void parse_exception_table() {
    PyObject* table = co_->co_exceptiontable;
    if (!PyBytes_Check(table)) fail("co_exceptiontable is not bytes");
    const auto* p = reinterpret_cast<const uint8_t*>(PyBytes_AS_STRING(table));
    size_t n = size_t(PyBytes_GET_SIZE(table)), at = 0;
    int units = internals::code_units(co_);
    auto varint = [&](bool first) {
      if (at >= n) fail("the exception table ends inside an entry");
      if (bool(p[at] & 128) != first) fail("malformed exception table");
      long v = p[at] & 63;
      int len = 1;
      while (p[at] & 64) {
        ++at;
        if (at >= n || (p[at] & 128) || ++len > 5) fail("malformed exception table");
        v = (v << 6) | (p[at] & 63);
      }
      ++at;
      return v;
    };
    int last_end = 0;
    while (at < n) {
      long start = varint(true), size = varint(false), target = varint(false), dl = varint(false);
      if (size <= 0 || start + size > units || start < last_end)
        fail("an exception table entry outside the code, empty, or out of order");
      if (target >= units) fail("an exception handler outside the code");
      Handler h{int(start), int(start + size), int(target), int(dl >> 1), bool(dl & 1)};
      if (h.depth > co_->co_stacksize) fail("an exception handler deeper than co_stacksize");
      index_of_start(h.target, -1);
      if (start_of_[size_t(h.start)] < 0) fail("an exception table entry that does not start on an instruction");
      last_end = h.end;
      handlers_.push_back(h);
    }
    for (const Handler& h : handlers_)
      for (size_t i = 0; i < size_t(prefix_end_); ++i)
        if (instrs_[i].at >= h.start && instrs_[i].at < h.end) fail("an exception handler covers the frame prefix");
  }

  const Handler* handler_for(int unit) const {
    for (const Handler& h : handlers_)
      if (unit >= h.start && unit < h.end) return &h;
    return nullptr;
  }

  // --- location table (Objects/locations.md, codeobject.c) -----------------------------------------
  void check_location_table() {
    PyObject* table = co_->co_linetable;
    if (!PyBytes_Check(table)) fail("co_linetable is not bytes");
    const auto* p = reinterpret_cast<const uint8_t*>(PyBytes_AS_STRING(table));
    size_t n = size_t(PyBytes_GET_SIZE(table)), at = 0;
    long covered = 0;
    auto byte = [&]() {
      if (at >= n || (p[at] & 128)) fail("malformed location table");
      return p[at++];
    };
    auto varint = [&]() {
      int len = 0;
      uint8_t b;
      do {
        b = byte();
        if (++len > 5) fail("malformed location table");
      } while (b & 64);
    };
    while (at < n) {
      uint8_t head = p[at++];
      if (!(head & 128)) fail("malformed location table");
      int code = (head >> 3) & 15;
      covered += (head & 7) + 1;
      if (code == 15) {
      } else if (code == 14) {
        varint(); varint(); varint(); varint();
      } else if (code == 13) {
        varint();
      } else if (code >= 10) {
        byte(); byte();
      } else {
        byte();
      }
    }
    if (covered != internals::code_units(co_))
      fail("the location table covers " + std::to_string(covered) + " code units, the code has " +
           std::to_string(internals::code_units(co_)));
  }

  // --- the value stack along every path -----------------------------------------------------------
  Kind const_kind(int i) const {
    PyObject* c = PyTuple_GET_ITEM(co_->co_consts, i);
    if (PyCode_Check(c)) return Kind{kCode, i};
    if (PyTuple_CheckExact(c)) return Kind{kTuple, 0};
    return Kind{kObj, 0};
  }

  void need_names(const Instr& in, int index) const {
    if (index < 0 || index >= PyTuple_GET_SIZE(co_->co_names)) fail("a name index outside co_names", in.at);
  }
  void need_slot(const Instr& in, bool cell) const {
    if (in.arg >= nlocalsplus()) fail("a local slot outside the frame", in.at);
    bool is_cell = slot_kind(in.arg) & (CO_FAST_CELL | CO_FAST_FREE);
    if (is_cell != cell)
      fail(cell ? "a cell instruction on a slot that is not a cell or free variable"
                : "a fast-local instruction on a cell or free variable's slot",
           in.at);
  }

  void merge_into(size_t index, const std::vector<Kind>& st, int from) {
    if (st.size() > size_t(co_->co_stacksize))
      fail("the value stack grows past co_stacksize (" + std::to_string(co_->co_stacksize) + ")", from);
    if (!reached_[index]) {
      reached_[index] = true;
      in_[index] = st;
      queue_.push_back(index);
      return;
    }
    std::vector<Kind>& cur = in_[index];
    if (cur.size() != st.size())
      fail("paths meet with different stack depths (" + std::to_string(cur.size()) + " and " +
               std::to_string(st.size()) + ")",
           instrs_[index].at);
    bool changed = false;
    for (size_t i = 0; i < st.size(); ++i) {
      Kind m = merge(cur[i], st[i]);
      if (m != cur[i]) {
        cur[i] = m;
        changed = true;
      }
    }
    if (changed) queue_.push_back(index);
  }

  void flow() {
    size_t n = instrs_.size();
    in_.assign(n, {});
    reached_.assign(n, false);
    merge_into(0, {}, 0);
    while (!queue_.empty()) {
      size_t i = queue_.front();
      queue_.pop_front();
      step(i);
    }
  }

  // Runs instruction i on a copy of its input stack; merges the results into its successors.
  void step(size_t i) {
    const Instr& in = instrs_[i];
    std::vector<Kind> st = in_[i];
    size_t depth_in = st.size();
    int at = in.at;
    auto pop = [&](Tag want = kObj) {
      if (st.empty()) fail("the value stack underflows", at);
      Kind k = st.back();
      st.pop_back();
      if (want == kAny) return k;
      if (want == kObj ? !k.object() : k.tag != want)
        fail(std::string("an instruction needs ") + tag_name(want) + " and finds " + tag_name(k.tag), at);
      return k;
    };
    auto pops = [&](int count, Tag want = kObj) {
      if (count < 0 || size_t(count) > st.size()) fail("the value stack underflows", at);
      for (int c = 0; c < count; ++c) pop(want);
    };
    auto push = [&](Tag t, int v = 0) { st.push_back(Kind{t, v}); };
    auto peek = [&](int depth) -> Kind& {  // 1 = top
      if (depth < 1 || size_t(depth) > st.size()) fail("an instruction reaches below the value stack", at);
      return st[st.size() - size_t(depth)];
    };
    auto need_at = [&](int depth, Tag want) {
      Kind& k = peek(depth);
      if (want == kObj ? !k.object() : k.tag != want)
        fail(std::string("an instruction needs ") + tag_name(want) + " below and finds " + tag_name(k.tag), at);
    };
    bool falls_through = true;
    int jump_to = -1;                 // code unit of a branch target
    std::vector<Kind> jump_stack;     // the stack on that branch
    auto branch = [&](int unit, const std::vector<Kind>& s) {
      jump_to = unit;
      jump_stack = s;
    };

    switch (in.op) {
      case NOP: case RESUME: case SETUP_ANNOTATIONS: break;
      case COPY_FREE_VARS: case MAKE_CELL: break;  // the frame prefix (check_flags_and_prefix)
      case POP_TOP: pop(); break;
      case PUSH_NULL: push(kNull); break;
      case UNARY_POSITIVE: case UNARY_NEGATIVE: case UNARY_NOT: case UNARY_INVERT: case GET_AITER:
      case GET_YIELD_FROM_ITER: case GET_AWAITABLE: case ASYNC_GEN_WRAP:
        pop(); push(kObj); break;
      case LOAD_ATTR: need_names(in, in.arg); pop(); push(kObj); break;
      case BINARY_SUBSCR: pops(2); push(kObj); break;
      case GET_LEN: case MATCH_MAPPING: case MATCH_SEQUENCE: case GET_ANEXT:
        need_at(1, kObj); push(kObj); break;
      case MATCH_KEYS: need_at(1, kTuple); need_at(2, kObj); push(kObj); break;
      case PUSH_EXC_INFO: pop(kExc); push(kPrevExc); push(kExc); break;
      case CHECK_EXC_MATCH: pop(); need_at(1, kObj); push(kObj); break;
      case CHECK_EG_MATCH: case PREP_RERAISE_STAR:
        // except*: RERAISE takes what PREP_RERAISE_STAR picks from a list the code filled, which
        // the verifier cannot show to hold only exceptions.
        fail("except* (PREP_RERAISE_STAR, CHECK_EG_MATCH) is not accepted in code from a snapshot", at);
      case WITH_EXCEPT_START: need_at(1, kExc); need_at(4, kObj); push(kObj); break;
      case BEFORE_ASYNC_WITH: case BEFORE_WITH: pop(); push(kObj); push(kObj); break;
      case END_ASYNC_FOR: pop(kExc); pop(); break;
      case STORE_SUBSCR: pops(3); break;
      case DELETE_SUBSCR: pops(2); break;
      case GET_ITER: pop(); push(kIter); break;
      case PRINT_EXPR: case IMPORT_STAR: pop(); break;
      case LOAD_BUILD_CLASS: case LOAD_ASSERTION_ERROR: push(kObj); break;
      case RETURN_GENERATOR: push(kObj); break;  // the value its first resumption sends
      case LIST_TO_TUPLE: pop(); push(kTuple); break;
      case RETURN_VALUE: pop(); falls_through = false; break;
      case YIELD_VALUE: pop(); push(kObj); break;
      case POP_EXCEPT: pop(kPrevExc); break;
      case STORE_NAME: need_names(in, in.arg); pop(); break;
      case DELETE_NAME: need_names(in, in.arg); break;
      case UNPACK_SEQUENCE: pop(); for (int c = 0; c < in.arg; ++c) push(kObj); break;
      case UNPACK_EX: pop(); for (int c = 0; c < (in.arg & 0xFF) + 1 + (in.arg >> 8); ++c) push(kObj); break;
      case FOR_ITER: {
        need_at(1, kIter);
        std::vector<Kind> done = st;
        done.pop_back();
        branch(in.next + in.arg, done);
        push(kObj);
        break;
      }
      case STORE_ATTR: need_names(in, in.arg); pops(2); break;
      case DELETE_ATTR: need_names(in, in.arg); pop(); break;
      case STORE_GLOBAL: need_names(in, in.arg); pop(); break;
      case DELETE_GLOBAL: need_names(in, in.arg); break;
      case SWAP: {
        if (in.arg < 1) fail("SWAP 0", at);
        std::swap(peek(1), peek(in.arg));
        break;
      }
      case COPY: {
        if (in.arg < 1) fail("COPY 0", at);
        Kind k = peek(in.arg);
        if (!k.object()) fail("COPY of a value that may be NULL", at);
        st.push_back(k);
        break;
      }
      case LOAD_CONST:
        if (in.arg >= PyTuple_GET_SIZE(co_->co_consts)) fail("a constant index outside co_consts", at);
        st.push_back(const_kind(in.arg));
        break;
      case LOAD_NAME: need_names(in, in.arg); push(kObj); break;
      case BUILD_TUPLE: {
        bool cells = in.arg > 0;
        for (int c = 0; c < in.arg; ++c) cells = cells && peek(c + 1).tag == kCell;
        pops(in.arg);
        if (cells) push(kClosure, in.arg);
        else push(kTuple);
        break;
      }
      case BUILD_LIST: pops(in.arg); push(kList); break;
      case BUILD_SET: pops(in.arg); push(kSet); break;
      case BUILD_MAP: pops(in.arg); pops(in.arg); push(kDict); break;
      case COMPARE_OP:
        if (in.arg > Py_GE) fail("COMPARE_OP with an unknown operator", at);
        pops(2); push(kObj); break;
      case IMPORT_NAME: need_names(in, in.arg); pops(2); push(kObj); break;
      case IMPORT_FROM: need_names(in, in.arg); need_at(1, kObj); push(kObj); break;
      case JUMP_FORWARD: branch(in.next + in.arg, st); falls_through = false; break;
      case JUMP_BACKWARD: case JUMP_BACKWARD_NO_INTERRUPT:
        branch(in.next - in.arg, st); falls_through = false; break;
      case JUMP_IF_FALSE_OR_POP: case JUMP_IF_TRUE_OR_POP:
        need_at(1, kObj); branch(in.next + in.arg, st); pop(); break;
      case POP_JUMP_FORWARD_IF_FALSE: case POP_JUMP_FORWARD_IF_TRUE:
      case POP_JUMP_FORWARD_IF_NONE: case POP_JUMP_FORWARD_IF_NOT_NONE:
        pop(); branch(in.next + in.arg, st); break;
      case POP_JUMP_BACKWARD_IF_FALSE: case POP_JUMP_BACKWARD_IF_TRUE:
      case POP_JUMP_BACKWARD_IF_NONE: case POP_JUMP_BACKWARD_IF_NOT_NONE:
        pop(); branch(in.next - in.arg, st); break;
      case LOAD_GLOBAL:
        need_names(in, in.arg >> 1);
        if (in.arg & 1) push(kNull);
        push(kObj);
        break;
      case IS_OP: case CONTAINS_OP: pops(2); push(kObj); break;
      case RERAISE:
        if (in.arg) need_at(in.arg + 1, kLasti);
        pop(kExc);
        falls_through = false;
        break;
      case BINARY_OP:
        if (in.arg > NB_INPLACE_XOR) fail("BINARY_OP with an unknown operator", at);
        pops(2); push(kObj); break;
      case SEND: {
        pop();
        need_at(1, kObj);
        std::vector<Kind> done = st;
        done.back() = Kind{kObj, 0};
        branch(in.next + in.arg, done);
        push(kObj);
        break;
      }
      case LOAD_FAST: need_slot(in, false); push(in.arg == iter_arg_ ? kIter : kObj); break;
      case STORE_FAST: case DELETE_FAST:
        need_slot(in, false);
        if (in.arg == iter_arg_) fail("a store to a comprehension's iterator argument", at);
        if (in.op == STORE_FAST) pop();
        break;
      case RAISE_VARARGS:
        if (in.arg > 2) fail("RAISE_VARARGS with more than two operands", at);
        pops(in.arg); falls_through = false; break;
      case MAKE_FUNCTION: {
        if (in.arg & ~0x0F) fail("MAKE_FUNCTION with unknown flags", at);
        Kind code = pop(kCode);
        auto* inner = reinterpret_cast<PyCodeObject*>(PyTuple_GET_ITEM(co_->co_consts, code.n));
        if (in.arg & 0x08) {
          Kind closure = pop(kClosure);
          if (closure.n != internals::code_nfreevars(inner)) fail("MAKE_FUNCTION with a closure that does not match the code's free variables", at);
        } else if (internals::code_nfreevars(inner)) {
          fail("MAKE_FUNCTION of code with free variables and no closure", at);
        }
        if (in.arg & 0x04) pop();
        if (in.arg & 0x02) pop(kDict);
        if (in.arg & 0x01) pop(kTuple);
        push(kObj);
        break;
      }
      case BUILD_SLICE:
        if (in.arg != 2 && in.arg != 3) fail("BUILD_SLICE of neither 2 nor 3 values", at);
        pops(in.arg); push(kObj); break;
      case LOAD_CLOSURE: need_slot(in, true); push(kCell); break;
      case LOAD_DEREF: need_slot(in, true); push(kObj); break;
      case STORE_DEREF: need_slot(in, true); pop(); break;
      case DELETE_DEREF: need_slot(in, true); break;
      case LOAD_CLASSDEREF:
        need_slot(in, true);
        if (co_->co_flags & CO_OPTIMIZED) fail("LOAD_CLASSDEREF in optimized code (its frame has no locals)", at);
        push(kObj);
        break;
      case CALL_FUNCTION_EX:
        if (in.arg & ~1) fail("CALL_FUNCTION_EX with unknown flags", at);
        if (in.arg & 1) pop();
        pops(2);
        pop(kAny);
        push(kObj);
        break;
      case LIST_APPEND: pop(); need_at(in.arg, kList); break;
      case SET_ADD: pop(); need_at(in.arg, kSet); break;
      case MAP_ADD: pops(2); need_at(in.arg, kDict); break;
      case LIST_EXTEND: pop(); need_at(in.arg, kList); break;
      case SET_UPDATE: pop(); need_at(in.arg, kSet); break;
      case DICT_MERGE: case DICT_UPDATE: pop(); need_at(in.arg, kDict); break;
      case MATCH_CLASS: pop(kTuple); pops(2); push(kObj); break;
      case FORMAT_VALUE:
        if (in.arg & 4) pop();
        pop(); push(kObj); break;
      case BUILD_CONST_KEY_MAP: pop(); pops(in.arg); push(kDict); break;
      case BUILD_STRING: pops(in.arg); push(kObj); break;
      case LOAD_METHOD: need_names(in, in.arg); pop(); push(kAny); push(kObj); break;
      case PRECALL:
        pops(in.arg);
        pop();
        pop(kAny);
        push(kAny); push(kObj);
        for (int c = 0; c < in.arg; ++c) push(kObj);
        break;
      case CALL: {  // keyword names: KW_NAMES is checked against this CALL
        pops(in.arg);
        pop();
        pop(kAny);
        push(kObj);
        break;
      }
      case KW_NAMES: {
        if (in.arg >= PyTuple_GET_SIZE(co_->co_consts)) fail("a constant index outside co_consts", at);
        PyObject* names = PyTuple_GET_ITEM(co_->co_consts, in.arg);
        if (!PyTuple_CheckExact(names)) fail("KW_NAMES of a constant that is not a tuple", at);
        for (Py_ssize_t c = 0; c < PyTuple_GET_SIZE(names); ++c)
          if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(names, c))) fail("KW_NAMES of a non-str name", at);
        // Must be followed at once by PRECALL n and CALL n (ceval.c keeps the names in call_shape).
        if (i + 2 >= instrs_.size() || instrs_[i + 1].op != PRECALL || instrs_[i + 2].op != CALL ||
            instrs_[i + 1].arg != instrs_[i + 2].arg || PyTuple_GET_SIZE(names) > instrs_[i + 2].arg ||
            starts_block(i + 1) || starts_block(i + 2))
          fail("KW_NAMES not followed by its PRECALL and CALL", at);
        break;
      }
      default:
        fail("opcode " + std::to_string(in.op) + " is not accepted in code from a snapshot", at);
    }
    // An exception inside this instruction unwinds to the handler's depth: the values below it
    // must still be there. ceval.c fails an instruction either before it pops or with its result
    // slot NULL (SET_TOP(res); goto error), so the stack then holds at least the smaller of its
    // input and output depths (and of its branch's).
    size_t low = std::min(depth_in, st.size());
    if (jump_to >= 0) low = std::min(low, jump_stack.size());
    // Instructions that cannot raise (ceval.c: no `goto error`, no eval-breaker check) lead to no
    // handler; some of them move values below a handler's depth (SWAP, PUSH_EXC_INFO).
    bool can_raise = !(in.op == NOP || in.op == PUSH_NULL || in.op == SWAP || in.op == COPY ||
                       in.op == LOAD_CONST || in.op == PUSH_EXC_INFO || in.op == POP_EXCEPT ||
                       in.op == PRECALL || in.op == POP_TOP || in.op == STORE_FAST ||
                       in.op == JUMP_FORWARD || in.op == KW_NAMES);
    const Handler* h = can_raise ? handler_for(in.at) : nullptr;
    if (h) {
      if (size_t(h->depth) > low)
        fail("an exception handler expects " + std::to_string(h->depth) + " values and the stack may hold " +
                 std::to_string(low),
             at);
      std::vector<Kind> hs(in_[i].begin(), in_[i].begin() + h->depth);
      if (h->lasti) hs.push_back(Kind{kLasti, 0});
      hs.push_back(Kind{kExc, 0});
      merge_into(size_t(index_of_start(h->target, at)), hs, at);
    }
    if (jump_to >= 0) {
      if (jump_to < 0 || jump_to >= internals::code_units(co_)) fail("a jump outside the code", at);
      size_t target = size_t(index_of_start(jump_to, at));
      if (int(target) < prefix_end_) fail("a jump into the frame prefix", at);
      merge_into(target, jump_stack, at);
    }
    if (falls_through) {
      if (i + 1 >= instrs_.size()) fail("the code runs off its end", at);
      merge_into(i + 1, st, at);
    }
  }

  // Whether instruction i is a jump or handler target (KW_NAMES must reach its CALL directly).
  bool starts_block(size_t i) const {
    int unit = instrs_[i].start;
    for (const Handler& h : handlers_)
      if (h.target == unit) return true;
    for (const Instr& j : instrs_) {
      int t = -1;
      switch (j.op) {
        case FOR_ITER: case JUMP_FORWARD: case JUMP_IF_FALSE_OR_POP: case JUMP_IF_TRUE_OR_POP:
        case POP_JUMP_FORWARD_IF_FALSE: case POP_JUMP_FORWARD_IF_TRUE: case POP_JUMP_FORWARD_IF_NONE:
        case POP_JUMP_FORWARD_IF_NOT_NONE: case SEND:
          t = j.next + j.arg; break;
        case JUMP_BACKWARD: case JUMP_BACKWARD_NO_INTERRUPT: case POP_JUMP_BACKWARD_IF_FALSE:
        case POP_JUMP_BACKWARD_IF_TRUE: case POP_JUMP_BACKWARD_IF_NONE: case POP_JUMP_BACKWARD_IF_NOT_NONE:
          t = j.next - j.arg; break;
        default: break;
      }
      if (t == unit) return true;
    }
    return false;
  }

  PyCodeObject* co_;
  bool raw_;
  Ref deopt_;
  std::vector<Instr> instrs_;
  std::vector<int> start_of_;  // code unit -> index of the instruction starting there, or -1
  std::vector<Handler> handlers_;
  std::vector<std::vector<Kind>> in_;
  std::vector<bool> reached_;
  std::deque<size_t> queue_;
  int prefix_end_ = 0;
  bool return_generator_ = false;
  int iter_arg_ = -1;
};

bool kind_accepts(Kind k, PyObject* v) {
  switch (k.tag) {
    case kAny: case kNull: case kObj: return true;  // NULL slots are saved as None (harmless)
    case kIter: return internals::is_iterator_type(Py_TYPE(v));
    case kList: return PyList_CheckExact(v);
    case kSet: return PySet_CheckExact(v);
    case kDict: return PyDict_CheckExact(v);
    case kTuple: return PyTuple_CheckExact(v);
    case kExc: return PyExceptionInstance_Check(v);
    case kPrevExc: return v == Py_None || PyExceptionInstance_Check(v);
    case kLasti: return false;  // checked with the code's size by the caller
    case kCell: return PyCell_Check(v);
    case kClosure: return false;
    case kCode: return false;
  }
  return false;
}

}  // namespace

std::string verify_code(PyCodeObject* code) {
  if (!PyTuple_CheckExact(code->co_consts) || !PyTuple_CheckExact(code->co_names))
    return "co_consts and co_names must be tuples";
  return Verifier(code, true).run();
}

bool has_generator_prefix(PyCodeObject* code) {
  Verifier v(code, false);
  return v.run().empty() && v.generator_prefix();
}

int iterator_argument(PyCodeObject* code) {
  Verifier v(code, false);
  return v.run().empty() ? v.iterator_argument() : -1;
}

bool is_instruction_start(PyCodeObject* code, int index) {
  Verifier v(code, false);
  return v.run().empty() && v.starts(index);
}

std::string check_stack_at(PyCodeObject* code, int index, PyObject* stack, bool after_yield) {
  Verifier v(code, false);
  std::string why = v.run();
  if (!why.empty()) return why;
  const std::vector<Kind>* kinds = v.stack_at(index);
  if (!kinds) return "the position is not an instruction the code can reach";
  std::vector<Kind> want = *kinds;
  if (after_yield) {
    const Instr* in = v.instr_at(index);
    if (!in || in->op != YIELD_VALUE || want.empty()) return "the position is not a yield";
    want.pop_back();
  }
  if (!PyTuple_Check(stack) || size_t(PyTuple_GET_SIZE(stack)) != want.size())
    return "the saved value stack holds " + std::to_string(PyTuple_Check(stack) ? PyTuple_GET_SIZE(stack) : -1) +
           " values, the code has " + std::to_string(want.size()) + " there";
  for (size_t i = 0; i < want.size(); ++i) {
    PyObject* value = PyTuple_GET_ITEM(stack, Py_ssize_t(i));
    Kind k = want[i];
    bool ok;
    if (k.tag == kLasti) {
      long l = PyLong_CheckExact(value) ? PyLong_AsLong(value) : -1;
      PyErr_Clear();
      ok = l >= 0 && l < internals::code_units(code);
    } else if (k.tag == kClosure || k.tag == kCode) {
      ok = false;
    } else {
      ok = kind_accepts(k, value);
    }
    if (!ok)
      return "saved stack value " + std::to_string(i) + " is a " + Py_TYPE(value)->tp_name + " where the code needs " +
             tag_name(k.tag);
  }
  return "";
}

}  // namespace stasis::restore
