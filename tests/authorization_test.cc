// Identities and authorization in the config, the policy the servers
// evaluate, and the TLS contexts the translation gives mTLS callers.

#include "mesh/policy/authorization.h"

#include <gtest/gtest.h>

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
  std::shared_ptr<const config::MeshConfig> config_;
};

TEST_F(AuthorizationTest, IdentitiesDefaultToNamespaceAndServiceAccount) {
  EXPECT_EQ(config_->FindByName("greeter")->Identity("example.org"),
            "spiffe://example.org/ns/default/sa/greeter");
  EXPECT_EQ(config_->FindByName("billing")->Identity("example.org"),
            "spiffe://example.org/custom/billing");
}

TEST_F(AuthorizationTest, RulesMatchCallerAndMethod) {
  const Authorizer a = Authorizer::ForService(*config_, "greeter");
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
  // billing has no authorization section; "unknown" is not in the config.
  for (const char* svc : {"billing", "pay/billing", "unknown", ""}) {
    const Authorizer a = Authorizer::ForService(*config_, svc);
    EXPECT_TRUE(a.Allowed("spiffe://example.org/ns/x/sa/y", "/a.B/C")) << svc;
    EXPECT_FALSE(a.Allowed("spiffe://other.org/ns/x/sa/y", "/a.B/C")) << svc;
    EXPECT_FALSE(a.Allowed("spiffe://example.org.evil/ns/x", "/a.B/C"))
        << svc;
  }
  const Authorizer closed = Authorizer::ForService(*config_, "closed");
  EXPECT_FALSE(closed.Allowed("spiffe://example.org/ns/x/sa/y", "/a.B/C"));
  EXPECT_EQ(closed.Describe(), "deny every call");
  const Authorizer open = Authorizer::ForService(*config_, "open");
  EXPECT_TRUE(open.Allowed("spiffe://any.org/x", "/a.B/C"));
  EXPECT_FALSE(open.Allowed("", "/a.B/C"));
  // Until a policy arrives, nothing is allowed.
  EXPECT_FALSE(Authorizer().Allowed("spiffe://example.org/x", "/a.B/C"));
}

TEST_F(AuthorizationTest, EncodeDecodeKeepsThePolicy) {
  for (const char* svc : {"greeter", "billing", "closed", "open"}) {
    const Authorizer a = Authorizer::ForService(*config_, svc);
    auto b = Authorizer::Decode(a.Encode());
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(b->Encode(), a.Encode()) << svc;
    EXPECT_EQ(b->Describe(), a.Describe()) << svc;
  }
  EXPECT_EQ(Authorizer::ForService(*config_, "greeter").Describe(),
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

}  // namespace
}  // namespace mesh
