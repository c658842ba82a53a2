// End to end: a Mesh in this process (caller in us-east/us-east-a/cluster-1)
// and real greeter servers on loopback in four localities. Shows that only
// the closest locality serves while healthy, that failover and failback lose
// no call, that config edits take effect and bad ones are rejected with the
// old routing kept, and that a lost control plane is restarted.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <stdio.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <map>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_replace.h"
#include "examples/greeter/greeter_service.h"
#include "mesh/config/snapshot.h"
#include "mesh/mesh.h"
#include "tests/backend.h"
#include "tests/free_port.h"
#include "tests/slow_proxy.h"
#include "tests/temp_dir.h"
#include "mesh/common/sync.h"

namespace mesh {
namespace {

using examples::Greeter;
using examples::GreeterService;
using testing::Backend;
using examples::HelloReply;
using examples::HelloRequest;

constexpr char kHost[] = "greeter.mesh.internal";
constexpr char kC1[] = "us-east/us-east-a/cluster-1";
constexpr char kC2[] = "us-east/us-east-b/cluster-2";
constexpr char kC3[] = "eu-west/eu-west-a/cluster-3";

class MeshE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new testing::TempDir("mesh-e2e");
    ASSERT_FALSE(tmp_->path().empty());
    dir_ = new std::string(tmp_->path());
    grpc::EnableDefaultHealthCheckService(true);
    c1a_ = new Backend("c1a", kC1);
    c1b_ = new Backend("c1b", kC1);
    c2_ = new Backend("c2", kC2);
    c3_ = new Backend("c3", kC3);
    for (Backend* b : {c1a_, c1b_, c2_, c3_}) b->Start();
    WriteConfig(BaseConfig());
    auto m = Mesh::Create({.config_path = *dir_ + "/mesh.yaml",
                           .service_name = "e2e-client",
                           .locality = {"us-east", "us-east-a", "cluster-1"},
        .plaintext = true});
    ASSERT_TRUE(m.ok()) << m.status();
    mesh_ = m->release();
    stub_ = Greeter::NewStub(mesh_->CreateChannel(kHost)).release();
    // A channel subscribes to its resources on its first call.
    ASSERT_TRUE(AwaitServedBy(kC1));
  }
  static void TearDownTestSuite() {
    delete stub_;
    delete mesh_;
    for (Backend* b : {c1a_, c1b_, c2_, c3_}) delete b;
    delete dir_;
    delete tmp_;
  }

  // Every test starts from all backends up, the base config applied and
  // cluster-1 serving.
  void SetUp() override {
    ASSERT_NE(mesh_, nullptr);
    for (Backend* b : {c1a_, c1b_, c2_, c3_}) {
      b->Start();
      b->SetServing(true);
    }
    Apply(BaseConfig());
    ASSERT_TRUE(AwaitServedBy(kC1));
  }

  static std::string BaseConfig(const std::string& c1_extra = "") {
    return absl::StrCat(
        "apiVersion: mesh/v1\ntrustDomain: example.org\nservices:\n"
        "  - name: greeter\n    hostname: ", kHost, "\n    endpoints:\n",
        c1a_->Yaml(c1_extra), c1b_->Yaml(c1_extra), c2_->Yaml(),
        c3_->Yaml());
  }

  static void WriteConfig(const std::string& yaml) {
    const std::string path = *dir_ + "/mesh.yaml";
    {
      std::ofstream f(path + ".tmp", std::ios::trunc);
      f << yaml;
    }
    ASSERT_EQ(rename((path + ".tmp").c_str(), path.c_str()), 0);
  }

  // Writes `yaml` and waits until this process's gRPC client has applied
  // it completely (MeshStatus::applied_version).
  static void Apply(const std::string& yaml) {
    WriteConfig(yaml);
    const std::string v = config::ContentVersion(yaml);
    ASSERT_TRUE(mesh_->WaitForStatus(
        [&](const MeshStatus& s) {
          return s.config_version == v &&
                 (s.applied_version == v ||
                  absl::StartsWith(s.applied_version, v + "+h"));
        },
        absl::Seconds(10)))
        << "config " << v << " not applied; status: config "
        << mesh_->GetStatus().config_version << ", applied "
        << mesh_->GetStatus().applied_version << ", last error: "
        << mesh_->GetStatus().last_error;
  }

