#include "mesh/identity/svid.h"

#include <memory>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace mesh {
namespace identity {

namespace {

struct Free {
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
  void operator()(BASIC_CONSTRAINTS* p) const { BASIC_CONSTRAINTS_free(p); }
  // ASN1_BIT_STRING and ASN1_TIME are both ASN1_STRING.
  void operator()(ASN1_STRING* p) const { ASN1_STRING_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(char* p) const { OPENSSL_free(p); }
  void operator()(STACK_OF(X509) * p) const { sk_X509_pop_free(p, X509_free); }
};
template <typename T>
using Ptr = std::unique_ptr<T, Free>;

Ptr<BIO> MemBio(absl::string_view s) {
  return Ptr<BIO>(BIO_new_mem_buf(s.data(), static_cast<int>(s.size())));
}

// The last OpenSSL error as text (and clears the queue).
std::string SslError() {
  unsigned long e = ERR_get_error();
  unsigned long last = e;
  while (e != 0) {
    last = e;
    e = ERR_get_error();
  }
  if (last == 0) return "no details";
  char buf[256];
  ERR_error_string_n(last, buf, sizeof(buf));
  return buf;
}

// Every certificate in a PEM text, in order.
absl::StatusOr<std::vector<Ptr<X509>>> ReadCerts(absl::string_view pem,
                                                 absl::string_view what) {
  std::vector<Ptr<X509>> out;
  if (pem.size() > (1 << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": larger than 1 MiB"));
  }
  Ptr<BIO> bio = MemBio(pem);
  while (true) {
    X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (x == nullptr) break;
    out.emplace_back(x);
  }
  // The loop ends at EOF (PEM_R_NO_START_LINE) or at a broken block.
  const unsigned long err = ERR_peek_last_error();
  const bool clean_eof = ERR_GET_LIB(err) == ERR_LIB_PEM &&
                         ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
  if (!out.empty() && clean_eof) {
    ERR_clear_error();
    return out;
  }
  if (out.empty()) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": no PEM certificate found"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      what, ": certificate ", out.size() + 1, " does not parse: ",
      SslError()));
}

bool TrustDomainChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}
bool PathChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
         c == '-' || c == '_';
}

// The URI SANs of a certificate.
std::vector<std::string> UriSans(X509* cert) {
  std::vector<std::string> out;
  Ptr<GENERAL_NAMES> names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (names == nullptr) return out;
  for (size_t i = 0; i < static_cast<size_t>(sk_GENERAL_NAME_num(names.get()));
       ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names.get(), i);
    if (n->type != GEN_URI) continue;
    const ASN1_IA5STRING* s = n->d.uniformResourceIdentifier;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
  }
  return out;
}

std::string SerialHex(X509* cert) {
  Ptr<BIGNUM> bn(ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr));
  if (bn == nullptr) return "";
  Ptr<char> hex(BN_bn2hex(bn.get()));
  return hex == nullptr ? "" : std::string(hex.get());
}

time_t NotAfter(X509* cert, time_t now) {
  int days = 0, secs = 0;
  Ptr<ASN1_TIME> t(ASN1_TIME_set(nullptr, now));
  if (t == nullptr ||
      !ASN1_TIME_diff(&days, &secs, t.get(), X509_get0_notAfter(cert))) {
    return 0;
  }
  return now + static_cast<time_t>(days) * 86400 + secs;
}

absl::StatusOr<SpiffeId> IdentityOf(X509* leaf, absl::string_view what) {
  const std::vector<std::string> uris = UriSans(leaf);
  if (uris.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": an X.509-SVID has exactly one URI SAN, this one has ",
        uris.size()));
  }
  absl::StatusOr<SpiffeId> id = ParseSpiffeId(uris[0]);
  if (!id.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": its URI SAN ", id.status().message()));
  }
  return id;
}

}  // namespace

absl::StatusOr<SpiffeId> ParseSpiffeId(absl::string_view id,
                                       bool require_path) {
  auto bad = [&](absl::string_view why) {
    std::string shown(id.substr(0, 200));
    for (char& c : shown) {
      if (static_cast<unsigned char>(c) < 0x20 ||
          static_cast<unsigned char>(c) > 0x7e) {
        c = '?';
      }
    }
    return absl::InvalidArgumentError(
        absl::StrCat("\"", shown, "\" is not a SPIFFE ID: ", why));
  };
  if (id.size() > 2048) return bad("longer than 2048 bytes");
  absl::string_view rest = id;
  if (!absl::ConsumePrefix(&rest, "spiffe://")) {
    return bad("the scheme must be \"spiffe://\"");
  }
  if (rest.find_first_of("?#") != absl::string_view::npos) {
    return bad("it must not have a query or fragment");
  }
  const size_t slash = rest.find('/');
  SpiffeId out;
  out.trust_domain = std::string(rest.substr(0, slash));
  if (out.trust_domain.empty()) return bad("the trust domain is empty");
  for (char c : out.trust_domain) {
    if (c == ':') return bad("the trust domain must not have a port");
    if (c == '@') return bad("it must not have user info");
    if (!TrustDomainChar(c)) {
      return bad(
          "the trust domain may only have lowercase letters, digits, '.', "
          "'-' and '_'");
    }
  }
  if (slash != absl::string_view::npos) {
    out.path = std::string(rest.substr(slash));
    for (absl::string_view seg :
         absl::StrSplit(absl::string_view(out.path).substr(1), '/')) {
      if (seg.empty()) return bad("a path segment is empty");
      if (seg == "." || seg == "..") {
        return bad("a path segment is \".\" or \"..\"");
      }
      for (char c : seg) {
        if (!PathChar(c)) {
          return bad(
              "a path segment may only have letters, digits, '.', '-' and "
              "'_'");
        }
      }
    }
  }
  if (require_path && out.path.empty()) {
    return bad("a workload's ID needs a path after the trust domain");
  }
  return out;
}

