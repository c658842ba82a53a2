// The xDS translation, resource by resource: what gRPC is told for a given
// config and caller.

#include <gtest/gtest.h>

#include "envoy/extensions/filters/http/fault/v3/fault.pb.h"
#include "envoy/extensions/filters/http/router/v3/router.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "mesh/config/config.h"
#include "mesh/xds/translate.h"

namespace mesh {
namespace xds {
namespace {

using envoy::config::cluster::v3::Cluster;
using envoy::config::endpoint::v3::ClusterLoadAssignment;
using envoy::config::listener::v3::Listener;
using envoy::config::route::v3::RouteConfiguration;
using envoy::extensions::filters::network::http_connection_manager::v3::
    HttpConnectionManager;

constexpr char kConfig[] = R"(apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: greeter
    hostname: greeter.mesh.internal
    port: 8080
    endpoints:
      - {address: 10.0.1.1, port: 50051, locality: {region: us-east, zone: a, cluster: c1}}
      - {address: 10.0.1.2, port: 50051, locality: {region: us-east, zone: a, cluster: c1}}
      - {address: 10.0.2.1, port: 50051, locality: {region: us-east, zone: b, cluster: c2}}
      - {address: 10.0.3.1, port: 50051, locality: {region: eu-west, zone: x, cluster: c3}}
      - {address: 10.0.3.2, port: 50051, locality: {region: eu-west, zone: x, cluster: c3}, health: UNHEALTHY}
  - name: other
    namespace: ops
    hostname: other.mesh.internal
)";

class TranslateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = config::ParseConfig(kConfig, "t.yaml");
    ASSERT_TRUE(c.ok()) << c.status();
    config_ = *c;
    caller_.locality = {"us-east", "a", "c1"};
  }
  const config::Service& greeter() const { return config_->services[0]; }

  std::shared_ptr<const config::MeshConfig> config_;
  Caller caller_;
};

TEST_F(TranslateTest, CallerComesFromTheNode) {
  envoy::config::core::v3::Node node;
  node.set_id("frontend~host~1");
  node.set_cluster("frontend");
  node.mutable_locality()->set_region("r");
  node.mutable_locality()->set_zone("z");
  node.mutable_locality()->set_sub_zone("c");
  Caller c = CallerFromNode(node);
  EXPECT_EQ(c.id, "frontend~host~1");
  EXPECT_EQ(c.service, "frontend");
  EXPECT_EQ(c.locality, (config::Locality{"r", "z", "c"}));
}

TEST_F(TranslateTest, ClientListenerPointsAtRdsOverAds) {
  Listener l = ClientListener(greeter(), "greeter.mesh.internal");
  EXPECT_EQ(l.name(), "greeter.mesh.internal");
  HttpConnectionManager hcm;
  ASSERT_TRUE(l.api_listener().api_listener().UnpackTo(&hcm));
  EXPECT_EQ(hcm.rds().route_config_name(), "greeter.mesh.internal");
  EXPECT_TRUE(hcm.rds().config_source().has_ads());
  ASSERT_EQ(hcm.http_filters_size(), 1);
  EXPECT_EQ(hcm.http_filters(0).name(), "envoy.filters.http.router");
  EXPECT_TRUE(hcm.http_filters(0).typed_config().Is<
              envoy::extensions::filters::http::router::v3::Router>());
}

TEST_F(TranslateTest, ServerListenerMatchesItsAddressAndDoesNotForward) {
  auto l = ServerListener(
      "grpc/server?xds.resource.listening_address=127.0.1.1:50051");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->address().socket_address().address(), "127.0.1.1");
  EXPECT_EQ(l->address().socket_address().port_value(), 50051u);
  ASSERT_EQ(l->filter_chains_size(), 1);
  HttpConnectionManager hcm;
  ASSERT_TRUE(l->filter_chains(0).filters(0).typed_config().UnpackTo(&hcm));
  const auto& route = hcm.route_config().virtual_hosts(0).routes(0);
  EXPECT_TRUE(route.has_non_forwarding_action());

  auto v6 = ServerListener(
      "grpc/server?xds.resource.listening_address=[::]:8443");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->address().socket_address().address(), "::");
  EXPECT_EQ(v6->address().socket_address().port_value(), 8443u);

  EXPECT_FALSE(
      ServerListener("grpc/server?xds.resource.listening_address=x").ok());
  EXPECT_FALSE(
      ServerListener("grpc/server?xds.resource.listening_address=a:0").ok());
  EXPECT_FALSE(ServerListener("greeter.mesh.internal").ok());
}

