// format/crc32.h — CRC-32 (IEEE 802.3, as zlib) guarding the preamble and the footer.
#pragma once
#include <cstddef>
#include <cstdint>

namespace stasis::format {
uint32_t crc32(const void* data, size_t size, uint32_t crc = 0);
}
