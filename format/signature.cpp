#include "format/signature.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "core/error.h"

namespace stasis::format {

struct Hmac::Impl {
  EVP_MAC* mac = nullptr;
  EVP_MAC_CTX* ctx = nullptr;
  ~Impl() {
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
  }
};

Hmac::Hmac(const std::string& key) : impl_(std::make_unique<Impl>()) {
  if (key.empty()) throw Error(ErrorCode::Io, "the signing key is empty");
  impl_->mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (!impl_->mac) throw Error(ErrorCode::Internal, "OpenSSL has no HMAC implementation");
  impl_->ctx = EVP_MAC_CTX_new(impl_->mac);
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  if (!impl_->ctx ||
      !EVP_MAC_init(impl_->ctx, reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                    params))
    throw Error(ErrorCode::Internal, "cannot initialise HMAC-SHA256");
}

Hmac::~Hmac() = default;

void Hmac::update(const void* data, size_t size) {
  if (!EVP_MAC_update(impl_->ctx, static_cast<const unsigned char*>(data), size))
    throw Error(ErrorCode::Internal, "HMAC update failed");
}

Digest Hmac::finish() {
  Digest d{};
  size_t n = 0;
  if (!EVP_MAC_final(impl_->ctx, d.data(), &n, d.size()) || n != d.size())
    throw Error(ErrorCode::Internal, "HMAC final failed");
  return d;
}

bool digests_equal(const Digest& a, const uint8_t* b) {
  return CRYPTO_memcmp(a.data(), b, a.size()) == 0;
}

}  // namespace stasis::format