  // One call; returns the serving locality, or "ERROR <code> <message>".
  static std::string Call() {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    HelloRequest req;
    req.set_name("e2e");
    HelloReply reply;
    grpc::Status st = stub_->SayHello(&ctx, req, &reply);
    if (!st.ok()) {
      return absl::StrCat("ERROR ", st.error_code(), " ", st.error_message());
    }
    return reply.locality();
  }

  // Calls until one is served by `locality` (at most 20 s; failover after
  // an outlier ejection may take its 5 s ejection time).
  static bool AwaitServedBy(const std::string& locality) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (absl::Now() < deadline) {
      if (Call() == locality) return true;
    }
    return false;
  }

  // Calls until `n` consecutive calls are served by `locality` (at most
  // 20 s).
  static bool AwaitOnly(const std::string& locality, int n) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    int run = 0;
    while (run < n && absl::Now() < deadline) {
      run = Call() == locality ? run + 1 : 0;
    }
    return run >= n;
  }

  static std::map<std::string, int> CallMany(int n) {
    std::map<std::string, int> out;
    for (int i = 0; i < n; ++i) ++out[Call()];
    return out;
  }

  // Locality counts over `n` calls, once `locality` has served a call (so
  // the new EDS is in force). Printed for the record.
  static std::map<std::string, int> SharesAfter(const std::string& locality,
                                                int n) {
    if (!AwaitServedBy(locality)) return {{"never served by " + locality, 1}};
    std::map<std::string, int> got = CallMany(n);
    std::cout << "observed over " << n
              << " calls: " << ::testing::PrintToString(got) << std::endl;
    return got;
  }

  // Calls continuously on another thread until stopped (bounded: at most
  // 100000 calls or 60 s), counting results.
  class Load {
   public:
    Load() {
      thread_ = std::thread([this] {
        const absl::Time end = absl::Now() + absl::Seconds(60);
        for (int i = 0; i < 100000 && !stop_ && absl::Now() < end; ++i) {
          const std::string r = Call();
          internal::MutexLock l(&mu_);
          ++results_[r];
        }
      });
    }
    std::map<std::string, int> Stop() {
      stop_ = true;
      thread_.join();
      internal::MutexLock l(&mu_);
      return results_;
    }

   private:
    std::atomic<bool> stop_{false};
    std::thread thread_;
    internal::Mutex mu_;
    std::map<std::string, int> results_;
  };

  static int Failures(const std::map<std::string, int>& results) {
    int n = 0;
    for (const auto& [k, v] : results) {
      if (absl::StartsWith(k, "ERROR")) n += v;
    }
    return n;
  }

  static testing::TempDir* tmp_;
  static std::string* dir_;
  static Backend *c1a_, *c1b_, *c2_, *c3_;
  static Mesh* mesh_;
  static Greeter::Stub* stub_;
};

testing::TempDir* MeshE2eTest::tmp_;
std::string* MeshE2eTest::dir_;
Backend *MeshE2eTest::c1a_, *MeshE2eTest::c1b_, *MeshE2eTest::c2_,
    *MeshE2eTest::c3_;
Mesh* MeshE2eTest::mesh_;
Greeter::Stub* MeshE2eTest::stub_;

TEST_F(MeshE2eTest, OnlyTheLocalClusterServesWhileHealthy) {
  EXPECT_EQ(CallMany(200), (std::map<std::string, int>{{kC1, 200}}));
  const MeshStatus s = mesh_->GetStatus();
  EXPECT_TRUE(s.control_plane_running);
  EXPECT_EQ(s.nacks, 0u);
  // The xDS version gRPC accepted is this config's (plus "+hN" if health
  // checks changed something earlier).
  EXPECT_TRUE(absl::StartsWith(s.applied_version, s.config_version))
      << s.applied_version << " vs " << s.config_version;
}

TEST_F(MeshE2eTest, FailsOverToTheSameRegionWithoutAFailedCall) {
  Load load;
  c1a_->Stop();
  c1b_->Stop();
  ASSERT_TRUE(AwaitServedBy(kC2));
  std::map<std::string, int> during = load.Stop();
  EXPECT_EQ(Failures(during), 0) << ::testing::PrintToString(during);
  EXPECT_EQ(during.count(kC3), 0u);  // Same region (P1) before elsewhere.
  EXPECT_EQ(CallMany(100), (std::map<std::string, int>{{kC2, 100}}));
}

