// Mesh::Create refuses what it cannot do, clearly, and leaves nothing behind:
// no agent process, and the next Create works.

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "mesh/mesh.h"
#include "tests/temp_dir.h"

namespace mesh {
namespace {

class MeshCreateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty());
    dir_ = tmp_.path();
    unsetenv("GRPC_XDS_BOOTSTRAP");
    unsetenv("GRPC_XDS_BOOTSTRAP_CONFIG");
  }
  void TearDown() override {
    unsetenv("GRPC_XDS_BOOTSTRAP");
    unsetenv("GRPC_XDS_BOOTSTRAP_CONFIG");
  }
  std::string Write(const std::string& yaml) {
    const std::string path = dir_ + "/mesh.yaml";
    std::ofstream(path) << yaml;
    return path;
  }

  testing::TempDir tmp_{"mesh-create"};
  std::string dir_;
};

constexpr char kValid[] =
    "apiVersion: mesh/v1\ntrustDomain: example.org\nservices: []\n";

TEST_F(MeshCreateTest, RequiresAConfigPath) {
  auto m = Mesh::Create({});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.status().message(),
            "MeshOptions needs a config source: config_path, etcd.endpoints, "
            "or both");
}

TEST_F(MeshCreateTest, MissingConfigIsNotFound) {
  auto m = Mesh::Create({.config_path = dir_ + "/nope.yaml",
        .plaintext = true});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(m.status().message(),
            dir_ + "/nope.yaml: No such file or directory");
}

TEST_F(MeshCreateTest, InvalidConfigListsEveryProblem) {
  const std::string path =
      Write("apiVersion: mesh/v0\ntrustDomain: Bad\nservices: []\n");
  auto m = Mesh::Create({.config_path = path,
        .plaintext = true});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.status().message(),
            path + ":1:13: apiVersion: must be \"mesh/v1\", got \"mesh/v0\"\n" +
                path +
                ":2:14: trustDomain: must be a SPIFFE trust domain (lowercase "
                "letters, digits, '.', '-', '_'), got \"Bad\"");
  // Nothing is left running: a valid Create works right after.
  auto ok = Mesh::Create({.config_path = Write(kValid),
        .plaintext = true});
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST_F(MeshCreateTest, RefusesABootstrapThatBelongsToSomeoneElse) {
  setenv("GRPC_XDS_BOOTSTRAP_CONFIG", "{\"xds_servers\":[]}", 1);
  auto m = Mesh::Create({.config_path = Write(kValid),
        .plaintext = true});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(m.status().message(),
                                "GRPC_XDS_BOOTSTRAP_CONFIG is already set"))
      << m.status();
  unsetenv("GRPC_XDS_BOOTSTRAP_CONFIG");
  setenv("GRPC_XDS_BOOTSTRAP", "/etc/xds.json", 1);
  m = Mesh::Create({.config_path = Write(kValid),
        .plaintext = true});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(m.status().message(),
                                "GRPC_XDS_BOOTSTRAP is set (/etc/xds.json)"));
}

