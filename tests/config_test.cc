// Config parsing and validation: good files parse into the model; bad files
// produce the exact messages users see, all problems at once.

#include <gtest/gtest.h>

#include "mesh/config/config.h"
#include "mesh/config/snapshot.h"

namespace mesh {
namespace config {
namespace {

constexpr char kGood[] = R"(apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: greeter
    namespace: demo
    hostname: greeter.mesh.internal
    port: 8080
    endpoints:
      - address: 127.0.1.1
        port: 50051
        locality: {region: us-east, zone: us-east-a, cluster: cluster-1}
        weight: 3
        labels: {version: v1}
      - address: "::1"
        port: 50052
        locality: {region: eu-west}
        health: draining
  - name: empty
    hostname: empty.mesh.internal
)";

TEST(ConfigTest, ParsesAGoodFileIntoTheModel) {
  auto cfg = ParseConfig(kGood, "good.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  const MeshConfig& c = **cfg;
  EXPECT_EQ(c.trust_domain, "example.org");
  ASSERT_EQ(c.services.size(), 2u);
  const Service& g = c.services[0];
  EXPECT_EQ(g.name, "greeter");
  EXPECT_EQ(g.namespace_name, "demo");
  EXPECT_EQ(g.hostname, "greeter.mesh.internal");
  EXPECT_EQ(g.port, 8080u);
  ASSERT_EQ(g.endpoints.size(), 2u);
  EXPECT_EQ(g.endpoints[0].address, "127.0.1.1");
  EXPECT_EQ(g.endpoints[0].port, 50051u);
  EXPECT_EQ(g.endpoints[0].locality.ToString(), "us-east/us-east-a/cluster-1");
  EXPECT_EQ(g.endpoints[0].weight, 3u);
  EXPECT_EQ(g.endpoints[0].health, Health::kHealthy);
  EXPECT_EQ(g.endpoints[0].labels.at("version"), "v1");
  EXPECT_EQ(g.endpoints[1].address, "::1");
  EXPECT_EQ(g.endpoints[1].locality.ToString(), "eu-west//");
  EXPECT_EQ(g.endpoints[1].health, Health::kDraining);
  EXPECT_EQ(c.services[1].namespace_name, "default");
  EXPECT_TRUE(c.services[1].endpoints.empty());
}

TEST(ConfigTest, FindsServicesByHostnameAndDeclaredPort) {
  auto cfg = ParseConfig(kGood, "good.yaml");
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ((*cfg)->FindByAuthority("greeter.mesh.internal")->name, "greeter");
  EXPECT_EQ((*cfg)->FindByAuthority("greeter.mesh.internal:8080")->name,
            "greeter");
  EXPECT_EQ((*cfg)->FindByAuthority("greeter.mesh.internal:9090"), nullptr);
  EXPECT_EQ((*cfg)->FindByAuthority("empty.mesh.internal:8080"), nullptr);
}

TEST(ConfigTest, SnapshotVersionIsAStableContentHash) {
  auto a = MakeSnapshot(kGood, "a.yaml");
  auto b = MakeSnapshot(kGood, "b.yaml");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->version, (*b)->version);
  EXPECT_EQ((*a)->version.size(), 12u);
  auto c = MakeSnapshot(std::string(kGood) + "# edit\n", "a.yaml");
  ASSERT_TRUE(c.ok());
  EXPECT_NE((*a)->version, (*c)->version);
  // SHA-256("") starts with e3b0c44298fc.
  EXPECT_EQ(ContentVersion(""), "e3b0c44298fc");
}

struct BadCase {
  const char* name;
  const char* yaml;
  const char* message;  // The whole report, exactly.
};

class BadConfigTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfigTest, IsRejectedWithTheExactMessage) {
  auto cfg = ParseConfig(GetParam().yaml, "f.yaml");
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(cfg.status().message()), GetParam().message);
}

constexpr char kHead[] = "apiVersion: mesh/v1\ntrustDomain: example.org\n";

