// Outlier detection and circuit breaking end to end (issue 18): a Mesh in
// this process and three real greeter servers in the caller's own cluster.
// A server told to fail (GreeterService::set_fail_percent, INTERNAL: not
// retried) is ejected by failure percentage within the configured interval
// and comes back after the ejection time; one failing 30 % of its calls is
// ejected by success rate (and not by the default failure percentage);
// `circuitBreaker.maxRequests: 4` fails 12 of 16 concurrent slow calls at
// once, and the mesh counts them.

#include <atomic>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "mesh/config/snapshot.h"
#include "mesh/mesh.h"
#include "mesh/telemetry/http_get.h"
#include "tests/backend.h"
#include "tests/child.h"
#include "tests/temp_dir.h"

namespace mesh {
namespace {

using examples::Greeter;
using examples::HelloReply;
using examples::HelloRequest;
using testing::Backend;

constexpr char kHost[] = "greeter.mesh.internal";
constexpr char kC1[] = "us-east/us-east-a/cluster-1";

class ResilienceE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new testing::TempDir("mesh-resilience");
    for (const char* n : {"a", "b", "c"}) {
      backends_.push_back(new Backend(n, kC1));
      backends_.back()->Start();
    }
    WriteConfig(Config(""));
    auto m = Mesh::Create({.config_path = tmp_->path() + "/mesh.yaml",
                           .service_name = "resilience-client",
                           .locality = {"us-east", "us-east-a", "cluster-1"},
                           .plaintext = true,
                           .admin_address = "127.0.0.1:0"});
    ASSERT_TRUE(m.ok()) << m.status();
    mesh_ = m->release();
    stub_ = Greeter::NewStub(mesh_->CreateChannel(kHost)).release();
    // A channel subscribes to its resources on its first call.
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(20));
    HelloRequest req;
    HelloReply reply;
    ASSERT_TRUE(stub_->SayHello(&ctx, req, &reply).ok());
  }
  static void TearDownTestSuite() {
    delete stub_;
    delete mesh_;
    for (Backend* b : backends_) delete b;
    backends_.clear();
    delete tmp_;
  }
  void SetUp() override {
    for (Backend* b : backends_) b->service().set_fail_percent(0);
  }

  // The service with subsets v1 (a, c) and v2 (b) and `routes`.
  static std::string SubsetConfig(const std::string& routes) {
    return absl::StrCat(
        "apiVersion: mesh/v1\ntrustDomain: example.org\nservices:\n"
        "  - name: greeter\n    hostname: ", kHost, "\n",
        "    subsets:\n"
        "      - {name: v1, labels: {version: v1}}\n"
        "      - {name: v2, labels: {version: v2}}\n"
        "    routes:\n", routes, "    endpoints:\n",
        backends_[0]->Yaml(", labels: {version: v1}"),
        backends_[1]->Yaml(", labels: {version: v2}"),
        backends_[2]->Yaml(", labels: {version: v1}"));
  }
  // A route to v2 for the callers `source` names, then one to v1 for the
  // rest; this process (us-east, no labels) is of the rest.
  static void ApplySourceRoute(const std::string& source) {
    Apply(SubsetConfig(absl::StrCat("      - name: some-callers\n"
                                    "        match: {source: ", source, "}\n"
                                    "        to: {subset: v2}\n"
                                    "      - name: everyone-else\n"
                                    "        to: {subset: v1}\n")));
    for (int i = 0; i < 40; ++i) {
      const std::string by = Call();
      EXPECT_TRUE(by == "a" || by == "c") << by;
    }
  }
  // 20 calls from another process (greeter_client) with `flags`; its
  // "served by" line, e.g. "served by b=20".
  static std::string CallFromAnotherProcess(std::vector<std::string> flags) {
    std::vector<std::string> args = {
        absl::StrCat(getenv("TEST_SRCDIR"),
                     "/mesh/examples/greeter/greeter_client"),
        "--config=" + tmp_->path() + "/mesh.yaml", "--plaintext",
        "--show=instance", "--batches=1", "--batch_size=20",
        "--interval_ms=0"};
    args.insert(args.end(), flags.begin(), flags.end());
    testing::Child c(args, /*capture=*/true);
    int code = -1;
    const std::string out = c.Finish(&code);
    EXPECT_EQ(code, 0) << out;
    const size_t at = out.find("served by ");
    if (at == std::string::npos) return out;
    std::string line = out.substr(at, out.find_first_of("[\n", at) - at);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    return line;
  }

  static std::string Config(const std::string& extra) {
    std::string out = absl::StrCat(
        "apiVersion: mesh/v1\ntrustDomain: example.org\nservices:\n"
        "  - name: greeter\n    hostname: ", kHost, "\n", extra,
        "    endpoints:\n");
    for (Backend* b : backends_) out += b->Yaml();
    return out;
  }
  static void WriteConfig(const std::string& yaml) {
    const std::string path = tmp_->path() + "/mesh.yaml";
    std::ofstream(path + ".tmp", std::ios::trunc) << yaml;
    ASSERT_EQ(rename((path + ".tmp").c_str(), path.c_str()), 0);
  }
  // Writes `yaml` and waits until this process's gRPC has applied it.
  static void Apply(const std::string& yaml) {
    WriteConfig(yaml);
    const std::string v = config::ContentVersion(yaml);
    ASSERT_TRUE(mesh_->WaitForStatus(
        [&](const MeshStatus& s) {
          return s.config_version == v && s.applied_version == v;
        },
        absl::Seconds(10)))
        << mesh_->GetStatus().last_error;
  }
  // One call: the instance that answered, or "ERROR CODE MESSAGE".
  static std::string Call(const std::string& name = "r") {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    HelloRequest req;
    req.set_name(name);
    HelloReply reply;
    const grpc::Status st = stub_->SayHello(&ctx, req, &reply);
    return st.ok() ? reply.instance()
                   : absl::StrCat("ERROR ", st.error_code(), " ",
                                  st.error_message());
  }
  // Calls until `n` in a row are not answered (or failed) by instance
  // "a"; returns when the last call that reached it started, or
  // InfinitePast if that did not happen within `timeout`.
  static absl::Time AwaitUnreached(int n, absl::Duration timeout) {
    const absl::Time end = absl::Now() + timeout;
    absl::Time last = absl::Now();
    int streak = 0;
    while (streak < n) {
      if (absl::Now() > end) return absl::InfinitePast();
      const absl::Time t = absl::Now();
      const std::string by = Call();
      if (by == "a" || absl::StrContains(by, "failing on purpose")) {
        last = t;
        streak = 0;
      } else {
        ++streak;
      }
    }
    return last;
  }

  static testing::TempDir* tmp_;
  static std::vector<Backend*> backends_;
  static Mesh* mesh_;
  static Greeter::Stub* stub_;
};

