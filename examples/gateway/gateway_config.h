// File: examples/gateway/gateway_config.h
//
// The gateway's own config (docs/gateway.md): where it listens for callers
// from outside the mesh, how it authenticates them, which mesh hostname each
// call goes to, and the per-client limits. YAML:
//
//   listen: 0.0.0.0:8443
//   tls: {certificate: server.pem, privateKey: server.key}  # or plaintext: true
//   apiKeys:
//     - {client: partner-a, sha256: <hex SHA-256 of the key>}
//   jwt: {jwksFile: jwks.json, issuer: https://login.example.test,
//         audiences: [api.example.test], clockSkewSeconds: 60,
//         claimHeaders: {sub: x-jwt-sub}, forwardToken: false}
//   routes:
//     - {host: api.example.test, methodPrefix: /pkg.Svc/,
//        destination: greeter.mesh.internal, requiredScopes: [greet]}
//   limits: {maxMessageBytes: 4194304, maxStreamsPerClient: 100,
//            callsPerSecondPerClient: 50, burstPerClient: 100}
//
// Secure unless told otherwise: plaintext and unauthenticated callers must
// each be asked for by name (`plaintext: true`, `allowUnauthenticated:
// true`).

#ifndef EXAMPLES_GATEWAY_GATEWAY_CONFIG_H_
#define EXAMPLES_GATEWAY_GATEWAY_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "examples/gateway/jwt.h"

namespace mesh {
namespace gateway {

struct Route {
  // The call's :authority without its port, lower case: an exact name,
  // "*.example.test" (any name ending in ".example.test") or "*" (any).
  std::string host;
  // Calls whose method ("/package.Service/Method") starts with this; ""
  // matches every method.
  std::string method_prefix;
  std::string destination;  // A mesh hostname, e.g. "greeter.mesh.internal".
  // Scopes the caller's JWT must all carry (its `scope` or `scp` claim);
  // callers without one (API key) are refused with PERMISSION_DENIED.
  std::vector<std::string> required_scopes;
  int line = 0;             // Where it was defined, for messages.
};

struct ApiKey {
  std::string client;      // The caller's name (limits, logs, metadata).
  std::string sha256_hex;  // SHA-256 of the key, 64 lower-case hex digits.
};

struct Limits {
  // Largest request or response message; larger ones fail the call with
  // RESOURCE_EXHAUSTED.
  int64_t max_message_bytes = 4 * 1024 * 1024;
  // Calls one client may have open at once (RESOURCE_EXHAUSTED beyond).
  int max_streams_per_client = 100;
  // Calls per second one client may start, with bursts up to
  // burst_per_client (RESOURCE_EXHAUSTED beyond). 0 = no rate limit.
  double calls_per_second_per_client = 0;
  double burst_per_client = 0;  // 0 = calls_per_second_per_client (min 1).
};

struct GatewayConfig {
  std::string listen;  // "HOST:PORT"; port 0 picks a free one.
  // TLS with an ordinary server certificate (PEM files), unless plaintext.
  std::string tls_certificate;
  std::string tls_private_key;
  bool plaintext = false;
  // Callers must present one of these in the `x-api-key` metadata, unless
  // allow_unauthenticated (then callers are told apart by IP address).
  std::vector<ApiKey> api_keys;
  // Or (and) a JWT in `authorization: Bearer ...`, if has_jwt.
  bool has_jwt = false;
  JwtConfig jwt;
  bool allow_unauthenticated = false;
  std::vector<Route> routes;  // First match wins.
  Limits limits;
};

// Parses and validates; `name` (the file name) prefixes every message, with
// the line: "gateway.yaml:12: routes[1].destination: required".
absl::StatusOr<GatewayConfig> ParseGatewayConfig(absl::string_view yaml,
                                                 const std::string& name);
absl::StatusOr<GatewayConfig> LoadGatewayConfig(const std::string& path);

// The whole of a file (the config, certificates, the JWKS), or NotFound
// "PATH: cannot read".
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Lower-case hex SHA-256 of `data` (for API keys).
std::string Sha256Hex(absl::string_view data);

}  // namespace gateway
}  // namespace mesh

#endif  // EXAMPLES_GATEWAY_GATEWAY_CONFIG_H_