INSTANTIATE_TEST_SUITE_P(
    Messages, BadConfigTest,
    ::testing::Values(
        BadCase{"Empty", "", "f.yaml: the file is empty (a config needs at "
                             "least apiVersion and trustDomain)"},
        BadCase{"Syntax", "a: [\n",
                "f.yaml:2:1: YAML syntax error: end of sequence flow not "
                "found"},
        BadCase{"NotAMap", "- 1\n", "f.yaml:1:1: must be a map, got a list"},
        BadCase{"MissingRequired", "services: []\n",
                "f.yaml:1:1: apiVersion: required field is missing\n"
                "f.yaml:1:1: trustDomain: required field is missing"},
        BadCase{"WrongVersion", "apiVersion: mesh/v2\ntrustDomain: a.b\n",
                "f.yaml:1:13: apiVersion: must be \"mesh/v1\", got "
                "\"mesh/v2\""},
        BadCase{"UnknownTopLevel",
                "apiVersion: mesh/v1\ntrustDomain: a\nroutes: []\n",
                "f.yaml:3:1: routes: unknown field (expected one of: "
                "apiVersion, trustDomain, services, registration)"},
        BadCase{"DuplicateKey",
                "apiVersion: mesh/v1\ntrustDomain: a\ntrustDomain: b\n",
                "f.yaml:3:1: trustDomain: duplicate key"},
        BadCase{"BadTrustDomain", "apiVersion: mesh/v1\ntrustDomain: A/B\n",
                "f.yaml:2:14: trustDomain: must be a SPIFFE trust domain "
                "(lowercase letters, digits, '.', '-', '_'), got \"A/B\""},
        BadCase{"ServicesNotAList",
                "apiVersion: mesh/v1\ntrustDomain: a\nservices: {}\n",
                "f.yaml:3:11: services: must be a list, got an empty map"},
        BadCase{"ServiceFields",
                "apiVersion: mesh/v1\ntrustDomain: a\nservices:\n"
                "  - name: Bad_Name\n    hostname: -x.mesh\n    port: 0\n"
                "    replicas: 3\n",
                "f.yaml:4:11: services[0].name: must be a DNS label "
                "(lowercase letters, digits, '-'; at most 63), got "
                "\"Bad_Name\"\n"
                "f.yaml:5:15: services[0].hostname: must be a lowercase DNS "
                "name such as \"app1.mesh.internal\", got \"-x.mesh\"\n"
                "f.yaml:6:11: services[0].port: must be between 1 and 65535, "
                "got 0\n"
                "f.yaml:7:5: services[0].replicas: unknown field (expected "
                "one of: name, namespace, hostname, port, endpoints, dns, "
                "localityPolicy, healthCheck, outlierDetection, circuitBreaker, subsets, routes, identity, authorization)"},
        BadCase{"DuplicateServiceAndHostname",
                "apiVersion: mesh/v1\ntrustDomain: a\nservices:\n"
                "  - {name: a, hostname: a.m}\n  - {name: a, hostname: a.m}\n",
                "f.yaml:5:12: services[1].name: duplicate service default/a "
                "(also services[0])\n"
                "f.yaml:5:25: services[1].hostname: duplicate hostname a.m "
                "(also services[0])"},
        BadCase{"EndpointFields",
                "apiVersion: mesh/v1\ntrustDomain: a\nservices:\n"
                "  - name: a\n    hostname: a.m\n    endpoints:\n"
                "      - {address: db.local, port: x, weight: 0, health: ok,"
                " locality: {zone: z}}\n",
                "f.yaml:7:19: services[0].endpoints[0].address: must be an "
                "IPv4 or IPv6 address, got \"db.local\"\n"
                "f.yaml:7:35: services[0].endpoints[0].port: must be an "
                "integer, got \"x\"\n"
                "f.yaml:7:46: services[0].endpoints[0].weight: must be "
                "between 1 and 10000, got 0\n"
                "f.yaml:7:57: services[0].endpoints[0].health: must be "
                "HEALTHY, UNHEALTHY or DRAINING, got \"ok\"\n"
                "f.yaml:7:71: services[0].endpoints[0].locality.region: "
                "required field is missing"},
        BadCase{"EndpointMissingLocalityAndPort",
                "apiVersion: mesh/v1\ntrustDomain: a\nservices:\n"
                "  - name: a\n    hostname: a.m\n    endpoints:\n"
                "      - address: 10.0.0.1\n",
                "f.yaml:7:9: services[0].endpoints[0].port: required field "
                "is missing\n"
                "f.yaml:7:9: services[0].endpoints[0].locality: required "
                "field is missing"},
        BadCase{"ClusterWithoutZone",
                "apiVersion: mesh/v1\ntrustDomain: a\nservices:\n"
                "  - name: a\n    hostname: a.m\n    endpoints:\n"
                "      - {address: 10.0.0.1, port: 1, locality: {region: r,"
                " cluster: c}}\n",
                "f.yaml:7:48: services[0].endpoints[0].locality.cluster: a "
                "cluster needs a zone (localities nest region > zone > "
                "cluster)"},
        BadCase{"DuplicateEndpoint",
                "apiVersion: mesh/v1\ntrustDomain: a\nservices:\n"
                "  - name: a\n    hostname: a.m\n    endpoints:\n"
                "      - {address: 10.0.0.1, port: 1, locality: {region: r}}\n"
                "      - {address: 10.0.0.1, port: 1, locality: {region: r}}\n",
                "f.yaml:8:9: services[0].endpoints[1]: duplicate endpoint "
                "10.0.0.1:1 (also services[0].endpoints[0])"},
        // Not UTF-8: refused where the byte is (yaml-cpp, the reader
        // before, read bytes and reported the escape after it).
        BadCase{"BinaryGarbage", "a: \"\\\x99\"\n",
                "f.yaml:1:6: YAML syntax error: byte 0x99 is not UTF-8 "
                "(invalid leading UTF-8 octet): a config must be UTF-8 "
                "text"},
        BadCase{"UnknownEscape", "a: \"\\q\"\n",
                "f.yaml:1:7: YAML syntax error: unknown escape character: q"},
        BadCase{"UnclosedMapFlow", "a: {b: 1\n",
                "f.yaml:2:1: YAML syntax error: end of map flow not found"},
        BadCase{"UndefinedAlias", "a: *nowhere\n",
                "f.yaml:1:4: YAML syntax error: the referenced anchor is not "
                "defined"}),
    [](const ::testing::TestParamInfo<BadCase>& info) {
      return info.param.name;
    });

