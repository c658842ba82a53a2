// File: mesh/identity/svid.h
//
// Workload identities: SPIFFE IDs and X.509-SVIDs (the SPIFFE X509-SVID
// specification), checked with the part of the OpenSSL API that BoringSSL
// also has. The agent uses these checks on the files named by
// MeshOptions::identity before it hands them to gRPC, so that a bad
// certificate is refused with a clear error instead of failing handshakes.

#ifndef MESH_IDENTITY_SVID_H_
#define MESH_IDENTITY_SVID_H_

#include <cstdint>
#include <ctime>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mesh {
namespace identity {

// A parsed SPIFFE ID "spiffe://TRUST_DOMAIN/PATH".
struct SpiffeId {
  std::string trust_domain;
  std::string path;  // Starts with '/'; empty for a trust domain's own ID.
  std::string ToString() const {
    return "spiffe://" + trust_domain + path;
  }
};

// Parses a SPIFFE ID: scheme "spiffe", a trust domain of lowercase letters,
// digits, '.', '-' and '_', a path of non-empty segments of letters, digits,
// '.', '-' and '_' (no "." or ".." segment), no query, fragment, port or
// user info, at most 2048 bytes. `require_path`: a workload ID needs one.
absl::StatusOr<SpiffeId> ParseSpiffeId(absl::string_view id,
                                       bool require_path = true);

// What a valid SVID says.
struct SvidInfo {
  SpiffeId id;
  std::string serial_hex;  // The leaf's serial number, uppercase hex.
  time_t not_after = 0;    // Expiry of the leaf (seconds since the epoch).
};

// Checks an X.509-SVID and its key at time `now`:
//   the PEM chain parses (leaf first, then intermediates);
//   the leaf has exactly one URI SAN and it is a SPIFFE ID with a path;
//   the leaf is not a CA; its key usage is present, with digitalSignature
//   and without keyCertSign and cRLSign;
//   it is valid at `now` (not expired, not yet valid);
//   the private key matches it;
//   it chains to a CA in `bundle_pem` (if not empty).
// Each failure names the rule that failed.
absl::StatusOr<SvidInfo> CheckSvid(absl::string_view cert_chain_pem,
                                   absl::string_view private_key_pem,
                                   absl::string_view bundle_pem, time_t now);

// Reads the identity of a peer certificate (the leaf of a PEM chain, e.g.
// grpc::AuthContext's "x509_pem_cert"): its URI SAN must be one SPIFFE ID.
// No chain or time checks (the TLS handshake made them).
absl::StatusOr<SvidInfo> PeerSvid(absl::string_view cert_pem);

// Checks a trust bundle: one or more PEM certificates, each a CA. Returns
// how many there are.
absl::StatusOr<int> CheckBundle(absl::string_view bundle_pem);

}  // namespace identity
}  // namespace mesh

#endif  // MESH_IDENTITY_SVID_H_
