// File: mesh/identity/tls.h
//
// mTLS channel credentials for the agent's own connections (active health
// checks) to mesh servers: this workload's identity files as kept by the
// Keeper, and a check that the server presents exactly the expected SPIFFE
// ID. (The application's channels get the same guarantees from gRPC's xDS
// credentials; see mesh.cc.)

#ifndef MESH_IDENTITY_TLS_H_
#define MESH_IDENTITY_TLS_H_

#include <functional>
#include <memory>
#include <string>

#include <grpcpp/security/credentials.h>

namespace mesh {
namespace identity {

// Returns a factory of credentials, all sharing one certificate provider
// over the Keeper's files in `keeper_dir` (re-read every second). Each
// credential accepts only a server whose single URI SAN is `identity`.
std::function<std::shared_ptr<grpc::ChannelCredentials>(
    const std::string& identity)>
MtlsCredentialsFactory(const std::string& keeper_dir);

}  // namespace identity
}  // namespace mesh

#endif  // MESH_IDENTITY_TLS_H_