TEST(ConfigTest, ParsesLocalityPoliciesAndHealthChecks) {
  auto cfg = ParseConfig(R"(apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: a
    hostname: a.mesh.internal
    localityPolicy:
      failoverPriority: [region, zone, version]
      spillover: {mode: failover, overprovisioningFactor: 1.25, panicThreshold: 30}
    healthCheck: {interval: 2s, timeout: 250ms, healthyThreshold: 1, unhealthyThreshold: 2, serviceName: greeter}
  - name: b
    hostname: b.mesh.internal
    localityPolicy:
      failover:
        - {from: us-east, to: [eu-west, ap-south/ap-south-1]}
  - name: c
    hostname: c.mesh.internal
    localityPolicy:
      distribute:
        - from: us-east/us-east-a/*
          to: {"us-east/us-east-a/*": 80, "us-east/us-east-b": 20}
  - name: d
    hostname: d.mesh.internal
    localityPolicy: {zoneAware: {minEndpoints: 3}}
)",
                         "p.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  const auto& s = (*cfg)->services;
  const LocalityPolicy& a = s[0].locality_policy;
  EXPECT_EQ(a.failover_priority,
            (std::vector<std::string>{"region", "zone", "version"}));
  EXPECT_EQ(a.spillover, SpilloverMode::kFailover);
  EXPECT_EQ(a.overprovisioning_percent, 125u);
  EXPECT_EQ(a.panic_threshold_percent, 30u);
  const HealthCheck& hc = s[0].health_check;
  EXPECT_TRUE(hc.enabled);
  EXPECT_EQ(hc.interval_ms, 2000);
  EXPECT_EQ(hc.timeout_ms, 250);
  EXPECT_EQ(hc.healthy_threshold, 1u);
  EXPECT_EQ(hc.unhealthy_threshold, 2u);
  EXPECT_EQ(hc.service_name, "greeter");
  ASSERT_EQ(s[1].locality_policy.failover.size(), 1u);
  EXPECT_EQ(s[1].locality_policy.failover[0].from.ToString(), "us-east/*");
  EXPECT_EQ(s[1].locality_policy.failover[0].to[1].ToString(),
            "ap-south/ap-south-1/*");
  ASSERT_EQ(s[2].locality_policy.distribute.size(), 1u);
  const DistributeRule& d = s[2].locality_policy.distribute[0];
  EXPECT_EQ(d.from.ToString(), "us-east/us-east-a/*");
  EXPECT_EQ(d.to[1].first.ToString(), "us-east/us-east-b/*");
  EXPECT_EQ(d.to[1].second, 20u);
  EXPECT_TRUE(s[3].locality_policy.zone_aware);
  EXPECT_EQ(s[3].locality_policy.zone_aware_min_endpoints, 3u);
  // Defaults.
  EXPECT_EQ(s[1].locality_policy.spillover, SpilloverMode::kProportional);
  EXPECT_EQ(s[1].locality_policy.overprovisioning_percent, 140u);
  EXPECT_EQ(s[1].locality_policy.panic_threshold_percent, 50u);
  EXPECT_FALSE(s[1].health_check.enabled);
}

TEST(ConfigTest, LocalityPatternsMatch) {
  LocalityPattern p;
  p.region = "us-east";
  EXPECT_TRUE(p.Matches({"us-east", "a", "c"}));
  EXPECT_FALSE(p.Matches({"eu-west", "a", "c"}));
  p.zone = "a";
  EXPECT_TRUE(p.Matches({"us-east", "a", "x"}));
  EXPECT_FALSE(p.Matches({"us-east", "b", "x"}));
  EXPECT_TRUE(LocalityPattern().Matches({"any", "thing", "at-all"}));
}

TEST(ConfigTest, RejectsBadLocalityPoliciesWithExactMessages) {
  auto cfg = ParseConfig(R"(apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: a
    hostname: a.mesh.internal
    localityPolicy:
      failoverPriority: [region, region]
      distribute:
        - from: "*/zone"
          to: {"us-east": 70, "eu-west": 20}
        - from: us-east
          to: {"us-east": 101}
      spillover: {mode: sometimes, overprovisioningFactor: 0.5, panicThreshold: 101}
    healthCheck: {interval: 1s, timeout: 2s, unhealthyThreshold: 0, colour: red}
  - name: b
    hostname: b.mesh.internal
    localityPolicy:
      failover:
        - {from: "*", to: []}
        - {from: us-east/a/c1, to: [eu-west]}
)",
                         "p.yaml");
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(
      std::string(cfg.status().message()),
      "p.yaml:7:7: services[0].localityPolicy: set at most one of "
      "failoverPriority, failover, distribute and zoneAware; got "
      "failoverPriority and distribute\n"
      "p.yaml:7:34: services[0].localityPolicy.failoverPriority[1]: "
      "duplicate label key region\n"
      "p.yaml:9:17: services[0].localityPolicy.distribute[0].from: must be a "
      "locality pattern \"region[/zone[/cluster]]\" where a part may be "
      "\"*\" (then so must the parts after it), got \"*/zone\"\n"
      "p.yaml:10:15: services[0].localityPolicy.distribute[0].to: weights "
      "must sum to 100, got 90\n"
      "p.yaml:12:27: services[0].localityPolicy.distribute[1].to.us-east: "
      "must be a weight between 1 and 100, got \"101\"\n"
      "p.yaml:13:25: services[0].localityPolicy.spillover.mode: must be "
      "proportional or failover, got \"sometimes\"\n"
      "p.yaml:13:60: services[0].localityPolicy.spillover."
      "overprovisioningFactor: must be a number between 1.0 and 10.0, got "
      "\"0.5\"\n"
      "p.yaml:13:81: services[0].localityPolicy.spillover.panicThreshold: "
      "must be between 0 and 100, got 101\n"
      "p.yaml:14:18: services[0].healthCheck.timeout: must not exceed the "
      "interval (1000ms), got 2000ms\n"
      "p.yaml:14:66: services[0].healthCheck.unhealthyThreshold: must be "
      "between 1 and 100, got 0\n"
      "p.yaml:14:69: services[0].healthCheck.colour: unknown field (expected "
      "one of: interval, timeout, healthyThreshold, unhealthyThreshold, "
      "serviceName)\n"
      "p.yaml:19:18: services[1].localityPolicy.failover[0].from: must name "
      "a region or a region/zone\n"
      "p.yaml:19:27: services[1].localityPolicy.failover[0].to: must be a "
      "non-empty list of locality patterns\n"
      "p.yaml:20:18: services[1].localityPolicy.failover[1].from: must name "
      "a region or a region/zone");
}

