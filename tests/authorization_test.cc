// Identities and authorization in the config, the policy the servers
// evaluate, and the TLS contexts the translation gives mTLS callers.

#include "mesh/policy/authorization.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "absl/strings/match.h"

#include "envoy/extensions/transport_sockets/tls/v3/tls.pb.h"
#include "mesh/config/config.h"
#include "mesh/xds/translate.h"

namespace mesh {
namespace {

using envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
using envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
using policy::Authorizer;

constexpr char kConfig[] = R"(apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: greeter
    hostname: greeter.mesh.internal
    authorization:
      allow:
        - callers: [spiffe://example.org/ns/default/sa/frontend]
          methods: [/mesh.examples.Greeter/SayHello]
        - callers: ["spiffe://example.org/ns/batch/*"]
        - callers: ["spiffe://partner.org/*"]
          methods: ["/mesh.examples.Greeter/*"]
  - name: billing
    namespace: pay
    hostname: billing.mesh.internal
    identity: spiffe://example.org/custom/billing
    endpoints:
      - {address: 10.0.0.1, port: 50051, locality: {region: r}}
  - name: closed
    hostname: closed.mesh.internal
    authorization: {allow: []}
  - name: open
    hostname: open.mesh.internal
    authorization:
      allow: [{callers: ["*"]}]
)";

class AuthorizationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cfg = config::ParseConfig(kConfig, "t.yaml");
    ASSERT_TRUE(cfg.ok()) << cfg.status();
    config_ = *cfg;
  }
  Authorizer For(const std::string& service) const {
    const config::Service* s = config_->FindByName(service);
    EXPECT_NE(s, nullptr) << service;
    return s == nullptr ? Authorizer() : Authorizer::ForService(*config_, *s);
  }
  std::shared_ptr<const config::MeshConfig> config_;
};

TEST_F(AuthorizationTest, IdentitiesDefaultToNamespaceAndServiceAccount) {
  EXPECT_EQ(config_->FindByName("greeter")->Identity("example.org"),
            "spiffe://example.org/ns/default/sa/greeter");
  EXPECT_EQ(config_->FindByName("billing")->Identity("example.org"),
            "spiffe://example.org/custom/billing");
}

TEST_F(AuthorizationTest, RulesMatchCallerAndMethod) {
  const Authorizer a = For("greeter");
  const std::string hello = "/mesh.examples.Greeter/SayHello";
  const std::string bye = "/mesh.examples.Greeter/SayGoodbye";
  EXPECT_TRUE(a.Allowed("spiffe://example.org/ns/default/sa/frontend", hello));
  EXPECT_FALSE(a.Allowed("spiffe://example.org/ns/default/sa/frontend", bye));
  EXPECT_FALSE(a.Allowed("spiffe://example.org/ns/default/sa/frontend2",
                         hello));
  EXPECT_TRUE(a.Allowed("spiffe://example.org/ns/batch/sa/job", bye));
  EXPECT_FALSE(a.Allowed("spiffe://example.org/ns/batchx/sa/job", bye));
  EXPECT_TRUE(a.Allowed("spiffe://partner.org/anything", bye));
  EXPECT_FALSE(a.Allowed("spiffe://partner.org/anything", "/other.S/M"));
  EXPECT_FALSE(a.Allowed("spiffe://partner.org.evil/x", bye));
  EXPECT_FALSE(a.Allowed("", hello));  // No SPIFFE ID: never.
}

TEST_F(AuthorizationTest, DefaultIsTheMeshTrustDomainAndEmptyAllowDeniesAll) {
  // billing has no authorization section.
  for (const char* svc : {"billing", "pay/billing"}) {
    const Authorizer a = For(svc);
    EXPECT_TRUE(a.Allowed("spiffe://example.org/ns/x/sa/y", "/a.B/C")) << svc;
    EXPECT_FALSE(a.Allowed("spiffe://other.org/ns/x/sa/y", "/a.B/C")) << svc;
    EXPECT_FALSE(a.Allowed("spiffe://example.org.evil/ns/x", "/a.B/C"))
        << svc;
  }
  const Authorizer closed = For("closed");
  EXPECT_FALSE(closed.Allowed("spiffe://example.org/ns/x/sa/y", "/a.B/C"));
  EXPECT_EQ(closed.Describe(), "deny every call");
  const Authorizer open = For("open");
  EXPECT_TRUE(open.Allowed("spiffe://any.org/x", "/a.B/C"));
  EXPECT_FALSE(open.Allowed("", "/a.B/C"));
  // Until a policy arrives, nothing is allowed.
  EXPECT_FALSE(Authorizer().Allowed("spiffe://example.org/x", "/a.B/C"));
}

