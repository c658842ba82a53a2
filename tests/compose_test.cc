// The merge rule (mesh/source/compose.h): one config document, endpoint
// sets and DNS answers added to the services they name, every conflict an
// error that names the parts, and the saved form read back to the same
// config and version.

#include "mesh/source/compose.h"
#include "mesh/source/etcd_source.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace mesh {
namespace source {
namespace {

constexpr char kDoc[] = R"(apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: app1
    hostname: app1.mesh.internal
    endpoints:
      - address: 10.0.0.1
        port: 8080
        locality: {region: r1, zone: z1, cluster: c1}
  - name: app2
    namespace: shop
    hostname: app2.mesh.internal
)";

std::string Set(const std::string& service, const std::string& addr,
                int port, const std::string& cluster = "c2") {
  return absl::StrCat("apiVersion: mesh/v1\nkind: EndpointSet\nservice: ",
                      service, "\nendpoints:\n  - address: ", addr,
                      "\n    port: ", port,
                      "\n    locality: {region: r1, zone: z2, cluster: ",
                      cluster, "}\n");
}

std::vector<std::string> Addresses(const config::Service& s) {
  std::vector<std::string> out;
  for (const auto& e : s.endpoints) {
    out.push_back(absl::StrCat(e.address, ":", e.port, "@",
                               e.locality.cluster));
  }
  return out;
}

TEST(ComposeTest, LoneDocumentKeepsTheFileVersion) {
  Composer c;
  EXPECT_TRUE(c.SetDocument("/etc/mesh.yaml", kDoc));
  EXPECT_FALSE(c.SetDocument("/etc/mesh.yaml", kDoc));  // Unchanged.
  auto r = c.Compose();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->text, kDoc);
  EXPECT_EQ(r->snapshot->version, config::ContentVersion(kDoc));
}

TEST(ComposeTest, EndpointSetsJoinTheirService) {
  Composer c;
  c.SetDocument("/etc/mesh.yaml", kDoc);
  EXPECT_TRUE(c.SetEndpointSet("etcd:/mesh/endpoints/default/app1/c2",
                               Set("app1", "10.0.0.2", 8080)));
  EXPECT_TRUE(c.SetEndpointSet("etcd:/mesh/endpoints/shop/app2/c3",
                               Set("shop/app2", "10.0.0.3", 9090, "c3")));
  config::EndpointSet dns;
  dns.service = "default/app1";
  config::Endpoint e;
  e.address = "10.0.0.9";
  e.port = 8080;
  e.locality = {"r2", "z9", "c9"};
  dns.endpoints.push_back(e);
  EXPECT_TRUE(c.SetDnsAnswer("dns:default/app1 app1.c9.example:8080", dns));
  EXPECT_FALSE(c.SetDnsAnswer("dns:default/app1 app1.c9.example:8080", dns));
  auto r = c.Compose();
  ASSERT_TRUE(r.ok()) << r.status();
  const config::MeshConfig& cfg = *r->snapshot->config;
  EXPECT_EQ(Addresses(*cfg.FindByName("app1")),
            (std::vector<std::string>{"10.0.0.1:8080@c1", "10.0.0.9:8080@c9",
                                      "10.0.0.2:8080@c2"}));
  EXPECT_EQ(Addresses(*cfg.FindByName("shop/app2")),
            (std::vector<std::string>{"10.0.0.3:9090@c3"}));
  EXPECT_NE(r->snapshot->version, config::ContentVersion(kDoc));

  // The saved form gives back the same parts, config and version.
  auto restored = Composer::Restore(r->text, "last-good.yaml");
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->Keys(), c.Keys());
  auto r2 = restored->Compose();
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->text, r->text);
  EXPECT_EQ(r2->snapshot->version, r->snapshot->version);
  EXPECT_EQ(Addresses(*r2->snapshot->config->FindByName("app1")),
            Addresses(*cfg.FindByName("app1")));

  // A re-list replaces every etcd part.
  EXPECT_EQ(c.RemovePrefix("etcd:"), 2);
  auto r3 = c.Compose();
  ASSERT_TRUE(r3.ok()) << r3.status();
  EXPECT_EQ(Addresses(*r3->snapshot->config->FindByName("app1")).size(), 2u);
}