TEST(ConfigTest, RejectsBadRoutesWithExactMessages) {
  auto cfg = ParseConfig(R"(apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: a
    hostname: a.mesh.internal
    subsets: [{name: v1, labels: {version: v1}}]
    routes:
      - name: one
        match: {method: pkg.S/M, headers: [{name: x-bin, present: true}, {name: grpc-timeout, exact: "1"}, {name: x-re, regex: "(["}]}
        split: [{subset: v1, weight: 60}, {subset: v9, weight: 30}]
      - name: two
        match: {prefix: nope, headers: [{name: X-Up, exact: a, prefix: b}]}
        to: {service: ghost}
        retries: {on: [unknown], numRetries: 5, backoff: {base: 1s, max: 10ms}}
        fault: {abort: {status: OK, percent: 0}}
      - name: all
        to: {}
      - name: late
        to: {subset: v1}
      - name: all
        to: {}
)",
                         "rt.yaml");
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(std::string(cfg.status().message()),
            "rt.yaml:9:25: services[0].routes[0].match.method: must be a full method \"/package.Service/Method\", got \"pkg.S/M\"\n"
            "rt.yaml:9:51: services[0].routes[0].match.headers[0].name: binary (-bin) headers cannot be matched: gRPC 1.51 ignores them in routing\n"
            "rt.yaml:9:81: services[0].routes[0].match.headers[1].name: grpc- headers cannot be matched: gRPC 1.51 hides them from routing\n"
            "rt.yaml:9:128: services[0].routes[0].match.headers[2].regex: invalid RE2 regular expression: missing ]: [\n"
            "rt.yaml:10:16: services[0].routes[0].split: weights must sum to 100, got 90\n"
            "rt.yaml:10:43: services[0].routes[0].split[1].subset: service default/a has no subset \"v9\"\n"
            "rt.yaml:12:25: services[0].routes[1].match.prefix: must start with \"/\" (e.g. \"/package.Service/\"), got \"nope\"\n"
            "rt.yaml:12:41: services[0].routes[1].match.headers[0]: set exactly one of exact, prefix, regex, present, absent\n"
            "rt.yaml:12:48: services[0].routes[1].match.headers[0].name: must be a lowercase header name (no pseudo-headers)\n"
            "rt.yaml:13:13: services[0].routes[1].to.service: unknown service \"ghost\"\n"
            "rt.yaml:14:24: services[0].routes[1].retries.on[0]: gRPC 1.51 retries only on cancelled, deadline-exceeded, internal, resource-exhausted, unavailable; got \"unknown\"\n"
            "rt.yaml:14:46: services[0].routes[1].retries.numRetries: must be between 1 and 4, got 5\n"
            "rt.yaml:14:58: services[0].routes[1].retries.backoff.max: must be at least base (1000ms), got 10ms\n"
            "rt.yaml:15:33: services[0].routes[1].fault.abort.status: must be a gRPC status other than OK (a name such as UNAVAILABLE, or 1-16), got \"OK\"\n"
            "rt.yaml:15:46: services[0].routes[1].fault.abort.percent: must be between 1 and 100, got 0\n"
            "rt.yaml:18:9: services[0].routes[3]: unreachable: route all (line 16) before it matches every call\n"
            "rt.yaml:20:9: services[0].routes[4]: unreachable: route all (line 16) before it matches every call\n"
            "rt.yaml:20:15: services[0].routes[4].name: duplicate route name all");
}

