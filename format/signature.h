// format/signature.h — HMAC-SHA256 over a snapshot's preamble, payload and footer (OpenSSL).
// The writer feeds every byte it writes; the reader feeds the same range and compares in constant time.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

namespace stasis::format {

using Digest = std::array<uint8_t, 32>;

class Hmac {
 public:
  explicit Hmac(const std::string& key);  // throws Error(Io) if the key is empty
  ~Hmac();
  Hmac(const Hmac&) = delete;
  Hmac& operator=(const Hmac&) = delete;
  void update(const void* data, size_t size);
  Digest finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

bool digests_equal(const Digest& a, const uint8_t* b);

}  // namespace stasis::format
