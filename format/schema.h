// format/schema.h — THE snapshot schema: the format version, the payload's cereal records and the
// object-graph op codes. Defined here once; FORMAT.md documents every item. Any change to a record,
// a tag or an op is a format change: bump kFormatVersion in the same commit and regenerate the
// golden files (tests/golden/regen.sh); tests/golden catches a forgotten bump.
#pragma once

#include <cereal/cereal.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace stasis::format {

inline constexpr uint16_t kFormatVersion = 6;

// Every payload record is preceded by its tag (a uint8 in the cereal archive).
enum class RecordTag : uint8_t {
  Header = 1,   // PayloadHeader, always first
  OpChunk = 2,  // OpChunk: a slice of the object-graph op stream
  End = 3,      // PayloadEnd, always last
};

struct PayloadHeader {
  std::string kind;         // "objects": one root object graph; "program": a suspended program
  uint64_t root_count = 1;  // roots left on the op machine's stack at the end
  // "program" payloads: PYTHONHASHSEED of the suspended program; `stasis resume` must know it
  // before it builds any object (set and str-keyed orders depend on it). 0 for "objects".
  uint64_t hash_seed = 0;
  // "program" payloads: what `stasis resume` sets up before it builds any object, as a JSON
  // object (python/stasis/program/, FORMAT.md): the program's own modules (created empty, so
  // functions restored by value find their globals), its sys.path, and the import hook's
  // selection (roots, rewrite, no_rewrite), so that re-imported modules get the same code. "" else.
  std::string meta;
  template <class Archive>
  void save(Archive& ar, std::uint32_t /*version*/) const {
    ar(kind, root_count, hash_seed, meta);
  }
  // The same bytes as cereal's own std::string load, with the length checked before allocating:
  // the header may be read before the payload is verified (format/payload.h).
  template <class Archive>
  void load(Archive& ar, std::uint32_t /*version*/) {
    load_string(ar, kind);
    ar(root_count, hash_seed);
    load_string(ar, meta);
  }

 private:
  static constexpr uint64_t kMaxString = uint64_t(64) << 20;
  template <class Archive>
  static void load_string(Archive& ar, std::string& s) {
    cereal::size_type size = 0;
    ar(cereal::make_size_tag(size));
    if (size > kMaxString)
      throw Error(ErrorCode::CorruptSnapshot, "payload header field claims " +
                                                  std::to_string(size) + " bytes");
    s.resize(size_t(size));
    ar(cereal::binary_data(s.data(), s.size()));
  }
};

// The object graph is one op stream (ops below), cut into chunks of at most kMaxChunk bytes so
// neither side holds it whole. A chunk boundary may fall anywhere, even inside an op.
inline constexpr size_t kMaxChunk = 1 << 18;
// OpChunk record: uint64 size, then `size` bytes (size <= kMaxChunk).
template <class Archive>
void save_op_chunk(Archive& ar, const uint8_t* data, uint64_t size) {
  ar(size, cereal::binary_data(data, size));
}
template <class Archive>
void load_op_chunk(Archive& ar, std::vector<uint8_t>& bytes) {
  uint64_t size = 0;
  ar(size);
  if (size > kMaxChunk)  // never trust a length before allocating for it
    throw Error(ErrorCode::CorruptSnapshot, "op chunk claims " + std::to_string(size) +
                                                " bytes, at most " + std::to_string(kMaxChunk) +
                                                " are allowed");
  bytes.resize(size);
  ar(cereal::binary_data(bytes.data(), bytes.size()));
}

struct PayloadEnd {
  uint64_t chunk_count = 0;
  uint64_t op_bytes = 0;     // total bytes of the op stream
  uint64_t object_count = 0; // objects encoded (leaves and containers)
  uint64_t memo_count = 0;   // objects given a memo id (shared or possibly shared)
  template <class Archive>
  void serialize(Archive& ar, std::uint32_t /*version*/) {
    ar(chunk_count, op_bytes, object_count, memo_count);
  }
};