TEST_F(MeshE2eTest, FailsOverFurtherWhenTheRegionIsDown) {
  c1a_->Stop();
  c1b_->Stop();
  c2_->Stop();
  Load load;
  ASSERT_TRUE(AwaitServedBy(kC3));
  std::map<std::string, int> during = load.Stop();
  EXPECT_EQ(Failures(during), 0) << ::testing::PrintToString(during);
  EXPECT_EQ(CallMany(100), (std::map<std::string, int>{{kC3, 100}}));
}

TEST_F(MeshE2eTest, TrafficReturnsWhenTheLocalClusterRestarts) {
  c1a_->Stop();
  c1b_->Stop();
  ASSERT_TRUE(AwaitServedBy(kC2));
  Load load;
  c1a_->Start();
  c1b_->Start();
  ASSERT_TRUE(AwaitServedBy(kC1));
  std::map<std::string, int> during = load.Stop();
  EXPECT_EQ(Failures(during), 0) << ::testing::PrintToString(during);
  EXPECT_EQ(CallMany(100), (std::map<std::string, int>{{kC1, 100}}));
}

TEST_F(MeshE2eTest, ConfigEditTakesEffectWithoutAFailedCall) {
  Load load;
  Apply(BaseConfig(", health: UNHEALTHY"));
  ASSERT_TRUE(AwaitServedBy(kC2));
  std::map<std::string, int> during = load.Stop();
  EXPECT_EQ(Failures(during), 0) << ::testing::PrintToString(during);
  EXPECT_EQ(CallMany(100), (std::map<std::string, int>{{kC2, 100}}));
}

TEST_F(MeshE2eTest, BadEditIsRejectedAndTheOldRoutingKeepsWorking) {
  const MeshStatus before = mesh_->GetStatus();
  // Would drain cluster-1, but the file is invalid: nothing of it applies.
  WriteConfig(absl::StrReplaceAll(BaseConfig(", health: UNHEALTHY"),
                                  {{"apiVersion: mesh/v1", "apiVersion: v9"}}));
  ASSERT_TRUE(mesh_->WaitForStatus(
      [&](const MeshStatus& s) {
        return s.configs_rejected == before.configs_rejected + 1;
      },
      absl::Seconds(10)));
  const MeshStatus after = mesh_->GetStatus();
  EXPECT_EQ(after.config_version, before.config_version);
  EXPECT_EQ(after.last_error,
            absl::StrCat("config rejected, keeping version ",
                         before.config_version, ":\n", *dir_,
                         "/mesh.yaml:1:13: apiVersion: must be \"mesh/v1\", "
                         "got \"v9\""));
  EXPECT_EQ(CallMany(100), (std::map<std::string, int>{{kC1, 100}}));
}

TEST_F(MeshE2eTest, UnknownHostnameFailsWithUnavailable) {
  auto stub = Greeter::NewStub(mesh_->CreateChannel("nope.mesh.internal"));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  HelloReply reply;
  grpc::Status st = stub->SayHello(&ctx, HelloRequest(), &reply);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE)
      << st.error_message();
  EXPECT_TRUE(absl::StrContains(
      st.error_message(), "could not find VirtualHost for nope.mesh.internal"))
      << st.error_message();
}

TEST_F(MeshE2eTest, ASecondMeshInTheProcessIsAClearError) {
  auto m = Mesh::Create({.config_path = *dir_ + "/mesh.yaml",
        .plaintext = true});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(m.status().message(), "already alive"));
}

