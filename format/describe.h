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

struct DescNode {
  DescKind kind = DescKind::None;
  bool truncated = false;
  uint32_t type = 0;           // index into Description::types
  uint64_t length = 0;         // str/bytes: bytes; containers: items (pairs for a dict)
  int64_t ival = 0;
  double f[2] = {0, 0};
  std::string text, text2;
  std::vector<uint32_t> items;  // values (Dict, Object's DictItems: key, value, ...)
  std::vector<uint32_t> pairs;  // Object's DictItems, key, value, ...
  uint32_t a[4] = {kNoNode, kNoNode, kNoNode, kNoNode};
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
  std::vector<uint32_t> roots;  // what the stream leaves on the stack, bottom first
  std::vector<DescType> types;  // [0] is "?" (unknown)
  uint64_t extra_floats = 0;    // floats of Floats ops kept only as a count (lists' lengths have them)
  OpSummary summary;

  // Estimated in-memory size of one object (like sys.getsizeof, CPython 3.11, 64-bit); 0 for what
  // a load does not make (Global, Module, constants).
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

 private:
  std::unordered_map<std::string, uint32_t> type_index_;
  mutable std::vector<uint32_t> stamp_;
  mutable uint32_t epoch_ = 0;
};

// Reads the whole op stream of `reader` into a Description (checking its grammar as scan_ops does).
Description describe_ops(PayloadReader& reader);

}  // namespace stasis::format
