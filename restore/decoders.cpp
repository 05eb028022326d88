// restore/decoders.cpp — THE table of ops beyond the core containers (which heap_decoder.cpp
// decodes inline: None..Pop), one line per op, with the decoder that runs it.
// Counterpart: snapshot/encoders.cpp lists which encoder writes each type.
#include "restore/decoders.h"

#include <array>

using stasis::format::Op;

namespace stasis::restore {
namespace {

struct Entry {
  Op op;
  Decoder decode;
  // Builds only plain built-in values (no import, no call of a class, a reducer or a handler, no
  // code object, function or class): may run before the payload is verified (format/payload.h).
  bool plain = false;
};

const Entry kDecoders[] = {
    {Op::Ellipsis, decode_constant, true},        {Op::NotImplemented, decode_constant, true},
    {Op::Complex, decode_complex, true},          {Op::ByteArray, decode_bytearray, true},
    {Op::EmptySet, decode_set, true},             {Op::AddItems, decode_set, true},
    {Op::FrozenSet, decode_set, true},            {Op::Floats, decode_floats, true},
    {Op::Global, decode_global},                  {Op::Module, decode_module},
    {Op::Reduce, decode_reduce},                  {Op::NewObj, decode_newobj},
    {Op::Build, decode_build},                    {Op::ListItems, decode_items},
    {Op::DictItems, decode_items},                {Op::Cell, decode_cell},
    {Op::CellSet, decode_cell},                   {Op::Code, decode_code},
    {Op::Function, decode_function},              {Op::FunctionState, decode_function},
    {Op::Class, decode_class},                    {Op::ClassState, decode_class},
    {Op::Generator, decode_generator},            {Op::GeneratorFrame, decode_generator},
    {Op::WeakRef, decode_weakref},                {Op::DeadWeakRef, decode_constant, true},
    {Op::Registered, decode_registered},          {Op::ExceptionState, decode_exception_state},
    {Op::ShapeValues, decode_shape_values, true}, {Op::ShapeDict, decode_shape_dict, true},
    {Op::SetLayout, decode_set_layout, true},
};

struct Table {
  std::array<Decoder, 256> decode{};
  std::array<bool, 256> plain{};
};

Table make_table() {
  Table t;
  for (const Entry& e : kDecoders) {
    t.decode[static_cast<uint8_t>(e.op)] = e.decode;
    t.plain[static_cast<uint8_t>(e.op)] = e.plain;
  }
  return t;
}

const Table& table() {
  static const Table t = make_table();
  return t;
}

}  // namespace

Decoder decoder_for(uint8_t op) { return table().decode[op]; }
bool builds_plain_values(uint8_t op) { return table().plain[op]; }

}  // namespace stasis::restore
