// The ADS server's protocol: versions and nonces per type, ACK and NACK,
// stale nonces, pushes on a new snapshot or subscription, and no resend of
// unchanged resources. A real server on a unix socket, driven by a raw ADS
// stream so that every message is visible.

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "mesh/common/sync.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "mesh/config/snapshot.h"
#include "mesh/xds/ads_server.h"
#include "tests/temp_dir.h"

namespace mesh {
namespace xds {
namespace {

using envoy::config::endpoint::v3::ClusterLoadAssignment;
using envoy::service::discovery::v3::AggregatedDiscoveryService;
using envoy::service::discovery::v3::DiscoveryRequest;
using envoy::service::discovery::v3::DiscoveryResponse;

std::string Config(const std::string& endpoint_ip) {
  return "apiVersion: mesh/v1\ntrustDomain: example.org\nservices:\n"
         "  - name: greeter\n    hostname: greeter.mesh.internal\n"
         "    endpoints:\n      - {address: " +
         endpoint_ip +
         ", port: 50051, locality: {region: r, zone: z, cluster: c}}\n"
         "  - name: other\n    hostname: other.mesh.internal\n";
}

std::shared_ptr<const config::Snapshot> Snap(const std::string& ip) {
  auto s = config::MakeSnapshot(Config(ip), "test.yaml");
  EXPECT_TRUE(s.ok()) << s.status();
  return *s;
}

// What happened, in order, across the server's observer and the client's
// reader (OnRequestComesBeforeTheResponse).
struct Timeline {
  void Add(std::string what) {
    internal::MutexLock l(&mu);
    events.push_back(std::move(what));
  }
  std::vector<std::string> Get() {
    internal::MutexLock l(&mu);
    return events;
  }
  internal::Mutex mu;
  std::vector<std::string> events ABSL_GUARDED_BY(mu);
};
std::atomic<Timeline*> g_timeline{nullptr};

struct Recorder : AdsServer::Observer {
  void OnRequest(const Caller&, absl::string_view type,
                 const std::vector<std::string>& names) override {
    Timeline* t = g_timeline.load();
    if (t == nullptr || type != kListenerType) return;
    // Slow on purpose: a response sent before this returns would show.
    absl::SleepFor(absl::Milliseconds(50));
    t->Add("OnRequest " + (names.empty() ? "" : names[0]));
  }
  void OnAck(const Caller& c, absl::string_view type,
             absl::string_view version,
             const std::vector<std::string>& names) override {
    internal::MutexLock l(&mu);
    acks.push_back(TypeName(type) + "@" + std::string(version));
  }
  void OnNack(const Caller& c, absl::string_view type,
              absl::string_view version, absl::string_view msg) override {
    internal::MutexLock l(&mu);
    nacks.push_back(TypeName(type) + "@" + std::string(version) + ": " +
                    std::string(msg));
  }
  internal::Mutex mu;
  std::vector<std::string> acks, nacks;
};

// A raw ADS client: responses are queued by a reader thread.
class RawClient {
 public:
  explicit RawClient(const std::string& target)
      : stub_(AggregatedDiscoveryService::NewStub(grpc::CreateChannel(
            target, grpc::InsecureChannelCredentials()))),
        stream_(stub_->StreamAggregatedResources(&ctx_)) {
    reader_ = std::thread([this] {
      DiscoveryResponse r;
      while (stream_->Read(&r)) {
        if (Timeline* t = g_timeline.load()) t->Add("response " + r.type_url());
        internal::MutexLock l(&mu_);
        queue_.push_back(r);
      }
    });
  }
  ~RawClient() {
    stream_->WritesDone();
    ctx_.TryCancel();
    reader_.join();
  }

  void Send(const std::string& type, std::vector<std::string> names,
            const std::string& version, const std::string& nonce,
            const std::string& error = "", bool with_node = false) {
    DiscoveryRequest req;
    req.set_type_url(type);
    for (auto& n : names) req.add_resource_names(n);
    req.set_version_info(version);
    req.set_response_nonce(nonce);
    if (!error.empty()) {
      req.mutable_error_detail()->set_code(3);
      req.mutable_error_detail()->set_message(error);
    }
    if (with_node) {
      req.mutable_node()->set_id("test-node");
      req.mutable_node()->mutable_locality()->set_region("r");
      req.mutable_node()->mutable_locality()->set_zone("z");
      req.mutable_node()->mutable_locality()->set_sub_zone("c");
    }
    ASSERT_TRUE(stream_->Write(req));
  }

  // The next response, waiting at most 10 s.
  DiscoveryResponse Next() {
    internal::MutexLock l(&mu_);
    mu_.AwaitWithTimeout(internal::Condition(
                             +[](std::deque<DiscoveryResponse>* q) {
                               return !q->empty();
                             },
                             &queue_),
                         absl::Seconds(10));
    EXPECT_FALSE(queue_.empty()) << "no response within 10 s";
    if (queue_.empty()) return DiscoveryResponse();
    DiscoveryResponse r = queue_.front();
    queue_.pop_front();
    return r;
  }

