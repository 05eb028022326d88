// format/preamble.h — the uncompressed head of every snapshot and its fixed-size footer.
// The preamble says what wrote the file (format, engine, exact CPython) before anything is
// decompressed; the footer closes the file with payload sizes. Both carry a CRC-32.
// The preamble layout is frozen across format versions so that any version can be identified.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace stasis::format {

// "\x89STASIS\n": the high byte catches 7-bit transfers, the newline catches text-mode mangling.
inline constexpr char kMagic[8] = {'\x89', 'S', 'T', 'A', 'S', 'I', 'S', '\n'};
inline constexpr char kFooterMagic[8] = {'S', 'T', 'A', 'S', 'E', 'N', 'D', '\n'};
inline constexpr size_t kFooterSize = 40;
inline constexpr size_t kSignatureSize = 32;  // HMAC-SHA256

enum PreambleFlags : uint32_t {
  kFlagSigned = 1u << 0,  // an HMAC-SHA256 follows the footer
};

struct Preamble {
  uint16_t format_version = 0;
  uint32_t flags = 0;
  int64_t created_unix = 0;       // seconds since the epoch, UTC
  uint32_t python_hexversion = 0; // PY_VERSION_HEX of the writer
  std::string python_version;     // e.g. "3.11.2"
  std::string implementation;     // sys.implementation.name, e.g. "cpython"
  std::string engine_version;     // Stasis version that wrote the file
  std::string host;               // hostname of the writer
  std::string payload_kind;       // "objects" (stasis.dump) or "program" (a suspended program)

  bool is_signed() const { return flags & kFlagSigned; }
};

struct Footer {
  uint64_t compressed_size = 0;  // bytes of the zstd payload
  uint64_t raw_size = 0;         // bytes of the cereal payload before compression
  uint64_t record_count = 0;     // records in the payload (schema.h)
};

// Serialises magic + preamble + CRC.
std::string encode_preamble(const Preamble& preamble);

// Parses and validates the preamble at the start of `head` (which may be the whole file or a
// prefix of it). Sets `preamble_size` to the byte count it occupies. Throws NotASnapshot,
// TruncatedSnapshot (`head` ends early and `head_is_whole_file`), or CorruptSnapshot (naming the
// field that failed). Does not check versions: see check_compatible().
Preamble decode_preamble(std::string_view head, bool head_is_whole_file, size_t& preamble_size);

// Throws IncompatibleSnapshot when the file's format version or CPython minor version differs
// from this build's, saying which was found and which is needed.
void check_compatible(const Preamble& preamble);

std::string encode_footer(const Footer& footer);
// Throws TruncatedSnapshot (no end marker) or CorruptSnapshot (checksum).
Footer decode_footer(std::string_view bytes);

// The preamble this process would write now (version, interpreter, host, time).
Preamble current_preamble(std::string payload_kind, uint32_t flags);

}  // namespace stasis::format