TEST(ComposeTest, ConflictsAreErrorsNamingTheParts) {
  Composer c;
  c.SetDocument("/etc/mesh.yaml", kDoc);
  // The document's own endpoint, given again by a set.
  c.SetEndpointSet("etcd:/mesh/endpoints/a", Set("app1", "10.0.0.1", 8080));
  // The same endpoint in two sets.
  c.SetEndpointSet("etcd:/mesh/endpoints/b", Set("app1", "10.0.0.5", 8080));
  c.SetEndpointSet("etcd:/mesh/endpoints/c", Set("app1", "10.0.0.5", 8080));
  // A service the document does not have.
  c.SetEndpointSet("etcd:/mesh/endpoints/d", Set("app9", "10.0.0.6", 8080));
  // A set that fails validation.
  c.SetEndpointSet("etcd:/mesh/endpoints/e", Set("app1", "10.0.0.300", 8080));
  auto r = c.Compose();
  ASSERT_FALSE(r.ok());
  const std::string m(r.status().message());
  EXPECT_TRUE(absl::StrContains(
      m, "etcd:/mesh/endpoints/a: endpoint 10.0.0.1:8080 of default/app1 is "
         "also given by /etc/mesh.yaml"))
      << m;
  EXPECT_TRUE(absl::StrContains(
      m, "etcd:/mesh/endpoints/c: endpoint 10.0.0.5:8080 of default/app1 is "
         "also given by etcd:/mesh/endpoints/b"))
      << m;
  EXPECT_TRUE(absl::StrContains(
      m, "etcd:/mesh/endpoints/d: service default/app9 is not in the config"))
      << m;
  EXPECT_TRUE(absl::StrContains(
      m, "etcd:/mesh/endpoints/e:5:14: endpoints[0].address: must be an IPv4"))
      << m;

  // Two documents.
  Composer two;
  two.SetDocument("/etc/mesh.yaml", kDoc);
  two.SetDocument("etcd:/mesh/config", kDoc);
  auto r2 = two.Compose();
  ASSERT_FALSE(r2.ok());
  EXPECT_TRUE(absl::StrContains(r2.status().message(),
                                "two config documents, /etc/mesh.yaml and "
                                "etcd:/mesh/config"))
      << r2.status();

  // None.
  Composer none;
  none.SetEndpointSet("etcd:/mesh/endpoints/a", Set("app1", "10.0.0.2", 1));
  auto r3 = none.Compose();
  ASSERT_FALSE(r3.ok());
  EXPECT_TRUE(absl::StrContains(r3.status().message(), "no config document"));
}

TEST(ComposeTest, EndpointSetValidation) {
  auto ok = config::ParseEndpointSet(Set("shop/app2", "::1", 80), "k");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->service, "shop/app2");
  auto bad = config::ParseEndpointSet(
      "apiVersion: mesh/v1\nkind: Mesh\nservice: A/b/c\n", "etcd:/k");
  ASSERT_FALSE(bad.ok());
  const std::string m(bad.status().message());
  EXPECT_TRUE(absl::StrContains(m, "etcd:/k:2:7: kind: must be "
                                   "\"EndpointSet\", got \"Mesh\""))
      << m;
  EXPECT_TRUE(absl::StrContains(m, "service: must be \"name\" or "
                                   "\"namespace/name\""))
      << m;
  EXPECT_TRUE(absl::StrContains(m, "endpoints: required field is missing"))
      << m;
  // An answer written by EndpointSetToYaml reads back the same.
  config::EndpointSet s;
  s.service = "default/app1";
  config::Endpoint e;
  e.address = "fd00::1";
  e.port = 443;
  e.locality = {"r \"1\"", "", ""};
  e.weight = 7;
  e.health = config::Health::kDraining;
  e.labels = {{"version", "v2"}, {"a/b", "x: y"}};
  s.endpoints.push_back(e);
  auto back = config::ParseEndpointSet(config::EndpointSetToYaml(s), "gen");
  // The region is not a valid token, so it is refused: quoting is not a way
  // around validation.
  ASSERT_FALSE(back.ok());
  s.endpoints[0].locality.region = "r1";
  back = config::ParseEndpointSet(config::EndpointSetToYaml(s), "gen");
  ASSERT_TRUE(back.ok()) << back.status() << config::EndpointSetToYaml(s);
  ASSERT_EQ(back->endpoints.size(), 1u);
  EXPECT_EQ(back->endpoints[0].weight, 7u);
  EXPECT_EQ(back->endpoints[0].health, config::Health::kDraining);
  EXPECT_EQ(back->endpoints[0].labels, e.labels);
  EXPECT_EQ(config::EndpointSetToYaml(*back), config::EndpointSetToYaml(s));
}