TEST_F(MeshE2eTest, ALostControlPlaneIsRestartedAndCallsKeepFlowing) {
  const MeshStatus before = mesh_->GetStatus();
  ASSERT_GT(before.control_plane_pid, 0);
  Load load;
  ASSERT_EQ(kill(static_cast<pid_t>(before.control_plane_pid), SIGKILL), 0);
  ASSERT_TRUE(mesh_->WaitForStatus(
      [&](const MeshStatus& s) {
        return s.control_plane_restarts == before.control_plane_restarts + 1 &&
               s.control_plane_running;
      },
      absl::Seconds(10)));
  // The restarted agent serves edits to the same, reconnected, client.
  Apply(BaseConfig(", health: UNHEALTHY"));
  ASSERT_TRUE(AwaitServedBy(kC2));
  std::map<std::string, int> during = load.Stop();
  EXPECT_EQ(Failures(during), 0) << ::testing::PrintToString(during);
  EXPECT_TRUE(absl::StrContains(mesh_->GetStatus().last_error,
                                "the mesh agent exited (signal 9)"));
}

TEST_F(MeshE2eTest, PartialOutageSpillsTheComputedShareToTheNextLocality) {
  // cluster-1: 2 of 4 endpoints healthy (2 are marked UNHEALTHY) -> health
  // = 50 % x 1.4 = 70: 70 % stays, 30 % spills to the same region.
  Apply(absl::StrCat(
      BaseConfig(),
      "      - {address: 127.0.0.1, port: 1, health: UNHEALTHY, locality: "
      "{region: us-east, zone: us-east-a, cluster: cluster-1}}\n"
      "      - {address: 127.0.0.1, port: 2, health: UNHEALTHY, locality: "
      "{region: us-east, zone: us-east-a, cluster: cluster-1}}\n"));
  std::map<std::string, int> got = SharesAfter(kC2, 3000);
  EXPECT_EQ(Failures(got), 0);
  EXPECT_EQ(got.count(kC3), 0u);
  // The library explains the split it computed for this workload.
  std::string explained;
  EXPECT_TRUE(mesh_->WaitForStatus(
      [&](const MeshStatus&) {
        absl::StatusOr<std::string> e = mesh_->Explain(kHost);
        explained = e.ok() ? *e : std::string(e.status().message());
        return absl::StrContains(
            explained, "priority 0: spillover: same cluster 70%, same "
                       "region 30%");
      },
      absl::Seconds(10)))
      << explained;
  EXPECT_EQ(mesh_->Explain("nope.mesh.internal").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(*mesh_->Explain(absl::StrCat(kHost, ":8080")),
            *mesh_->Explain(kHost));
  EXPECT_NEAR(got[kC1] * 100.0 / 3000, 70, 5) << ::testing::PrintToString(got);
  EXPECT_NEAR(got[kC2] * 100.0 / 3000, 30, 5) << ::testing::PrintToString(got);
}

TEST_F(MeshE2eTest, ZoneAwareRoutingMatchesItsComputedSplit) {
  // Callers (this service, e2e-client): 2 in us-east-a, 2 in us-east-b.
  // Destination: 1 in us-east-a (c1a), 3 in us-east-b (c2 + 2 more).
  // us-east-a has 25 % of the capacity for 50 % of the callers: 50 % stays
  // local, 50 % goes to us-east-b.
  Backend b2("c2-b", kC2), b3("c2-c", kC2);
  b2.Start();
  b3.Start();
  const std::string own =
      "  - name: e2e-client\n    hostname: e2e-client.mesh.internal\n"
      "    endpoints:\n"
      "      - {address: 10.0.0.1, port: 1, locality: {region: us-east, zone: "
      "us-east-a, cluster: cluster-1}}\n"
      "      - {address: 10.0.0.2, port: 1, locality: {region: us-east, zone: "
      "us-east-a, cluster: cluster-1}}\n"
      "      - {address: 10.0.0.3, port: 1, locality: {region: us-east, zone: "
      "us-east-b, cluster: cluster-2}}\n"
      "      - {address: 10.0.0.4, port: 1, locality: {region: us-east, zone: "
      "us-east-b, cluster: cluster-2}}\n";
  Apply(absl::StrCat(
      "apiVersion: mesh/v1\ntrustDomain: example.org\nservices:\n"
      "  - name: greeter\n    hostname: ", kHost,
      "\n    localityPolicy: {zoneAware: {minEndpoints: 4}}\n"
      "    endpoints:\n",
      c1a_->Yaml(), c2_->Yaml(), b2.Yaml(), b3.Yaml(), c3_->Yaml(), own));
  std::map<std::string, int> got = SharesAfter(kC2, 3000);
  EXPECT_EQ(Failures(got), 0);
  EXPECT_EQ(got.count(kC3), 0u);
  EXPECT_NEAR(got[kC1] * 100.0 / 3000, 50, 5) << ::testing::PrintToString(got);
  EXPECT_NEAR(got[kC2] * 100.0 / 3000, 50, 5) << ::testing::PrintToString(got);
}

TEST_F(MeshE2eTest, HealthChecksMoveTrafficOffANotServingBackend) {
  // The port stays open and calls would succeed: only grpc.health.v1 says
  // NOT_SERVING. With a 200 ms interval and a threshold of 1, cluster-1
  // leaves the caller's routing within about one interval.
  Apply(absl::StrReplaceAll(
      BaseConfig(),
      {{"    endpoints:\n",
        "    healthCheck: {interval: 200ms, timeout: 100ms, "
        "healthyThreshold: 1, unhealthyThreshold: 1}\n    endpoints:\n"}}));
  ASSERT_TRUE(AwaitServedBy(kC1));
  const uint64_t changes = mesh_->GetStatus().health_changes;
  Load load;
  c1a_->SetServing(false);
  c1b_->SetServing(false);
  const absl::Time start = absl::Now();
  // Both are marked (one check each, a few ms apart; in between cluster-1
  // is half healthy and rightly keeps 70 %)...
  ASSERT_TRUE(mesh_->WaitForStatus(
      [&](const MeshStatus& s) { return s.health_changes >= changes + 2; },
      absl::Seconds(10)));
  // ...and the routing without them is in force.
  ASSERT_TRUE(AwaitOnly(kC2, 20));
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(CallMany(100), (std::map<std::string, int>{{kC2, 100}}));
  std::cout << "NOT_SERVING to traffic moved: " << took << std::endl;
  EXPECT_LT(took, absl::Seconds(2));
  const MeshStatus s = mesh_->GetStatus();
  EXPECT_EQ(s.health_changes, changes + 2);
  EXPECT_TRUE(absl::StrContains(s.last_health_change,
                                "is UNHEALTHY: 1 failed health check(s), "
                                "last: NOT_SERVING"))
      << s.last_health_change;
  c1a_->SetServing(true);
  c1b_->SetServing(true);
  ASSERT_TRUE(AwaitServedBy(kC1));
  std::map<std::string, int> during = load.Stop();
  EXPECT_EQ(Failures(during), 0) << ::testing::PrintToString(during);
}

// --- Routing rules -----------------------------------------------------------

// The greeter with subsets v1 (c1a, c2, c3) and v2 (c1b) and `routes`.
std::string RoutingConfig(const std::string& routes) {
  return absl::StrCat(
      "apiVersion: mesh/v1\ntrustDomain: example.org\nservices:\n"
      "  - name: greeter\n    hostname: greeter.mesh.internal\n"
      "    subsets:\n"
      "      - {name: v1, labels: {version: v1}}\n"
      "      - {name: v2, labels: {version: v2}}\n"
      "    routes:\n",
      routes, "    endpoints:\n");
}

struct Reply {
  std::string instance;  // Or "ERROR <code>".
  absl::Duration took;
};

// One call through `stub` (SayGoodbye if `goodbye`), with `headers`.
Reply CallRoute(Greeter::Stub* stub, bool goodbye,
                const std::map<std::string, std::string>& headers,
                const std::string& name = "e2e",
                absl::Duration deadline = absl::Seconds(5)) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  for (const auto& [k, v] : headers) ctx.AddMetadata(k, v);
  HelloRequest req;
  req.set_name(name);
  HelloReply reply;
  const absl::Time start = absl::Now();
  grpc::Status st = goodbye ? stub->SayGoodbye(&ctx, req, &reply)
                            : stub->SayHello(&ctx, req, &reply);
  const absl::Duration took = absl::Now() - start;
  if (!st.ok()) return {absl::StrCat("ERROR ", st.error_code()), took};
  return {reply.instance(), took};
}

