// format/describe.cpp — the op stream followed onto DescNodes (describe.h): no Python object is made.
#include "format/describe.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

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
      d_.nodes.push_back(std::move(n));
    }
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
      s.max_stack = std::max<uint64_t>(s.max_stack, stack_.size());
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

  uint32_t add(DescNode&& n) {
    if (d_.nodes.size() >= UINT32_MAX - 1) throw corrupt("more objects than a description holds", at_);
    d_.nodes.push_back(std::move(n));
    return uint32_t(d_.nodes.size() - 1);
  }
  uint32_t push_new(DescKind k, const char* type) {
    DescNode n;
    n.kind = k;
    n.type = builtin(type);
    uint32_t id = add(std::move(n));
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
  DescNode& below(uint64_t k) { return d_.nodes[stack_[stack_.size() - 1 - k]]; }
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
  void keep(DescNode& n, std::string_view v, uint64_t n_total, size_t limit) {
    n.length = n_total;
    n.truncated = n_total > limit;
    n.text.assign(v.data(), std::min<size_t>(v.size(), limit));
  }

  // The type an object made by calling or instantiating `callable` with `args` gets.
  uint32_t type_made_by(uint32_t callable, uint32_t args) {
    const DescNode& c = d_.nodes[callable];
    if (c.kind == DescKind::Global) {
      const std::string& m = c.text;
      const std::string& q = c.text2;
      bool by_first_arg = (m == "copyreg" && (q == "_reconstructor" || q == "__newobj_ex__")) ||
                          (m == "copyreg" && q == "__newobj__");
      if (by_first_arg) {
        const DescNode& a = d_.nodes[args];
        if (a.kind == DescKind::Tuple && !a.items.empty()) return class_type(a.items[0]);
      }
      if (m == "re" && q == "_compile") return d_.intern_type("re", "Pattern");
      if (m == "builtins" && q == "iter") return d_.intern_type("builtins", "iterator");
      if (m == "builtins" && q == "getattr") return d_.intern_type("builtins", "getattr()");
      if (m == "array" && q == "_array_reconstructor") return d_.intern_type("array", "array");
      if (m == "operator" && q == "getitem") return d_.intern_type("typing", "alias");
      return d_.intern_type(m, q);
    }
    if (c.kind == DescKind::Object && d_.types[c.type].module == "functools" && d_.types[c.type].qualname == "partial")
      return c.type;
    return class_type(callable);
  }
  // The type named by a class node (by reference or by value).
  uint32_t class_type(uint32_t cls) {
    const DescNode& c = d_.nodes[cls];
    if (c.kind == DescKind::Global) return d_.intern_type(c.text, c.text2);
    if (c.kind == DescKind::Class) {
      std::string module = "?", qualname = "?";
      if (c.a[1] != kNoNode && d_.nodes[c.a[1]].kind == DescKind::Str) qualname = d_.nodes[c.a[1]].text;
      if (c.a[3] != kNoNode && d_.nodes[c.a[3]].kind == DescKind::Dict) {
        const auto& it = d_.nodes[c.a[3]].items;
        for (size_t i = 0; i + 1 < it.size(); i += 2) {
          const DescNode& k = d_.nodes[it[i]];
          const DescNode& v = d_.nodes[it[i + 1]];
          if (k.kind != DescKind::Str || v.kind != DescKind::Str) continue;
          if (k.text == "__module__") module = v.text;
          if (k.text == "__qualname__") qualname = v.text;
        }
      }
      return d_.intern_type(module, qualname);
    }
    return 0;
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
        d_.nodes[push_new(DescKind::Int, "int")].ival = v;
        return;
      }
      case Op::IntBig: {
        uint64_t n = r_.uvar();
        std::string_view v = text(n);
        keep(d_.nodes[push_new(DescKind::BigInt, "int")], v, n, kKeepBigInt);
        return;
      }
      case Op::Float: {
        std::string_view v = r_.view(8);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | uint8_t(v[size_t(i)]);
        double f;
        std::memcpy(&f, &bits, 8);
        d_.nodes[push_new(DescKind::Float, "float")].f[0] = f;
        return;
      }
      case Op::Complex: {
        double parts[2];
        r_.raw(parts, sizeof parts);
        DescNode& n = d_.nodes[push_new(DescKind::Complex, "complex")];
        n.f[0] = parts[0];
        n.f[1] = parts[1];
        return;
      }
      case Op::Str: {
        uint64_t n = r_.uvar();
        std::string_view v = text(n);
        DescNode& node = d_.nodes[push_new(DescKind::Str, "str")];
        keep(node, v, n, kKeepStr);
        uint64_t chars;
        uint32_t widest;
        utf8_shape(v, &chars, &widest);
        node.ival = int64_t(chars);  // characters, for the size estimate
        node.f[0] = widest;
        return;
      }
      case Op::Bytes:
      case Op::ByteArray: {
        uint64_t n = r_.uvar();
        std::string_view v = text(n);
        bool b = op == Op::Bytes;
        keep(d_.nodes[push_new(b ? DescKind::Bytes : DescKind::ByteArray, b ? "bytes" : "bytearray")], v, n,
             kKeepBytes);
        return;
      }
      case Op::Buffer: {
        uint64_t flags = r_.uvar(), width = r_.uvar(), n = r_.uvar();
        check_buffer_header(flags, width, n, at_);
        bool b = flags & 1;
        DescNode& node = d_.nodes[push_new(b ? DescKind::Bytes : DescKind::ByteArray, b ? "bytes" : "bytearray")];
        node.length = n;
        node.truncated = n > 0;
        for (uint64_t left = n; left > 0;) {
          uint64_t blk = std::min<uint64_t>(left, kPlaneBlockElements * width);
          std::string_view v = r_.view(size_t(blk));
          if (width == 1 && node.text.size() < 256) node.text.append(v.data(), std::min<size_t>(v.size(), 256));
          left -= blk;
        }
        d_.summary.string_bytes += n;
        return;
      }
      case Op::Memo:
        need(1, info.name);
        memo_.push_back(stack_.back());
        return;
      case Op::Ref: stack_.push_back(memo_ref(info.name)); return;
      case Op::EmptyList: push_new(DescKind::List, "list"); return;
      case Op::EmptyDict: push_new(DescKind::Dict, "dict"); return;
      case Op::EmptySet: push_new(DescKind::Set, "set"); return;
      case Op::Appends:
      case Op::AddItems:
      case Op::ListItems: {
        uint64_t k = count(1, 1, info.name);
        DescNode& c = below(k);
        c.items.insert(c.items.end(), stack_.end() - ptrdiff_t(k), stack_.end());
        c.length += k;
        stack_.resize(stack_.size() - k);
        return;
      }
      case Op::SetItems:
      case Op::DictItems: {
        uint64_t k = count(2, 1, info.name);
        DescNode& c = below(2 * k);
        auto& dst = op == Op::SetItems || c.kind == DescKind::Dict ? c.items : c.pairs;
        dst.insert(dst.end(), stack_.end() - ptrdiff_t(2 * k), stack_.end());
        c.length += k;
        stack_.resize(stack_.size() - 2 * k);
        return;
      }
      case Op::Tuple:
      case Op::FrozenSet: {
        uint64_t k = count(1, 0, info.name);
        DescNode n;
        bool t = op == Op::Tuple;
        n.kind = t ? DescKind::Tuple : DescKind::FrozenSet;
        n.type = builtin(t ? "tuple" : "frozenset");
        n.items.assign(stack_.end() - ptrdiff_t(k), stack_.end());
        n.length = k;
        stack_.resize(stack_.size() - k);
        stack_.push_back(add(std::move(n)));
        return;
      }
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
        builtin("float");  // the heap table counts the floats kept only as a count
        const auto* p = reinterpret_cast<const uint8_t*>(planes.data());
        uint32_t list = stack_.back();
        uint64_t prev = 0;
        uint64_t keep_n = d_.nodes[list].items.size() < kKeepFloats
                              ? std::min<uint64_t>(n, kKeepFloats - d_.nodes[list].items.size()) : 0;
        for (uint64_t i = 0; i < keep_n; ++i) {
          uint64_t bits = 0;
          for (size_t b = 0; b < 8; ++b) bits |= uint64_t(p[b * n + i]) << (8 * b);
          bits ^= prev;
          prev = bits;
          DescNode f;
          f.kind = DescKind::Float;
          f.type = builtin("float");
          std::memcpy(&f.f[0], &bits, 8);
          uint32_t id = add(std::move(f));
          d_.nodes[list].items.push_back(id);
        }
        d_.nodes[list].length += n;
        d_.extra_floats += n - keep_n;
        return;
      }
      case Op::Global: {
        need(2, info.name);
        uint32_t q = pop(), m = pop();
        DescNode n;
        n.kind = DescKind::Global;
        if (d_.nodes[m].kind == DescKind::Str) n.text = d_.nodes[m].text;
        if (d_.nodes[q].kind == DescKind::Str) n.text2 = d_.nodes[q].text;
        stack_.push_back(add(std::move(n)));
        return;
      }
      case Op::Module: {
        need(1, info.name);
        uint32_t name = pop();
        DescNode n;
        n.kind = DescKind::Module;
        n.type = builtin("module");
        if (d_.nodes[name].kind == DescKind::Str) n.text = d_.nodes[name].text;
        stack_.push_back(add(std::move(n)));
        return;
      }
      case Op::Reduce:
      case Op::NewObj: {
        need(2, info.name);
        uint32_t args = pop(), callable = pop();
        DescNode n;
        n.kind = DescKind::Object;
        n.a[0] = callable;
        n.a[1] = args;
        n.type = op == Op::NewObj ? class_type(callable) : type_made_by(callable, args);
        stack_.push_back(add(std::move(n)));
        return;
      }
      case Op::Build: {
        need(2, info.name);
        uint32_t state = pop();
        DescNode& o = below(0);
        if (o.kind == DescKind::Object || o.kind == DescKind::Registered) o.a[2] = state;
        return;
      }
      case Op::Cell: push_new(DescKind::Cell, "cell"); return;
      case Op::CellSet: {
        need(2, info.name);
        uint32_t v = pop();
        below(0).a[0] = v;
        return;
      }
      case Op::Code: {
        need(1, info.name);
        uint32_t fields = pop();
        DescNode n;
        n.kind = DescKind::Code;
        n.type = builtin("code");
        n.a[0] = fields;
        stack_.push_back(add(std::move(n)));
        return;
      }
      case Op::Function: {
        need(5, info.name);
        pop();  // closure
        uint32_t qualname = pop(), name = pop(), globals = pop(), code = pop();
        DescNode n;
        n.kind = DescKind::Function;
        n.type = builtin("function");
        n.a[0] = code;
        n.a[1] = globals;
        n.a[2] = name;
        n.a[3] = qualname;
        stack_.push_back(add(std::move(n)));
        return;
      }
      case Op::FunctionState:
        need(7, info.name);
        stack_.resize(stack_.size() - 6);
        return;
      case Op::Class: {
        need(4, info.name);
        uint32_t ns = pop(), bases = pop(), name = pop(), meta = pop();
        DescNode n;
        n.kind = DescKind::Class;
        n.a[0] = meta;
        n.a[1] = name;
        n.a[2] = bases;
        n.a[3] = ns;
        n.type = class_type(meta);
        stack_.push_back(add(std::move(n)));
        return;
      }
      case Op::ClassState:
        need(2, info.name);
        pop();
        return;
      case Op::Generator: {
        need(1, info.name);
        uint32_t func = pop();
        DescNode n;
        n.kind = DescKind::Generator;
        n.type = builtin("generator");
        n.a[0] = func;
        // A coroutine or async generator, by its code's flags (co_flags is field 5 of the code).
        const DescNode& f = d_.nodes[func];
        if (f.kind == DescKind::Function && f.a[0] != kNoNode) {
          const DescNode& code = d_.nodes[f.a[0]];
          if (code.a[0] != kNoNode && d_.nodes[code.a[0]].items.size() > 5) {
            int64_t flags = d_.nodes[d_.nodes[code.a[0]].items[5]].ival;
            if (flags & 0x80) n.type = builtin("coroutine");
            else if (flags & 0x200) n.type = builtin("async_generator");
          }
        }
        stack_.push_back(add(std::move(n)));
        return;
      }
      case Op::GeneratorFrame: {
        need(6, info.name);
        pop();  // state
        pop();  // lasti
        pop();  // stack
        pop();  // mask
        uint32_t locals = pop();
        below(0).a[1] = locals;
        return;
      }
      case Op::WeakRef: {
        need(2, info.name);
        pop();  // callback
        uint32_t referent = pop();
        DescNode n;
        n.kind = DescKind::WeakRef;
        n.type = d_.intern_type("weakref", "ReferenceType");
        n.a[0] = referent;
        stack_.push_back(add(std::move(n)));
        return;
      }
      case Op::DeadWeakRef: {
        DescNode n;
        n.kind = DescKind::DeadWeakRef;
        n.type = d_.intern_type("weakref", "ReferenceType");
        stack_.push_back(add(std::move(n)));
        return;
      }
      case Op::Registered: {
        need(2, info.name);
        uint32_t state = pop(), key = pop();
        DescNode n;
        n.kind = DescKind::Registered;
        n.a[0] = key;
        n.a[1] = state;
        const DescNode& k = d_.nodes[key];
        std::string name = k.kind == DescKind::Str ? k.text : "?";
        size_t dot = name.rfind('.');
        n.type = dot == std::string::npos ? d_.intern_type("", name)
                                          : d_.intern_type(name.substr(0, dot), name.substr(dot + 1));
        stack_.push_back(add(std::move(n)));
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
        const DescNode& kn = d_.nodes[keys];
        if (kn.kind != DescKind::Tuple || kn.items.size() != k)
          throw corrupt(std::string(info.name) + " names a shape that is not a tuple of " + std::to_string(k) + " keys",
                        at_);
        std::vector<uint32_t> pairs;
        pairs.reserve(2 * k);
        for (uint64_t i = 0; i < k; ++i) {
          pairs.push_back(kn.items[i]);
          pairs.push_back(stack_[stack_.size() - k + i]);
        }
        stack_.resize(stack_.size() - k);
        if (op == Op::ShapeValues) {
          DescNode& c = below(0);
          c.items.insert(c.items.end(), pairs.begin(), pairs.end());
          c.length += k;
        } else {
          DescNode n;
          n.kind = DescKind::Dict;
          n.type = builtin("dict");
          n.items = std::move(pairs);
          n.length = k;
          stack_.push_back(add(std::move(n)));
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
      uint64_t m = n.ival < 0 ? uint64_t(-(n.ival + 1)) + 1 : uint64_t(n.ival);
      uint64_t digits = 0;
      while (m) { ++digits; m >>= 30; }
      return 24 + 4 * std::max<uint64_t>(digits, 1);
    }
    case DescKind::BigInt: return 24 + 4 * ((n.length * 8 + 29) / 30);
    case DescKind::Float: return 24;
    case DescKind::Complex: return 32;
    case DescKind::Str: {
      uint64_t chars = uint64_t(n.ival);
      uint32_t w = uint32_t(n.f[0]);
      if (n.truncated) chars = n.length;  // a prefix was measured: bytes of UTF-8 as an upper bound
      if (w < 128) return 49 + chars;
      if (w < 256) return 73 + chars;
      if (w < 65536) return 74 + 2 * chars;
      return 76 + 4 * chars;
    }
    case DescKind::Bytes: return 33 + n.length;
    case DescKind::ByteArray: return 57 + n.length;
    case DescKind::List: return 56 + 8 * n.length;
    case DescKind::Tuple: return 40 + 8 * n.length;
    case DescKind::Dict: return dict_size(n.length);
    case DescKind::Set: case DescKind::FrozenSet: return set_size(n.length);
    case DescKind::Object: return 56 + (n.length ? 8 * n.length : 0);
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
    uint64_t size = shallow_size(v);
    if (size) ++h.objects;
    h.bytes += size;
    switch (n.kind) {
      case DescKind::List:
        for (uint32_t c : n.items) visit(c);
        if (n.length > n.items.size()) {  // floats kept only as a count
          h.bytes += 24 * (n.length - n.items.size());
          h.objects += n.length - n.items.size();
        }
        break;
      case DescKind::Tuple: case DescKind::Dict: case DescKind::Set: case DescKind::FrozenSet:
        for (uint32_t c : n.items) visit(c);
        break;
      case DescKind::Object:
        visit(n.a[1]);
        visit(n.a[2]);
        for (uint32_t c : n.items) visit(c);
        for (uint32_t c : n.pairs) visit(c);
        break;
      case DescKind::Registered: visit(n.a[1]); break;
      case DescKind::Cell: visit(n.a[0]); break;
      case DescKind::Generator: visit(n.a[1]); break;
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

Description describe_ops(PayloadReader& reader) {
  Description d;
  Describer(reader, d).run();
  return d;
}

}  // namespace stasis::format
