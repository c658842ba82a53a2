// File: examples/gateway/jwt.h
//
// JWT bearer tokens for callers from outside the mesh (docs/gateway.md
// "JWT"): RS256 and ES256 signatures (RFC 7515/7518) checked against a JWKS
// file (RFC 7517) that is watched for key rotation, then the claims `iss`,
// `aud`, `exp` and `nbf` (RFC 7519) with a small clock skew.
//
// What it refuses, each with a reason for the log (never for the caller):
// anything but three base64url parts of JSON; an `alg` other than RS256 or
// ES256 (so `none` and HS256 are refused before any key is looked at: the
// HS256-with-the-public-key-as-secret confusion cannot happen, no HMAC is
// ever computed); a `crit` header (no extension is understood); a `kid`
// not in the key set, or a key of the wrong type or `alg` for the token;
// a bad signature; a wrong issuer or audience; an expired or not yet valid
// token; a token without `exp` or `sub`.
//
// Keys: RSA of at least 2048 bits, EC on P-256. Built with OpenSSL calls
// that BoringSSL has too (RSA_set0_key, EC_KEY_*, ECDSA_SIG_*, EVP_Digest*).

#ifndef EXAMPLES_GATEWAY_JWT_H_
#define EXAMPLES_GATEWAY_JWT_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace mesh {
namespace gateway {

struct JwtConfig {
  std::string jwks_file;               // The issuer's public keys (JWKS).
  std::string issuer;                  // `iss` must equal this.
  std::vector<std::string> audiences;  // `aud` must name one of these.
  absl::Duration clock_skew = absl::Seconds(60);  // For exp and nbf.
  // Claims forwarded into the mesh as request headers: claim -> header
  // name. Headers of these names from outside are always dropped.
  std::map<std::string, std::string> claim_headers;
  // Whether the token itself (`authorization`) is forwarded into the mesh.
  bool forward_token = false;
  // How often the JWKS file is checked for a change.
  absl::Duration jwks_check_interval = absl::Seconds(1);
};

// A verified token's claims that the gateway uses.
struct VerifiedToken {
  std::string subject;              // `sub`.
  std::vector<std::string> scopes;  // `scope` (space-separated) or `scp`.
  // Claim name -> value as a header would carry it (strings as they are,
  // numbers and booleans in JSON form, lists of strings comma-joined); only
  // claims of those kinds.
  std::map<std::string, std::string> claims;
};

class JwtKeySet;  // Parsed JWKS (jwt.cc).

// Parses a JWKS document; `name` (the file) prefixes messages. Exposed for
// tests; JwtVerifier::Create and the watcher use it.
absl::StatusOr<std::shared_ptr<const JwtKeySet>> ParseJwks(
    absl::string_view json, const std::string& name);
// How many keys a parsed set holds.
size_t KeyCount(const JwtKeySet& keys);

class JwtVerifier {
 public:
  // Reads the JWKS file; an error if it cannot be read or holds no usable
  // key. `log` gets a line for every reload (or failed reload).
  static absl::StatusOr<std::unique_ptr<JwtVerifier>> Create(
      JwtConfig config, std::function<void(const std::string&)> log);
  ~JwtVerifier();  // Stops the watcher.

  // Checks the JWKS file every config.jwks_check_interval and swaps in its
  // keys when it changed; a file that fails to parse is logged and the last
  // good keys stay in force.
  void StartWatching();

  // The compact-form token (no "Bearer "). On failure, the reason (for the
  // log only).
  absl::StatusOr<VerifiedToken> Verify(absl::string_view token,
                                       absl::Time now) const;

  const JwtConfig& config() const { return config_; }
  uint64_t reloads() const;

 private:
  JwtVerifier(JwtConfig config, std::function<void(const std::string&)> log);
  // Re-reads the file if its size, mtime or inode changed.
  void CheckFile();

  const JwtConfig config_;
  const std::function<void(const std::string&)> log_;
  mutable std::mutex mu_;  // (std: an example, public APIs only)
  std::condition_variable stopped_;
  std::shared_ptr<const JwtKeySet> keys_;
  std::string file_stamp_;
  uint64_t reloads_ = 0;
  bool stop_ = false;
  std::thread watcher_;
};

}  // namespace gateway
}  // namespace mesh

#endif  // EXAMPLES_GATEWAY_JWT_H_
