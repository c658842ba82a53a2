// File: mesh/xds/names.h
//
// Names shared by the translation (agent) and the application's bootstrap
// (mesh.cc), kept apart so the application does not link the xDS protos.

#ifndef MESH_XDS_NAMES_H_
#define MESH_XDS_NAMES_H_

#include "absl/strings/string_view.h"

namespace mesh {
namespace xds {

// The certificate provider instances (in the application's xDS bootstrap:
// file_watchers over the identity files the agent keeps) that TLS contexts
// name: one for this workload's certificate and key, one for the trust
// bundle. Two instances rather than one: gRPC 1.51.1's file_watcher, when
// one instance is watched for both, logs a spurious "Unable to get latest
// root certificates" error on every new connection.
inline constexpr absl::string_view kIdentityProviderInstance = "mesh-identity";
inline constexpr absl::string_view kRootsProviderInstance = "mesh-roots";
// The node metadata key by which an application says it has them ("true"):
// without them, mTLS contexts would be NACKed.
inline constexpr absl::string_view kMtlsMetadataKey = "mesh_mtls";

}  // namespace xds
}  // namespace mesh

#endif  // MESH_XDS_NAMES_H_
