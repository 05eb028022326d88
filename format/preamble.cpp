#include "format/preamble.h"

#include <Python.h>
#include <unistd.h>

#include <cstring>
#include <ctime>

#include "core/error.h"
#include "format/crc32.h"
#include "format/schema.h"
#include "format/version.h"

namespace stasis::format {
namespace {

constexpr size_t kMaxPreambleBody = 4096;

void put_u16(std::string& out, uint16_t v) {
  char b[2] = {char(v & 0xFF), char(v >> 8)};
  out.append(b, 2);
}
void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(char((v >> (8 * i)) & 0xFF));
}
void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(char((v >> (8 * i)) & 0xFF));
}
void put_str(std::string& out, const std::string& s) {
  put_u16(out, static_cast<uint16_t>(std::min<size_t>(s.size(), 1024)));
  out.append(s.data(), std::min<size_t>(s.size(), 1024));
}

// Reads little-endian fields, naming the field in every error.
class FieldReader {
 public:
  FieldReader(std::string_view bytes, const char* where) : bytes_(bytes), where_(where) {}
  uint64_t uint(const char* field, int width) {
    need(field, width);
    uint64_t v = 0;
    for (int i = 0; i < width; ++i) v |= uint64_t(uint8_t(bytes_[pos_ + i])) << (8 * i);
    pos_ += width;
    return v;
  }
  std::string str(const char* field) {
    size_t n = uint(field, 2);
    need(field, n);
    std::string s(bytes_.substr(pos_, n));
    pos_ += n;
    // The fields are versions, a host name and a kind, shown by `stasis inspect` and in errors: a
    // control character (a newline, an escape sequence for the terminal) is never written.
    for (char c : s)
      if (uint8_t(c) < 0x20 || uint8_t(c) == 0x7F)
        throw Error(ErrorCode::CorruptSnapshot, std::string(where_) + " field '" + field +
                                                    "' holds a control character");
    return s;
  }
  size_t pos() const { return pos_; }

 private:
  void need(const char* field, size_t n) {
    if (pos_ + n > bytes_.size())
      throw Error(ErrorCode::CorruptSnapshot, std::string(where_) + " field '" + field +
                                                  "' runs past the end of the " + where_);
  }
  std::string_view bytes_;
  const char* where_;
  size_t pos_ = 0;
};

uint16_t u16_at(std::string_view b, size_t at) {
  return uint16_t(uint8_t(b[at]) | (uint8_t(b[at + 1]) << 8));
}
uint32_t u32_at(std::string_view b, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(uint8_t(b[at + i])) << (8 * i);
  return v;
}

std::string minor_of(uint32_t hexversion) {
  return std::to_string(hexversion >> 24) + "." + std::to_string((hexversion >> 16) & 0xFF);
}

}  // namespace

std::string encode_preamble(const Preamble& p) {
  std::string body;
  put_u32(body, p.flags);
  put_u64(body, static_cast<uint64_t>(p.created_unix));
  put_u32(body, p.python_hexversion);
  put_str(body, p.python_version);
  put_str(body, p.implementation);
  put_str(body, p.engine_version);
  put_str(body, p.host);
  put_str(body, p.payload_kind);

  std::string out(kMagic, sizeof kMagic);
  put_u16(out, p.format_version);
  put_u16(out, static_cast<uint16_t>(body.size()));
  out += body;
  put_u32(out, crc32(out.data(), out.size()));
  return out;
}

