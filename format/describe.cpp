// format/describe.cpp — the op stream followed onto DescNodes (describe.h): no Python object is made.
#include "format/describe.h"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <iterator>

#include "format/byte_planes.h"

namespace stasis::format {
namespace {

// What a described value keeps of long strings and bytes: enough for names, code fields (line
// tables), module sources and short reprs; longer data is kept as its length and a prefix.
constexpr size_t kKeepStr = size_t(64) << 10;
constexpr size_t kKeepBytes = size_t(4) << 20;
constexpr size_t kKeepBigInt = 4096;
constexpr size_t kKeepFloats = 8;  // floats of a Floats op kept as values (per list)

// Constants share one node each: nodes 0..4.
constexpr uint32_t kNoneNode = 0, kTrueNode = 1, kFalseNode = 2, kEllipsisNode = 3, kNotImplNode = 4;

Error corrupt(const std::string& what, uint64_t at) {
  return Error(ErrorCode::CorruptSnapshot, what + " at op byte " + std::to_string(at));
}

// Characters and widest code point of UTF-8 text (surrogates pass): for str's estimated size.
void utf8_shape(std::string_view s, uint64_t* chars, uint32_t* widest) {
  uint64_t n = 0;
  uint32_t w = 0;
  for (size_t i = 0; i < s.size();) {
    uint8_t c = uint8_t(s[i]);
    uint32_t cp;
    size_t len;
    if (c < 0x80) { cp = c; len = 1; }
    else if ((c >> 5) == 6) { cp = c & 0x1F; len = 2; }
    else if ((c >> 4) == 14) { cp = c & 0x0F; len = 3; }
    else { cp = c & 0x07; len = 4; }
    for (size_t j = 1; j < len && i + j < s.size(); ++j) cp = (cp << 6) | (uint8_t(s[i + j]) & 0x3F);
    i += len;
    ++n;
    w = std::max(w, cp);
  }
  *chars = n;
  *widest = w;
}

}  // namespace

const char* desc_kind_name(DescKind k) {
  switch (k) {
    case DescKind::None: return "none";
    case DescKind::True: return "true";
    case DescKind::False: return "false";
    case DescKind::Ellipsis: return "ellipsis";
    case DescKind::NotImplemented: return "notimplemented";
    case DescKind::Int: return "int";
    case DescKind::BigInt: return "bigint";
    case DescKind::Float: return "float";
    case DescKind::Complex: return "complex";
    case DescKind::Str: return "str";
    case DescKind::Bytes: return "bytes";
    case DescKind::ByteArray: return "bytearray";
    case DescKind::List: return "list";
    case DescKind::Tuple: return "tuple";
    case DescKind::Dict: return "dict";
    case DescKind::Set: return "set";
    case DescKind::FrozenSet: return "frozenset";
    case DescKind::Global: return "global";
    case DescKind::Module: return "module";
    case DescKind::Object: return "object";
    case DescKind::Registered: return "registered";
    case DescKind::Cell: return "cell";
    case DescKind::Code: return "code";
    case DescKind::Function: return "function";
    case DescKind::Class: return "class";
    case DescKind::Generator: return "generator";
    case DescKind::WeakRef: return "weakref";
    case DescKind::DeadWeakRef: return "deadweakref";
  }
  return "?";
}

uint32_t Description::intern_type(const std::string& module, const std::string& qualname) {
  std::string key = module;
  key.push_back('\0');
  key += qualname;
  auto it = type_index_.find(key);
  if (it != type_index_.end()) return it->second;
  uint32_t id = uint32_t(types.size());
  types.push_back(DescType{module, qualname});
  type_index_.emplace(std::move(key), id);
  return id;
}

namespace {

class Describer {
 public:
  Describer(PayloadReader& r, Description& d) : r_(r), d_(d) {}