class RoutingE2eTest : public MeshE2eTest {
 protected:
  // Applies `routes` (Apply waits until gRPC has applied them); then checks
  // that a call the first route matches (`goodbye`, `headers`) reaches
  // `instance`.
  void ApplyRoutes(const std::string& routes, bool goodbye,
                   const std::map<std::string, std::string>& headers,
                   const std::string& instance) {
    Apply(RoutingConfig(routes) + c1a_->Yaml(", labels: {version: v1}") +
          c1b_->Yaml(", labels: {version: v2}") +
          c2_->Yaml(", labels: {version: v1}") +
          c3_->Yaml(", labels: {version: v1}"));
    if (!instance.empty()) {
      ASSERT_EQ(CallRoute(stub_, goodbye, headers).instance, instance);
    }
  }
  std::map<std::string, int> Count(int n, bool goodbye,
                                   const std::map<std::string, std::string>&
                                       headers = {}) {
    std::map<std::string, int> out;
    for (int i = 0; i < n; ++i) ++out[CallRoute(stub_, goodbye, headers).instance];
    return out;
  }
};

TEST_F(RoutingE2eTest, MethodAndHeaderMatchesSelectTheBackend) {
  ApplyRoutes(
      "      - name: goodbye-to-v2\n"
      "        match: {method: /mesh.examples.Greeter/SayGoodbye}\n"
      "        to: {subset: v2}\n"
      "      - name: pin\n"
      "        match: {headers: [{name: x-version, exact: v2}]}\n"
      "        to: {subset: v2}\n"
      "      - name: regex\n"
      "        match: {headers: [{name: x-user, regex: \"^tester-[0-9]+$\"}]}\n"
      "        to: {subset: v2}\n",
      true, {}, "c1b");
  EXPECT_EQ(Count(50, true), (std::map<std::string, int>{{"c1b", 50}}));
  EXPECT_EQ(Count(50, false, {{"x-version", "v2"}}),
            (std::map<std::string, int>{{"c1b", 50}}));
  EXPECT_EQ(Count(50, false, {{"x-user", "tester-42"}}),
            (std::map<std::string, int>{{"c1b", 50}}));
  // No match: the default route, the whole service (cluster-1 = c1a + c1b).
  std::map<std::string, int> rest =
      Count(100, false, {{"x-user", "someone-else"}});
  EXPECT_EQ(rest["c1a"] + rest["c1b"], 100) << ::testing::PrintToString(rest);
  EXPECT_GT(rest["c1a"], 0);
}

