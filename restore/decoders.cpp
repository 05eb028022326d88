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
};

// Which ops may run before the payload is verified is the op table's `plain` (format/schema.h).
const Entry kDecoders[] = {
    {Op::Ellipsis, decode_constant},        {Op::NotImplemented, decode_constant},
    {Op::Complex, decode_complex},          {Op::ByteArray, decode_bytearray},
    {Op::EmptySet, decode_set},             {Op::AddItems, decode_set},
    {Op::FrozenSet, decode_set},            {Op::Floats, decode_floats},
    {Op::Global, decode_global},            {Op::Module, decode_module},
    {Op::Reduce, decode_reduce},            {Op::NewObj, decode_newobj},
    {Op::Build, decode_build},              {Op::ListItems, decode_items},
    {Op::DictItems, decode_items},          {Op::Cell, decode_cell},
    {Op::CellSet, decode_cell},             {Op::Code, decode_code},
    {Op::Function, decode_function},        {Op::FunctionState, decode_function},
    {Op::Class, decode_class},              {Op::ClassState, decode_class},
    {Op::Generator, decode_generator},      {Op::GeneratorFrame, decode_generator},
    {Op::WeakRef, decode_weakref},          {Op::DeadWeakRef, decode_constant},
    {Op::Registered, decode_registered},    {Op::ExceptionState, decode_exception_state},
    {Op::ShapeValues, decode_shape_values}, {Op::ShapeDict, decode_shape_dict},
    {Op::SetLayout, decode_set_layout},     {Op::Buffer, decode_buffer},
};

std::array<Decoder, 256> make_table() {
  std::array<Decoder, 256> t{};
  for (const Entry& e : kDecoders) t[static_cast<uint8_t>(e.op)] = e.decode;
  return t;
}

const std::array<Decoder, 256>& table() {
  static const std::array<Decoder, 256> t = make_table();
  return t;
}

}  // namespace

Decoder decoder_for(uint8_t op) { return table()[op]; }
bool builds_plain_values(uint8_t op) { return format::op_info(op).plain; }

}  // namespace stasis::restore
