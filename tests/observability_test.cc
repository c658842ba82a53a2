// Observability end to end: a Mesh in this process (plaintext; the mTLS
// admin checks are in security_e2e_test) with its admin endpoint on a
// kernel-chosen loopback port, and real greeter servers in two localities.
// The metrics are parsed back and checked against the calls made; the
// admin endpoint is checked with real HTTP requests and `meshctl status`.

#include <stdio.h>

#include <fstream>
#include <functional>
#include <map>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "examples/greeter/greeter.grpc.pb.h"
#include "mesh/mesh.h"
#include "mesh/telemetry/http_get.h"
#include "tests/backend.h"
#include "tests/temp_dir.h"

namespace mesh {
namespace {

using examples::Greeter;
using examples::HelloReply;
using examples::HelloRequest;
using telemetry::HttpGet;
using testing::Backend;

constexpr char kHost[] = "greeter.mesh.internal";
constexpr char kC1[] = "us-east/us-east-a/cluster-1";
constexpr char kC2[] = "us-east/us-east-b/cluster-2";

// Prometheus text -> {"name{labels}": value}.
std::map<std::string, double> ParseMetrics(const std::string& text) {
  std::map<std::string, double> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.rfind(' ');
    double v = 0;
    if (sp == absl::string_view::npos ||
        !absl::SimpleAtod(line.substr(sp + 1), &v)) {
      ADD_FAILURE() << "bad metrics line: " << line;
      continue;
    }
    out[std::string(line.substr(0, sp))] = v;
  }
  return out;
}

std::string Calls(const char* locality, const char* code) {
  return absl::StrCat("mesh_client_calls_total{destination=\"", kHost,
                      "\",locality=\"", locality, "\",code=\"", code, "\"}");
}

class ObservabilityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new testing::TempDir("mesh-obs");
    c1_ = new Backend("c1", kC1);
    c2_ = new Backend("c2", kC2);
    c1_->Start();
    c2_->Start();
    std::ofstream(tmp_->path() + "/mesh.yaml")
        << "apiVersion: mesh/v1\ntrustDomain: example.org\nservices:\n"
           "  - name: greeter\n    hostname: " << kHost
        << "\n    endpoints:\n" << c1_->Yaml() << c2_->Yaml()
        << "      - {address: 127.0.0.1, port: 1, health: UNHEALTHY, "
           "locality: {region: eu-west}}\n"
        // A second destination, only for LoadReportsCountAttempts...
        << "  - name: counted\n    hostname: counted.mesh.internal\n"
           "    endpoints:\n" << c1_->Yaml();
    MeshOptions o;
    o.config_path = tmp_->path() + "/mesh.yaml";
    o.service_name = "obs-client";
    o.locality = {"us-east", "us-east-a", "cluster-1"};
    o.plaintext = true;
    o.admin_address = "127.0.0.1:0";
    o.call_metrics = true;  // Codes and latency too (load reports always).
    auto m = Mesh::Create(o);
    ASSERT_TRUE(m.ok()) << m.status();
    mesh_ = m->release();
    stub_ = Greeter::NewStub(mesh_->CreateChannel(kHost)).release();
    // The first call subscribes; once Explain answers, the plan that
    // attributes calls to localities is in place.
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);
    HelloReply reply;
    ASSERT_TRUE(stub_->SayHello(&ctx, HelloRequest(), &reply).ok());
    ASSERT_TRUE(mesh_->WaitForStatus(
        [](const MeshStatus&) { return mesh_->Explain(kHost).ok(); },
        absl::Seconds(10)));
  }
  static void TearDownTestSuite() {
    delete stub_;
    delete mesh_;
    delete c1_;
    delete c2_;
    delete tmp_;
  }
  void SetUp() override {
    c1_->Start();
    c2_->Start();
  }

  static std::map<std::string, double> Metrics() {
    auto body = HttpGet(mesh_->admin_address(), "/metrics");
    EXPECT_TRUE(body.ok()) << body.status();
    return ParseMetrics(body.ok() ? *body : "");
  }
  // `n` calls; name "fail" makes the server answer UNAVAILABLE.
  static void CallN(int n, const std::string& name = "ok") {
    for (int i = 0; i < n; ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
      HelloRequest req;
      req.set_name(name);
      HelloReply reply;
      stub_->SayHello(&ctx, req, &reply);
    }
  }

  static testing::TempDir* tmp_;
  static Backend* c1_;
  static Backend* c2_;
  static Mesh* mesh_;
  static Greeter::Stub* stub_;
};

testing::TempDir* ObservabilityTest::tmp_ = nullptr;
Backend* ObservabilityTest::c1_ = nullptr;
Backend* ObservabilityTest::c2_ = nullptr;
Mesh* ObservabilityTest::mesh_ = nullptr;
Greeter::Stub* ObservabilityTest::stub_ = nullptr;