// The op machine: a value stack and a memo table (ids 0, 1, 2... in MEMO order).
// Integers in op arguments are unsigned LEB128 varints ("uvar"); signed ones are zigzag ("svar").
enum class Op : uint8_t {
  None = 0x01,       // push None
  True = 0x02,       // push True
  False = 0x03,      // push False
  IntSmall = 0x04,   // svar v: push int v (|v| < 2**63)
  IntBig = 0x05,     // uvar n, n bytes: push int from little-endian two's complement
  Float = 0x06,      // 8 bytes IEEE-754 big-endian (since version 3): push float
  Str = 0x07,        // uvar n, n bytes UTF-8 (surrogates pass through): push str
  Bytes = 0x08,      // uvar n, n bytes: push bytes
  Memo = 0x09,       // give the value on top of the stack the next memo id (stays on the stack)
  Ref = 0x0A,        // uvar id: push memo[id]
  EmptyList = 0x0B,  // push []
  Appends = 0x0C,    // uvar k: pop k values, append them to the list now on top
  EmptyDict = 0x0D,  // push {}
  SetItems = 0x0E,   // uvar k: pop k key/value pairs (2k values), insert into the dict on top
  Tuple = 0x0F,      // uvar n: pop n values, push a tuple of them
  Pop = 0x10,        // uvar n: discard n values (a tuple whose items reached it again; see FORMAT.md)
  // --- format version 2: every type of the heap snapshot engine (FORMAT.md, "The op stream") ---
  Ellipsis = 0x11,        // push Ellipsis
  NotImplemented = 0x12,  // push NotImplemented
  Complex = 0x13,         // 16 bytes (real, imag as Float): push complex
  ByteArray = 0x14,       // uvar n, n bytes: push bytearray
  EmptySet = 0x15,        // push set()
  AddItems = 0x16,        // uvar k: pop k values, add them to the set below them
  FrozenSet = 0x17,       // uvar n: pop n values, push a frozenset of them
  Floats = 0x18,          // uvar n, 8n bytes (XOR-delta byte planes, FORMAT.md): append n floats to the list on top
  Global = 0x19,          // pop module name, qualname (str): push the class/function found there
  Module = 0x1A,          // pop module name (str): push the imported module
  Reduce = 0x1B,          // pop callable, args (tuple): push callable(*args); callable: a class or allowed
  NewObj = 0x1C,          // pop cls, args (tuple): push cls.__new__(cls, *args)
  Build = 0x1D,           // pop state: apply it to the object below (__setstate__, or dict/slots)
  ListItems = 0x1E,       // uvar k: pop k values, obj.append(v) each on the object below them
  DictItems = 0x1F,       // uvar k: pop k pairs, obj[key] = value on the object below them
  Cell = 0x20,            // push a new empty cell
  CellSet = 0x21,         // pop value: set it as the contents of the cell below it
  Code = 0x22,            // pop a tuple of the 18 code fields (FORMAT.md): push a code object
  Function = 0x23,        // pop code, globals (module or dict), name, qualname, closure: push function
  FunctionState = 0x24,   // pop defaults, kwdefaults, annotations, dict, doc, module: set on function below
  Class = 0x25,           // pop metaclass, name, bases, namespace: push metaclass(name, bases, namespace)
  ClassState = 0x26,      // pop dict: setattr each item on the class below
  Generator = 0x27,       // pop function: push a new, not started generator/coroutine of it (no code runs)
  GeneratorFrame = 0x28,  // pop locals, bound mask, stack, lasti, state: write them into the generator below
  WeakRef = 0x29,         // pop referent, callback: push weakref.ref(referent, callback)
  DeadWeakRef = 0x2A,     // push a dead weakref.ref
  Registered = 0x2B,      // pop key (str), state: push load(state) of the handler registered under key
  ExceptionState = 0x2C,  // pop cause, context, suppress_context: set them on the exception below
  ShapeValues = 0x2D,     // uvar id, uvar k: pop k values, insert them into the dict below under the
                          // k str keys of the tuple memo[id] (a "shape": dicts with the same keys)
  ShapeDict = 0x2E,       // uvar id, uvar k: pop k values, push a new dict of them under the keys of
                          // memo[id] (an unshared dict: nothing inside can refer back to it)
  SetLayout = 0x2F,       // uvar mask, finger, n, n slot deltas, d, d dummy-slot deltas: give the
                          // set/frozenset on top the hash-table layout it had (same iteration order)
};
inline constexpr uint8_t kLastOp = 0x2F;

// The reconstructors a Reduce op may call besides classes (FORMAT.md, "What loading may import and
// call"): module and qualname. Both sides check against this list; nothing else is ever called.
inline constexpr const char* kAllowedReducers[][2] = {
    {"copyreg", "_reconstructor"},        // copyreg.__reduce_ex__ of protocol < 2 objects
    {"builtins", "getattr"},              // bound builtin methods, enum-like attributes
    {"builtins", "iter"},                 // builtin iterators (list/tuple/str/bytes/dict/set)
    {"re", "_compile"},                   // re.Pattern
    {"array", "_array_reconstructor"},    // array.array
};

}  // namespace stasis::format

CEREAL_CLASS_VERSION(stasis::format::PayloadHeader, 1)
CEREAL_CLASS_VERSION(stasis::format::PayloadEnd, 1)