TEST(ComposeTest, DnsEntriesInTheSchema) {
  const std::string doc = R"(apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: app1
    hostname: app1.mesh.internal
    dns:
      - name: app1.cluster-2.example
        port: 50051
        locality: {region: r1, zone: z2, cluster: c2}
      - srv: _grpc._tcp.app1.cluster-3.example
        locality: {region: r1, zone: z3}
        labels: {via: srv}
)";
  auto cfg = config::ParseConfig(doc, "m.yaml");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  const auto& dns = (*cfg)->services[0].dns;
  ASSERT_EQ(dns.size(), 2u);
  EXPECT_EQ(dns[0].Key(), "app1.cluster-2.example:50051");
  EXPECT_EQ(dns[1].Key(), "srv _grpc._tcp.app1.cluster-3.example");
  EXPECT_EQ(dns[1].labels.at("via"), "srv");
  auto bad = config::ParseConfig(R"(apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: app1
    hostname: app1.mesh.internal
    dns:
      - name: app1.example
        locality: {region: r1}
      - srv: _grpc._tcp.app1.example
        port: 80
        locality: {region: r1}
      - name: "bad name!"
        srv: x.example
        port: 1
        locality: {region: r1}
)",
                                 "m.yaml");
  ASSERT_FALSE(bad.ok());
  const std::string m(bad.status().message());
  EXPECT_TRUE(absl::StrContains(m, "services[0].dns[0].port: required field "
                                   "is missing"))
      << m;
  EXPECT_TRUE(absl::StrContains(m, "services[0].dns[1]: `port` and `weight` "
                                   "come from the SRV records"))
      << m;
  EXPECT_TRUE(absl::StrContains(m, "services[0].dns[2]: give either `name`"))
      << m;
}

// kind: Instance, as a registrar writes it (config::EndpointSetToYaml).
std::string Instance(const std::string& service, const std::string& identity,
                     const std::string& addr, int port,
                     const std::string& cluster = "c3",
                     const std::string& zone = "z3",
                     config::Health health = config::Health::kHealthy) {
  config::EndpointSet set;
  set.instance = true;
  set.service = service;
  set.identity = identity;
  set.started = "2026-12-06T12:00:00Z";
  config::Endpoint e;
  e.address = addr;
  e.port = port;
  e.locality = {"r1", zone, cluster};
  e.health = health;
  set.endpoints.push_back(e);
  return config::EndpointSetToYaml(set);
}

constexpr char kApp1Id[] = "spiffe://example.org/ns/default/sa/app1";

TEST(ComposeTest, RegisteredInstancesJoinTheirServiceAndRoundTrip) {
  Composer c;
  c.SetDocument("/etc/mesh.yaml", kDoc);
  c.SetEndpointSet("etcd:/mesh/endpoints/default/app1/c2",
                   Set("app1", "10.0.0.2", 8080));
  EXPECT_TRUE(c.SetInstance("etcd:/mesh/instances/default/app1/i3",
                            Instance("default/app1", kApp1Id, "10.0.0.3", 8080),
                            "default/app1"));
  auto r = c.Compose();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Addresses(r->snapshot->config->services[0]),
            (std::vector<std::string>{"10.0.0.1:8080@c1", "10.0.0.2:8080@c2",
                                      "10.0.0.3:8080@c3"}));
  EXPECT_TRUE(r->ignored.empty());
  const Composer::Result::Origins& o = r->origins.at("default/app1");
  EXPECT_EQ(o.declared, 1);
  EXPECT_EQ(o.endpoint_set, 1);
  EXPECT_EQ(o.registered, 1);
  EXPECT_EQ(o.held, 0);
  EXPECT_EQ(o.from.at("10.0.0.3:8080"), "etcd:/mesh/instances/default/app1/i3");
  EXPECT_EQ(o.from.at("10.0.0.1:8080"), "/etc/mesh.yaml");
  // The saved form reads back to the same config.
  auto back = Composer::Restore(r->text, "last-good");
  ASSERT_TRUE(back.ok()) << back.status();
  auto r2 = back->Compose();
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->snapshot->version, r->snapshot->version);
  EXPECT_EQ(Addresses(r2->snapshot->config->services[0]),
            Addresses(r->snapshot->config->services[0]));
}