  void run() {
    d_.types.push_back(DescType{"", "?"});
    for (DescKind k : {DescKind::None, DescKind::True, DescKind::False, DescKind::Ellipsis, DescKind::NotImplemented}) {
      DescNode n;
      n.kind = k;
      n.type = builtin(k == DescKind::None ? "NoneType" : k == DescKind::Ellipsis ? "ellipsis"
                       : k == DescKind::NotImplemented ? "NotImplementedType" : "bool");
      d_.nodes.push_back(n);
    }
    int_type_ = builtin("int");
    str_type_ = builtin("str");
    float_type_ = builtin("float");
    tuple_type_ = builtin("tuple");
    dict_type_ = builtin("dict");
    // As many nodes as the payload can need, about: growing a vector of millions copies it.
    d_.nodes.reserve(size_t(std::min<uint64_t>(r_.header().root_count + 16 + reserve_hint_, uint64_t(1) << 24)));
    OpSummary& s = d_.summary;
    while (!r_.at_end()) {
      at_ = r_.offset();
      uint8_t op = r_.byte();
      const OpInfo& info = op_info(op);
      if (!info.name) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02X", op);
        throw corrupt(std::string("unknown op ") + hex, at_);
      }
      ++s.counts[op];
      step(static_cast<Op>(op), info);
      if (stack_.size() > kMaxStack)
        throw corrupt(std::string("op ") + info.name + " leaves more than " + std::to_string(kMaxStack) +
                          " values on the stack",
                      at_);
      if (stack_.size() > s.max_stack) s.max_stack = stack_.size();
    }
    if (stack_.size() != r_.header().root_count)
      throw Error(ErrorCode::CorruptSnapshot, "op stream leaves " + std::to_string(stack_.size()) +
                                                  " values, the header says " +
                                                  std::to_string(r_.header().root_count) + " roots");
    if (memo_.size() != r_.end().memo_count)
      throw Error(ErrorCode::CorruptSnapshot, "memo count mismatch: ops define " + std::to_string(memo_.size()) +
                                                  ", the end record says " + std::to_string(r_.end().memo_count));
    s.memo_count = memo_.size();
    s.op_bytes = r_.end().op_bytes;
    d_.roots = stack_;
  }

 private:
  uint32_t builtin(const char* name) { return d_.intern_type("builtins", name); }

  DescNode& node(uint32_t id) { return d_.nodes[id]; }
  DescBody& body(uint32_t id) {
    DescNode& n = d_.nodes[id];
    if (n.body == kNoNode) {
      d_.bodies.emplace_back();
      n.body = uint32_t(d_.bodies.size() - 1);
    }
    return d_.bodies[n.body];
  }
  // The body whose items are appended to: a container made whole gets its items back from `flat`.
  DescBody& growing(uint32_t id) {
    Description::Items have = d_.items(d_.nodes[id]);
    bool was_flat = d_.nodes[id].flat;
    std::vector<uint32_t> moved;
    if (was_flat) moved.assign(have.begin(), have.end());
    DescBody& b = body(id);
    if (was_flat) {
      b.items = std::move(moved);
      d_.nodes[id].flat = false;
      d_.nodes[id].ival = 0;
    }
    return b;
  }
  Description::Items items_of(uint32_t id) const { return d_.items(d_.nodes[id]); }
  // The value an op fills must be of the kind the decoder accepts there (it refuses the rest).
  uint32_t expect(uint32_t id, std::initializer_list<DescKind> kinds, const char* op) const {
    for (DescKind k : kinds)
      if (d_.nodes[id].kind == k) return id;
    throw corrupt(std::string("op ") + op + " applies to a " + desc_kind_name(d_.nodes[id].kind), at_);
  }
  const DescBody& body_if(uint32_t id) const { return d_.body_of(d_.nodes[id]); }
  std::string_view str_of(uint32_t id) const {
    const DescNode& n = d_.nodes[id];
    return n.kind == DescKind::Str ? d_.text_of(n) : std::string_view();
  }