testing::TempDir* ResilienceE2eTest::tmp_ = nullptr;
std::vector<Backend*> ResilienceE2eTest::backends_;
Mesh* ResilienceE2eTest::mesh_ = nullptr;
Greeter::Stub* ResilienceE2eTest::stub_ = nullptr;

TEST_F(ResilienceE2eTest, FailurePercentageEjectsAndTheEjectionTimeEnds) {
  Apply(Config(
      "    outlierDetection:\n"
      "      interval: 500ms\n"
      "      baseEjectionTime: 3s\n"
      "      failurePercentage: {threshold: 50, requestVolume: 10}\n"));
  // All three answer.
  std::set<std::string> seen;
  for (int i = 0; i < 60 && seen.size() < 3; ++i) seen.insert(Call());
  ASSERT_EQ(seen, (std::set<std::string>{"a", "b", "c"}));
  const absl::Time failing = absl::Now();
  backends_[0]->service().set_fail_percent(100);
  const absl::Time last = AwaitUnreached(300, absl::Seconds(15));
  ASSERT_NE(last, absl::InfinitePast()) << "a was never ejected";
  const absl::Duration ejected = last - failing;
  std::cout << "ejected " << ejected << " after it began failing\n";
  // Within the interval (the detector runs every 500 ms), with slack for
  // a loaded machine.
  EXPECT_LE(ejected, absl::Milliseconds(2000));
  // Healthy again: it is called again once the ejection time (3 s) ends,
  // not before.
  backends_[0]->service().set_fail_percent(0);
  const absl::Time end = absl::Now() + absl::Seconds(15);
  absl::Time back = absl::InfinitePast();
  while (back == absl::InfinitePast() && absl::Now() < end) {
    const absl::Time t = absl::Now();
    if (Call() == "a") back = t;
  }
  ASSERT_NE(back, absl::InfinitePast()) << "a never came back";
  std::cout << "back " << back - last << " after its last failed call\n";
  EXPECT_GE(back - last, absl::Milliseconds(2500));
  EXPECT_LE(back - last, absl::Milliseconds(5000));
}

