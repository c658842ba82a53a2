// File: mesh/policy/authorization.h
//
// Who may call a mesh server: the decision for one service, made from its
// config `authorization` section (docs/security.md). The agent compiles it
// for the service the application serves and sends it to the application,
// whose servers evaluate it on every call (mesh.cc: the authorization hook
// behind Mesh::ServerCredentials).

#ifndef MESH_POLICY_AUTHORIZATION_H_
#define MESH_POLICY_AUTHORIZATION_H_

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

  // The policy of `service` ("name" or "namespace/name") in `config`. A
  // service without an `authorization` section, or one the config does not
  // name, allows any caller in the mesh's trust domain.
  static Authorizer ForService(const config::MeshConfig& config,
                               absl::string_view service);

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

}  // namespace policy
}  // namespace mesh

#endif  // MESH_POLICY_AUTHORIZATION_H_