TEST_F(TranslateTest, RouteRetriesUnavailableAndCancelled) {
  RouteConfiguration rc = RouteConfig(*config_, greeter());
  EXPECT_EQ(rc.name(), "greeter.mesh.internal");
  ASSERT_EQ(rc.virtual_hosts_size(), 1);
  const auto& vh = rc.virtual_hosts(0);
  EXPECT_EQ(std::vector<std::string>(vh.domains().begin(), vh.domains().end()),
            (std::vector<std::string>{"greeter.mesh.internal",
                                      "greeter.mesh.internal:8080"}));
  const auto& action = vh.routes(0).route();
  EXPECT_EQ(action.cluster(), "default/greeter");
  EXPECT_EQ(action.retry_policy().retry_on(), "unavailable,cancelled");
  EXPECT_EQ(action.retry_policy().num_retries().value(), 2u);
  EXPECT_EQ(action.retry_policy().retry_back_off().base_interval().nanos(),
            25000000);
}

TEST_F(TranslateTest, ClusterIsEdsRoundRobinWithOutlierDetection) {
  Cluster c = ClusterFor(greeter());
  EXPECT_EQ(c.name(), "default/greeter");
  EXPECT_EQ(c.type(), Cluster::EDS);
  EXPECT_EQ(c.eds_cluster_config().service_name(), "default/greeter");
  EXPECT_TRUE(c.eds_cluster_config().eds_config().has_ads());
  // Never RING_HASH: it crashes libgrpc 1.51.1 (grpc/grpc#31766).
  EXPECT_EQ(c.lb_policy(), Cluster::ROUND_ROBIN);
  const auto& od = c.outlier_detection();
  EXPECT_EQ(od.interval().seconds(), 1);
  EXPECT_EQ(od.enforcing_failure_percentage().value(), 100u);
  EXPECT_EQ(od.failure_percentage_threshold().value(), 50u);
  EXPECT_EQ(od.enforcing_success_rate().value(), 0u);
  EXPECT_EQ(od.max_ejection_percent().value(), 100u);
  EXPECT_FALSE(c.has_circuit_breakers());  // gRPC's own limit (1024).
}

TEST_F(TranslateTest, ClusterCarriesTheServicesOutlierDetectionAndBreaker) {
  config::Service s = greeter();
  s.outlier_detection.interval_ms = 500;
  s.outlier_detection.base_ejection_ms = 3000;
  s.outlier_detection.max_ejection_ms = 60000;
  s.outlier_detection.failure_enforcement_percent = 0;
  s.outlier_detection.success_enforcement_percent = 100;
  s.outlier_detection.success_stdev_factor_milli = 1000;
  s.outlier_detection.success_minimum_hosts = 3;
  s.outlier_detection.success_request_volume = 20;
  s.circuit_breaker.max_requests = 4;
  Cluster c = ClusterFor(s);
  const auto& od = c.outlier_detection();
  EXPECT_EQ(od.interval().nanos(), 500000000);
  EXPECT_EQ(od.base_ejection_time().seconds(), 3);
  EXPECT_EQ(od.max_ejection_time().seconds(), 60);
  EXPECT_EQ(od.enforcing_failure_percentage().value(), 0u);
  EXPECT_EQ(od.enforcing_success_rate().value(), 100u);
  EXPECT_EQ(od.success_rate_stdev_factor().value(), 1000u);
  EXPECT_EQ(od.success_rate_minimum_hosts().value(), 3u);
  EXPECT_EQ(od.success_rate_request_volume().value(), 20u);
  ASSERT_EQ(c.circuit_breakers().thresholds_size(), 1);
  EXPECT_EQ(c.circuit_breakers().thresholds(0).priority(),
            envoy::config::core::v3::DEFAULT);
  EXPECT_EQ(c.circuit_breakers().thresholds(0).max_requests().value(), 4u);
  // A subset with its own breaker (subsets[].circuitBreaker).
  s.subsets.push_back({"batch", {{"version", "v1"}}, 2});
  Cluster b = ClusterFor(s, "batch");
  ASSERT_EQ(b.circuit_breakers().thresholds_size(), 1);
  EXPECT_EQ(b.circuit_breakers().thresholds(0).max_requests().value(), 2u);
}

