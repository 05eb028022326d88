// restore/decoders.h — the per-type decoders of the ops beyond the core containers. The table
// mapping each op to its decoder is restore/decoders.cpp; the encoders of the same types are
// listed in snapshot/encoders.cpp.
#pragma once

#include <cstdint>

#include "restore/heap_decoder.h"

namespace stasis::restore {

using Decoder = void (*)(HeapDecoder&, uint8_t op);
// The decoder of `op`, or nullptr for an unknown op.
Decoder decoder_for(uint8_t op);
// True for the ops of this table that build plain built-in values only (sets, floats, shaped
// dicts...): the decoder runs them before the payload is verified; any other op waits for that.
bool builds_plain_values(uint8_t op);

// restore/scalar_decoder.cpp
void decode_constant(HeapDecoder& d, uint8_t op);  // Ellipsis, NotImplemented, DeadWeakRef
void decode_complex(HeapDecoder& d, uint8_t op);
void decode_bytearray(HeapDecoder& d, uint8_t op);
void decode_buffer(HeapDecoder& d, uint8_t op);
void decode_set(HeapDecoder& d, uint8_t op);  // EmptySet, AddItems, FrozenSet
void decode_set_layout(HeapDecoder& d, uint8_t op);  // SetLayout
void decode_floats(HeapDecoder& d, uint8_t op);
void decode_shape_values(HeapDecoder& d, uint8_t op);
void decode_shape_dict(HeapDecoder& d, uint8_t op);
// restore/global_decoder.cpp
void decode_global(HeapDecoder& d, uint8_t op);
void decode_module(HeapDecoder& d, uint8_t op);
// restore/object_decoder.cpp
void decode_reduce(HeapDecoder& d, uint8_t op);
void decode_newobj(HeapDecoder& d, uint8_t op);
void decode_build(HeapDecoder& d, uint8_t op);
void decode_items(HeapDecoder& d, uint8_t op);  // ListItems, DictItems
void decode_registered(HeapDecoder& d, uint8_t op);
void decode_exception_state(HeapDecoder& d, uint8_t op);
// restore/function_decoder.cpp
void decode_cell(HeapDecoder& d, uint8_t op);  // Cell, CellSet
void decode_code(HeapDecoder& d, uint8_t op);
void decode_function(HeapDecoder& d, uint8_t op);  // Function, FunctionState
// restore/class_decoder.cpp
void decode_class(HeapDecoder& d, uint8_t op);  // Class, ClassState
// restore/generator_decoder.cpp
void decode_generator(HeapDecoder& d, uint8_t op);  // Generator, GeneratorFrame
// restore/weakref_decoder.cpp
void decode_weakref(HeapDecoder& d, uint8_t op);

}  // namespace stasis::restore