TEST_F(AuthorizationTest, EncodeDecodeKeepsThePolicy) {
  for (const char* svc : {"greeter", "billing", "closed", "open"}) {
    const Authorizer a = For(svc);
    auto b = Authorizer::Decode(a.Encode());
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(b->Encode(), a.Encode()) << svc;
    EXPECT_EQ(b->Describe(), a.Describe()) << svc;
  }
  EXPECT_EQ(For("greeter").Describe(),
            "allow spiffe://example.org/ns/default/sa/frontend to call "
            "/mesh.examples.Greeter/SayHello; allow "
            "spiffe://example.org/ns/batch/* to call any method; allow "
            "spiffe://partner.org/* to call /mesh.examples.Greeter/*");
  EXPECT_FALSE(Authorizer::Decode("deny everything").ok());
}

// mTLS callers get TLS contexts naming the bootstrap's certificate
// providers, with the server's exact SPIFFE ID in the deprecated
// match_subject_alt_names (the typed field is ignored by gRPC 1.51.1);
// plaintext callers get none.
TEST_F(AuthorizationTest, TranslationGivesMtlsCallersTlsContexts) {
  xds::Caller mtls;
  mtls.mtls = true;
  xds::Caller plain;
  auto cds = xds::Translate(*config_, mtls, xds::kClusterType,
                            {"pay/billing"});
  ASSERT_EQ(cds.size(), 1u);
  envoy::config::cluster::v3::Cluster c;
  ASSERT_TRUE(cds.begin()->second.UnpackTo(&c));
  EXPECT_EQ(c.transport_socket().name(), "envoy.transport_sockets.tls");
  UpstreamTlsContext up;
  ASSERT_TRUE(c.transport_socket().typed_config().UnpackTo(&up));
  const auto& common = up.common_tls_context();
  EXPECT_EQ(common.tls_certificate_provider_instance().instance_name(),
            "mesh-identity");
  EXPECT_EQ(common.validation_context()
                .ca_certificate_provider_instance()
                .instance_name(),
            "mesh-roots");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  ASSERT_EQ(common.validation_context().match_subject_alt_names_size(), 1);
  EXPECT_EQ(common.validation_context().match_subject_alt_names(0).exact(),
            "spiffe://example.org/custom/billing");
#pragma GCC diagnostic pop
  EXPECT_EQ(common.validation_context().match_typed_subject_alt_names_size(),
            0);

  cds = xds::Translate(*config_, plain, xds::kClusterType, {"pay/billing"});
  ASSERT_TRUE(cds.begin()->second.UnpackTo(&c));
  EXPECT_FALSE(c.has_transport_socket());

  const std::string lds =
      std::string(xds::kServerListenerPrefix) + "127.0.0.1:50051";
  auto l = xds::Translate(*config_, mtls, xds::kListenerType, {lds});
  envoy::config::listener::v3::Listener listener;
  ASSERT_TRUE(l.at(lds).UnpackTo(&listener));
  ASSERT_EQ(listener.filter_chains_size(), 1);
  DownstreamTlsContext down;
  ASSERT_TRUE(listener.filter_chains(0).transport_socket().typed_config()
                  .UnpackTo(&down));
  EXPECT_TRUE(down.require_client_certificate().value());
  EXPECT_EQ(down.common_tls_context()
                .tls_certificate_provider_instance()
                .instance_name(),
            "mesh-identity");
  l = xds::Translate(*config_, plain, xds::kListenerType, {lds});
  ASSERT_TRUE(l.at(lds).UnpackTo(&listener));
  EXPECT_FALSE(listener.filter_chains(0).has_transport_socket());
}

TEST_F(AuthorizationTest, CallerFromNodeReadsTheMtlsFlag) {
  envoy::config::core::v3::Node node;
  EXPECT_FALSE(xds::CallerFromNode(node).mtls);
  (*node.mutable_metadata()->mutable_fields())["mesh_mtls"].set_string_value(
      "true");
  EXPECT_TRUE(xds::CallerFromNode(node).mtls);
}