  uint32_t add(DescKind k, uint32_t type) {
    if (d_.nodes.size() >= UINT32_MAX - 1) throw corrupt("more objects than a description holds", at_);
    DescNode n;
    n.kind = k;
    n.type = type;
    d_.nodes.push_back(n);
    return uint32_t(d_.nodes.size() - 1);
  }
  // A new node on the stack; `refs` are the nodes it refers to (its body's a[0], a[1], ...).
  uint32_t push_new(DescKind k, uint32_t type, std::initializer_list<uint32_t> refs = {}) {
    uint32_t id = add(k, type);
    if (refs.size()) {
      DescBody& b = body(id);
      assert(refs.size() <= std::size(b.a));
      size_t i = 0;
      for (uint32_t r : refs) b.a[i++] = r;
    }
    stack_.push_back(id);
    return id;
  }
  void need(uint64_t count, const char* op) {
    if (stack_.size() < count)
      throw corrupt(std::string("op ") + op + " needs " + std::to_string(count) + " values, the stack has " +
                        std::to_string(stack_.size()),
                    at_);
  }
  uint32_t pop() {
    uint32_t v = stack_.back();
    stack_.pop_back();
    return v;
  }
  uint32_t below(uint64_t k) const { return stack_[stack_.size() - 1 - k]; }
  uint64_t count(uint64_t per, uint64_t extra, const char* op) {
    uint64_t k = r_.uvar();
    if (k > (UINT64_MAX - extra) / per || stack_.size() < k * per + extra)
      throw corrupt(std::string("op ") + op + " needs " + std::to_string(k) + " x " + std::to_string(per) +
                        " values, the stack has " + std::to_string(stack_.size()),
                    at_);
    return k;
  }
  uint32_t memo_ref(const char* op) {
    uint64_t id = r_.uvar();
    if (id >= memo_.size())
      throw corrupt(std::string(op) + " of memo id " + std::to_string(id) + " before it was defined", at_);
    return memo_[id];
  }
  std::string_view text(uint64_t n) {
    d_.summary.string_bytes += n;
    return r_.view(size_t(n));
  }
  void keep(uint32_t id, std::string_view v, uint64_t n_total, size_t limit) {
    DescNode& n = node(id);
    n.length = n_total;
    n.truncated = n_total > limit;
    n.text = d_.add_text(v.substr(0, std::min<size_t>(v.size(), limit)));
  }

  // The type an object made by calling `callable` with `args` gets.
  uint32_t type_made_by(uint32_t callable, uint32_t args) {
    const DescNode& c = d_.nodes[callable];
    if (c.kind == DescKind::Global) {
      std::string m(d_.text_of(c));
      std::string q(d_.text(body_if(callable).text2));
      if (m == "copyreg" && (q == "_reconstructor" || q == "__newobj_ex__" || q == "__newobj__")) {
        Description::Items a = items_of(args);
        if (d_.nodes[args].kind == DescKind::Tuple && !a.empty()) return class_type(a[0]);
      }
      if (m == "re" && q == "_compile") return d_.intern_type("re", "Pattern");
      if (m == "builtins" && q == "iter") return d_.intern_type("builtins", "iterator");
      if (m == "builtins" && q == "getattr") return d_.intern_type("builtins", "getattr()");
      if (m == "array" && q == "_array_reconstructor") return d_.intern_type("array", "array");
      if (m == "operator" && q == "getitem") return d_.intern_type("typing", "alias");
      return class_type(callable);
    }
    return class_type(callable);
  }
  // The type named by a class node (by reference or by value); cached per class node.
  uint32_t class_type(uint32_t cls) {
    auto it = class_types_.find(cls);
    if (it != class_types_.end()) return it->second;
    const DescNode& c = d_.nodes[cls];
    uint32_t t = 0;
    if (c.kind == DescKind::Global) {
      t = d_.intern_type(std::string(d_.text_of(c)), std::string(d_.text(body_if(cls).text2)));
    } else if (c.kind == DescKind::Class) {
      const DescBody& b = body_if(cls);
      std::string module = "?", qualname = "?";
      if (b.a[1] != kNoNode) qualname = std::string(str_of(b.a[1]));
      if (b.a[3] != kNoNode && d_.nodes[b.a[3]].kind == DescKind::Dict) {
        Description::Items it2 = items_of(b.a[3]);
        for (size_t i = 0; i + 1 < it2.size; i += 2) {
          std::string_view k = str_of(it2[i]);
          if (d_.nodes[it2[i + 1]].kind != DescKind::Str) continue;
          if (k == "__module__") module = std::string(str_of(it2[i + 1]));
          if (k == "__qualname__") qualname = std::string(str_of(it2[i + 1]));
        }
      }
      t = d_.intern_type(module, qualname);
    } else if (c.kind == DescKind::Object) {
      t = c.type;  // functools.partial of a class, and the like: named by what made it
    }
    class_types_.emplace(cls, t);
    return t;
  }
  // A composite node with `n` values taken from the top of the stack as its items.
  uint32_t collect(DescKind k, uint32_t type, uint64_t n) {
    uint32_t id = add(k, type);
    DescNode& node_ = node(id);
    node_.flat = true;
    node_.ival = int64_t(d_.flat.size());
    node_.length = n;
    d_.flat.insert(d_.flat.end(), stack_.end() - ptrdiff_t(n), stack_.end());
    stack_.resize(stack_.size() - n);
    stack_.push_back(id);
    return id;
  }