TEST_F(TranslateTest, LoadAssignmentOrdersPrioritiesForTheCaller) {
  ClusterLoadAssignment cla = LoadAssignmentFor(*config_, greeter(), caller_);
  EXPECT_EQ(cla.cluster_name(), "default/greeter");
  ASSERT_EQ(cla.endpoints_size(), 3);
  EXPECT_EQ(cla.endpoints(0).priority(), 0u);
  EXPECT_EQ(cla.endpoints(0).locality().sub_zone(), "c1");
  EXPECT_EQ(cla.endpoints(0).lb_endpoints_size(), 2);
  EXPECT_EQ(cla.endpoints(0).load_balancing_weight().value(), 100000u);
  EXPECT_EQ(cla.endpoints(1).priority(), 1u);  // Same region (no same zone).
  EXPECT_EQ(cla.endpoints(1).locality().sub_zone(), "c2");
  EXPECT_EQ(cla.endpoints(2).priority(), 2u);
  // The unhealthy endpoint is not sent at all.
  ASSERT_EQ(cla.endpoints(2).lb_endpoints_size(), 1);
  EXPECT_EQ(cla.endpoints(2)
                .lb_endpoints(0)
                .endpoint()
                .address()
                .socket_address()
                .address(),
            "10.0.3.1");
  EXPECT_EQ(cla.endpoints(2).lb_endpoints(0).health_status(),
            envoy::config::core::v3::HEALTHY);
}

TEST_F(TranslateTest, SameServiceLooksDifferentFromAnotherLocality) {
  Caller eu;
  eu.locality = {"eu-west", "x", "c3"};
  ClusterLoadAssignment cla = LoadAssignmentFor(*config_, greeter(), eu);
  // c3 has 1 of 2 endpoints healthy: health = 50 % x 1.4 = 70, so 70 %
  // stays in c3 and 30 % spills to us-east (c1 and c2, 2:1 by endpoints),
  // all in priority 0 with computed weights.
  ASSERT_EQ(cla.endpoints_size(), 3);
  EXPECT_EQ(cla.endpoints(0).locality().sub_zone(), "c3");
  EXPECT_EQ(cla.endpoints(0).load_balancing_weight().value(), 70000u);
  EXPECT_EQ(cla.endpoints(1).locality().sub_zone(), "c1");
  EXPECT_EQ(cla.endpoints(1).load_balancing_weight().value(), 20000u);
  EXPECT_EQ(cla.endpoints(2).locality().sub_zone(), "c2");
  EXPECT_EQ(cla.endpoints(2).load_balancing_weight().value(), 10000u);
  for (const auto& lle : cla.endpoints()) EXPECT_EQ(lle.priority(), 0u);
}

TEST_F(TranslateTest, TranslateAnswersOnlyExistingRequestedNames) {
  auto lds = Translate(*config_, caller_, kListenerType,
                       {"greeter.mesh.internal", "greeter.mesh.internal:8080",
                        "greeter.mesh.internal:9999", "unknown.mesh.internal",
                        "grpc/server?xds.resource.listening_address="
                        "127.0.0.1:1"});
  ASSERT_EQ(lds.size(), 5u);
  for (const auto& [n, any] : lds) EXPECT_EQ(any.type_url(), kListenerType);
  // Known hostnames route through RDS; unknown ones get a listener without
  // virtual hosts, so calls fail at once instead of after 15 s.
  HttpConnectionManager hcm;
  Listener known, unknown;
  ASSERT_TRUE(lds["greeter.mesh.internal:8080"].UnpackTo(&known));
  ASSERT_TRUE(known.api_listener().api_listener().UnpackTo(&hcm));
  EXPECT_EQ(hcm.rds().route_config_name(), "greeter.mesh.internal");
  for (const char* name :
       {"greeter.mesh.internal:9999", "unknown.mesh.internal"}) {
    ASSERT_TRUE(lds[name].UnpackTo(&unknown));
    ASSERT_TRUE(unknown.api_listener().api_listener().UnpackTo(&hcm));
    EXPECT_TRUE(hcm.has_route_config()) << name;
    EXPECT_EQ(hcm.route_config().virtual_hosts_size(), 0) << name;
  }

  auto cds = Translate(*config_, caller_, kClusterType, {});  // Wildcard.
  EXPECT_EQ(cds.size(), 2u);
  EXPECT_TRUE(cds.count("ops/other"));
  auto eds = Translate(*config_, caller_, kEndpointType, {"ops/other"});
  ASSERT_EQ(eds.size(), 1u);
  ClusterLoadAssignment empty;
  ASSERT_TRUE(eds["ops/other"].UnpackTo(&empty));
  EXPECT_EQ(empty.endpoints_size(), 0);
  EXPECT_TRUE(
      Translate(*config_, caller_, kRouteType, {"nope.mesh.internal"}).empty());
}