// A bad instance never costs the rest: it is left out and reported.
TEST(ComposeTest, BadInstancesAreLeftOutAndReported) {
  Composer c;
  c.SetDocument("/etc/mesh.yaml", kDoc);
  c.SetInstance("etcd:/mesh/instances/default/app1/garbage", "{{{",
                "default/app1");
  c.SetInstance("etcd:/mesh/instances/default/app1/impostor",
                Instance("default/app1",
                         "spiffe://example.org/ns/default/sa/evil",
                         "10.0.0.4", 8080),
                "default/app1");
  c.SetInstance("etcd:/mesh/instances/default/app1/cross",
                Instance("shop/app2", "spiffe://example.org/ns/shop/sa/app2",
                         "10.0.0.5", 8080),
                "default/app1");
  c.SetInstance("etcd:/mesh/instances/default/app1/bad-locality",
                absl::StrReplaceAll(
                    Instance("default/app1", kApp1Id, "10.0.0.6", 8080),
                    {{"region: \"r1\"", "region: \"\""}}),
                "default/app1");
  // The declared endpoint again: the same is silently skipped, a
  // different one reported.
  c.SetInstance("etcd:/mesh/instances/default/app1/same",
                Instance("default/app1", kApp1Id, "10.0.0.1", 8080, "c1",
                         "z1"),
                "default/app1");
  c.SetInstance("etcd:/mesh/instances/default/app1/other",
                Instance("default/app1", kApp1Id, "10.0.0.1", 8080, "c9"),
                "default/app1");
  c.SetInstance("etcd:/mesh/instances/default/app1/good",
                Instance("default/app1", kApp1Id, "10.0.0.7", 8080),
                "default/app1");
  auto r = c.Compose();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Addresses(r->snapshot->config->services[0]),
            (std::vector<std::string>{"10.0.0.1:8080@c1",
                                      "10.0.0.7:8080@c3"}));
  ASSERT_EQ(r->ignored.size(), 5u) << absl::StrJoin(r->ignored, "\n");
  const std::string all = absl::StrJoin(r->ignored, "\n");
  for (const char* want : {
           "etcd:/mesh/instances/default/app1/bad-locality: ignored: "
           "etcd:/mesh/instances/default/app1/bad-locality:",
           "required field is empty",
           "etcd:/mesh/instances/default/app1/cross: ignored: an instance of "
           "shop/app2 under the key of default/app1",
           "etcd:/mesh/instances/default/app1/garbage: ignored: ",
           "etcd:/mesh/instances/default/app1/impostor: ignored: it serves as "
           "spiffe://example.org/ns/default/sa/evil but default/app1's "
           "servers must be spiffe://example.org/ns/default/sa/app1",
           "etcd:/mesh/instances/default/app1/other: ignored: endpoint "
           "10.0.0.1:8080 of default/app1 is also given by /etc/mesh.yaml, "
           "differently"}) {
    EXPECT_TRUE(absl::StrContains(all, want)) << want << "\n" << all;
  }
  EXPECT_FALSE(absl::StrContains(all, "/same:")) << all;
}

// The mass-removal guard (config registration.removalGuard).
class RemovalGuardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    c_.SetClock([this] { return now_; });
    c_.SetDocument("/etc/mesh.yaml", kDoc);
  }
  static std::string Key(int i) {
    return absl::StrCat("etcd:/mesh/instances/default/app1/10.0.1.", i,
                        ":8080");
  }
  // Instance i in cluster c3 (or `cluster`), healthy.
  void Register(int i, const std::string& cluster = "c3") {
    c_.SetInstance(Key(i),
                   Instance("default/app1", kApp1Id,
                            absl::StrCat("10.0.1.", i), 8080, cluster),
                   "default/app1");
  }
  // How many endpoints app1 has, and the held lines.
  int Endpoints(std::vector<std::string>* held = nullptr) {
    auto r = c_.Compose();
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return -1;
    if (held != nullptr) *held = r->held;
    return static_cast<int>(r->snapshot->config->services[0].endpoints.size());
  }
  Composer c_;
  absl::Time now_ = absl::FromUnixSeconds(1800000000);
};

