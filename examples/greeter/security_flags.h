// Security flags shared by the example programs:
//   --cert=FILE --key=FILE --bundle=FILE (repeatable)   mTLS with this SVID
//   --plaintext                                          no security (dev)

#ifndef MESH_EXAMPLES_GREETER_SECURITY_FLAGS_H_
#define MESH_EXAMPLES_GREETER_SECURITY_FLAGS_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "mesh/mesh.h"

namespace mesh {
namespace examples {

inline constexpr char kSecurityUsage[] =
    "--cert=FILE --key=FILE --bundle=FILE | --plaintext";

// Consumes one security flag into `o`; false if `arg` is not one.
inline bool SecurityFlag(absl::string_view arg, MeshOptions* o) {
  if (arg == "--plaintext") {
    o->plaintext = true;
    return true;
  }
  if (absl::ConsumePrefix(&arg, "--cert=")) {
    o->identity.certificate_path = std::string(arg);
  } else if (absl::ConsumePrefix(&arg, "--key=")) {
    o->identity.private_key_path = std::string(arg);
  } else if (absl::ConsumePrefix(&arg, "--bundle=")) {
    o->identity.trust_bundle_paths.push_back(std::string(arg));
  } else {
    return false;
  }
  return true;
}

}  // namespace examples
}  // namespace mesh

#endif  // MESH_EXAMPLES_GREETER_SECURITY_FLAGS_H_
