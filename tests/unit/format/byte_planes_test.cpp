#include "format/byte_planes.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace stasis::format {
namespace {
// The layout FORMAT.md defines, written as plainly as possible: the oracle of the SIMD kernels.
std::vector<uint8_t> reference_planes(const std::vector<uint8_t>& src, size_t count, size_t width) {
  std::vector<uint8_t> out(count * width);
  for (size_t i = 0; i < count; ++i)
    for (size_t b = 0; b < width; ++b) out[b * count + i] = src[i * width + b];
  return out;
}

TEST(BytePlanes, SplitMatchesTheDefinitionAndJoinInvertsIt) {
  for (size_t width : {1, 2, 4, 8}) {
    // Counts around the edges of the 16- and 32-element kernels, and a whole block.
    for (size_t count : {0, 1, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 100, 1000, 16384, 16385}) {
      std::vector<uint8_t> src(count * width);
      for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t((i * 2654435761u) >> 13);
      std::vector<uint8_t> planes(src.size()), back(src.size());
      split_planes(src.data(), planes.data(), count, width);
      EXPECT_EQ(planes, reference_planes(src, count, width)) << "width " << width << " count " << count;
      join_planes(planes.data(), back.data(), count, width);
      EXPECT_EQ(back, src) << "width " << width << " count " << count;
    }
  }
}
}  // namespace
}  // namespace stasis::format
