// The last-known-good config on disk (MeshOptions::state_dir): saved on
// every apply, used (and reported stale) when the source fails at start,
// replaced as soon as the source answers; a corrupt copy is refused with a
// message. Real mesh processes and greeter servers on loopback.

#include <fstream>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "examples/greeter/greeter.grpc.pb.h"
#include "mesh/config/snapshot.h"
#include "mesh/mesh.h"
#include "mesh/source/last_good.h"
#include "tests/backend.h"
#include "tests/served_by.h"
#include "tests/temp_dir.h"

namespace mesh {
namespace {

using testing::ServedBy;

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path + ".new") << data;
  ASSERT_EQ(rename((path + ".new").c_str(), path.c_str()), 0);
}

TEST(LastGoodFileTest, RoundTripAndCorruption) {
  testing::TempDir tmp("mesh-lkg");
  const std::string dir = tmp.path() + "/state";
  EXPECT_EQ(source::LoadLastGood(dir).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(source::SaveLastGood(dir, "apiVersion: mesh/v1\n", "abc123",
                                   absl::FromUnixSeconds(1700000000))
                  .ok());
  auto lg = source::LoadLastGood(dir);
  ASSERT_TRUE(lg.ok()) << lg.status();
  EXPECT_EQ(lg->text, "apiVersion: mesh/v1\n");
  EXPECT_EQ(lg->version, "abc123");
  EXPECT_EQ(lg->saved, absl::FromUnixSeconds(1700000000));

  // One byte changed in the body.
  std::string data;
  {
    std::ifstream in(source::LastGoodPath(dir));
    data.assign(std::istreambuf_iterator<char>(in), {});
  }
  data.back() = 'X';
  WriteFile(source::LastGoodPath(dir), data);
  lg = source::LoadLastGood(dir);
  EXPECT_EQ(lg.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(lg.status().message(),
            absl::StrCat(source::LastGoodPath(dir),
                         ": the last-known-good config is corrupt (checksum "
                         "mismatch); ignored"));
  WriteFile(source::LastGoodPath(dir), "services: []\n");
  EXPECT_TRUE(absl::StrContains(source::LoadLastGood(dir).status().message(),
                                "corrupt (no header line)"));
}

class LastGoodTest : public ::testing::Test {
 protected:
  std::string Config(const testing::Backend& b) {
    return absl::StrCat(
        "apiVersion: mesh/v1\ntrustDomain: example.org\nservices:\n"
        "  - name: greeter\n    hostname: greeter.mesh.internal\n"
        "    endpoints:\n",
        b.Yaml());
  }
  MeshOptions Options() {
    MeshOptions o;
    o.config_path = tmp_.path() + "/mesh.yaml";
    o.state_dir = tmp_.path() + "/state";
    o.service_name = "lkg-client";
    o.locality = {"r1", "z1", "c1"};
    o.plaintext = true;
    return o;
  }
  testing::TempDir tmp_{"mesh-lkg"};
};

TEST_F(LastGoodTest, StartsStaleFromTheLastGoodCopyAndRefreshes) {
  testing::Backend a("a", "r1/z1/c1"), b("b", "r1/z1/c1");
  a.Start();
  b.Start();
  WriteFile(tmp_.path() + "/mesh.yaml", Config(a));
  std::string first_version;
  {
    auto m = Mesh::Create(Options());
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_FALSE((*m)->GetStatus().config_stale);
    first_version = (*m)->GetStatus().config_version;
    EXPECT_EQ(ServedBy(**m), "a");
  }
  // Saved on apply.
  auto saved = source::LoadLastGood(tmp_.path() + "/state");
  ASSERT_TRUE(saved.ok()) << saved.status();
  EXPECT_EQ(saved->version, first_version);

  // The source is gone at start: the mesh runs on the saved copy, stale.
  ASSERT_EQ(unlink((tmp_.path() + "/mesh.yaml").c_str()), 0);
  auto m = Mesh::Create(Options());
  ASSERT_TRUE(m.ok()) << m.status();
  MeshStatus s = (*m)->GetStatus();
  EXPECT_TRUE(s.config_stale);
  EXPECT_EQ(s.config_version, first_version);
  EXPECT_TRUE(absl::StrContains(s.config_stale_reason, "mesh.yaml"))
      << s.config_stale_reason;
  EXPECT_TRUE(absl::StrContains((*m)->MetricsText(), "mesh_config_stale 1"));
  EXPECT_EQ(ServedBy(**m), "a");

  // The source answers: its config replaces the copy, no longer stale.
  WriteFile(tmp_.path() + "/mesh.yaml", Config(b));
  ASSERT_TRUE((*m)->WaitForStatus(
      [&](const MeshStatus& st) {
        return !st.config_stale && st.config_version != first_version;
      },
      absl::Seconds(10)));
  EXPECT_TRUE(absl::StrContains((*m)->MetricsText(), "mesh_config_stale 0"));
  EXPECT_EQ(testing::AwaitServedBy(**m, "b"), "b");
  // And the new config is the next fallback.
  saved = source::LoadLastGood(tmp_.path() + "/state");
  ASSERT_TRUE(saved.ok());
  EXPECT_EQ(saved->version, (*m)->GetStatus().config_version);
}

TEST_F(LastGoodTest, AnInvalidSourceAlsoFallsBackButACorruptCopyDoesNot) {
  testing::Backend a("a", "r1/z1/c1");
  a.Start();
  ASSERT_TRUE(source::SaveLastGood(tmp_.path() + "/state", Config(a), "v0",
                                   absl::Now())
                  .ok());
  WriteFile(tmp_.path() + "/mesh.yaml", "apiVersion: mesh/v1\nservices: 7\n");
  {
    auto m = Mesh::Create(Options());
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_TRUE((*m)->GetStatus().config_stale);
    EXPECT_TRUE(absl::StrContains((*m)->GetStatus().config_stale_reason,
                                  "services"));
    EXPECT_EQ(ServedBy(**m), "a");
  }
  // Corrupt the copy: no fallback, and the error says both things.
  std::string data;
  {
    std::ifstream in(source::LastGoodPath(tmp_.path() + "/state"));
    data.assign(std::istreambuf_iterator<char>(in), {});
  }
  data[data.size() - 2] ^= 1;
  WriteFile(source::LastGoodPath(tmp_.path() + "/state"), data);
  auto m = Mesh::Create(Options());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(m.status().message(), "services"))
      << m.status().message();
  EXPECT_TRUE(absl::StrContains(m.status().message(),
                                "last-known-good config is corrupt"))
      << m.status().message();
}

TEST_F(LastGoodTest, RapidRewritesEndWithTheLastVersionAppliedAndSaved) {
  testing::Backend a("a", "r1/z1/c1");
  a.Start();
  WriteFile(tmp_.path() + "/mesh.yaml", Config(a));
  auto m = Mesh::Create(Options());
  ASSERT_TRUE(m.ok()) << m.status();
  std::string last;
  for (int i = 1; i <= 1000; ++i) {
    last = absl::StrCat("# rewrite ", i, "\n", Config(a));
    WriteFile(tmp_.path() + "/mesh.yaml", last);
  }
  const std::string want = config::ContentVersion(last);
  EXPECT_TRUE((*m)->WaitForStatus(
      [&](const MeshStatus& s) { return s.config_version == want; },
      absl::Seconds(20)))
      << (*m)->GetStatus().config_version;
  EXPECT_EQ((*m)->GetStatus().configs_rejected, 0u) << "a half-read file";
  auto saved = source::LoadLastGood(tmp_.path() + "/state");
  ASSERT_TRUE(saved.ok());
  EXPECT_EQ(saved->text, last);
  EXPECT_EQ(ServedBy(**m), "a");
}

}  // namespace
}  // namespace mesh