TEST_F(RoutingE2eTest, CanarySplitsNinetyTenAndAHeaderPinOverridesIt) {
  ApplyRoutes(
      "      - name: pin\n"
      "        match: {headers: [{name: x-version, exact: v2}]}\n"
      "        to: {subset: v2}\n"
      "      - name: canary\n"
      "        split: [{subset: v1, weight: 90}, {subset: v2, weight: 10}]\n",
      false, {{"x-version", "v2"}}, "c1b");
  std::map<std::string, int> got = Count(3000, false);
  std::cout << "canary 90/10 observed: " << ::testing::PrintToString(got)
            << std::endl;
  EXPECT_EQ(got["c1a"] + got["c1b"], 3000);  // v1 is local c1a (cluster-1).
  EXPECT_NEAR(got["c1b"] * 100.0 / 3000, 10, 3);
  EXPECT_EQ(Count(100, false, {{"x-version", "v2"}}),
            (std::map<std::string, int>{{"c1b", 100}}));
}

TEST_F(RoutingE2eTest, RetriesTurnAFailedAttemptIntoSuccessOrEndWithIt) {
  ApplyRoutes(
      "      - name: patient\n"
      "        match: {headers: [{name: x-patient, present: true}]}\n"
      "        to: {subset: v2}\n"
      "        retries: {on: [unavailable], numRetries: 4, backoff: {base: "
      "5ms, max: 20ms}}\n"
      "      - name: no-retry-on-unavailable\n"
      "        match: {headers: [{name: x-strict, present: true}]}\n"
      "        to: {subset: v2}\n"
      "        retries: {on: [resource-exhausted], numRetries: 1}\n",
      false, {{"x-patient", "1"}}, "c1b");  // The only v2 endpoint.
  // Default route (built-in: 2 retries on UNAVAILABLE): the first attempt
  // fails, the retry succeeds. (Few calls: failing half of >= 5 calls per
  // second would rightly get cluster-1 ejected by outlier detection.)
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(CallRoute(stub_, false, {}, absl::StrCat("fail-once:d", i))
                  .instance.substr(0, 2),
              "c1");
  }
  // Exhausted: 1 + 4 attempts on the patient route, then the last status.
  // (c1b is the only v2 endpoint, so all attempts land there.)
  const Reply r = CallRoute(stub_, false, {{"x-patient", "1"}}, "fail");
  EXPECT_EQ(r.instance, "ERROR 14");  // UNAVAILABLE
  // A route that does not retry UNAVAILABLE fails on the first attempt.
  EXPECT_EQ(CallRoute(stub_, false, {{"x-strict", "1"}}, "fail-once:s")
                .instance,
            "ERROR 14");
  EXPECT_EQ(CallRoute(stub_, false, {{"x-patient", "1"}}, "fail-once:p")
                .instance,
            "c1b");
}