TEST_F(ObservabilityTest, MetricsCountCallsExactlyByLocalityAndCode) {
  const auto before = Metrics();
  CallN(25);
  CallN(3, "fail");  // UNAVAILABLE (after the route's retries: one call).
  const auto after = Metrics();
  auto delta = [&](const std::string& k) {
    auto a = after.find(k);
    auto b = before.find(k);
    return (a == after.end() ? 0 : a->second) -
           (b == before.end() ? 0 : b->second);
  };
  EXPECT_EQ(delta(Calls(kC1, "OK")), 25);
  EXPECT_EQ(delta(Calls(kC1, "UNAVAILABLE")), 3);
  EXPECT_EQ(delta(Calls(kC2, "OK")), 0);
  EXPECT_EQ(delta(absl::StrCat("mesh_client_calls_started_total{destination=\"",
                               kHost, "\"}")),
            28);
  const std::string count =
      absl::StrCat("mesh_client_call_duration_seconds_count{destination=\"",
                   kHost, "\",locality=\"", kC1, "\"}");
  EXPECT_EQ(delta(count), 28);
  const std::string inf =
      absl::StrCat("mesh_client_call_duration_seconds_bucket{destination=\"",
                   kHost, "\",locality=\"", kC1, "\",le=\"+Inf\"}");
  EXPECT_EQ(after.at(inf), after.at(count));
  EXPECT_GT(delta(absl::StrCat("mesh_client_call_duration_seconds_sum{"
                               "destination=\"", kHost, "\",locality=\"",
                               kC1, "\"}")),
            0);
  // Status metrics.
  EXPECT_EQ(after.at("mesh_config_applied_total{source=\"file\"}"), 1);
  EXPECT_EQ(after.at("mesh_control_plane_up"), 1);
  EXPECT_EQ(after.at("mesh_config_stale"), 0);
  EXPECT_EQ(after.at(absl::StrCat("mesh_endpoints{destination=\"", kHost,
                                  "\",state=\"healthy\"}")),
            2);
  EXPECT_EQ(after.at(absl::StrCat("mesh_endpoints{destination=\"", kHost,
                                  "\",state=\"excluded\"}")),
            1);
  // The same text without the admin endpoint.
  EXPECT_TRUE(absl::StrContains(mesh_->MetricsText(),
                                "# TYPE mesh_client_calls_total counter"));
}

// Load reports arrive every second: wait (at most 10 s) until `key`
// reaches `want`.
double AwaitMetric(const std::string& key, double want,
                   const std::function<std::map<std::string, double>()>& get) {
  double v = 0;
  for (int i = 0; i < 100; ++i) {
    const auto m = get();
    v = m.count(key) ? m.at(key) : 0;
    if (v >= want) break;
    absl::SleepFor(absl::Milliseconds(100));  // Until the next report.
  }
  return v;
}

// Load reports count attempts per locality, exactly (a destination no other
// test uses, so nothing else is in flight in its reports).
TEST_F(ObservabilityTest, LoadReportsCountAttemptsPerLocality) {
  auto stub = Greeter::NewStub(mesh_->CreateChannel("counted.mesh.internal"));
  for (int i = 0; i < 40; ++i) {
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);
    HelloReply reply;
    ASSERT_TRUE(stub->SayHello(&ctx, HelloRequest(), &reply).ok());
  }
  const std::string ok = absl::StrCat(
      "mesh_client_attempts_total{destination=\"counted.mesh.internal\","
      "locality=\"", kC1, "\",result=\"success\"}");
  EXPECT_EQ(AwaitMetric(ok, 40, Metrics), 40);
  const auto m = Metrics();
  EXPECT_EQ(m.at(absl::StrCat(
                "mesh_client_attempts_total{destination=\"counted.mesh."
                "internal\",locality=\"", kC1, "\",result=\"error\"}")),
            0);
  EXPECT_EQ(m.at(absl::StrCat("mesh_client_attempts_issued_total{destination="
                              "\"counted.mesh.internal\",locality=\"",
                              kC1, "\"}")),
            40);
}