Preamble decode_preamble(std::string_view head, bool whole_file, size_t& preamble_size) {
  auto truncated = [&](const char* part) {
    return Error(ErrorCode::TruncatedSnapshot,
                 "file ends inside the " + std::string(part) + " (" + std::to_string(head.size()) +
                     " bytes); the snapshot was cut short, copy it again");
  };
  if (head.empty()) throw Error(ErrorCode::NotASnapshot, "the file is empty");
  size_t n = std::min(head.size(), sizeof kMagic);
  if (std::memcmp(head.data(), kMagic, n) != 0)
    throw Error(ErrorCode::NotASnapshot, "the file does not start with the Stasis magic bytes");
  if (head.size() < 12) {
    if (whole_file) throw truncated("preamble");
    throw Error(ErrorCode::Internal, "preamble read too short");
  }
  Preamble p;
  p.format_version = u16_at(head, 8);
  size_t body_size = u16_at(head, 10);
  if (body_size > kMaxPreambleBody)
    throw Error(ErrorCode::CorruptSnapshot, "preamble length " + std::to_string(body_size) +
                                                " is implausible (at most " +
                                                std::to_string(kMaxPreambleBody) + ")");
  size_t total = 12 + body_size + 4;
  if (head.size() < total) {
    if (whole_file) throw truncated("preamble");
    throw Error(ErrorCode::Internal, "preamble read too short");
  }
  uint32_t stored = u32_at(head, 12 + body_size);
  if (stored != crc32(head.data(), 12 + body_size))
    throw Error(ErrorCode::CorruptSnapshot,
                "preamble checksum mismatch (bytes 0.." + std::to_string(12 + body_size) +
                    " are damaged)");
  FieldReader r(head.substr(12, body_size), "preamble");
  p.flags = static_cast<uint32_t>(r.uint("flags", 4));
  p.created_unix = static_cast<int64_t>(r.uint("created", 8));
  p.python_hexversion = static_cast<uint32_t>(r.uint("python_hexversion", 4));
  p.python_version = r.str("python_version");
  p.implementation = r.str("implementation");
  p.engine_version = r.str("engine_version");
  p.host = r.str("host");
  p.payload_kind = r.str("payload_kind");
  preamble_size = total;
  return p;
}

void check_compatible(const Preamble& p) {
  if (p.format_version != kFormatVersion)
    throw Error(ErrorCode::IncompatibleSnapshot,
                "snapshot format version " + std::to_string(p.format_version) +
                    " found, this Stasis " STASIS_ENGINE_VERSION " reads version " +
                    std::to_string(kFormatVersion) +
                    "; use the Stasis version that wrote it (engine " + p.engine_version + ")");
  if (p.implementation != "cpython")
    throw Error(ErrorCode::IncompatibleSnapshot,
                "snapshot written by Python implementation '" + p.implementation +
                    "', this is 'cpython'");
  if ((p.python_hexversion >> 16) != (static_cast<uint32_t>(Py_Version) >> 16))
    throw Error(ErrorCode::IncompatibleSnapshot,
                "snapshot written by CPython " + p.python_version + ", this is CPython " +
                    minor_of(static_cast<uint32_t>(Py_Version)) + "; CPython " + minor_of(p.python_hexversion) +
                    ".x is needed to load it");
}

std::string encode_footer(const Footer& f) {
  std::string out;
  put_u64(out, f.compressed_size);
  put_u64(out, f.raw_size);
  put_u64(out, f.record_count);
  put_u32(out, 0);  // reserved
  put_u32(out, crc32(out.data(), out.size()));
  out.append(kFooterMagic, sizeof kFooterMagic);
  return out;
}

Footer decode_footer(std::string_view b) {
  if (b.size() != kFooterSize ||
      std::memcmp(b.data() + kFooterSize - sizeof kFooterMagic, kFooterMagic,
                  sizeof kFooterMagic) != 0)
    throw Error(ErrorCode::TruncatedSnapshot,
                "the snapshot's end marker is missing: the file was cut short (or its last bytes "
                "are damaged); copy it again");
  if (u32_at(b, 28) != crc32(b.data(), 28))
    throw Error(ErrorCode::CorruptSnapshot, "footer checksum mismatch (the last 40 bytes are damaged)");
  FieldReader r(b, "footer");
  Footer f;
  f.compressed_size = r.uint("compressed_size", 8);
  f.raw_size = r.uint("raw_size", 8);
  f.record_count = r.uint("record_count", 8);
  return f;
}

Preamble current_preamble(std::string payload_kind, uint32_t flags) {
  Preamble p;
  p.format_version = kFormatVersion;
  p.flags = flags;
  p.created_unix = static_cast<int64_t>(std::time(nullptr));
  p.python_hexversion = static_cast<uint32_t>(Py_Version);  // the running interpreter, not the headers
  std::string full = Py_GetVersion();                       // "3.11.2 (main, ...) [GCC ...]"
  p.python_version = full.substr(0, full.find(' '));
  p.implementation = "cpython";
  p.engine_version = STASIS_ENGINE_VERSION;
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) == 0) p.host = host;
  p.payload_kind = std::move(payload_kind);
  return p;
}

}  // namespace stasis::format