// etcd's full listings (after a compaction, EtcdSource::Apply) remove only
// what the listing no longer has: an instance that left while the watch was
// away is not held because everything was removed and set again.
TEST_F(RemovalGuardTest, AFullListingRemovesOnlyWhatItNoLongerHas) {
  EtcdSource::Change full;
  full.full = true;
  for (int i = 1; i <= 4; ++i) {
    source::EtcdEvent e;
    e.kv.key = absl::StrCat("/mesh/instances/default/app1/10.0.1.", i, ":8080");
    e.kv.value = Instance("default/app1", kApp1Id, absl::StrCat("10.0.1.", i),
                          8080);
    full.events.push_back(e);
  }
  bool changed = false;
  EtcdSource::Apply("/mesh/", full, &c_, &changed);
  ASSERT_EQ(Endpoints(), 5);
  full.events.pop_back();  // The last by key order left meanwhile.
  changed = false;
  EXPECT_TRUE(EtcdSource::Apply("/mesh/", full, &c_, &changed).empty());
  EXPECT_TRUE(changed);
  std::vector<std::string> held;
  EXPECT_EQ(Endpoints(&held), 4);
  EXPECT_TRUE(held.empty()) << absl::StrJoin(held, "\n");
  // A listing that lost most of a locality still trips the guard: of 4,
  // the 4th and the 2nd went (2 of 4, not more than 50 %), the 3rd is held.
  full.events.resize(1);
  EtcdSource::Apply("/mesh/", full, &c_, &changed);
  EXPECT_EQ(Endpoints(&held), 3);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_TRUE(absl::StartsWith(
      held[0], "etcd:/mesh/instances/default/app1/10.0.1.3:8080: 3 of 4"))
      << held[0];
}

TEST_F(RemovalGuardTest, OneInstanceGoingIsDroppedAtOnce) {
  for (int i = 1; i <= 10; ++i) Register(i);
  ASSERT_EQ(Endpoints(), 11);  // The declared one, and 10.
  c_.Remove(Key(3));
  std::vector<std::string> held;
  EXPECT_EQ(Endpoints(&held), 10);
  EXPECT_TRUE(held.empty()) << absl::StrJoin(held, "\n");
  EXPECT_EQ(c_.NextExpiry(), absl::InfiniteFuture());
}

TEST_F(RemovalGuardTest, MostOfALocalityVanishingKeepsTheRestUntilTheyReturn) {
  for (int i = 1; i <= 10; ++i) Register(i);
  // Two in another locality are not its business.
  Register(11, "c4");
  Register(12, "c4");
  ASSERT_EQ(Endpoints(), 13);
  // One update removes all ten of c3 (the etcd source's RemovePrefix of a
  // relist, or a watch batch).
  int n = c_.RemoveIf([](const std::string& k) {
    return absl::StrContains(k, "/10.0.1.") &&
           !absl::StrContains(k, "10.0.1.11:") &&
           !absl::StrContains(k, "10.0.1.12:");
  });
  ASSERT_EQ(n, 10);
  std::vector<std::string> held;
  // At most half may go: 5 dropped, 5 held (the later ones in key order).
  EXPECT_EQ(Endpoints(&held), 1 + 2 + 5);
  ASSERT_EQ(held.size(), 5u) << absl::StrJoin(held, "\n");
  EXPECT_TRUE(absl::StrContains(
      held[0], "10 instances of default/app1 r1/z3/c3 vanished within 30s "
               "(more than 50%); held until it registers again or "
               "2027-01-15T08:05:00Z"))
      << held[0];
  auto r = c_.Compose();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->origins.at("default/app1").held, 5);
  EXPECT_EQ(r->origins.at("default/app1").registered, 2);
  // The held ones are in the saved form (and so in the version).
  EXPECT_TRUE(absl::StrContains(r->text, "--- # mesh-part held " + Key(9)));
  // One that registers again is an instance like any other.
  Register(5);
  EXPECT_EQ(Endpoints(&held), 1 + 2 + 5);
  EXPECT_EQ(held.size(), 4u);
  // The holds pass after maxHold (5 min by default); not before.
  now_ += absl::Minutes(4);
  EXPECT_EQ(c_.ExpireHeld(now_), 0);
  EXPECT_EQ(c_.NextExpiry(), absl::FromUnixSeconds(1800000000) +
                                 absl::Minutes(5));
  now_ += absl::Minutes(2);
  EXPECT_EQ(c_.ExpireHeld(now_), 4);
  EXPECT_EQ(Endpoints(&held), 1 + 2 + 1);
  EXPECT_TRUE(held.empty());
}

