// File: mesh/config/config.h
//
// The mesh configuration model (schema "mesh/v1") and its loader. A config is
// parsed from YAML, validated completely (every problem is reported, each with
// file:line:column and the field path), and only then turned into an immutable
// value. Nothing here touches the network or gRPC; see docs/config.md for the
// schema users write.

#ifndef MESH_CONFIG_CONFIG_H_
#define MESH_CONFIG_CONFIG_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mesh {
namespace config {

// Where a workload runs. `cluster` is the finest level; in xDS terms it is the
// locality's sub_zone. An empty field means "unknown" and only matches at the
// coarser levels.
struct Locality {
  std::string region;
  std::string zone;
  std::string cluster;

  // "region/zone/cluster", with empty parts left empty.
  std::string ToString() const;
  bool operator==(const Locality& o) const {
    return region == o.region && zone == o.zone && cluster == o.cluster;
  }
  bool operator<(const Locality& o) const;
};

enum class Health {
  kHealthy,    // Serves traffic.
  kUnhealthy,  // Known bad: sent to no caller.
  kDraining,   // Being taken out: no new traffic.
};

struct Endpoint {
  std::string address;  // IPv4 or IPv6 literal.
  uint32_t port = 0;
  Locality locality;
  uint32_t weight = 1;
  Health health = Health::kHealthy;
  std::map<std::string, std::string> labels;
  int line = 0;  // 1-based line in the source file, for messages.
};

struct Service {
  std::string name;
  std::string namespace_name = "default";
  // The virtual destination, e.g. "app1.mesh.internal".
  std::string hostname;
  // Optional port of the virtual destination. When set, channels may also be
  // created for "hostname:port". 0 = not set.
  uint32_t port = 0;
  std::vector<Endpoint> endpoints;
};

// A validated configuration. Immutable once built; shared by pointer.
struct MeshConfig {
  std::string trust_domain;
  std::vector<Service> services;

  // Returns the service whose hostname (or "hostname:port") is `authority`,
  // or nullptr.
  const Service* FindByAuthority(absl::string_view authority) const;
};

// Hard limits on input, so that hostile files cannot exhaust the host.
inline constexpr size_t kMaxConfigBytes = 16 << 20;

// Parses and validates `yaml`. `filename` is used only in messages. On
// failure the status is InvalidArgument and its message lists every problem,
// one per line, as "FILE:LINE:COL: FIELD.PATH: what is wrong".
absl::StatusOr<std::shared_ptr<const MeshConfig>> ParseConfig(
    absl::string_view yaml, absl::string_view filename);

// Reads `path` (at most kMaxConfigBytes) and calls ParseConfig. Errors reading
// the file are NotFound / PermissionDenied / FailedPrecondition with the path.
absl::StatusOr<std::shared_ptr<const MeshConfig>> LoadConfigFile(
    const std::string& path);

// Reads a whole file (at most `max_bytes`), with errors that name the path.
absl::StatusOr<std::string> ReadFileToString(const std::string& path,
                                             size_t max_bytes);

}  // namespace config
}  // namespace mesh

#endif  // MESH_CONFIG_CONFIG_H_