TEST(ConfigTest, RefusesRouteTimeoutsThatGrpc151GetsWrong) {
  auto cfg = ParseConfig(R"(apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: a
    hostname: a.mesh.internal
    routes:
      - {name: r, to: {}, timeout: 300ms}
)",
                         "t.yaml");
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(std::string(cfg.status().message()),
            "t.yaml:7:36: services[0].routes[0].timeout: route timeouts are "
            "not supported: gRPC 1.51.1 applies them from a stale start time "
            "and fails calls early (a 300ms timeout failed calls after "
            "0.1ms); set a deadline on each call (ClientContext::set_deadline) "
            "instead");
}

TEST(ConfigTest, RejectsOversizedInput) {
  std::string big(kMaxConfigBytes + 1, '#');
  auto cfg = ParseConfig(big, "big.yaml");
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().message(),
            "big.yaml: file is 16777217 bytes, larger than the limit of "
            "16777216");
}

TEST(ConfigTest, SurvivesDeepNesting) {
  std::string deep(100000, '[');
  auto cfg = ParseConfig(deep, "deep.yaml");
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ConfigTest, ReportsMissingFilesByPath) {
  auto cfg = LoadConfigFile("/nonexistent/mesh.yaml");
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cfg.status().message(),
            "/nonexistent/mesh.yaml: No such file or directory");
}

