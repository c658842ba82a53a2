#include "mesh/identity/dev_ca.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace mesh {
namespace identity {

namespace {

EVP_PKEY* NewKey() {
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nullptr);
  EVP_PKEY* key = nullptr;
  if (ctx != nullptr && EVP_PKEY_keygen_init(ctx) == 1 &&
      EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_X9_62_prime256v1) == 1) {
    EVP_PKEY_keygen(ctx, &key);
  }
  EVP_PKEY_CTX_free(ctx);
  return key;
}

bool AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext =
      X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

std::string ToPem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  const char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

std::string ToPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  const char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

// Makes a certificate for `key`, signed by `signer_key` (issuer
// `issuer`, or self-signed when null).
X509* MakeCert(EVP_PKEY* key, const std::string& cn, X509* issuer,
               EVP_PKEY* signer_key, const LeafOptions& o) {
  X509* x = X509_new();
  bool ok = X509_set_version(x, 2) == 1;
  BIGNUM* bn = BN_new();
  ok = ok && BN_rand(bn, 64, 0, 0) == 1 &&
       BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != nullptr;
  BN_free(bn);
  ok = ok &&
       X509_gmtime_adj(X509_getm_notBefore(x), o.not_before_offset_s) &&
       X509_gmtime_adj(X509_getm_notAfter(x), o.not_after_offset_s);
  X509_NAME* name = X509_get_subject_name(x);
  ok = ok && X509_NAME_add_entry_by_txt(
                 name, "CN", MBSTRING_ASC,
                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                 0) == 1;
  ok = ok && X509_set_issuer_name(x, issuer == nullptr
                                         ? name
                                         : X509_get_subject_name(issuer)) == 1;
  ok = ok && X509_set_pubkey(x, key) == 1;
  X509* iss = issuer == nullptr ? x : issuer;
  ok = ok && AddExt(x, iss, NID_basic_constraints,
                    o.is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  if (!o.key_usage.empty()) {
    ok = ok && AddExt(x, iss, NID_key_usage, o.key_usage);
  }
  std::vector<std::string> sans;
  for (const std::string& u : o.uris) sans.push_back("URI:" + u);
  for (const std::string& d : o.dns_names) sans.push_back("DNS:" + d);
  if (!sans.empty()) {
    ok = ok && AddExt(x, iss, NID_subject_alt_name, absl::StrJoin(sans, ","));
  }
  ok = ok && X509_sign(x, signer_key, EVP_sha256()) > 0;
  if (!ok) {
    X509_free(x);
    return nullptr;
  }
  return x;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DevCa>> DevCa::Create(const std::string& name) {
  std::unique_ptr<DevCa> ca(new DevCa());
  EVP_PKEY* key = NewKey();
  if (key == nullptr) return absl::InternalError("cannot make an EC key");
  ca->key_ = key;
  LeafOptions o;
  o.is_ca = true;
  o.key_usage = "critical,keyCertSign,cRLSign";
  o.not_after_offset_s = 30L * 24 * 3600;
  X509* cert = MakeCert(key, name, nullptr, key, o);
  if (cert == nullptr) return absl::InternalError("cannot make the CA");
  ca->cert_ = cert;
  ca->ca_ = {ToPem(cert), ToPem(key)};
  return ca;
}

DevCa::~DevCa() {
  X509_free(static_cast<X509*>(cert_));
  EVP_PKEY_free(static_cast<EVP_PKEY*>(key_));
}

absl::StatusOr<Pem> DevCa::Issue(const LeafOptions& o) const {
  EVP_PKEY* key = NewKey();
  if (key == nullptr) return absl::InternalError("cannot make an EC key");
  X509* cert = MakeCert(key,
                        !o.uris.empty()        ? o.uris[0]
                        : !o.dns_names.empty() ? o.dns_names[0]
                                               : "no-uri",
                        static_cast<X509*>(cert_),
                        static_cast<EVP_PKEY*>(key_), o);
  if (cert == nullptr) {
    EVP_PKEY_free(key);
    return absl::InvalidArgumentError("cannot make the certificate");
  }
  Pem out{ToPem(cert), ToPem(key)};
  X509_free(cert);
  EVP_PKEY_free(key);
  return out;
}

}  // namespace identity
}  // namespace mesh