TEST_F(ObservabilityTest, FailoverAndFailbackAreEventsAndMetrics) {
  const std::string changes = absl::StrCat(
      "mesh_client_priority_changes_total{destination=\"", kHost, "\"}");
  const auto before = Metrics();
  c1_->Stop();
  // Calls go to cluster-2 (the route's retries: none fails), until a load
  // report shows it (and the failover event is logged).
  auto events = [] {
    auto s = HttpGet(mesh_->admin_address(), "/status");
    return s.ok() ? *s : std::string();
  };
  const std::string failover = absl::StrCat(
      "failover: ", kHost, " now served by priority 1 (", kC2,
      "), was priority 0");
  bool seen = false;
  absl::Time end = absl::Now() + absl::Seconds(10);  // Reports: every 1 s.
  while (!seen && absl::Now() < end) {
    CallN(10);
    seen = absl::StrContains(events(), failover);
  }
  EXPECT_TRUE(seen) << events();
  c1_->Start();
  const std::string failback = absl::StrCat(
      "failback: ", kHost, " now served by priority 0 (", kC1,
      "), was priority 1");
  seen = false;
  end = absl::Now() + absl::Seconds(10);
  while (!seen && absl::Now() < end) {
    CallN(10);
    seen = absl::StrContains(events(), failback);
  }
  EXPECT_TRUE(seen) << events();
  const auto after = Metrics();
  auto delta = [&](const std::string& k) {
    return (after.count(k) ? after.at(k) : 0) -
           (before.count(k) ? before.at(k) : 0);
  };
  EXPECT_GE(delta(changes), 2);
  // No call failed: the retries moved them.
  EXPECT_EQ(delta(Calls(kC1, "UNAVAILABLE")), 0);
  EXPECT_EQ(delta(Calls(kC2, "UNAVAILABLE")), 0);
  EXPECT_GT(delta(Calls(kC2, "OK")), 0);
}

TEST_F(ObservabilityTest, AdminEndpointServesStatusClustersConfigAndPage) {
  const std::string a = mesh_->admin_address();
  ASSERT_TRUE(absl::StartsWith(a, "127.0.0.1:")) << a;
  auto text = HttpGet(a, "/status?format=text");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_TRUE(absl::StrContains(*text, "security       PLAINTEXT")) << *text;
  EXPECT_TRUE(absl::StrContains(*text, kHost)) << *text;
  EXPECT_TRUE(absl::StrContains(*text, absl::StrCat("  0    ", kC1))) << *text;
  EXPECT_TRUE(absl::StrContains(*text, absl::StrCat("  1    ", kC2))) << *text;
  EXPECT_TRUE(absl::StrContains(*text, "excluded: 127.0.0.1:1 (UNHEALTHY)"))
      << *text;
  auto clusters = HttpGet(a, "/clusters");
  ASSERT_TRUE(clusters.ok());
  EXPECT_TRUE(absl::StrContains(
      *clusters, absl::StrCat("{\"locality\":\"", kC1, "\",\"priority\":0")))
      << *clusters;
  EXPECT_TRUE(absl::StrContains(*clusters, "\"rule\":")) << *clusters;
  auto config = HttpGet(a, "/config");
  ASSERT_TRUE(config.ok());
  EXPECT_TRUE(absl::StrContains(*config, "\"trustDomain\":\"example.org\""))
      << *config;
  EXPECT_TRUE(absl::StrContains(*config, "\"port\":1,")) << *config;
  auto page = telemetry::HttpRequest(a, "GET", "/");
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(absl::StrContains(page->head, "Content-Type: text/html"));
  EXPECT_TRUE(absl::StrContains(page->body, "fetch(\"/status\""));
  EXPECT_FALSE(absl::StrContains(page->body, "http://"));  // No CDN.
  EXPECT_FALSE(absl::StrContains(page->body, "https://"));
  auto missing = telemetry::HttpRequest(a, "GET", "/nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  auto post = telemetry::HttpRequest(a, "POST", "/metrics");
  ASSERT_TRUE(post.ok());
  EXPECT_EQ(post->status, 405);
}

TEST_F(ObservabilityTest, MeshctlStatusPrintsATablePerDestination) {
  const std::string meshctl =
      absl::StrCat(getenv("TEST_SRCDIR"), "/mesh/mesh/cli/meshctl");
  auto run = [](const std::string& cmd) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    const int rc = pclose(p);
    return std::make_pair(rc, out);
  };
  auto [rc, out] = run(meshctl + " status " + mesh_->admin_address());
  EXPECT_EQ(rc, 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "PRIO LOCALITY")) << out;
  EXPECT_TRUE(absl::StrContains(out, kC1)) << out;
  auto [rc2, json] =
      run(meshctl + " status --json " + mesh_->admin_address());
  EXPECT_EQ(rc2, 0) << json;
  EXPECT_TRUE(absl::StartsWith(json, "{\"security\":")) << json;
  auto [rc3, err] = run(meshctl + " status 127.0.0.1:1 2>&1");
  EXPECT_NE(rc3, 0);
  EXPECT_TRUE(absl::StrContains(err, "meshctl status: 127.0.0.1:1:")) << err;
}

}  // namespace
}  // namespace mesh