  void step(Op op, const OpInfo& info) {
    switch (op) {
      case Op::None: stack_.push_back(kNoneNode); return;
      case Op::True: stack_.push_back(kTrueNode); return;
      case Op::False: stack_.push_back(kFalseNode); return;
      case Op::Ellipsis: stack_.push_back(kEllipsisNode); return;
      case Op::NotImplemented: stack_.push_back(kNotImplNode); return;
      case Op::IntSmall: {
        int64_t v = r_.svar();
        node(push_new(DescKind::Int, int_type_)).ival = v;
        return;
      }
      case Op::IntBig: {
        uint64_t n = r_.uvar();
        std::string_view v = text(n);
        keep(push_new(DescKind::BigInt, int_type_), v, n, kKeepBigInt);
        return;
      }
      case Op::Float: {
        std::string_view v = r_.view(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | uint8_t(v[size_t(i)]);
        double f;
        std::memcpy(&f, &bits, 8);
        node(push_new(DescKind::Float, float_type_)).f = f;
        return;
      }
      case Op::Complex: {
        double parts[2];
        r_.raw(parts, sizeof parts);
        uint32_t id = push_new(DescKind::Complex, builtin("complex"));
        node(id).f = parts[0];
        body(id).imag = parts[1];
        return;
      }
      case Op::Str: {
        uint64_t n = r_.uvar();
        std::string_view v = text(n);
        uint32_t id = push_new(DescKind::Str, str_type_);
        keep(id, v, n, kKeepStr);
        uint64_t chars;
        uint32_t widest;
        utf8_shape(v, &chars, &widest);
        DescNode& node_ = node(id);
        node_.ival = int64_t(chars);
        node_.width = widest < 128 ? 0 : widest < 256 ? 1 : widest < 65536 ? 2 : 4;
        return;
      }
      case Op::Bytes:
      case Op::ByteArray: {
        uint64_t n = r_.uvar();
        std::string_view v = text(n);
        bool b = op == Op::Bytes;
        keep(push_new(b ? DescKind::Bytes : DescKind::ByteArray, builtin(b ? "bytes" : "bytearray")), v, n, kKeepBytes);
        return;
      }
      case Op::Buffer: {
        uint64_t flags = r_.uvar(), width = r_.uvar(), n = r_.uvar();
        check_buffer_header(flags, width, n, at_, r_.raw_size(), r_.stored_size());
        bool b = flags & kBufferReadOnly;
        uint32_t id = push_new(b ? DescKind::Bytes : DescKind::ByteArray, builtin(b ? "bytes" : "bytearray"));
        if (flags & kBufferOutOfLine) {  // its bytes are in raw segments: described by size only
          r_.uvar();
          DescNode& nd = node(id);
          nd.length = n;
          nd.truncated = n > 0;
          d_.summary.string_bytes += n;
          return;
        }
        std::string head;
        for (uint64_t left = n; left > 0;) {
          uint64_t blk = std::min<uint64_t>(left, kPlaneBlockElements * width);
          std::string_view v = r_.view(size_t(blk));
          if (width == 1 && head.size() < 256) head.append(v.data(), std::min<size_t>(v.size(), 256 - head.size()));
          left -= blk;
        }
        DescNode& nd = node(id);
        nd.length = n;
        nd.truncated = n > head.size();
        nd.text = d_.add_text(head);
        d_.summary.string_bytes += n;
        return;
      }
      case Op::Memo:
        need(1, info.name);
        memo_.push_back(stack_.back());
        return;
      case Op::Ref: stack_.push_back(memo_ref(info.name)); return;
      case Op::EmptyList: push_new(DescKind::List, builtin("list")); return;
      case Op::EmptyDict: push_new(DescKind::Dict, dict_type_); return;
      case Op::EmptySet: push_new(DescKind::Set, builtin("set")); return;
      case Op::Appends:
      case Op::AddItems:
      case Op::ListItems: {
        uint64_t k = count(1, 1, info.name);
        uint32_t c = below(k);
        if (op == Op::Appends) expect(c, {DescKind::List}, info.name);
        else if (op == Op::AddItems) expect(c, {DescKind::Set}, info.name);
        else expect(c, {DescKind::List, DescKind::Object, DescKind::Registered}, info.name);
        DescBody& b = growing(c);
        b.items.insert(b.items.end(), stack_.end() - ptrdiff_t(k), stack_.end());
        node(c).length += k;
        stack_.resize(stack_.size() - k);
        return;
      }
      case Op::SetItems:
      case Op::DictItems: {
        uint64_t k = count(2, 1, info.name);
        uint32_t c = below(2 * k);
        if (op == Op::SetItems) expect(c, {DescKind::Dict}, info.name);
        else expect(c, {DescKind::Dict, DescKind::Object, DescKind::Registered}, info.name);
        bool dict = op == Op::SetItems || node(c).kind == DescKind::Dict;
        DescBody& b = dict ? growing(c) : body(c);
        auto& dst = dict ? b.items : b.pairs;
        dst.insert(dst.end(), stack_.end() - ptrdiff_t(2 * k), stack_.end());
        node(c).length += k;
        stack_.resize(stack_.size() - 2 * k);
        return;
      }
      case Op::Tuple: collect(DescKind::Tuple, tuple_type_, count(1, 0, info.name)); return;
      case Op::FrozenSet: collect(DescKind::FrozenSet, builtin("frozenset"), count(1, 0, info.name)); return;
      case Op::Pop: {
        uint64_t k = count(1, 0, info.name);
        stack_.resize(stack_.size() - k);
        return;
      }
      case Op::Floats: {
        uint64_t n = r_.uvar();
        if (n > (uint64_t(1) << 32)) throw corrupt("Floats claims " + std::to_string(n) + " values", at_);
        need(1, info.name);
        std::string_view planes = r_.view(size_t(n * 8));
        const auto* p = reinterpret_cast<const uint8_t*>(planes.data());
        uint32_t list = expect(stack_.back(), {DescKind::List}, info.name);
        size_t have = items_of(list).size;
        uint64_t keep_n = have < kKeepFloats ? std::min<uint64_t>(n, kKeepFloats - have) : 0;
        uint64_t prev = 0;
        for (uint64_t i = 0; i < keep_n; ++i) {
          uint64_t bits = 0;
          for (size_t b = 0; b < 8; ++b) bits |= uint64_t(p[b * n + i]) << (8 * b);
          bits ^= prev;
          prev = bits;
          uint32_t id = add(DescKind::Float, float_type_);
          std::memcpy(&node(id).f, &bits, 8);
          growing(list).items.push_back(id);
        }
        node(list).length += n;
        d_.extra_floats += n - keep_n;
        return;
      }
      case Op::Global: {
        need(2, info.name);
        uint32_t q = pop(), m = pop();
        uint32_t id = add(DescKind::Global, 0);
        node(id).text = d_.add_text(str_of(m));
        uint32_t qualname = d_.add_text(str_of(q));
        body(id).text2 = qualname;
        stack_.push_back(id);
        return;
      }
      case Op::Module: {
        need(1, info.name);
        uint32_t name = pop();
        uint32_t id = add(DescKind::Module, builtin("module"));
        node(id).text = d_.add_text(str_of(name));
        stack_.push_back(id);
        return;
      }
      case Op::Reduce:
      case Op::NewObj: {
        need(2, info.name);
        uint32_t args = pop(), callable = pop();
        uint32_t type = op == Op::NewObj ? class_type(callable) : type_made_by(callable, args);
        push_new(DescKind::Object, type, {callable, args});
        return;
      }
      case Op::Build: {
        need(2, info.name);
        uint32_t state = pop();
        uint32_t o = below(0);
        if (node(o).kind == DescKind::Object || node(o).kind == DescKind::Registered) body(o).a[2] = state;
        return;
      }
      case Op::Cell: push_new(DescKind::Cell, builtin("cell")); return;
      case Op::CellSet: {
        need(2, info.name);
        uint32_t v = pop();
        body(expect(below(0), {DescKind::Cell}, info.name)).a[0] = v;
        return;
      }
      case Op::Code: {
        need(1, info.name);
        uint32_t fields = pop();
        push_new(DescKind::Code, builtin("code"), {fields});
        return;
      }
      case Op::Function: {
        need(5, info.name);
        pop();  // closure
        uint32_t qualname = pop(), name = pop(), globals = pop(), code = pop();
        push_new(DescKind::Function, builtin("function"), {code, globals, name, qualname});
        return;
      }
      case Op::FunctionState:
        need(7, info.name);
        stack_.resize(stack_.size() - 6);
        expect(below(0), {DescKind::Function}, info.name);
        return;
      case Op::Class: {
        need(4, info.name);
        uint32_t ns = pop(), bases = pop(), name = pop(), meta = pop();
        push_new(DescKind::Class, class_type(meta), {meta, name, bases, ns});
        return;
      }
      case Op::ClassState:
        need(2, info.name);
        pop();
        expect(below(0), {DescKind::Class}, info.name);
        return;
      case Op::Generator: {
        need(1, info.name);
        uint32_t func = pop();
        uint32_t type = builtin("generator");
        // A coroutine or async generator, by its code's flags (co_flags is field 5 of the code).
        const DescBody& fb = body_if(func);
        if (node(func).kind == DescKind::Function && fb.a[0] != kNoNode) {
          const DescBody& cb = body_if(fb.a[0]);
          if (cb.a[0] != kNoNode) {
            Description::Items fields = items_of(cb.a[0]);
            if (fields.size > 5) {
              int64_t flags = node(fields[5]).ival;
              if (flags & 0x80) type = builtin("coroutine");
              else if (flags & 0x200) type = builtin("async_generator");
            }
          }
        }
        push_new(DescKind::Generator, type, {func});
        return;
      }
      case Op::GeneratorFrame: {
        need(6, info.name);
        stack_.resize(stack_.size() - 4);  // state, lasti, stack, mask
        uint32_t locals = pop();
        body(expect(below(0), {DescKind::Generator}, info.name)).a[1] = locals;
        return;
      }
      case Op::WeakRef: {
        need(2, info.name);
        pop();  // callback
        uint32_t referent = pop();
        push_new(DescKind::WeakRef, d_.intern_type("weakref", "ReferenceType"), {referent});
        return;
      }
      case Op::DeadWeakRef: push_new(DescKind::DeadWeakRef, d_.intern_type("weakref", "ReferenceType")); return;
      case Op::Registered: {
        need(2, info.name);
        uint32_t state = pop(), key = pop();
        std::string name(str_of(key));
        if (name.empty()) name = "?";
        size_t dot = name.rfind('.');
        uint32_t type = dot == std::string::npos ? d_.intern_type("", name)
                                                 : d_.intern_type(name.substr(0, dot), name.substr(dot + 1));
        push_new(DescKind::Registered, type, {key, state});
        return;
      }
      case Op::ExceptionState:
        need(4, info.name);
        stack_.resize(stack_.size() - 3);
        return;
      case Op::ShapeValues:
      case Op::ShapeDict: {
        uint32_t keys = memo_ref(info.name);
        uint64_t k = count(1, op == Op::ShapeValues ? 1 : 0, info.name);
        if (node(keys).kind != DescKind::Tuple || items_of(keys).size != k)
          throw corrupt(std::string(info.name) + " names a shape that is not a tuple of " + std::to_string(k) + " keys",
                        at_);
        if (op == Op::ShapeValues) {
          uint32_t target = expect(below(k), {DescKind::Dict}, info.name);
          DescBody& b = growing(target);
          b.items.reserve(b.items.size() + 2 * k);
          for (uint64_t i = 0; i < k; ++i) {
            b.items.push_back(items_of(keys)[i]);
            b.items.push_back(stack_[stack_.size() - k + i]);
          }
          node(target).length += k;
          stack_.resize(stack_.size() - k);
        } else {
          uint32_t target = add(DescKind::Dict, dict_type_);
          DescNode& t = node(target);
          t.flat = true;
          t.ival = int64_t(d_.flat.size());
          t.length = k;
          for (uint64_t i = 0; i < k; ++i) {
            uint32_t key = d_.flat[size_t(node(keys).ival) + i];
            d_.flat.push_back(key);
            d_.flat.push_back(stack_[stack_.size() - k + i]);
          }
          stack_.resize(stack_.size() - k);
          stack_.push_back(target);
        }
        return;
      }
      case Op::SetLayout: {
        need(1, info.name);
        r_.uvar();  // mask
        r_.uvar();  // finger
        for (int part = 0; part < 2; ++part) {
          uint64_t n = r_.uvar();
          if (n > (uint64_t(1) << 40)) throw corrupt("SetLayout claims " + std::to_string(n) + " slots", at_);
          for (uint64_t i = 0; i < n; ++i) r_.uvar();
        }
        return;
      }
    }
    throw corrupt(std::string("op ") + info.name + " is not described", at_);
  }

  PayloadReader& r_;
  Description& d_;
  std::vector<uint32_t> stack_;
  std::vector<uint32_t> memo_;
  std::unordered_map<uint32_t, uint32_t> class_types_;
  uint32_t int_type_ = 0, str_type_ = 0, float_type_ = 0, tuple_type_ = 0, dict_type_ = 0;
 public:
  uint64_t reserve_hint_ = 0;
 private:
  uint64_t at_ = 0;
};

// sys.getsizeof of a dict of n items as CPython 3.11 builds it by insertion (64-bit).
uint64_t dict_size(uint64_t n) {
  if (n == 0) return 64;
  uint64_t size = 8;  // keys table slots; usable = 2/3
  while (size * 2 / 3 < n) size *= 2;
  uint64_t index_bytes = size <= 128 ? 1 : size <= 32768 ? 2 : size <= (uint64_t(1) << 31) ? 4 : 8;
  return 48 + 32 + size * index_bytes + (size * 2 / 3) * 24;
}
uint64_t set_size(uint64_t n) {
  uint64_t table = 8;
  while (n * 5 >= table * 3) table *= n > 50000 ? 2 : 4;
  return table == 8 ? 216 : 200 + 16 * table;
}

}  // namespace

uint64_t Description::shallow_size(uint32_t id) const {
  const DescNode& n = nodes[id];
  switch (n.kind) {
    case DescKind::None: case DescKind::True: case DescKind::False: case DescKind::Ellipsis:
    case DescKind::NotImplemented: case DescKind::Global: case DescKind::Module:
      return 0;
    case DescKind::Int: {
      if (n.ival >= -5 && n.ival <= 256) return 0;  // CPython's shared small ints: not the program's
      uint64_t m = n.ival < 0 ? uint64_t(-(n.ival + 1)) + 1 : uint64_t(n.ival);
      uint64_t digits = 0;
      while (m) { ++digits; m >>= 30; }
      return 24 + 4 * std::max<uint64_t>(digits, 1);
    }
    case DescKind::BigInt: return 24 + 4 * ((n.length * 8 + 29) / 30);
    case DescKind::Float: return 24;
    case DescKind::Complex: return 32;
    case DescKind::Str: {
      // a prefix was measured: its bytes of UTF-8 stand for the characters (an upper bound)
      uint64_t chars = n.truncated ? n.length : uint64_t(n.ival);
      if (chars == 0 || (chars == 1 && n.width <= 1)) return 0;  // shared: '' and one Latin-1 character
      switch (n.width) {
        case 0: return 49 + chars;
        case 1: return 73 + chars;
        case 2: return 74 + 2 * chars;
        default: return 76 + 4 * chars;
      }
    }
    case DescKind::Bytes: return n.length <= 1 ? 0 : 33 + n.length;  // b'' and one byte are shared
    case DescKind::ByteArray: return 57 + n.length;
    case DescKind::List: return 56 + 8 * n.length;
    case DescKind::Tuple: return n.length == 0 ? 0 : 40 + 8 * n.length;  // () is shared
    case DescKind::Dict: return dict_size(n.length);
    case DescKind::Set: case DescKind::FrozenSet: return set_size(n.length);
    case DescKind::Object: return 56 + 8 * n.length;
    case DescKind::Registered: return 56;
    case DescKind::Cell: return 40;
    case DescKind::Code: return 200;
    case DescKind::Function: return 152;
    case DescKind::Class: return 1072;
    case DescKind::Generator: return 208;
    case DescKind::WeakRef: case DescKind::DeadWeakRef: return 80;
  }
  return 0;
}

Description::Held Description::held(uint32_t id, uint64_t budget) const {
  Held h;
  if (stamp_.size() < nodes.size()) stamp_.resize(nodes.size(), 0);
  if (++epoch_ == 0) {
    std::fill(stamp_.begin(), stamp_.end(), 0);
    epoch_ = 1;
  }
  std::vector<uint32_t> todo{id};
  auto visit = [&](uint32_t v) {
    if (v != kNoNode && v < nodes.size() && stamp_[v] != epoch_) todo.push_back(v);
  };
  while (!todo.empty()) {
    uint32_t v = todo.back();
    todo.pop_back();
    if (stamp_[v] == epoch_) continue;
    stamp_[v] = epoch_;
    if (h.objects >= budget) {
      h.complete = false;
      break;
    }
    const DescNode& n = nodes[v];
    const DescBody& b = body_of(n);
    Items its = items(n);
    uint64_t size = shallow_size(v);
    if (size) ++h.objects;
    h.bytes += size;
    switch (n.kind) {
      case DescKind::List:
        for (uint32_t c : its) visit(c);
        if (n.length > its.size) {  // floats kept only as a count
          h.bytes += 24 * (n.length - its.size);
          h.objects += n.length - its.size;
        }
        break;
      case DescKind::Tuple: case DescKind::Dict: case DescKind::Set: case DescKind::FrozenSet:
        for (uint32_t c : its) visit(c);
        break;
      case DescKind::Object:
        visit(b.a[1]);
        visit(b.a[2]);
        for (uint32_t c : its) visit(c);
        for (uint32_t c : b.pairs) visit(c);
        break;
      case DescKind::Registered: visit(b.a[1]); break;
      case DescKind::Cell: visit(b.a[0]); break;
      case DescKind::Generator: visit(b.a[1]); break;
      default: break;  // functions, classes, code, modules: the program's code, not its data
    }
  }
  return h;
}

std::vector<HeapRow> Description::heap() const {
  std::vector<HeapRow> rows(types.size());
  for (uint32_t t = 0; t < rows.size(); ++t) rows[t].type = t;
  for (uint32_t i = 0; i < nodes.size(); ++i) {
    uint64_t size = shallow_size(i);
    if (!size) continue;
    rows[nodes[i].type].count += 1;
    rows[nodes[i].type].bytes += size;
  }
  if (extra_floats) {
    uint32_t f = 0;
    for (uint32_t t = 0; t < types.size(); ++t)
      if (types[t].module == "builtins" && types[t].qualname == "float") f = t;
    rows[f].count += extra_floats;
    rows[f].bytes += 24 * extra_floats;
  }
  rows.erase(std::remove_if(rows.begin(), rows.end(), [](const HeapRow& r) { return r.count == 0; }), rows.end());
  std::sort(rows.begin(), rows.end(), [](const HeapRow& a, const HeapRow& b) {
    return a.bytes != b.bytes ? a.bytes > b.bytes : a.count > b.count;
  });
  return rows;
}

Description describe_ops(PayloadReader& reader, uint64_t op_bytes_hint) {
  Description d;
  Describer describer(reader, d);
  describer.reserve_hint_ = op_bytes_hint / 4;  // the smallest ops that make an object take 2 bytes or more
  describer.run();
  return d;
}

}  // namespace stasis::format