TEST(ConfigTest, ReadsOutlierDetectionAndCircuitBreaker) {
  auto cfg = ParseConfig(R"(apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: a
    hostname: a.mesh.internal
    outlierDetection:
      interval: 500ms
      baseEjectionTime: 3s
      maxEjectionTime: 60s
      maxEjectionPercent: 50
      failurePercentage: {threshold: 80, minimumHosts: 2, requestVolume: 10, enforcementPercent: 90}
      successRate: {stdevFactor: 1.5, minimumHosts: 3, requestVolume: 20}
    circuitBreaker: {maxRequests: 4}
  - name: b
    hostname: b.mesh.internal
)",
                         "o.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  const OutlierDetection& o = (*cfg)->services[0].outlier_detection;
  EXPECT_EQ(o.interval_ms, 500);
  EXPECT_EQ(o.base_ejection_ms, 3000);
  EXPECT_EQ(o.max_ejection_ms, 60000);
  EXPECT_EQ(o.max_ejection_percent, 50u);
  EXPECT_EQ(o.failure_threshold, 80u);
  EXPECT_EQ(o.failure_minimum_hosts, 2u);
  EXPECT_EQ(o.failure_request_volume, 10u);
  EXPECT_EQ(o.failure_enforcement_percent, 90u);
  EXPECT_EQ(o.success_stdev_factor_milli, 1500u);
  EXPECT_EQ(o.success_minimum_hosts, 3u);
  EXPECT_EQ(o.success_request_volume, 20u);
  EXPECT_EQ(o.success_enforcement_percent, 100u);  // On once given.
  EXPECT_EQ((*cfg)->services[0].circuit_breaker.max_requests, 4u);
  // Absent: the built-in defaults, success rate off, no breaker.
  const OutlierDetection& d = (*cfg)->services[1].outlier_detection;
  EXPECT_EQ(d.interval_ms, 1000);
  EXPECT_EQ(d.base_ejection_ms, 5000);
  EXPECT_EQ(d.failure_threshold, 50u);
  EXPECT_EQ(d.failure_request_volume, 5u);
  EXPECT_EQ(d.success_enforcement_percent, 0u);
  EXPECT_EQ((*cfg)->services[1].circuit_breaker.max_requests, 0u);
}

TEST(ConfigTest, RejectsBadOutlierDetectionAndCircuitBreakers) {
  auto cfg = ParseConfig(R"(apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: a
    hostname: a.mesh.internal
    outlierDetection:
      interval: 10ms
      baseEjectionTime: 10s
      maxEjectionTime: 5s
      maxEjectionPercent: 101
      failurePercentage: {threshold: 50, requestVolume: 0, consecutive: 5}
      successRate: {stdevFactor: fast}
    circuitBreaker: {maxRequests: 0}
  - name: b
    hostname: b.mesh.internal
    circuitBreaker: {}
)",
                         "o.yaml");
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(
      std::string(cfg.status().message()),
      "o.yaml:7:17: services[0].outlierDetection.interval: must be between "
      "100ms and 1h, got 10ms\n"
      "o.yaml:9:24: services[0].outlierDetection.maxEjectionTime: must not "
      "be less than baseEjectionTime (10000ms), got 5000ms\n"
      "o.yaml:10:27: services[0].outlierDetection.maxEjectionPercent: must "
      "be between 0 and 100, got 101\n"
      "o.yaml:11:57: services[0].outlierDetection.failurePercentage."
      "requestVolume: must be between 1 and 1000000, got 0\n"
      "o.yaml:11:60: services[0].outlierDetection.failurePercentage."
      "consecutive: unknown field (expected one of: threshold, minimumHosts, "
      "requestVolume, enforcementPercent)\n"
      "o.yaml:12:34: services[0].outlierDetection.successRate.stdevFactor: "
      "must be a number between 0.1 and 100, got \"fast\"\n"
      "o.yaml:13:35: services[0].circuitBreaker.maxRequests: must be between "
      "1 and 1000000, got 0\n"
      "o.yaml:16:21: services[1].circuitBreaker.maxRequests: required field "
      "is missing");
}

