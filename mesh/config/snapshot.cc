#include "mesh/config/snapshot.h"

#include <openssl/evp.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace mesh {
namespace config {

std::string Sha256Hex(absl::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) !=
      1) {
    return "unknown";
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(md), len));
}

std::string ContentVersion(absl::string_view data) {
  return Sha256Hex(data).substr(0, 12);
}

std::string Snapshot::ServingVersion() const {
  return health_generation == 0
             ? version
             : absl::StrCat(version, "+h", health_generation);
}

absl::StatusOr<std::shared_ptr<const Snapshot>> MakeSnapshot(
    absl::string_view data, absl::string_view source) {
  absl::StatusOr<std::shared_ptr<const MeshConfig>> cfg =
      ParseConfig(data, source);
  if (!cfg.ok()) return cfg.status();
  auto snap = std::make_shared<Snapshot>();
  snap->version = ContentVersion(data);
  snap->config = *std::move(cfg);
  return std::shared_ptr<const Snapshot>(std::move(snap));
}

}  // namespace config
}  // namespace mesh
