// format/describe.h — a description of the objects an op stream holds, made without building any
// of them (`stasis inspect` of a program snapshot). Every op is followed as the decoder would
// follow it, but onto plain C++ records (DescNode): scalars keep their values, containers their
// items, an object the class it names (module, qualname) and the arguments and state it would be
// built from. Nothing is imported, called or allocated as a Python object, so describing a
// stranger's snapshot runs none of its code (FORMAT.md "Threat model"). The grammar is checked as
// scan_ops checks it (stack depths, memo ids, lengths), and the same OpSummary comes out, so one
// pass over the payload does both.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "format/payload.h"

namespace stasis::format {

enum class DescKind : uint8_t {
  None, True, False, Ellipsis, NotImplemented,
  Int,        // ival
  BigInt,     // text: little-endian two's complement bytes
  Float,      // f[0]
  Complex,    // f[0], f[1]
  Str,        // text: UTF-8 (a prefix when `truncated`), length: bytes of UTF-8
  Bytes, ByteArray,  // text (a prefix when `truncated`; empty for a Buffer op's byte planes), length
  List, Tuple, Dict, Set, FrozenSet,  // items (Dict: key, value, key, value...), length
  Global,     // text: module, text2: qualname (something the loader would import: not counted)
  Module,     // text: name (not counted)
  Object,     // a[0] callable or class, a[1] args, a[2] state (Build), items: ListItems, pairs: DictItems
  Registered, // a[0] key (Str), a[1] state
  Cell,       // a[0] content
  Code,       // a[0] the tuple of the 18 code fields
  Function,   // a[0] code, a[1] globals, a[2] name, a[3] qualname
  Class,      // a[0] metaclass, a[1] name, a[2] bases, a[3] namespace
  Generator,  // a[0] function, a[1] locals tuple (GeneratorFrame)
  WeakRef,    // a[0] referent
  DeadWeakRef,
};
const char* desc_kind_name(DescKind k);

inline constexpr uint32_t kNoNode = UINT32_MAX;

// 32 bytes per object: a snapshot of millions of objects is described in a few times the memory
// of its op bytes. Text lives in Description's pool; containers, objects and the other composite
// kinds have a DescBody.
struct DescNode {
  DescKind kind = DescKind::None;
  bool truncated = false;      // text holds a prefix of the value
  uint8_t width = 0;           // Str: 0 ASCII, 1 Latin-1, 2 UCS-2, 4 UCS-4 (its size estimate)
  bool flat = false;           // items in Description::flat from `ival` (tuples, frozensets, shaped dicts)
  uint32_t type = 0;           // index into Description::types
  uint64_t length = 0;         // str/bytes: bytes; containers: items (pairs for a dict)
  union {
    int64_t ival = 0;          // Int; Str: characters of the kept text; flat: offset of the items
    double f;                  // Float, Complex's real part
  };
  uint32_t text = kNoNode;     // index into Description::spans: Str, Bytes, BigInt, Global's module, Module
  uint32_t body = kNoNode;     // index into Description::bodies
};

struct DescBody {
  std::vector<uint32_t> items;  // values (Dict: key, value, key, value...; Object: ListItems)
  std::vector<uint32_t> pairs;  // Object's DictItems: key, value, ...
  uint32_t a[4] = {kNoNode, kNoNode, kNoNode, kNoNode};
  uint32_t text2 = kNoNode;     // Global's qualname
  double imag = 0;              // Complex
};

struct TextSpan {
  uint64_t offset;
  uint32_t size;
};

struct DescType {
  std::string module, qualname;
};

struct HeapRow {
  uint32_t type;
  uint64_t count = 0, bytes = 0;
};

class Description {
 public:
  std::vector<DescNode> nodes;
  std::vector<DescBody> bodies;
  std::vector<TextSpan> spans;
  std::string pool;
  std::vector<uint32_t> flat;   // items of containers made whole (Tuple, FrozenSet, ShapeDict)
  std::vector<uint32_t> roots;  // what the stream leaves on the stack, bottom first
  std::vector<DescType> types;  // [0] is "?" (unknown)
  uint64_t extra_floats = 0;    // floats of Floats ops kept only as a count (lists' lengths have them)
  OpSummary summary;

  // Estimated in-memory size of one object (like sys.getsizeof, CPython 3.11, 64-bit); 0 for what
  // a load does not make (Global, Module, constants) and for CPython's shared immutable objects
  // (small ints -5..256, '', one-character Latin-1 strs, b'' and one-byte bytes, ()).
  uint64_t shallow_size(uint32_t id) const;
  // Estimated bytes of `id` and the data it holds (containers' items, an object's state and
  // arguments, cells, generators' locals; not functions, classes, modules or code, which are the
  // program's, not data): (bytes, objects, complete). Visits at most `budget` objects; shared
  // objects are counted once per call.
  struct Held {
    uint64_t bytes = 0, objects = 0;
    bool complete = true;
  };
  Held held(uint32_t id, uint64_t budget) const;
  // Count and estimated bytes of every type, biggest first.
  std::vector<HeapRow> heap() const;

  uint32_t intern_type(const std::string& module, const std::string& qualname);
  std::string_view text(uint32_t span) const {
    if (span == kNoNode) return {};
    return std::string_view(pool).substr(size_t(spans[span].offset), spans[span].size);
  }
  std::string_view text_of(const DescNode& n) const { return text(n.text); }
  static const DescBody& empty_body() {
    static const DescBody none;
    return none;
  }
  const DescBody& body_of(const DescNode& n) const { return n.body == kNoNode ? empty_body() : bodies[n.body]; }
  // The items of a container or object: values (a dict's: key, value, ...).
  struct Items {
    const uint32_t* data;
    size_t size;
    const uint32_t* begin() const { return data; }
    const uint32_t* end() const { return data + size; }
    bool empty() const { return size == 0; }
    uint32_t operator[](size_t i) const { return data[i]; }
  };
  Items items(const DescNode& n) const {
    if (n.flat) return Items{flat.data() + n.ival, size_t(n.kind == DescKind::Dict ? 2 * n.length : n.length)};
    const auto& v = body_of(n).items;
    return Items{v.data(), v.size()};
  }
  uint32_t add_text(std::string_view v) {
    spans.push_back(TextSpan{pool.size(), uint32_t(v.size())});
    pool.append(v.data(), v.size());
    return uint32_t(spans.size() - 1);
  }

 private:
  std::unordered_map<std::string, uint32_t> type_index_;
  mutable std::vector<uint32_t> stamp_;
  mutable uint32_t epoch_ = 0;
};

// Reads the whole op stream of `reader` into a Description (checking its grammar as scan_ops does).
// `op_bytes_hint`: the payload's size before compression (the footer's raw_size), to size tables.
Description describe_ops(PayloadReader& reader, uint64_t op_bytes_hint = 0);

}  // namespace stasis::format