TEST(ConfigTest, ReadsRoutesForSomeCallersAndMatchesThem) {
  auto cfg = ParseConfig(R"(apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: a
    hostname: a.mesh.internal
    subsets: [{name: v2, labels: {version: v2}}]
    routes:
      - name: canary
        match: {source: {labels: {track: canary}, locality: us-east, identity: "spiffe://example.org/ns/web/*"}}
        to: {subset: v2}
      - name: batch
        match: {source: {service: jobs/batch}}
        to: {subset: v2}
)",
                         "s.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  const SourceMatch& canary = (*cfg)->services[0].routes[0].match.source;
  EXPECT_TRUE(canary.set);
  EXPECT_FALSE((*cfg)->services[0].routes[0].match.MatchesEverything());
  CallerInfo c;
  c.service = "front";
  c.namespace_name = "web";
  c.labels = {{"track", "canary"}, {"team", "x"}};
  c.locality = {"us-east", "us-east-a", "c1"};
  c.identity = "spiffe://example.org/ns/web/sa/front";
  EXPECT_TRUE(canary.Matches(c));
  CallerInfo other = c;
  other.labels.erase("track");
  EXPECT_FALSE(canary.Matches(other));
  other = c;
  other.locality.region = "eu-west";
  EXPECT_FALSE(canary.Matches(other));
  other = c;
  other.identity = "spiffe://example.org/ns/webx/sa/front";
  EXPECT_FALSE(canary.Matches(other));
  const SourceMatch& batch = (*cfg)->services[0].routes[1].match.source;
  CallerInfo b;
  b.service = "batch";
  b.namespace_name = "jobs";
  EXPECT_TRUE(batch.Matches(b));
  b.namespace_name = "default";
  EXPECT_FALSE(batch.Matches(b));
  EXPECT_EQ((*cfg)->services[0].routes[0].match.ToString(),
            "callers with label track=canary and in us-east/* and "
            "identity spiffe://example.org/ns/web/*");
}

TEST(ConfigTest, RejectsBadSourceMatches) {
  auto cfg = ParseConfig(R"(apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: a
    hostname: a.mesh.internal
    routes:
      - name: r1
        match: {source: {service: "a/b/c", namespace: "Web", locality: "*/z"}}
        to: {service: a}
      - name: r2
        match: {source: {identity: "spiffe://example.org*", colour: red}}
        to: {service: a}
      - name: r3
        match: {source: {}}
        to: {service: a}
      - name: r4
        match: {source: {labels: [track]}}
        to: {service: a}
)",
                         "s.yaml");
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(
      std::string(cfg.status().message()),
      "s.yaml:8:35: services[0].routes[0].match.source.service: must be a "
      "service name or \"namespace/name\" (DNS labels), got \"a/b/c\"\n"
      "s.yaml:8:55: services[0].routes[0].match.source.namespace: must be a "
      "DNS label, got \"Web\"\n"
      "s.yaml:8:72: services[0].routes[0].match.source.locality: must be a "
      "locality pattern \"region[/zone[/cluster]]\" where a part may be "
      "\"*\" (then so must the parts after it), got \"*/z\"\n"
      "s.yaml:11:36: services[0].routes[1].match.source.identity: a prefix "
      "pattern must look like \"spiffe://TRUST_DOMAIN/*\" or "
      "\"spiffe://TRUST_DOMAIN/PATH/*\" (ending in \"/*\", so that it "
      "cannot match another trust domain), got \"spiffe://example.org*\"\n"
      "s.yaml:11:61: services[0].routes[1].match.source.colour: unknown "
      "field (expected one of: service, namespace, labels, locality, "
      "identity)\n"
      "s.yaml:14:25: services[0].routes[2].match.source: give at least one "
      "of service, namespace, labels, locality and identity\n"
      "s.yaml:16:9: services[0].routes[3]: unreachable: route r3 (line 13) "
      "matches the same calls\n"
      "s.yaml:17:34: services[0].routes[3].match.source.labels: must be a "
      "map, got a list");
}

}  // namespace
}  // namespace config
}  // namespace mesh