// Which service a server listening on an address serves (and so whose
// policy it enforces): the one with an endpoint there, checked against the
// server's own SVID and service name; anything else denies every call.
constexpr char kServing[] = R"(apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: app1
    hostname: app1.mesh.internal
    authorization:
      allow: [{callers: [spiffe://example.org/ns/default/sa/app2]}]
    endpoints:
      - {address: 127.0.1.1, port: 7001, locality: {region: r}}
      - {address: "0:0::1", port: 7001, locality: {region: r}}
  - name: app1-admin
    hostname: app1-admin.mesh.internal
    identity: spiffe://example.org/ns/default/sa/app1
    endpoints:
      - {address: 127.0.1.1, port: 7002, locality: {region: r}}
  - name: app2
    hostname: app2.mesh.internal
    endpoints:
      - {address: 127.0.1.2, port: 7001, locality: {region: r}}
      - {address: 127.0.1.3, port: 7003, locality: {region: r}}
  - name: alias
    hostname: alias.mesh.internal
    endpoints:
      - {address: 127.0.1.3, port: 7003, locality: {region: r}}
)";

class ServerPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cfg = config::ParseConfig(kServing, "s.yaml");
    ASSERT_TRUE(cfg.ok()) << cfg.status();
    config_ = *cfg;
    app1_.service = "app1";
    app1_.identity = "spiffe://example.org/ns/default/sa/app1";
  }
  policy::ServerPolicy At(const std::string& address,
                          const policy::ServerSelf& self) const {
    return policy::PolicyForServer(*config_, address, self);
  }
  std::shared_ptr<const config::MeshConfig> config_;
  policy::ServerSelf app1_;
};

constexpr char kApp2[] = "spiffe://example.org/ns/default/sa/app2";
constexpr char kEvil[] = "spiffe://example.org/ns/default/sa/evil";

TEST_F(ServerPolicyTest, TheAddressDecidesTheServiceAndItsPolicy) {
  const policy::ServerPolicy p = At("127.0.1.1:7001", app1_);
  EXPECT_EQ(p.problem, "");
  EXPECT_EQ(p.service, "default/app1");
  EXPECT_TRUE(p.authorizer.Allowed(kApp2, "/a.B/C"));
  EXPECT_FALSE(p.authorizer.Allowed(kEvil, "/a.B/C"));
  // IPv6 in any spelling: the config's 0:0::1 is gRPC's [::1].
  EXPECT_EQ(At("[::1]:7001", app1_).service, "default/app1");
  // The same process on another port serves another service that shares
  // its identity, and enforces that one's policy (the default here).
  const policy::ServerPolicy admin = At("127.0.1.1:7002", app1_);
  EXPECT_EQ(admin.problem, "");
  EXPECT_EQ(admin.service, "default/app1-admin");
  EXPECT_TRUE(admin.authorizer.Allowed(kEvil, "/a.B/C"));
}

// The defect of issue 16: a process that says it is "greeter" (a name the
// config does not have) serving app1's endpoint used to get "any caller in
// the trust domain".
TEST_F(ServerPolicyTest, AServiceNameTheConfigDoesNotHaveDeniesEverything) {
  policy::ServerSelf self = app1_;
  self.service = "greeter";
  const policy::ServerPolicy p = At("127.0.1.1:7001", self);
  EXPECT_EQ(p.problem,
            "this process says it is service 'greeter' "
            "(MeshOptions::service_name), which the config does not have, "
            "but 127.0.1.1:7001 is an endpoint of default/app1");
  EXPECT_FALSE(p.authorizer.Allowed(kApp2, "/a.B/C"));
  EXPECT_FALSE(p.authorizer.Allowed(kEvil, "/a.B/C"));
}

