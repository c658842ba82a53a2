// Mesh::Create with a bad identity: the agent checks the SVID before
// anything serves, so Create fails with the file and the rule, and leaves
// nothing behind. (Its own binary: gRPC keeps the xDS bootstrap of the
// first Mesh of a process, and the other Create tests use plaintext.)

#include <dirent.h>

#include <fstream>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "mesh/identity/dev_ca.h"
#include "mesh/mesh.h"
#include "tests/temp_dir.h"

namespace mesh {
namespace {

constexpr char kValid[] =
    "apiVersion: mesh/v1\ntrustDomain: example.org\nservices: []\n";

class IdentityCreateTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& yaml) {
    const std::string path = dir_ + "/mesh.yaml";
    std::ofstream(path) << yaml;
    return path;
  }
  testing::TempDir tmp_{"mesh-idcreate"};
  std::string dir_ = tmp_.path();
};

// The agent checks the SVID before anything serves: a bad one fails Create
// with the file and the rule, and leaves nothing behind.
TEST_F(IdentityCreateTest, RefusesABadIdentityWithTheRuleItBreaks) {
  auto ca = identity::DevCa::Create("test CA");
  ASSERT_TRUE(ca.ok());
  identity::LeafOptions expired;
  expired.uris = {"spiffe://example.org/ns/default/sa/a"};
  expired.not_before_offset_s = -7200;
  expired.not_after_offset_s = -60;
  auto pem = (*ca)->Issue(expired);
  ASSERT_TRUE(pem.ok());
  std::ofstream(dir_ + "/a.pem") << pem->cert;
  std::ofstream(dir_ + "/a.key") << pem->key;
  std::ofstream(dir_ + "/ca.pem") << (*ca)->cert_pem();
  MeshOptions o;
  o.config_path = Write(kValid);
  o.runtime_dir = dir_;
  o.identity = {dir_ + "/a.pem", dir_ + "/a.key", {dir_ + "/ca.pem"}};
  auto m = Mesh::Create(o);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.status().message(),
            "identity: " + dir_ +
                "/a.pem: certificate spiffe://example.org/ns/default/sa/a: "
                "has expired (notAfter is in the past)");
  // Another trust domain than the mesh's.
  identity::LeafOptions other_td;
  other_td.uris = {"spiffe://other.org/ns/default/sa/a"};
  pem = (*ca)->Issue(other_td);
  ASSERT_TRUE(pem.ok());
  std::ofstream(dir_ + "/a.pem") << pem->cert;
  std::ofstream(dir_ + "/a.key") << pem->key;
  m = Mesh::Create(o);
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(absl::StrContains(
      m.status().message(),
      "certificate spiffe://other.org/ns/default/sa/a is not in the mesh's "
      "trust domain example.org"))
      << m.status();
  // Nothing left behind: only our own files remain in runtime_dir.
  DIR* d = opendir(dir_.c_str());
  int mesh_dirs = 0;
  while (dirent* e = readdir(d)) {
    mesh_dirs += absl::StartsWith(e->d_name, "mesh-");
  }
  closedir(d);
  EXPECT_EQ(mesh_dirs, 0);
}

}  // namespace
}  // namespace mesh
