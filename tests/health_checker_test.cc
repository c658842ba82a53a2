// Active health checks against real gRPC servers running the standard
// grpc.health.v1 service.

#include <deque>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "mesh/common/sync.h"
#include "examples/greeter/greeter_service.h"
#include "mesh/config/config.h"
#include "mesh/health/health_checker.h"

namespace mesh {
namespace health {
namespace {

TEST(HealthWireTest, EncodesRequestsAndDecodesResponses) {
  EXPECT_EQ(HealthChecker::EncodeRequest(""), "");
  EXPECT_EQ(HealthChecker::EncodeRequest("greeter"),
            std::string("\x0a\x07greeter"));
  EXPECT_EQ(HealthChecker::EncodeRequest(std::string(200, 'x')).substr(0, 3),
            std::string("\x0a\xc8\x01"));
  EXPECT_EQ(HealthChecker::DecodeStatus(""), 0);            // UNKNOWN
  EXPECT_EQ(HealthChecker::DecodeStatus("\x08\x01"), 1);    // SERVING
  EXPECT_EQ(HealthChecker::DecodeStatus("\x08\x02"), 2);    // NOT_SERVING
  EXPECT_EQ(HealthChecker::DecodeStatus(std::string("\x12\x01" "z" "\x08\x01")),
            1);  // Skips other fields.
  EXPECT_EQ(HealthChecker::DecodeStatus("\x08"), -1);       // Truncated.
  EXPECT_EQ(HealthChecker::DecodeStatus(std::string("\x0a\x05" "ab")), -1);
  // (Overlong length.)
}

class HealthCheckerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { grpc::EnableDefaultHealthCheckService(true); }

  void SetUp() override {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                       &port_);
    b.RegisterService(&greeter_);  // A server needs one service to poll.
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    checker_ = std::make_unique<HealthChecker>(
        [this](const config::HealthOverrides& failing,
               const std::string& change) {
          internal::MutexLock l(&mu_);
          events_.push_back({failing, change});
        });
  }
  void TearDown() override {
    checker_.reset();
    if (server_) server_->Shutdown();
  }

  // A config with one checked service: our server, plus `extra` endpoints.
  void Check(uint32_t unhealthy_threshold, const std::string& extra = "") {
    auto cfg = config::ParseConfig(
        absl::StrCat(
            "apiVersion: mesh/v1\ntrustDomain: t\nservices:\n"
            "  - name: s\n    hostname: s.m\n"
            // Generous timeout: the first check also connects, which is
            // slow under ASan on a loaded CI machine.
            "    healthCheck: {interval: 250ms, timeout: 250ms, "
            "healthyThreshold: 1, unhealthyThreshold: ",
            unhealthy_threshold,
            "}\n    endpoints:\n"
            "      - {address: 127.0.0.1, port: ",
            port_, ", locality: {region: r}}\n", extra),
        "hc.yaml");
    ASSERT_TRUE(cfg.ok()) << cfg.status();
    checker_->Update(*cfg);
  }

  struct Event {
    config::HealthOverrides failing;
    std::string change;
  };
  // The next change, waiting at most 10 s.
  Event Next() {
    internal::MutexLock l(&mu_);
    mu_.AwaitWithTimeout(internal::Condition(
                             +[](std::deque<Event>* q) { return !q->empty(); },
                             &events_),
                         absl::Seconds(10));
    if (events_.empty()) return {{}, "TIMEOUT"};
    Event e = events_.front();
    events_.pop_front();
    return e;
  }

  std::string key() const { return absl::StrCat("127.0.0.1:", port_); }

  int port_ = 0;
  examples::GreeterService greeter_{"hc", "r//"};
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<HealthChecker> checker_;
  internal::Mutex mu_;
  std::deque<Event> events_ ABSL_GUARDED_BY(mu_);
};

TEST_F(HealthCheckerTest, NotServingWithThePortOpenIsUnhealthyThenRecovers) {
  Check(1);
  server_->GetHealthCheckService()->SetServingStatus(false);
  Event e = Next();
  EXPECT_EQ(e.failing, (config::HealthOverrides{
                           {key(), config::Health::kUnhealthy}}));
  EXPECT_EQ(e.change, key() + " is UNHEALTHY: 1 failed health check(s), "
                              "last: NOT_SERVING");
  server_->GetHealthCheckService()->SetServingStatus(true);
  e = Next();
  EXPECT_TRUE(e.failing.empty());
  EXPECT_EQ(e.change,
            key() + " is HEALTHY again (1 successful health checks)");
}

TEST_F(HealthCheckerTest, AClosedPortIsUnhealthyAfterTheThreshold) {
  // A port nobody listens on (ours, after shutdown).
  server_->Shutdown();
  server_.reset();
  const absl::Time start = absl::Now();
  Check(3);
  Event e = Next();
  EXPECT_EQ(e.failing.size(), 1u);
  EXPECT_NE(e.change.find("3 failed health check(s), last: RPC failed"),
            std::string::npos)
      << e.change;
  // Three checks 250 ms apart: at least 500 ms.
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(500));
}

TEST_F(HealthCheckerTest, ServingEndpointsProduceNoEvents) {
  // Our server serves; a second endpoint does not exist. Only the second
  // one is reported.
  Check(1,
        "      - {address: 127.0.0.1, port: 1, locality: {region: r}}\n");
  Event e = Next();
  EXPECT_EQ(e.failing, (config::HealthOverrides{
                           {"127.0.0.1:1", config::Health::kUnhealthy}}));
}

TEST_F(HealthCheckerTest, EndpointsMarkedUnhealthyInConfigAreNotChecked) {
  auto cfg = config::ParseConfig(
      absl::StrCat("apiVersion: mesh/v1\ntrustDomain: t\nservices:\n"
                   "  - name: s\n    hostname: s.m\n"
                   "    healthCheck: {interval: 100ms, timeout: 50ms, "
                   "unhealthyThreshold: 1}\n    endpoints:\n"
                   "      - {address: 127.0.0.1, port: 1, health: UNHEALTHY, "
                   "locality: {region: r}}\n"
                   "      - {address: 127.0.0.1, port: 2, locality: {region: "
                   "r}}\n"),
      "hc.yaml");
  ASSERT_TRUE(cfg.ok());
  checker_->Update(*cfg);
  Event e = Next();  // Only port 2 is checked (and fails).
  EXPECT_EQ(e.failing, (config::HealthOverrides{
                           {"127.0.0.1:2", config::Health::kUnhealthy}}));
}

}  // namespace
}  // namespace health
}  // namespace mesh
