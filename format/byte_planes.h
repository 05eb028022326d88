// format/byte_planes.h — the byte-plane layout of the Buffer op (format/schema.h, FORMAT.md): a
// block of `count` elements of `width` bytes is stored as `width` planes, plane b holding byte b
// of every element. Numbers of one array share their high bytes (exponents, sign, small
// magnitudes), so the planes hold long runs that zstd compresses several times faster, and
// smaller, than the interleaved bytes. Used by snapshot/ (split) and restore/ (join).
#pragma once

#include <cstddef>
#include <cstdint>

namespace stasis::format {

// Elements per block of a Buffer op: a block of width 8 is 128 KiB, which stays in L2 while it
// is transposed and fits a chunk (kMaxChunk), so a block is never split across chunks.
inline constexpr size_t kPlaneBlockElements = 16384;

// src: `count` elements of `width` bytes (1, 2, 4 or 8); dst: width * count bytes of planes.
void split_planes(const uint8_t* src, uint8_t* dst, size_t count, size_t width);
// The inverse: planes back into interleaved elements.
void join_planes(const uint8_t* src, uint8_t* dst, size_t count, size_t width);

}  // namespace stasis::format
