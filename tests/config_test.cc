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
  EXPECT_EQ(g.endpoints[0].line, 9);
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
                "apiVersion, trustDomain, services)"},
        BadCase{"DuplicateKey",
                "apiVersion: mesh/v1\ntrustDomain: a\ntrustDomain: b\n",
                "f.yaml:3:1: trustDomain: duplicate key"},
        BadCase{"BadTrustDomain", "apiVersion: mesh/v1\ntrustDomain: A/B\n",
                "f.yaml:2:14: trustDomain: must be a SPIFFE trust domain "
                "(lowercase letters, digits, '.', '-', '_'), got \"A/B\""},
        BadCase{"ServicesNotAList",
                "apiVersion: mesh/v1\ntrustDomain: a\nservices: {}\n",
                "f.yaml:3:11: services: must be a list, got a map"},
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
                "one of: name, namespace, hostname, port, endpoints, "
                "localityPolicy, healthCheck)"},
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
        BadCase{"BinaryGarbage", "a: \"\\\x99\"\n",
                "f.yaml:1:7: YAML syntax error: unknown escape character: "
                "\\x99"}),
    [](const ::testing::TestParamInfo<BadCase>& info) {
      return info.param.name;
    });

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

}  // namespace
}  // namespace config
}  // namespace mesh
