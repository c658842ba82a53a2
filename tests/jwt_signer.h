// Tokens the tests sign themselves: RSA and EC P-256 keys made with
// OpenSSL, their JWKS, and JWTs signed (or mis-signed) with them, for
// tests/jwt_test.cc and tests/gateway_test.cc. Header-only.

#ifndef TESTS_JWT_SIGNER_H_
#define TESTS_JWT_SIGNER_H_

// The RSA_*/EC_KEY_* calls are deprecated in OpenSSL 3 and shared with
// BoringSSL (see examples/gateway/jwt.cc).
#ifndef OPENSSL_SUPPRESS_DEPRECATED
#define OPENSSL_SUPPRESS_DEPRECATED 1
#endif

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace mesh {
namespace testing {

inline std::string B64(const std::string& bytes) {
  std::string out;
  absl::WebSafeBase64Escape(bytes, &out);  // No padding.
  return out;
}

inline std::string BnBytes(const BIGNUM* bn, int pad = 0) {
  std::string out(pad > 0 ? pad : BN_num_bytes(bn), '\0');
  if (pad > 0) {
    BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(&out[0]), pad);
  } else {
    BN_bn2bin(bn, reinterpret_cast<unsigned char*>(&out[0]));
  }
  return out;
}

// One signing key: RS256 (RSA 2048, or `bits`) or ES256 (P-256).
class SigningKey {
 public:
  static SigningKey Rsa(const std::string& kid, int bits = 2048) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, nullptr);
    EVP_PKEY* key = nullptr;
    EVP_PKEY_keygen_init(ctx);
    EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits);
    EVP_PKEY_keygen(ctx, &key);
    EVP_PKEY_CTX_free(ctx);
    return SigningKey(key, "RS256", kid);
  }
  static SigningKey Ec(const std::string& kid) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nullptr);
    EVP_PKEY* key = nullptr;
    EVP_PKEY_keygen_init(ctx);
    EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_X9_62_prime256v1);
    EVP_PKEY_keygen(ctx, &key);
    EVP_PKEY_CTX_free(ctx);
    return SigningKey(key, "ES256", kid);
  }

  const std::string& alg() const { return alg_; }
  const std::string& kid() const { return kid_; }

  // The public key as a JWK object (with "kid" unless empty).
  std::string Jwk() const {
    const std::string kid =
        kid_.empty() ? "" : absl::StrCat(", \"kid\": \"", kid_, "\"");
    if (alg_ == "RS256") {
      const RSA* rsa = EVP_PKEY_get0_RSA(key_.get());
      const BIGNUM *n, *e;
      RSA_get0_key(rsa, &n, &e, nullptr);
      return absl::StrCat("{\"kty\": \"RSA\", \"use\": \"sig\"", kid,
                          ", \"n\": \"", B64(BnBytes(n)), "\", \"e\": \"",
                          B64(BnBytes(e)), "\"}");
    }
    const EC_KEY* ec = EVP_PKEY_get0_EC_KEY(key_.get());
    BIGNUM* x = BN_new();
    BIGNUM* y = BN_new();
    EC_POINT_get_affine_coordinates(EC_KEY_get0_group(ec),
                                    EC_KEY_get0_public_key(ec), x, y,
                                    nullptr);
    std::string jwk = absl::StrCat(
        "{\"kty\": \"EC\", \"crv\": \"P-256\"", kid, ", \"x\": \"",
        B64(BnBytes(x, 32)), "\", \"y\": \"", B64(BnBytes(y, 32)), "\"}");
    BN_free(x);
    BN_free(y);
    return jwk;
  }

  // The public key in PEM (what an attacker would use as an HS256 secret).
  std::string PublicPem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, key_.get());
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    std::string pem(data, len);
    BIO_free(bio);
    return pem;
  }

  // A signed token: header {"alg", "kid", "typ": "JWT"} plus `extra_header`
  // (e.g. ", \"crit\": [\"x\"]"), and the claims object `claims`.
  std::string Sign(const std::string& claims,
                   const std::string& extra_header = "") const {
    const std::string input =
        absl::StrCat(B64(Header(alg_, extra_header)), ".", B64(claims));
    return absl::StrCat(input, ".", B64(Signature(input)));
  }

  // The JWS signature of `input` (ES256: R || S, 64 bytes).
  std::string Signature(const std::string& input) const {
    const std::string sig = DerSignature(input);
    if (alg_ != "ES256") return sig;
    const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(es, &r, &s);
    std::string raw = BnBytes(r, 32) + BnBytes(s, 32);
    ECDSA_SIG_free(es);
    return raw;
  }

  // What OpenSSL signs: RS256 as JWS has it, ES256 in DER (which JWS does
  // not use).
  std::string DerSignature(const std::string& input) const {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    size_t len = 0;
    EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key_.get());
    EVP_DigestSignUpdate(ctx, input.data(), input.size());
    EVP_DigestSignFinal(ctx, nullptr, &len);
    std::string sig(len, '\0');
    EVP_DigestSignFinal(ctx, reinterpret_cast<unsigned char*>(&sig[0]), &len);
    sig.resize(len);
    EVP_MD_CTX_free(ctx);
    return sig;
  }

  std::string Header(const std::string& alg,
                     const std::string& extra = "") const {
    return absl::StrCat("{\"alg\": \"", alg, "\"",
                        kid_.empty() ? "" : ", \"kid\": \"" + kid_ + "\"",
                        ", \"typ\": \"JWT\"", extra, "}");
  }

 private:
  struct Free {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
  };
  SigningKey(EVP_PKEY* key, std::string alg, std::string kid)
      : key_(key, Free()), alg_(std::move(alg)), kid_(std::move(kid)) {}
  std::shared_ptr<EVP_PKEY> key_ = nullptr;
  std::string alg_, kid_;
};

// {"keys": [each JWK]}.
template <typename... Keys>
std::string Jwks(const Keys&... keys) {
  std::string out = "{\"keys\": [";
  bool first = true;
  for (const SigningKey* k : {&keys...}) {
    absl::StrAppend(&out, first ? "" : ", ", k->Jwk());
    first = false;
  }
  return out + "]}";
}

// A token with alg "none" and no signature.
inline std::string UnsignedToken(const std::string& claims) {
  return absl::StrCat(B64("{\"alg\": \"none\", \"typ\": \"JWT\"}"), ".",
                      B64(claims), ".");
}

// HS256 with `secret` (the confusion attack uses the public key as secret).
inline std::string Hs256Token(const std::string& header,
                              const std::string& claims,
                              const std::string& secret) {
  const std::string input = absl::StrCat(B64(header), ".", B64(claims));
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac,
       &len);
  return absl::StrCat(input, ".",
                      B64(std::string(reinterpret_cast<char*>(mac), len)));
}

}  // namespace testing
}  // namespace mesh

#endif  // TESTS_JWT_SIGNER_H_