TEST_F(MeshCreateTest, ReplacesABootstrapInheritedFromAParentMeshProcess) {
  // What a child of a mesh application sees in its environment.
  setenv("GRPC_XDS_BOOTSTRAP_CONFIG",
         "{\"node\":{\"metadata\":{\"mesh_owner_pid\":\"1\"}}}", 1);
  auto m = Mesh::Create({.config_path = Write(kValid),
        .plaintext = true});
  ASSERT_TRUE(m.ok()) << m.status();
  const std::string b = getenv("GRPC_XDS_BOOTSTRAP_CONFIG");
  EXPECT_TRUE(absl::StrContains(
      b, "\"mesh_owner_pid\":\"" + std::to_string(getpid()) + "\""));
  EXPECT_TRUE(absl::StrContains(b, "unix:" + (*m)->runtime_dir()));
  // The socket directory is private.
  struct stat st;
  ASSERT_EQ(stat((*m)->runtime_dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  const std::string dir = (*m)->runtime_dir();
  m->reset();
  // Destruction removes the directory and our bootstrap.
  EXPECT_NE(access(dir.c_str(), F_OK), 0);
  EXPECT_EQ(getenv("GRPC_XDS_BOOTSTRAP_CONFIG"), nullptr);
}

TEST_F(MeshCreateTest, TheAgentHoldsNoneOfTheApplicationsDescriptors) {
  // A descriptor the application opened without O_CLOEXEC (a listening
  // socket, say) must not be kept open by the agent.
  const std::string marker = dir_ + "/marker";
  // At a high number: fds 3 and 4 are replaced by the agent's pipes.
  const int low = open(marker.c_str(), O_CREAT | O_RDWR, 0600);
  ASSERT_GE(low, 0);
  const int fd = fcntl(low, F_DUPFD, 100);  // Without FD_CLOEXEC.
  close(low);
  ASSERT_GE(fd, 100);
  auto m = Mesh::Create({.config_path = Write(kValid),
        .plaintext = true});
  ASSERT_TRUE(m.ok()) << m.status();
  const std::string fds =
      "/proc/" + std::to_string((*m)->GetStatus().control_plane_pid) + "/fd";
  DIR* d = opendir(fds.c_str());
  ASSERT_NE(d, nullptr);
  int count = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char target[4096] = {0};
    (void)!readlink((fds + "/" + e->d_name).c_str(), target,
                    sizeof(target) - 1);
    EXPECT_NE(std::string(target), marker) << "agent holds fd " << e->d_name;
    ++count;
  }
  closedir(d);
  EXPECT_GT(count, 3);  // It did see its own descriptors.
  close(fd);
}

TEST_F(MeshCreateTest, ALaterMeshMustKeepTheFirstOnesNode) {
  // gRPC keeps the first xDS bootstrap for the life of the process.
  auto first = Mesh::Create({.config_path = Write(kValid),
        .plaintext = true});
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string dir = (*first)->runtime_dir();
  first->reset();
  auto other = Mesh::Create({.config_path = Write(kValid),
                             .locality = {"eu-west", "", ""},
        .plaintext = true});
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(other.status().message(),
                                "must use the same service_name, locality"))
      << other.status();
  EXPECT_NE(access(dir.c_str(), F_OK), 0);  // Nothing was re-created.
  // The same node works, on the same socket path gRPC has cached.
  auto again = Mesh::Create({.config_path = Write(kValid),
        .plaintext = true});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->runtime_dir(), dir);
}

TEST_F(MeshCreateTest, ABadAgentPathIsAClearError) {
  auto m = Mesh::Create(
      {.config_path = Write(kValid), .agent_path = "/nonexistent/agent",
        .plaintext = true});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(m.status().message(),
            "cannot start the mesh agent /nonexistent/agent: No such file or "
            "directory");
}

TEST_F(MeshCreateTest, RequiresAnIdentityOrAnExplicitPlaintextMode) {
  auto m = Mesh::Create({.config_path = Write(kValid)});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(m.status().message(),
                                "MeshOptions.identity needs certificate_path"))
      << m.status();
  MeshOptions both;
  both.config_path = Write(kValid);
  both.plaintext = true;
  both.identity.certificate_path = "/x.pem";
  m = Mesh::Create(both);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().message(),
            "MeshOptions: identity and plaintext exclude each other");
}

TEST_F(MeshCreateTest, RefusesANonLoopbackAdminAddress) {
  MeshOptions o;
  o.config_path = Write(kValid);
  o.plaintext = true;
  o.admin_address = "0.0.0.0:0";
  auto m = Mesh::Create(o);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(m.status().message(),
                                "is not a loopback address"))
      << m.status();
  // Nothing is left running: the same Create on loopback works.
  o.admin_address = "127.0.0.1:0";
  m = Mesh::Create(o);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(absl::StartsWith((*m)->admin_address(), "127.0.0.1:"));
}

}  // namespace
}  // namespace mesh