TEST_F(RoutingE2eTest, FaultInjectionAbortsAndDelaysTheConfiguredShare) {
  ApplyRoutes(
      "      - name: chaos\n"
      "        match: {headers: [{name: x-chaos, present: true}]}\n"
      "        to: {subset: v1}\n"
      "        fault:\n"
      "          abort: {status: ABORTED, percent: 25}\n"
      "          delay: {fixed: 25ms, percent: 20}\n",
      false, {}, "");
  int aborted = 0, delayed = 0, first = -1;
  const int n = 1200;
  // Wait until the route is in force (an ABORTED call), then count.
  for (int i = 0; i < 200 && first < 0; ++i) {
    if (CallRoute(stub_, false, {{"x-chaos", "1"}}).instance == "ERROR 10") {
      first = i;
    }
  }
  ASSERT_GE(first, 0);
  for (int i = 0; i < n; ++i) {
    const Reply r = CallRoute(stub_, false, {{"x-chaos", "1"}});
    aborted += r.instance == "ERROR 10";
    delayed += r.took >= absl::Milliseconds(24);
  }
  std::cout << "fault: " << aborted << " of " << n << " aborted, " << delayed
            << " delayed" << std::endl;
  EXPECT_NEAR(aborted * 100.0 / n, 25, 5);
  EXPECT_NEAR(delayed * 100.0 / n, 20, 5);
}

TEST_F(RoutingE2eTest, RouteChangesUnderLoadLoseNoCall) {
  Load load;
  ApplyRoutes("      - name: all-v2\n        to: {subset: v2}\n", false, {},
              "c1b");
  ApplyRoutes(
      "      - name: canary\n"
      "        split: [{subset: v1, weight: 50}, {subset: v2, weight: 50}]\n",
      false, {}, "");
  ApplyRoutes("      - name: all-v1\n        to: {subset: v1}\n", false, {},
              "c1a");
  std::map<std::string, int> during = load.Stop();
  EXPECT_EQ(Failures(during), 0) << ::testing::PrintToString(during);
}

// A server in its own process that is frozen (SIGSTOP): connections stay
// open and nothing answers, so nothing refuses or resets. The default CDS
// outlier detection must eject it so that calls go to the next locality.
TEST_F(MeshE2eTest, CallsLeaveAHungServerForTheNextLocality) {
  const std::string server = std::string(getenv("TEST_SRCDIR")) +
                             "/mesh/bench/bench_server";
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], 1);
    execl(server.c_str(), server.c_str(), nullptr);
    _exit(127);
  }
  close(out[1]);
  char buf[16] = {0};
  ASSERT_GT(read(out[0], buf, sizeof(buf) - 1), 0);
  close(out[0]);
  const int port = atoi(buf);
  ASSERT_GT(port, 0);
  Apply(absl::StrCat(
      "apiVersion: mesh/v1\ntrustDomain: example.org\nservices:\n"
      "  - name: greeter\n    hostname: ", kHost, "\n    endpoints:\n"
      "      - {address: 127.0.0.1, port: ", port,
      ", locality: {region: us-east, zone: us-east-a, cluster: cluster-1}}\n",
      c2_->Yaml()));
  // bench_server answers with locality "bench/bench/bench".
  ASSERT_TRUE(AwaitServedBy("bench/bench/bench"));
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  int wstatus = 0;  // Until it is really stopped, not just signalled.
  ASSERT_EQ(waitpid(pid, &wstatus, WUNTRACED), pid);
  ASSERT_TRUE(WIFSTOPPED(wstatus));
  // Calls with a short deadline: those that reach the hung server fail with
  // DEADLINE_EXCEEDED (the documented cost of a hang) until it is ejected.
  const absl::Time start = absl::Now();
  bool moved = false;
  std::map<std::string, int> results;
  while (!moved && absl::Now() - start < absl::Seconds(20)) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(200));
    HelloReply reply;
    grpc::Status st = stub_->SayHello(&ctx, HelloRequest(), &reply);
    ++results[st.ok() ? reply.locality()
                      : absl::StrCat("ERROR ", st.error_code())];
    moved = st.ok() && reply.locality() == kC2;
  }
  const absl::Duration took = absl::Now() - start;
  kill(pid, SIGCONT);
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  ASSERT_TRUE(moved) << ::testing::PrintToString(results);
  for (const auto& [k, v] : results) {
    EXPECT_TRUE(k == kC2 || k == "ERROR 4") << k;  // 4 = DEADLINE_EXCEEDED
  }
  // Ejection runs on a 1 s interval after >= 5 failed calls.
  EXPECT_LT(took, absl::Seconds(5)) << ::testing::PrintToString(results);
  EXPECT_EQ(CallMany(50), (std::map<std::string, int>{{kC2, 50}}));
}