TEST_F(ResilienceE2eTest, SuccessRateEjectsAServerFailingAThirdOfItsCalls) {
  // 30 % failures are under the default failure percentage (50 %): with
  // the defaults it keeps its calls.
  Apply(Config(""));
  backends_[0]->service().set_fail_percent(30);
  int to_a = 0;
  for (int i = 0; i < 600; ++i) {
    const std::string by = Call();
    if (by == "a" || absl::StrContains(by, "failing on purpose")) ++to_a;
  }
  EXPECT_GT(to_a, 100) << "a was ejected without success-rate detection";
  // Success rate (mean 90 %, a at 70 % is below mean - 1.0 stdev = 75.9 %).
  Apply(Config(
      "    outlierDetection:\n"
      "      interval: 500ms\n"
      "      failurePercentage: {enforcementPercent: 0}\n"
      "      successRate: {stdevFactor: 1.0, minimumHosts: 3, "
      "requestVolume: 20}\n"));
  EXPECT_NE(AwaitUnreached(300, absl::Seconds(15)), absl::InfinitePast())
      << "a was never ejected by success rate";
}

TEST_F(ResilienceE2eTest, ACircuitBreakerFailsCallsBeyondMaxRequestsAtOnce) {
  Apply(Config("    circuitBreaker: {maxRequests: 4}\n"));
  const MeshStatus before = mesh_->GetStatus();
  // 16 slow calls at once: 4 run (1 s each), 12 fail fast.
  std::vector<std::thread> calls;
  std::vector<std::string> result(16);
  std::vector<absl::Duration> took(16);
  for (int i = 0; i < 16; ++i) {
    calls.emplace_back([&, i] {
      const absl::Time t = absl::Now();
      result[i] = Call("sleep-ms:1000");
      took[i] = absl::Now() - t;
    });
  }
  for (std::thread& t : calls) t.join();
  int ok = 0, fast = 0;
  std::string failures;
  for (int i = 0; i < 16; ++i) {
    if (!absl::StartsWith(result[i], "ERROR")) {
      ++ok;
    } else if (absl::StartsWith(result[i], "ERROR 14 ") &&
               took[i] < absl::Milliseconds(500)) {
      ++fast;
      failures = result[i];
    } else {
      failures += result[i] + "; ";
    }
  }
  EXPECT_EQ(ok, 4) << failures;
  EXPECT_EQ(fast, 12) << failures;
  EXPECT_EQ(failures, "ERROR 14 circuit breaker drop");
  // Counted from gRPC's load reports (every second): /metrics and /status.
  const std::string want = absl::StrCat(
      "mesh_client_calls_dropped_total{destination=\"", kHost, "\"} 12");
  std::string metrics;
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (!absl::StrContains(metrics, want) && absl::Now() < end) {
    auto m = telemetry::HttpGet(mesh_->admin_address(), "/metrics");
    ASSERT_TRUE(m.ok()) << m.status();
    metrics = *m;
    if (!absl::StrContains(metrics, want)) {
      absl::SleepFor(absl::Milliseconds(100));  // Reports come every 1 s.
    }
  }
  EXPECT_TRUE(absl::StrContains(metrics, want)) << metrics;
  auto json = telemetry::HttpGet(mesh_->admin_address(), "/status");
  ASSERT_TRUE(json.ok());
  EXPECT_TRUE(absl::StrContains(*json, "\"calls_dropped\":12")) << *json;
  auto text = telemetry::HttpGet(mesh_->admin_address(), "/status?format=text");
  ASSERT_TRUE(text.ok());
  EXPECT_TRUE(
      absl::StrContains(*text, "12 DROPPED by the circuit breaker"))
      << *text;
}

// A route with match.source.labels: the labelled caller (another process,
// --label=track=canary) takes it, this process (no labels) does not.
TEST_F(ResilienceE2eTest, ARouteForLabelledCallersAppliesOnlyToThem) {
  ApplySourceRoute("{labels: {track: canary}}");
  EXPECT_EQ(CallFromAnotherProcess({"--locality=us-east/us-east-a/cluster-1",
                                    "--label=track=canary"}),
            "served by b=20");
  // Another label: v1 (a and c; not b).
  const std::string stable = CallFromAnotherProcess(
      {"--locality=us-east/us-east-a/cluster-1", "--label=track=stable"});
  EXPECT_TRUE(absl::StartsWith(stable, "served by ") &&
              !absl::StrContains(stable, "b="))
      << stable;
}

// A route with match.source.locality pins the callers of one region to a
// subset.
TEST_F(ResilienceE2eTest, ARouteForOneRegionsCallersPinsThemToASubset) {
  ApplySourceRoute("{locality: eu-west}");
  EXPECT_EQ(CallFromAnotherProcess({"--locality=eu-west/eu-west-a/cluster-3"}),
            "served by b=20");
}

}  // namespace
}  // namespace mesh