// --- Routing rules ------------------------------------------------------------

constexpr char kRouted[] = R"(apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: greeter
    hostname: greeter.mesh.internal
    subsets:
      - {name: v1, labels: {version: v1}}
      - {name: v2, labels: {version: v2}}
    routes:
      - name: pin
        match:
          method: /pkg.Greeter/SayHello
          headers:
            - {name: x-version, exact: v2}
            - {name: x-user, regex: "^t-.*", invert: true}
            - {name: x-debug, absent: true}
          percent: 30
        to: {subset: v2}
        retries: {on: [unavailable, resource-exhausted], numRetries: 4, backoff: {base: 10ms, max: 1s}}
      - name: canary
        match: {prefix: /pkg.Greeter/}
        split: [{subset: v1, weight: 90}, {service: other, weight: 10}]
        fault: {delay: {fixed: 50ms, percent: 5}, abort: {status: ABORTED, percent: 1}}
    endpoints:
      - {address: 10.0.0.1, port: 1, labels: {version: v1}, locality: {region: r, zone: z, cluster: c}}
      - {address: 10.0.0.2, port: 1, labels: {version: v2}, locality: {region: r, zone: z, cluster: c}}
  - name: other
    hostname: other.mesh.internal
)";

class RoutingTranslateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = config::ParseConfig(kRouted, "r.yaml");
    ASSERT_TRUE(c.ok()) << c.status();
    config_ = *c;
  }
  std::shared_ptr<const config::MeshConfig> config_;
  Caller caller_;
};