TEST_F(ServerPolicyTest, MismatchesDenyEverythingAndSayWhy) {
  // No service has an endpoint there.
  policy::ServerPolicy p = At("127.0.1.1:7999", app1_);
  EXPECT_EQ(p.service, "");
  EXPECT_EQ(p.problem,
            "no service in the config has an endpoint at 127.0.1.1:7999, so "
            "this server cannot tell whose policy to enforce");
  EXPECT_FALSE(p.authorizer.Allowed(kApp2, "/a.B/C"));
  // The SVID is not the served service's identity.
  p = At("127.0.1.2:7001", policy::ServerSelf{"", app1_.identity, nullptr});
  EXPECT_EQ(p.service, "default/app2");
  EXPECT_EQ(p.problem,
            "127.0.1.2:7001 is an endpoint of default/app2, whose servers "
            "must be spiffe://example.org/ns/default/sa/app2, but this "
            "server's SVID is spiffe://example.org/ns/default/sa/app1");
  EXPECT_FALSE(p.authorizer.Allowed(kApp2, "/a.B/C"));
  // The process says it is app1 but serves app2 (which has another
  // identity), even without an SVID to check (plaintext).
  p = At("127.0.1.2:7001", policy::ServerSelf{"app1", "", nullptr});
  EXPECT_EQ(p.problem,
            "this process says it is service default/app1 (identity "
            "spiffe://example.org/ns/default/sa/app1) but 127.0.1.2:7001 is "
            "an endpoint of default/app2 (identity "
            "spiffe://example.org/ns/default/sa/app2)");
  // Two services have the endpoint.
  p = At("127.0.1.3:7003", policy::ServerSelf{});
  EXPECT_EQ(p.problem,
            "several services have an endpoint at 127.0.1.3:7003 "
            "(default/app2, default/alias), so this server cannot tell whose "
            "policy to enforce");
  // Not an address.
  p = At("unix:/tmp/x.sock", app1_);
  EXPECT_TRUE(absl::StrContains(p.problem, "is not IP:PORT")) << p.problem;
  // Without a service name or SVID, the address alone decides.
  EXPECT_EQ(At("127.0.1.2:7001", policy::ServerSelf{}).problem, "");
}

TEST_F(ServerPolicyTest, AWildcardAddressIsTheLocalEndpointWithThatPort) {
  std::vector<std::string> asked;
  policy::ServerSelf self = app1_;
  self.is_local = [&](const std::string& ip) {
    asked.push_back(ip);
    return ip == "127.0.1.1";
  };
  policy::ServerPolicy p = At("0.0.0.0:7001", self);
  EXPECT_EQ(p.problem, "");
  EXPECT_EQ(p.service, "default/app1");
  // 0.0.0.0 is IPv4 only: the IPv6 endpoint is not even considered.
  EXPECT_EQ(std::count(asked.begin(), asked.end(), "::1"), 0);
  // [::] takes IPv4 connections too.
  EXPECT_EQ(At("[::]:7001", self).service, "default/app1");
  // No local endpoint with that port.
  p = At("0.0.0.0:7003", self);
  EXPECT_EQ(p.problem,
            "no service in the config has an endpoint at port 7003 of this "
            "host (0.0.0.0:7003 is a wildcard), so this server cannot tell "
            "whose policy to enforce");
  // Without a way to tell local addresses, a wildcard matches nothing.
  self.is_local = nullptr;
  EXPECT_NE(At("0.0.0.0:7001", self).problem, "");
}

TEST_F(ServerPolicyTest, EncodeDecodeKeepsThePolicyAndAProblemDeniesAll) {
  for (const char* address : {"127.0.1.1:7001", "127.0.1.1:7999"}) {
    const policy::ServerPolicy p = At(address, app1_);
    auto q = policy::ServerPolicy::Decode(p.Encode());
    ASSERT_TRUE(q.ok()) << q.status();
    EXPECT_EQ(q->Encode(), p.Encode());
    EXPECT_EQ(q->Describe(), p.Describe());
  }
  // A decoded policy with a problem denies every call whatever rules came
  // with it.
  auto q = policy::ServerPolicy::Decode(
      "127.0.1.1:1\tdefault/x\tsomething is wrong\nallow *\t");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_FALSE(q->authorizer.Allowed(kApp2, "/a.B/C"));
  EXPECT_FALSE(policy::ServerPolicy::Decode("no tabs").ok());
  EXPECT_EQ(At("127.0.1.1:7001", app1_).Describe(),
            "127.0.1.1:7001 serves default/app1: allow "
            "spiffe://example.org/ns/default/sa/app2 to call any method");
}

}  // namespace
}  // namespace mesh
