// Mesh::CreateChannel shares one channel per hostname and arguments for the
// Mesh's life. gRPC 1.51's xDS client forgets a resource when its last
// watcher goes and can ask for it again in a request that looks like a
// plain ACK; a new channel then waited for resources that never came
// (under ASan, with a new channel per call while endpoints changed: 1-2 of
// 2000 calls hung until their deadline, in 5 of 6 runs). Real mesh, real
// greeter server on loopback.

#include <atomic>
#include <fstream>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "examples/greeter/greeter.grpc.pb.h"
#include "mesh/mesh.h"
#include "tests/backend.h"
#include "tests/temp_dir.h"

namespace mesh {
namespace {

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path + ".new") << data;
  ASSERT_EQ(rename((path + ".new").c_str(), path.c_str()), 0);
}

// One call on a new stub over m.CreateChannel(hostname): who answered, or
// "error: ...".
std::string Call(Mesh& m, const std::string& hostname, int deadline_ms) {
  auto stub = examples::Greeter::NewStub(m.CreateChannel(hostname));
  grpc::ClientContext ctx;
  ctx.set_wait_for_ready(true);
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(deadline_ms));
  examples::HelloReply reply;
  grpc::Status st = stub->SayHello(&ctx, examples::HelloRequest(), &reply);
  return st.ok() ? reply.instance() : "error: " + st.error_message();
}

class ChannelSharingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_.Start();
    WriteFile(Path(), Config(0));
    MeshOptions o;
    o.config_path = Path();
    o.state_dir = tmp_.path() + "/state";
    o.service_name = "sharing-client";
    o.locality = {"r1", "z1", "c1"};
    o.plaintext = true;
    auto m = Mesh::Create(o);
    ASSERT_TRUE(m.ok()) << m.status();
    mesh_ = std::move(*m);
  }
  std::string Path() const { return tmp_.path() + "/mesh.yaml"; }
  // greeter: instance a here and one far endpoint whose port is `rev` (so
  // each revision changes greeter's endpoints); other: instance a.
  std::string Config(int rev) const {
    return absl::StrCat(
        "apiVersion: mesh/v1\ntrustDomain: example.org\nservices:\n"
        "  - name: greeter\n    hostname: greeter.mesh.internal\n"
        "    endpoints:\n",
        a_.Yaml(), "      - {address: 127.0.0.1, port: ", 20000 + rev % 1000,
        ", locality: {region: r9, zone: z9, cluster: c9}}\n",
        "  - name: other\n    hostname: other.mesh.internal\n"
        "    endpoints:\n",
        a_.Yaml());
  }
  testing::TempDir tmp_{"mesh-sharing"};
  testing::Backend a_{"a", "r1/z1/c1"};
  std::unique_ptr<Mesh> mesh_;
};

TEST_F(ChannelSharingTest, OneChannelPerHostnameAndArguments) {
  auto g = mesh_->CreateChannel("greeter.mesh.internal");
  EXPECT_EQ(mesh_->CreateChannel("greeter.mesh.internal"), g);
  EXPECT_NE(mesh_->CreateChannel("other.mesh.internal"), g);
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 20000);
  auto with_args = mesh_->CreateChannel("greeter.mesh.internal", args);
  EXPECT_NE(with_args, g);
  grpc::ChannelArguments same;
  same.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 20000);
  EXPECT_EQ(mesh_->CreateChannel("greeter.mesh.internal", same), with_args);
  same.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  EXPECT_NE(mesh_->CreateChannel("greeter.mesh.internal", same), with_args);
  // A pointer argument is not comparable by value: a new channel each time.
  grpc::ChannelArguments quota;
  quota.SetResourceQuota(grpc::ResourceQuota("sharing-test"));
  auto q1 = mesh_->CreateChannel("greeter.mesh.internal", quota);
  auto q2 = mesh_->CreateChannel("greeter.mesh.internal", quota);
  EXPECT_NE(q1, q2);
  // Each works.
  for (const auto& ch : {g, with_args, q1, q2}) {
    auto stub = examples::Greeter::NewStub(ch);
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    examples::HelloReply reply;
    EXPECT_TRUE(stub->SayHello(&ctx, examples::HelloRequest(), &reply).ok());
    EXPECT_EQ(reply.instance(), "a");
  }
}

// The case that hung: a channel to another hostname keeps the process's
// xDS client (and its stream) alive, and each call takes a new channel to
// greeter while greeter's endpoints change in bursts. Calls go on until 10
// bursts are written; bounded: 100000 calls or 60 s, and the changes stop
// with the calls.
TEST_F(ChannelSharingTest, NewStubsWhileEndpointsChangeAllAnswer) {
  ASSERT_EQ(Call(*mesh_, "other.mesh.internal", 10000), "a");
  auto other = mesh_->CreateChannel("other.mesh.internal");
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int i = 1; i < 20000 && !stop; ++i) {
      WriteFile(Path(), Config(i));
      written = i;
      // Bursts of 15 changes 1 ms apart, then a pause.
      absl::SleepFor(absl::Milliseconds(i % 15 == 0 ? 300 : 1));
    }
  });
  int calls = 0;
  std::map<std::string, int> got;
  const absl::Time end = absl::Now() + absl::Seconds(60);
  for (; written < 150 && calls < 100000 && absl::Now() < end; ++calls) {
    ++got[Call(*mesh_, "greeter.mesh.internal", 3000)];
  }
  stop = true;
  writer.join();
  std::cout << calls << " calls over " << written << " endpoint changes"
            << std::endl;
  EXPECT_GE(written, 150);
  EXPECT_EQ(got, (std::map<std::string, int>{{"a", calls}}));
  EXPECT_EQ(mesh_->GetStatus().configs_rejected, 0u);
}

}  // namespace
}  // namespace mesh