 private:
  std::unique_ptr<AggregatedDiscoveryService::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<DiscoveryRequest, DiscoveryResponse>>
      stream_;
  std::thread reader_;
  internal::Mutex mu_;
  std::deque<DiscoveryResponse> queue_ ABSL_GUARDED_BY(mu_);
};

std::string EndpointIp(const DiscoveryResponse& r) {
  ClusterLoadAssignment cla;
  EXPECT_EQ(r.resources_size(), 1);
  if (r.resources_size() != 1 || !r.resources(0).UnpackTo(&cla)) return "";
  if (cla.endpoints_size() == 0) return "";
  return cla.endpoints(0).lb_endpoints(0).endpoint().address()
      .socket_address().address();
}

class AdsServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    target_ = "unix:" + dir_.path() + "/ads.sock";
    ads_ = std::make_unique<AdsServer>(&recorder_);
    ads_->SetSnapshot(Snap("10.0.0.1"));
    grpc::ServerBuilder b;
    b.AddListeningPort(target_, grpc::InsecureServerCredentials());
    b.RegisterService(ads_.get());
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    ads_->Stop();
    server_->Shutdown();
  }

  Recorder recorder_;
  testing::TempDir dir_{"mesh-ads-test"};
  std::string target_;
  std::unique_ptr<AdsServer> ads_;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(AdsServerTest, AnswersASubscriptionWithVersionAndNonce) {
  RawClient c(target_);
  c.Send(std::string(kEndpointType), {"default/greeter"}, "", "", "", true);
  DiscoveryResponse r = c.Next();
  EXPECT_EQ(r.type_url(), kEndpointType);
  EXPECT_EQ(r.version_info(), Snap("10.0.0.1")->version);
  EXPECT_FALSE(r.nonce().empty());
  EXPECT_EQ(EndpointIp(r), "10.0.0.1");
}

// The agent tells the application a server's authorization policy from
// OnRequest: it must run before the listener is answered, or the server
// could take a call before its policy is in place.
TEST_F(AdsServerTest, OnRequestComesBeforeTheResponse) {
  Timeline timeline;
  g_timeline = &timeline;
  {
    RawClient c(target_);
    const std::string name =
        std::string(kServerListenerPrefix) + "127.0.0.1:50051";
    c.Send(std::string(kListenerType), {name}, "", "", "", true);
    EXPECT_EQ(c.Next().type_url(), kListenerType);
    EXPECT_EQ(timeline.Get(),
              (std::vector<std::string>{"OnRequest " + name,
                                        "response " +
                                            std::string(kListenerType)}));
  }
  g_timeline = nullptr;
}

TEST_F(AdsServerTest, AckIsReportedAndNewSnapshotIsPushedOnce) {
  RawClient c(target_);
  c.Send(std::string(kEndpointType), {"default/greeter"}, "", "", "", true);
  DiscoveryResponse r1 = c.Next();
  c.Send(std::string(kEndpointType), {"default/greeter"}, r1.version_info(),
         r1.nonce());
  // A snapshot that does not change this client's resources (only another
  // service's) sends nothing. The writer handles types in URL order (EDS
  // before LDS), so a wrongful EDS resend would arrive before this LDS
  // answer.
  auto unrelated = config::MakeSnapshot(
      Config("10.0.0.1") + "    port: 9\n", "test.yaml");
  ASSERT_TRUE(unrelated.ok()) << unrelated.status();
  ads_->SetSnapshot(*unrelated);
  c.Send(std::string(kListenerType), {"greeter.mesh.internal"}, "", "");
  DiscoveryResponse lds = c.Next();
  EXPECT_EQ(lds.type_url(), kListenerType);
  ads_->SetSnapshot(Snap("10.0.0.2"));
  DiscoveryResponse r2 = c.Next();
  EXPECT_EQ(r2.type_url(), kEndpointType);
  EXPECT_EQ(r2.version_info(), Snap("10.0.0.2")->version);
  EXPECT_NE(r2.nonce(), r1.nonce());
  EXPECT_EQ(EndpointIp(r2), "10.0.0.2");
  c.Send(std::string(kEndpointType), {"default/greeter"}, r2.version_info(),
         r2.nonce());
  // Observe the ACKs through a further exchange on the same stream.
  c.Send(std::string(kClusterType), {"default/greeter"}, "", "");
  EXPECT_EQ(c.Next().type_url(), kClusterType);
  internal::MutexLock l(&recorder_.mu);
  EXPECT_EQ(recorder_.acks,
            (std::vector<std::string>{"EDS@" + r1.version_info(),
                                      "EDS@" + r2.version_info()}));
}

// gRPC's xDS client can drop a resource from its cache (its last watcher
// went) and re-add it before the request that dropped it is sent: the
// server then sees the same subscription with the same, already ACKed,
// nonce. It must send the resources again: else the client waits for them
// until its 15 s does-not-exist timer (calls hung in security_e2e_test).
TEST_F(AdsServerTest, ARepeatedAckIsAnsweredWithTheResourcesAgain) {
  RawClient c(target_);
  c.Send(std::string(kEndpointType), {"default/greeter"}, "", "", "", true);
  DiscoveryResponse r1 = c.Next();
  c.Send(std::string(kEndpointType), {"default/greeter"}, r1.version_info(),
         r1.nonce());
  c.Send(std::string(kEndpointType), {"default/greeter"}, r1.version_info(),
         r1.nonce());
  DiscoveryResponse again = c.Next();
  EXPECT_EQ(again.type_url(), kEndpointType);
  EXPECT_EQ(again.version_info(), r1.version_info());
  EXPECT_NE(again.nonce(), r1.nonce());
  EXPECT_EQ(EndpointIp(again), EndpointIp(r1));
  // Once ACKed, it is in sync: nothing more is sent until a change.
  c.Send(std::string(kEndpointType), {"default/greeter"},
         again.version_info(), again.nonce());
  c.Send(std::string(kClusterType), {"default/greeter"}, "", "");
  EXPECT_EQ(c.Next().type_url(), kClusterType);
}

TEST_F(AdsServerTest, NackIsCountedAndNothingIsResent) {
  RawClient c(target_);
  c.Send(std::string(kEndpointType), {"default/greeter"}, "", "", "", true);
  DiscoveryResponse r1 = c.Next();
  c.Send(std::string(kEndpointType), {"default/greeter"}, "", r1.nonce(),
         "bad endpoint");
  // The NACK does not make the server resend the rejected version: the next
  // response on the stream is the one for a new subscription.
  c.Send(std::string(kClusterType), {"default/greeter"}, "", "");
  DiscoveryResponse next = c.Next();
  EXPECT_EQ(next.type_url(), kClusterType);
  EXPECT_EQ(ads_->nacks(), 1u);
  internal::MutexLock l(&recorder_.mu);
  EXPECT_EQ(recorder_.nacks, (std::vector<std::string>{
                                 "EDS@" + r1.version_info() + ": bad endpoint"}));
  EXPECT_TRUE(recorder_.acks.empty());
}

TEST_F(AdsServerTest, StaleNonceIsIgnored) {
  RawClient c(target_);
  c.Send(std::string(kEndpointType), {"default/greeter"}, "", "", "", true);
  DiscoveryResponse r1 = c.Next();
  ads_->SetSnapshot(Snap("10.0.0.2"));
  DiscoveryResponse r2 = c.Next();
  // A NACK of the superseded response, and a subscription change carried by
  // a stale nonce: both ignored.
  c.Send(std::string(kEndpointType), {"ops/nothing"}, "", r1.nonce(), "late");
  c.Send(std::string(kEndpointType), {"default/greeter"}, r2.version_info(),
         r2.nonce());
  c.Send(std::string(kClusterType), {"default/greeter"}, "", "");
  EXPECT_EQ(c.Next().type_url(), kClusterType);
  EXPECT_EQ(ads_->nacks(), 0u);
}

TEST_F(AdsServerTest, SubscriptionChangeIsAnsweredWithTheFullSet) {
  RawClient c(target_);
  c.Send(std::string(kClusterType), {"default/greeter"}, "", "", "", true);
  DiscoveryResponse r1 = c.Next();
  EXPECT_EQ(r1.resources_size(), 1);
  c.Send(std::string(kClusterType), {"default/greeter", "default/other"},
         r1.version_info(), r1.nonce());
  DiscoveryResponse r2 = c.Next();
  EXPECT_EQ(r2.resources_size(), 2);  // State of the world: both.
  // A name that does not exist is simply absent (LDS/CDS: deleted).
  c.Send(std::string(kClusterType), {"default/nope"}, r2.version_info(),
         r2.nonce());
  EXPECT_EQ(c.Next().resources_size(), 0);
}

TEST_F(AdsServerTest, TracksTypesIndependently) {
  RawClient c(target_);
  c.Send(std::string(kListenerType), {"greeter.mesh.internal"}, "", "", "",
         true);
  c.Send(std::string(kRouteType), {"greeter.mesh.internal"}, "", "");
  DiscoveryResponse a = c.Next();
  DiscoveryResponse b = c.Next();
  EXPECT_NE(a.type_url(), b.type_url());
  EXPECT_NE(a.nonce(), b.nonce());
  // ACK each with its own nonce; a cross-typed nonce would be stale.
  c.Send(a.type_url(), {"greeter.mesh.internal"}, a.version_info(), a.nonce());
  c.Send(b.type_url(), {"greeter.mesh.internal"}, b.version_info(), b.nonce());
  c.Send(std::string(kClusterType), {"default/greeter"}, "", "");
  EXPECT_EQ(c.Next().type_url(), kClusterType);
  internal::MutexLock l(&recorder_.mu);
  EXPECT_EQ(recorder_.acks.size(), 2u);
}

}  // namespace
}  // namespace xds
}  // namespace mesh