TEST_F(MeshE2eTest, MeshServerServesOnceTheControlPlaneSendsItsListener) {
  const int port = testing::FreePort();
  ASSERT_GT(port, 0);
  GreeterService service("mesh-served", kC1);
  auto builder = mesh_->NewServerBuilder();
  builder->AddListeningPort(absl::StrCat("127.0.0.1:", port),
                            mesh_->ServerCredentials());
  builder->RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder->BuildAndStart();
  ASSERT_NE(server, nullptr);
  Apply(absl::StrCat(BaseConfig(),
                     "  - name: served\n    hostname: served.mesh.internal\n"
                     "    endpoints:\n      - {address: 127.0.0.1, port: ",
                     port,
                     ", locality: {region: us-east, zone: us-east-a, "
                     "cluster: cluster-1}}\n"));
  auto stub = Greeter::NewStub(mesh_->CreateChannel("served.mesh.internal"));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ctx.set_wait_for_ready(true);  // Until the server has its listener.
  HelloReply reply;
  grpc::Status st = stub->SayHello(&ctx, HelloRequest(), &reply);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(reply.instance(), "mesh-served");
  EXPECT_EQ(service.calls(), 1u);
  server->Shutdown(std::chrono::system_clock::now());
}

// A connection whose set-up (TCP, TLS, the server's HTTP/2 SETTINGS) takes
// longer than the reconnect backoff still connects: gRPC gives an attempt
// max(backoff, GRPC_ARG_MIN_RECONNECT_BACKOFF_MS), so that argument is its
// minimum connect timeout. Channels once set it to 100 ms, which failed
// every attempt slower than the 1 s maximum backoff, forever (a far region,
// a loaded server: calls failed with "connection attempt timed out before
// receiving SETTINGS frame").
TEST_F(MeshE2eTest, AConnectionSlowerThanTheBackoffStillConnects) {
  testing::SlowProxy slow(c3_->port(), absl::Milliseconds(1500));
  ASSERT_GT(slow.port(), 0);
  Apply(absl::StrCat(BaseConfig(),
                     "  - name: far\n    hostname: far.mesh.internal\n"
                     "    endpoints:\n      - {address: 127.0.0.1, port: ",
                     slow.port(), ", locality: {region: eu-west}}\n"));
  auto stub = Greeter::NewStub(mesh_->CreateChannel("far.mesh.internal"));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(8));
  ctx.set_wait_for_ready(true);
  HelloReply reply;
  grpc::Status st = stub->SayHello(&ctx, HelloRequest(), &reply);
  EXPECT_TRUE(st.ok()) << st.error_code() << " " << st.error_message()
                       << " (" << slow.accepted() << " connection attempts)";
  EXPECT_EQ(reply.locality(), kC3);
  EXPECT_EQ(slow.accepted(), 1);  // The first attempt was given its time.
}

}  // namespace
}  // namespace mesh