absl::StatusOr<SvidInfo> CheckSvid(absl::string_view cert_chain_pem,
                                   absl::string_view private_key_pem,
                                   absl::string_view bundle_pem, time_t now) {
  absl::StatusOr<std::vector<Ptr<X509>>> chain =
      ReadCerts(cert_chain_pem, "certificate");
  if (!chain.ok()) return chain.status();
  X509* leaf = (*chain)[0].get();
  SvidInfo info;
  absl::StatusOr<SpiffeId> id = IdentityOf(leaf, "certificate");
  if (!id.ok()) return id.status();
  info.id = *id;
  const std::string who = absl::StrCat("certificate ", info.id.ToString());

  Ptr<BASIC_CONSTRAINTS> bc(static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(leaf, NID_basic_constraints, nullptr, nullptr)));
  if (bc != nullptr && bc->ca) {
    return absl::InvalidArgumentError(absl::StrCat(
        who, ": is a CA certificate (basicConstraints CA:TRUE); an SVID "
             "leaf must not be a CA"));
  }
  Ptr<ASN1_BIT_STRING> ku(static_cast<ASN1_BIT_STRING*>(
      X509_get_ext_d2i(leaf, NID_key_usage, nullptr, nullptr)));
  if (ku == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, ": has no keyUsage extension; an SVID leaf needs "
                          "one with digitalSignature"));
  }
  if (!ASN1_BIT_STRING_get_bit(ku.get(), 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        who, ": keyUsage lacks digitalSignature"));
  }
  if (ASN1_BIT_STRING_get_bit(ku.get(), 5) ||
      ASN1_BIT_STRING_get_bit(ku.get(), 6)) {
    return absl::InvalidArgumentError(absl::StrCat(
        who, ": keyUsage has keyCertSign or cRLSign, which an SVID leaf "
             "must not have"));
  }
  if (X509_cmp_time(X509_get0_notBefore(leaf), &now) > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, ": is not valid yet (notBefore is in the future)"));
  }
  if (X509_cmp_time(X509_get0_notAfter(leaf), &now) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, ": has expired (notAfter is in the past)"));
  }

  Ptr<BIO> kbio = MemBio(private_key_pem);
  Ptr<EVP_PKEY> key(
      PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "private key: no PEM private key found (", SslError(), ")"));
  }
  if (X509_check_private_key(leaf, key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        who, ": the private key does not match this certificate"));
  }

  if (!bundle_pem.empty()) {
    absl::StatusOr<std::vector<Ptr<X509>>> cas =
        ReadCerts(bundle_pem, "trust bundle");
    if (!cas.ok()) return cas.status();
    Ptr<X509_STORE> store(X509_STORE_new());
    for (const Ptr<X509>& ca : *cas) X509_STORE_add_cert(store.get(), ca.get());
    Ptr<STACK_OF(X509)> untrusted(sk_X509_new_null());
    for (size_t i = 1; i < chain->size(); ++i) {
      X509_up_ref((*chain)[i].get());
      sk_X509_push(untrusted.get(), (*chain)[i].get());
    }
    Ptr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
    if (!X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted.get())) {
      return absl::InternalError("X509_STORE_CTX_init failed");
    }
    X509_STORE_CTX_set_time(ctx.get(), 0, now);
    if (X509_verify_cert(ctx.get()) != 1) {
      const int err = X509_STORE_CTX_get_error(ctx.get());
      ERR_clear_error();
      return absl::InvalidArgumentError(absl::StrCat(
          who, ": is not signed by a CA of the trust bundle (",
          X509_verify_cert_error_string(err), ")"));
    }
  }
  info.serial_hex = SerialHex(leaf);
  info.not_after = NotAfter(leaf, now);
  return info;
}

absl::StatusOr<SvidInfo> PeerSvid(absl::string_view cert_pem) {
  absl::StatusOr<std::vector<Ptr<X509>>> chain =
      ReadCerts(cert_pem, "peer certificate");
  if (!chain.ok()) return chain.status();
  X509* leaf = (*chain)[0].get();
  absl::StatusOr<SpiffeId> id = IdentityOf(leaf, "peer certificate");
  if (!id.ok()) return id.status();
  SvidInfo info;
  info.id = *id;
  info.serial_hex = SerialHex(leaf);
  info.not_after = NotAfter(leaf, time(nullptr));
  return info;
}

absl::StatusOr<int> CheckBundle(absl::string_view bundle_pem) {
  absl::StatusOr<std::vector<Ptr<X509>>> cas =
      ReadCerts(bundle_pem, "trust bundle");
  if (!cas.ok()) return cas.status();
  int n = 0;
  for (const Ptr<X509>& ca : *cas) {
    ++n;
    Ptr<BASIC_CONSTRAINTS> bc(static_cast<BASIC_CONSTRAINTS*>(
        X509_get_ext_d2i(ca.get(), NID_basic_constraints, nullptr, nullptr)));
    if (bc == nullptr || !bc->ca) {
      return absl::InvalidArgumentError(absl::StrCat(
          "trust bundle: certificate ", n, " is not a CA (no "
          "basicConstraints CA:TRUE)"));
    }
  }
  return n;
}

}  // namespace identity
}  // namespace mesh