TEST_F(RoutingTranslateTest, RoutesBecomeRdsRoutesInOrderWithADefault) {
  RouteConfiguration rc = RouteConfig(*config_, config_->services[0]);
  const auto& routes = rc.virtual_hosts(0).routes();
  ASSERT_EQ(routes.size(), 3);
  EXPECT_EQ(routes[0].name(), "pin");
  EXPECT_EQ(routes[1].name(), "canary");
  EXPECT_EQ(routes[2].name(), "default");
  EXPECT_EQ(routes[2].match().prefix(), "");
  EXPECT_EQ(routes[2].route().cluster(), "default/greeter");
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
TEST_F(RoutingTranslateTest, MatchesUseTheFieldsGrpcReads) {
  const RouteConfiguration rc = RouteConfig(*config_, config_->services[0]);
  const auto& m = rc.virtual_hosts(0).routes(0).match();
  EXPECT_EQ(m.path(), "/pkg.Greeter/SayHello");
  ASSERT_EQ(m.headers_size(), 3);
  EXPECT_EQ(m.headers(0).name(), "x-version");
  EXPECT_EQ(m.headers(0).exact_match(), "v2");
  EXPECT_FALSE(m.headers(0).invert_match());
  EXPECT_EQ(m.headers(1).safe_regex_match().regex(), "^t-.*");
  EXPECT_TRUE(m.headers(1).invert_match());
  // "absent" = "present", inverted.
  EXPECT_TRUE(m.headers(2).present_match());
  EXPECT_TRUE(m.headers(2).invert_match());
  EXPECT_EQ(m.runtime_fraction().default_value().numerator(), 30u);
  EXPECT_EQ(m.runtime_fraction().default_value().denominator(),
            envoy::type::v3::FractionalPercent::HUNDRED);
}
#pragma GCC diagnostic pop

TEST_F(RoutingTranslateTest, DestinationsRetriesAndFaults) {
  RouteConfiguration rc = RouteConfig(*config_, config_->services[0]);
  const auto& pin = rc.virtual_hosts(0).routes(0).route();
  EXPECT_EQ(pin.cluster(), "default/greeter/v2");
  EXPECT_EQ(pin.retry_policy().retry_on(), "unavailable,resource-exhausted");
  EXPECT_EQ(pin.retry_policy().num_retries().value(), 4u);
  EXPECT_EQ(pin.retry_policy().retry_back_off().max_interval().seconds(), 1);
  EXPECT_TRUE(rc.virtual_hosts(0).routes(0).typed_per_filter_config().empty());

  const auto& canary = rc.virtual_hosts(0).routes(1);
  ASSERT_EQ(canary.route().weighted_clusters().clusters_size(), 2);
  EXPECT_EQ(canary.route().weighted_clusters().clusters(0).name(),
            "default/greeter/v1");
  EXPECT_EQ(canary.route().weighted_clusters().clusters(0).weight().value(),
            90u);
  EXPECT_EQ(canary.route().weighted_clusters().clusters(1).name(),
            "default/other");
  // No retries configured: the built-in policy.
  EXPECT_EQ(canary.route().retry_policy().retry_on(), "unavailable,cancelled");
  envoy::extensions::filters::http::fault::v3::HTTPFault fault;
  ASSERT_TRUE(canary.typed_per_filter_config()
                  .at("envoy.filters.http.fault")
                  .UnpackTo(&fault));
  EXPECT_EQ(fault.delay().fixed_delay().nanos(), 50000000);
  EXPECT_EQ(fault.delay().percentage().numerator(), 5u);
  EXPECT_EQ(fault.abort().grpc_status(), 10u);
  EXPECT_EQ(fault.abort().percentage().numerator(), 1u);
}

TEST_F(RoutingTranslateTest, FaultFilterOnlyWhereAServiceInjectsFaults) {
  auto filters = [&](size_t i) {
    HttpConnectionManager hcm;
    EXPECT_TRUE(ClientListener(config_->services[i], "x")
                    .api_listener()
                    .api_listener()
                    .UnpackTo(&hcm));
    std::vector<std::string> names;
    for (const auto& f : hcm.http_filters()) names.push_back(f.name());
    return names;
  };
  EXPECT_EQ(filters(0), (std::vector<std::string>{
                            "envoy.filters.http.fault",
                            "envoy.filters.http.router"}));
  EXPECT_EQ(filters(1),
            (std::vector<std::string>{"envoy.filters.http.router"}));
}

TEST_F(RoutingTranslateTest, SubsetClustersHoldTheirLabelledEndpoints) {
  auto cds = Translate(*config_, caller_, kClusterType, {});
  EXPECT_EQ(cds.size(), 4u);  // greeter, greeter/v1, greeter/v2, other.
  auto eds = Translate(*config_, caller_, kEndpointType,
                       {"default/greeter/v2", "default/greeter"});
  ClusterLoadAssignment v2, all;
  ASSERT_TRUE(eds["default/greeter/v2"].UnpackTo(&v2));
  ASSERT_TRUE(eds["default/greeter"].UnpackTo(&all));
  ASSERT_EQ(v2.endpoints_size(), 1);
  ASSERT_EQ(v2.endpoints(0).lb_endpoints_size(), 1);
  EXPECT_EQ(v2.endpoints(0).lb_endpoints(0).endpoint().address()
                .socket_address().address(),
            "10.0.0.2");
  EXPECT_EQ(v2.cluster_name(), "default/greeter/v2");
  EXPECT_EQ(all.endpoints(0).lb_endpoints_size(), 2);
}


TEST_F(TranslateTest, RoutesForSomeCallersAreSentOnlyToThem) {
  config::Service s = greeter();
  config::Route r;
  r.name = "canary-callers";
  r.match.source.set = true;
  r.match.source.labels = {{"track", "canary"}};
  r.destinations.push_back({});
  s.routes.push_back(r);
  Caller labelled = caller_;
  labelled.labels = {{"track", "canary"}};
  auto names = [&](const Caller& c) {
    RouteConfiguration rc = RouteConfig(*config_, s, CallerInfoOf(*config_, c));
    std::vector<std::string> out;
    for (const auto& route : rc.virtual_hosts(0).routes()) {
      out.push_back(route.name());
    }
    return out;
  };
  EXPECT_EQ(names(labelled),
            (std::vector<std::string>{"canary-callers", "default"}));
  EXPECT_EQ(names(caller_), (std::vector<std::string>{"default"}));
  // The caller's namespace and identity come from the config.
  Caller named = caller_;
  named.service = "greeter";
  const config::CallerInfo info = CallerInfoOf(*config_, named);
  EXPECT_EQ(info.namespace_name, "default");
  EXPECT_EQ(info.identity, greeter().Identity(config_->trust_domain));
}

}  // namespace
}  // namespace xds
}  // namespace mesh
