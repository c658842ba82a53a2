// File: mesh/source/last_good.h
//
// The last-known-good config on disk: every config the agent applies is
// saved (write, fsync, rename) to STATE_DIR/last-good.yaml, with a header
// line carrying a SHA-256 of the rest, the version and the time. When the
// config source cannot be read or fails validation at start, the agent
// starts from this copy instead, and says the running config is stale until
// the source answers with a valid config. A file whose checksum does not
// match is reported and ignored.

#ifndef MESH_SOURCE_LAST_GOOD_H_
#define MESH_SOURCE_LAST_GOOD_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace mesh {
namespace source {

struct LastGood {
  std::string text;     // The config file text, as applied.
  std::string version;  // Its version when it was applied.
  absl::Time saved;
};

// STATE_DIR/last-good.yaml.
std::string LastGoodPath(const std::string& state_dir);

// Saves `text` (applied as `version`), atomically. Creates `state_dir`
// (mode 0700) if needed.
absl::Status SaveLastGood(const std::string& state_dir,
                          const std::string& text, const std::string& version,
                          absl::Time now);

// Reads it back. NotFound if there is none; DataLoss (naming the file and
// what is wrong) if it is truncated, altered or not ours.
absl::StatusOr<LastGood> LoadLastGood(const std::string& state_dir);

}  // namespace source
}  // namespace mesh

#endif  // MESH_SOURCE_LAST_GOOD_H_
