// format/xxh64.h — XXH64 (Yann Collet's xxHash, 64-bit, seed 0), the checksum of a raw segment:
// a large buffer stored uncompressed beside the zstd frames (FORMAT.md, "Raw segments"). The same
// hash zstd uses for its frame checksum (of which a frame keeps the low 32 bits), written out
// here because libzstd does not export it. Streaming: update() in pieces of any size.
#pragma once

#include <cstddef>
#include <cstdint>

namespace stasis::format {

class Xxh64 {
 public:
  Xxh64();
  void update(const void* data, size_t size);
  uint64_t digest() const;

 private:
  uint64_t v_[4];
  uint64_t total_ = 0;
  uint8_t tail_[32];
  size_t tail_size_ = 0;
};

inline uint64_t xxh64(const void* data, size_t size) {
  Xxh64 h;
  h.update(data, size);
  return h.digest();
}

}  // namespace stasis::format
