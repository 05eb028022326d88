#include "format/xxh64.h"

#include <gtest/gtest.h>
#include <zstd.h>

#include <random>
#include <string>
#include <vector>

namespace stasis::format {
namespace {
TEST(Xxh64, MatchesTheReferenceValueOfTheEmptyInput) {
  EXPECT_EQ(xxh64("", 0), 0xEF46DB3751D8E999ULL);
}
// zstd's frame checksum is the low 32 bits of XXH64 of the content: every length class (below
// one 32-byte stripe, tails of 8, 4 and 1 bytes) and streaming in uneven pieces give the same.
TEST(Xxh64, AgreesWithZstdsFrameChecksumWholeAndStreamed) {
  std::mt19937_64 rng(3);
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
  for (size_t n : {1u, 3u, 7u, 8u, 12u, 31u, 32u, 33u, 63u, 100u, 1000u, 65537u}) {
    std::vector<uint8_t> data(n);
    for (auto& b : data) b = uint8_t(rng());
    std::vector<uint8_t> frame(ZSTD_compressBound(n));
    size_t z = ZSTD_compress2(c, frame.data(), frame.size(), data.data(), n);
    ASSERT_FALSE(ZSTD_isError(z));
    uint32_t want = uint32_t(frame[z - 4]) | uint32_t(frame[z - 3]) << 8 | uint32_t(frame[z - 2]) << 16 |
                    uint32_t(frame[z - 1]) << 24;
    EXPECT_EQ(uint32_t(xxh64(data.data(), n)), want) << n << " bytes";
    Xxh64 h;
    for (size_t at = 0; at < n;) {
      size_t k = std::min<size_t>(n - at, 1 + rng() % 40);
      h.update(data.data() + at, k);
      at += k;
    }
    EXPECT_EQ(h.digest(), xxh64(data.data(), n)) << n << " bytes, streamed";
  }
  ZSTD_freeCCtx(c);
}
}  // namespace
}  // namespace stasis::format
