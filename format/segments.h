// format/segments.h — buffer segments (FORMAT.md "Buffer segments"): a large buffer (a Buffer op
// with flags bit 1) is stored outside the op stream, between the payload's zstd frames, in
// segments of kSegmentBytes raw bytes (all but the last). Each segment is a zstd skippable frame
// holding the segment's bytes either as they are or as `width` byte planes, each plane stored as
// it is or as one zstd frame, and the XXH64 of everything stored after the frame's size field.
//
// Writing: write_segments packs (samples, splits, compresses, hashes) segments on a few worker
// threads while the calling thread writes the finished ones in order. Reading: read_segments
// reads, checks and unpacks segments on a few threads (the caller's included), straight into the
// destination. Neither touches Python objects; the caller keeps the buffer alive meanwhile.
#pragma once

#include <cstddef>
#include <cstdint>

#include "format/byte_io.h"

namespace stasis::format {

inline constexpr uint32_t kSegmentMagic = 0x184D2A5E;   // a zstd skippable frame
inline constexpr uint32_t kZstdFrameMagic = 0xFD2FB528;
inline constexpr uint64_t kSegmentBytes = uint64_t(8) << 20;  // raw bytes of every segment but the last
inline constexpr uint32_t kPlaneCompressed = 0x80000000u;     // plane length word: a zstd frame
// The fewest bytes a segment takes in the file: 8-byte frame header, width, one length word, a
// zstd frame of at least 9 bytes, checksum. Bounds the buffer size a payload can claim.
inline constexpr uint64_t kMinSegmentStored = 8 + 1 + 4 + 9 + 8;
// A plane is compressed when zstd (level -1) shrinks a sample of it to at most this fraction:
// such planes (runs, a few distinct bytes) compress at several GB/s; planes that shrink less
// (noise-like low bytes, or moderately compressible ones, at 0.1-0.7 GB/s) cost more CPU time
// than writing the bytes they would save takes on a RAM disk or an SSD (1-3 GB/s).
inline constexpr double kPlaneMaxRatio = 0.125;
// Segments shorter than this are stored as they are (no sample).
inline constexpr uint64_t kMinPackedSegment = uint64_t(64) << 10;

// Threads that pack or unpack segments: one per core, at most 4.
unsigned segment_threads();

// Writes data[0, n) as segments into sink; `width` (1, 2, 4 or 8, dividing n) is the size of
// the buffer's items. Returns the bytes written.
uint64_t write_segments(ByteSink& sink, const void* data, uint64_t n, size_t width);

// Checks the headers of the segments holding the n bytes at payload offset `at` (source offset
// payload_offset + at; `stored` is the payload's size, no segment may reach past it) before
// anything is allocated or read; throws CorruptSnapshot naming what is wrong. Returns the
// payload offset just after them.
uint64_t check_segment_headers(const ByteSource& source, uint64_t payload_offset, uint64_t stored, uint64_t at,
                               uint64_t n);
// Reads those segments into dst (n bytes), verifying each checksum before its bytes are
// unpacked; throws CorruptSnapshot (naming the segment) or TruncatedSnapshot.
void read_segments(const ByteSource& source, uint64_t payload_offset, uint64_t stored, uint64_t at, void* dst,
                   uint64_t n);
// One segment at payload offset `at` found between frames: header and checksum verified, its
// bytes not kept. Returns its length in the file (header included).
uint64_t check_segment(const ByteSource& source, uint64_t payload_offset, uint64_t stored, uint64_t at);

}  // namespace stasis::format
