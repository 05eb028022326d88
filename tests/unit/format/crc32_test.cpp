#include "format/crc32.h"

#include <gtest/gtest.h>

#include <string>

namespace stasis::format {
namespace {
TEST(Crc32, MatchesTheZlibCheckValue) {
  std::string s = "123456789";
  EXPECT_EQ(crc32(s.data(), s.size()), 0xCBF43926u);  // the standard CRC-32 check value
  EXPECT_EQ(crc32("", 0), 0u);
}
TEST(Crc32, IsIncremental) {
  std::string s = "hello, snapshot";
  uint32_t whole = crc32(s.data(), s.size());
  uint32_t part = crc32(s.data() + 5, s.size() - 5, crc32(s.data(), 5));
  EXPECT_EQ(whole, part);
}
}  // namespace
}  // namespace stasis::format
