// File: mesh/config/snapshot.h
//
// A Snapshot is one validated, immutable, versioned mesh config: the unit that
// flows from a config source to the control plane. Readers hold a
// std::shared_ptr<const Snapshot> and never lock; a new config is a new
// Snapshot, swapped in by pointer.

#ifndef MESH_CONFIG_SNAPSHOT_H_
#define MESH_CONFIG_SNAPSHOT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mesh/config/config.h"

namespace mesh {
namespace config {

struct Snapshot {
  // The first 12 hex digits of the SHA-256 of the source bytes: the same file
  // gives the same version on every machine and after a restart.
  std::string version;
  std::shared_ptr<const MeshConfig> config;
  // Results of active health checks; empty when none are configured.
  HealthOverrides health;
  // Counts changes of `health` under the same config.
  uint64_t health_generation = 0;

  // The version served to xDS clients: `version`, plus "+h<generation>"
  // once health checks have changed something, so that a health change is
  // a new xDS version while `version` keeps naming the config file.
  std::string ServingVersion() const;
};

// Hex SHA-256 of `data` (64 digits).
std::string Sha256Hex(absl::string_view data);
// Hex SHA-256 prefix of `data` (12 digits).
std::string ContentVersion(absl::string_view data);

// Parses and validates `data` into a Snapshot (see ParseConfig for errors);
// `source` names it in messages.
absl::StatusOr<std::shared_ptr<const Snapshot>> MakeSnapshot(
    absl::string_view data, absl::string_view source);

}  // namespace config
}  // namespace mesh

#endif  // MESH_CONFIG_SNAPSHOT_H_
