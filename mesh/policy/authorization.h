// File: mesh/policy/authorization.h
//
// Who may call a mesh server: which service a server listening on an
// address serves (PolicyForServer), and the decision for that service, made
// from its config `authorization` section (Authorizer; docs/security.md).
// The agent works out the policy of every address the application's mesh
// servers listen on and sends it to the application, whose servers evaluate
// it on every call (mesh.cc: the authorization hook behind
// Mesh::ServerCredentials). Where the served service cannot be told, the
// policy denies every call and says why: never a default that allows.

#ifndef MESH_POLICY_AUTHORIZATION_H_
#define MESH_POLICY_AUTHORIZATION_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mesh/config/config.h"

namespace mesh {
namespace policy {

class Authorizer {
 public:
  // Denies everything (used until the first policy arrives).
  Authorizer() = default;

  // The policy of `service` of `config`. A service without an
  // `authorization` section allows any caller in the mesh's trust domain.
  static Authorizer ForService(const config::MeshConfig& config,
                               const config::Service& service);

  // Whether a caller with SPIFFE ID `caller` ("" if it has none) may call
  // `method` ("/package.Service/Method").
  bool Allowed(absl::string_view caller, absl::string_view method) const;

  // One line per rule, for the events pipe; Decode(Encode()) is the same
  // policy.
  std::string Encode() const;
  static absl::StatusOr<Authorizer> Decode(absl::string_view text);

  // For logs and status: "any caller in spiffe://example.org/*" or the rules.
  std::string Describe() const;

 private:
  struct Rule {
    std::vector<std::string> callers;
    std::vector<std::string> methods;  // Empty: any.
  };
  std::vector<Rule> rules_;
};

// What a mesh server knows about itself, to check against what it serves.
struct ServerSelf {
  // What the process says it is (MeshOptions::service_name; "" = nothing).
  std::string service;
  // The SPIFFE ID of its SVID; "" under plaintext (nothing to check).
  std::string identity;
  // Whether the IP literal is an address of this host (for a server
  // listening on a wildcard address). Null: none is.
  std::function<bool(const std::string& ip)> is_local;
  // Listening addresses this server registered as instances of a service
  // ("namespace/name"; mesh/agent/registrar.h): an address no endpoint in
  // the config has yet belongs to that service (its registration is on its
  // way to the config).
  std::map<std::string, std::string> registered;
};

// The policy a mesh server listening on one address enforces.
struct ServerPolicy {
  // As gRPC names the listener: "10.0.0.1:50051", "[::]:50051".
  std::string address;
  // The service it serves, "namespace/name"; "" if that cannot be told.
  std::string service;
  // Why every call is denied (one line), or "" when the server enforces
  // `service`'s policy.
  std::string problem;
  // `service`'s policy; denies every call when `problem` is set.
  Authorizer authorizer;

  // "ADDRESS\tSERVICE\tPROBLEM\n" + Authorizer::Encode(); for the events
  // pipe. Decode(Encode()) is the same policy.
  std::string Encode() const;
  static absl::StatusOr<ServerPolicy> Decode(absl::string_view text);
  // For logs and status: the service and its rules, or the problem.
  std::string Describe() const;
};

// The policy of a mesh server listening on `address` (IP:PORT, [IPv6]:PORT;
// a wildcard IP stands for every address of this host, `self.is_local`).
// The served service is the one that has an endpoint at that address. Every
// call is denied (ServerPolicy::problem says why) when:
//   - no service has an endpoint there, or several services do;
//   - `self.identity` is set and is not the served service's identity (its
//     config `identity`, or the default);
//   - `self.service` is set, names another service than the served one, and
//     that service is not in the config or has another identity (a process
//     may serve several services only if they share its identity).
ServerPolicy PolicyForServer(const config::MeshConfig& config,
                             absl::string_view address,
                             const ServerSelf& self);

// "IP:PORT" / "[IPv6]:PORT" split into the IP (in its canonical text form)
// and the port; false if `address` is not one.
bool SplitAddress(absl::string_view address, std::string* ip, uint32_t* port);

// Whether `ip` (a literal) is an address of this host: one a socket can be
// bound to (a system call; for ServerSelf::is_local).
bool IsLocalAddress(const std::string& ip);

}  // namespace policy
}  // namespace mesh

#endif  // MESH_POLICY_AUTHORIZATION_H_
