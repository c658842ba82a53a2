// File: mesh/identity/dev_ca.h
//
// A throwaway certificate authority for development, tests and the demo
// (`meshctl dev-certs`): makes a CA and X.509-SVIDs with ECDSA P-256 keys.
// Every field that the SVID rules look at can be set, so that tests can
// make each kind of bad certificate. Not for production: keys live in
// memory and files without protection beyond file modes.

#ifndef MESH_IDENTITY_DEV_CA_H_
#define MESH_IDENTITY_DEV_CA_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace mesh {
namespace identity {

struct Pem {
  std::string cert;  // PEM certificate (the leaf only).
  std::string key;   // PEM private key (PKCS#8).
};

struct LeafOptions {
  std::vector<std::string> uris;  // URI SANs, e.g. {"spiffe://td/ns/a/sa/b"}.
  // DNS SANs, for an ordinary (non-SPIFFE) server certificate, e.g. the
  // gateway's outside-facing one: {"localhost", "api.example.test"}.
  std::vector<std::string> dns_names;
  bool is_ca = false;             // basicConstraints CA:TRUE.
  // keyUsage: "" leaves the extension out; else OpenSSL's syntax, e.g.
  // "critical,digitalSignature,keyEncipherment".
  std::string key_usage = "critical,digitalSignature,keyEncipherment";
  long not_before_offset_s = -3600;  // Relative to now.
  long not_after_offset_s = 24 * 3600;
};

class DevCa {
 public:
  // A self-signed CA named `name` (subject CN).
  static absl::StatusOr<std::unique_ptr<DevCa>> Create(
      const std::string& name);
  ~DevCa();

  const std::string& cert_pem() const { return ca_.cert; }

  // A certificate signed by this CA, with a fresh key and random serial.
  absl::StatusOr<Pem> Issue(const LeafOptions& o) const;

 private:
  DevCa() = default;
  Pem ca_;
  void* key_ = nullptr;   // EVP_PKEY*
  void* cert_ = nullptr;  // X509*
};

}  // namespace identity
}  // namespace mesh

#endif  // MESH_IDENTITY_DEV_CA_H_