TEST_F(RemovalGuardTest, VanishingsAddUpOverTheWindowNotBeyondIt) {
  for (int i = 1; i <= 4; ++i) Register(i);
  c_.Remove(Key(1));
  now_ += absl::Seconds(10);
  c_.Remove(Key(2));  // 2 of 4 within 30 s: still allowed.
  now_ += absl::Seconds(10);
  c_.Remove(Key(3));  // 3 of 4: held.
  std::vector<std::string> held;
  EXPECT_EQ(Endpoints(&held), 1 + 2);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_TRUE(absl::StartsWith(held[0], Key(3) + ": 3 of 4 instances"))
      << held[0];
  // Spread wider than the window, each is a lone departure.
  Register(1);
  Register(2);
  Register(3);
  now_ += absl::Minutes(1);
  for (int i = 1; i <= 4; ++i) {
    c_.Remove(Key(i));
    now_ += absl::Seconds(31);
  }
  EXPECT_EQ(Endpoints(&held), 1);
  EXPECT_TRUE(held.empty()) << absl::StrJoin(held, "\n");
}

TEST_F(RemovalGuardTest, AGoodbyeIsNotAVanishing) {
  for (int i = 1; i <= 4; ++i) Register(i);
  // A drain: DRAINING first, then the key goes. All four at once.
  for (int i = 1; i <= 4; ++i) {
    c_.SetInstance(Key(i),
                   Instance("default/app1", kApp1Id,
                            absl::StrCat("10.0.1.", i), 8080, "c3", "z3",
                            config::Health::kDraining),
                   "default/app1");
  }
  for (int i = 1; i <= 4; ++i) c_.Remove(Key(i));
  std::vector<std::string> held;
  EXPECT_EQ(Endpoints(&held), 1);
  EXPECT_TRUE(held.empty()) << absl::StrJoin(held, "\n");
}

TEST_F(RemovalGuardTest, SmallLocalitiesAndTheKnobs) {
  // Two instances: below minInstances (3), both may go.
  Register(1);
  Register(2);
  c_.RemoveIf([](const std::string& k) { return absl::StrContains(k, "instances"); });
  EXPECT_EQ(Endpoints(), 1);
  // maxVanishPercent 100 turns it off; minInstances 2 guards pairs.
  c_.SetDocument("/etc/mesh.yaml", absl::StrCat(kDoc, R"(registration:
  removalGuard: {maxVanishPercent: 100}
)"));
  for (int i = 1; i <= 4; ++i) Register(i);
  c_.RemoveIf([](const std::string& k) { return absl::StrContains(k, "instances"); });
  EXPECT_EQ(Endpoints(), 1);
  c_.SetDocument("/etc/mesh.yaml", absl::StrCat(kDoc, R"(registration:
  removalGuard: {minInstances: 2, maxVanishPercent: 10, maxHold: 1m}
)"));
  Register(1);
  Register(2);
  c_.RemoveIf([](const std::string& k) { return absl::StrContains(k, "instances"); });
  std::vector<std::string> held;
  EXPECT_EQ(Endpoints(&held), 1 + 2);
  EXPECT_EQ(c_.NextExpiry(), now_ + absl::Minutes(1));
}

TEST(RemovalGuardConfigTest, BadValuesAreReportedWhere) {
  auto r = config::ParseConfig(absl::StrCat(kDoc, R"(registration:
  removalGuard:
    maxVanishPercent: 0
    window: 5
    minInstances: 0
    maxHold: 2d
    extra: 1
)"),
                               "mesh.yaml");
  ASSERT_FALSE(r.ok());
  const std::string m(r.status().message());
  for (const char* want :
       {"mesh.yaml:15:23: registration.removalGuard.maxVanishPercent: must be "
        "between 1 and 100, got 0",
        "mesh.yaml:16:13: registration.removalGuard.window: must be a "
        "duration",
        "mesh.yaml:17:19: registration.removalGuard.minInstances: must be "
        "between 1 and 100000, got 0",
        "mesh.yaml:18:14: registration.removalGuard.maxHold: must be a "
        "duration",
        "mesh.yaml:19:5: registration.removalGuard.extra: unknown field"}) {
    EXPECT_TRUE(absl::StrContains(m, want)) << want << "\n" << m;
  }
}

}  // namespace
}  // namespace source
}  // namespace mesh
