// The gateway's config loader (every problem with its line), its routing
// helpers and its per-client admission, without processes or network.

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "examples/gateway/gateway.h"
#include "examples/gateway/gateway_config.h"

namespace mesh {
namespace gateway {
namespace {

const std::string kKey = Sha256Hex("secret");

std::string Valid(const std::string& extra = "") {
  return absl::StrCat(
      "listen: 127.0.0.1:0\nplaintext: true\n"
      "apiKeys:\n  - {client: a, sha256: ", kKey, "}\n"
      "routes:\n  - {host: api.example.test, destination: greeter.mesh.internal}\n",
      extra);
}

TEST(GatewayConfigTest, ParsesAValidConfig) {
  auto c = ParseGatewayConfig(
      Valid("limits: {maxMessageBytes: 1024, maxStreamsPerClient: 2, "
            "callsPerSecondPerClient: 2.5, burstPerClient: 5}\n"),
      "gw.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->plaintext);
  ASSERT_EQ(c->api_keys.size(), 1u);
  EXPECT_EQ(c->api_keys[0].client, "a");
  ASSERT_EQ(c->routes.size(), 1u);
  EXPECT_EQ(c->routes[0].destination, "greeter.mesh.internal");
  EXPECT_EQ(c->routes[0].line, 6);
  EXPECT_EQ(c->limits.max_message_bytes, 1024);
  EXPECT_EQ(c->limits.max_streams_per_client, 2);
  EXPECT_DOUBLE_EQ(c->limits.calls_per_second_per_client, 2.5);
  EXPECT_DOUBLE_EQ(c->limits.burst_per_client, 5);
}

TEST(GatewayConfigTest, EveryProblemIsReportedWithItsLine) {
  struct Case {
    std::string yaml;
    std::string error;
  } cases[] = {
      {"listen: [\n", "gw.yaml:2: YAML syntax error"},
      {"- a\n", "gw.yaml:1: the gateway config must be a YAML map"},
      {absl::StrCat("listen: x:1\napiKeys: [{client: a, sha256: ", kKey,
                    "}]\nroutes: [{host: h, destination: d}]\n"),
       "gw.yaml:1: tls: required (a server certificate for callers from "
       "outside), or plaintext: true for local use"},
      {"listen: x:1\nplaintext: true\nroutes: [{host: h, destination: d}]\n",
       "gw.yaml:1: apiKeys: required (callers from outside must present a "
       "key), or jwt, or allowUnauthenticated: true"},
      {Valid("tls: {certificate: a, privateKey: b}\n"),
       "gw.yaml:7: tls: give either tls or plaintext: true, not both"},
      {Valid("bogus: 1\n"), "gw.yaml:7: bogus: unknown field"},
      {"listen: nowhere\nplaintext: true\nallowUnauthenticated: true\n"
       "routes: [{host: h, destination: d}]\n",
       "gw.yaml:1: listen: must be HOST:PORT"},
      {"listen: x:1\nplaintext: true\napiKeys: [{client: a, sha256: abc}]\n"
       "routes: [{host: h, destination: d}]\n",
       "gw.yaml:3: apiKeys[0].sha256: must be 64 hex digits"},
      {absl::StrCat("listen: x:1\nplaintext: true\napiKeys:\n  - {client: a, "
                    "sha256: ", kKey, "}\n  - {client: b, sha256: ", kKey,
                    "}\nroutes: [{host: h, destination: d}]\n"),
       "gw.yaml:5: apiKeys[1].sha256: the same key is listed twice"},
      {"listen: x:1\nplaintext: true\nallowUnauthenticated: true\n",
       "gw.yaml:1: routes: required: a non-empty list"},
      {"listen: x:1\nplaintext: true\nallowUnauthenticated: true\n"
       "routes: [{host: 'a:80', destination: d}]\n",
       "gw.yaml:4: routes[0].host: must be a host name"},
      {"listen: x:1\nplaintext: true\nallowUnauthenticated: true\n"
       "routes: [{host: h, methodPrefix: pkg.S/, destination: d}]\n",
       "gw.yaml:4: routes[0].methodPrefix: must start with \"/\""},
      {"listen: x:1\nplaintext: true\nallowUnauthenticated: true\n"
       "routes: [{host: h}]\n",
       "gw.yaml:4: routes[0].destination: required field is missing"},
      {Valid("limits: {maxMessageBytes: 0}\n"),
       "gw.yaml:7: limits.maxMessageBytes: must be a whole number from 1 to "
       "1073741824"},
      {Valid("limits: {maxStreamsPerClient: lots}\n"),
       "gw.yaml:7: limits.maxStreamsPerClient: must be a whole number"},
      {Valid("limits: {callsPerSecondPerClient: -1}\n"),
       "gw.yaml:7: limits.callsPerSecondPerClient: must be a number from 0"},
      {Valid("allowUnauthenticated: true\n"),
       "gw.yaml:7: allowUnauthenticated: cannot be true when apiKeys or jwt "
       "are given"},
      // jwt
      {Valid("jwt: {issuer: i, audiences: [a]}\n"),
       "gw.yaml:7: jwt.jwksFile: required field is missing"},
      {Valid("jwt: {jwksFile: j.json, audiences: [a]}\n"),
       "gw.yaml:7: jwt.issuer: required field is missing"},
      {Valid("jwt: {jwksFile: j.json, issuer: i}\n"),
       "gw.yaml:7: jwt.audiences: required field is missing"},
      {Valid("jwt: {jwksFile: j.json, issuer: i, audiences: []}\n"),
       "gw.yaml:7: jwt.audiences: must be a non-empty list of strings"},
      {Valid("jwt: {jwksFile: j.json, issuer: i, audiences: [a b]}\n"),
       "gw.yaml:7: jwt.audiences[0]: must be a non-empty string without "
       "spaces"},
      {Valid("jwt: {jwksFile: j.json, issuer: i, audiences: [a], "
             "clockSkewSeconds: 3600}\n"),
       "gw.yaml:7: jwt.clockSkewSeconds: must be a whole number from 0 to 600"},
      {Valid("jwt: {jwksFile: j.json, issuer: i, audiences: [a], algs: [x]}\n"),
       "gw.yaml:7: jwt.algs: unknown field"},
      {Valid("jwt:\n  jwksFile: j.json\n  issuer: i\n  audiences: [a]\n"
             "  claimHeaders: {sub: x-mesh-user}\n"),
       "gw.yaml:11: jwt.claimHeaders.sub: \"x-mesh-user\" grpc-*, x-mesh-* "
       "and *-bin are reserved"},
      {Valid("jwt:\n  jwksFile: j.json\n  issuer: i\n  audiences: [a]\n"
             "  claimHeaders: {sub: Authorization}\n"),
       "gw.yaml:11: jwt.claimHeaders.sub: \"Authorization\" must be a "
       "lower-case header name"},
      {Valid("jwt:\n  jwksFile: j.json\n  issuer: i\n  audiences: [a]\n"
             "  claimHeaders: {sub: authorization}\n"),
       "gw.yaml:11: jwt.claimHeaders.sub: \"authorization\" is a header the "
       "gateway handles itself"},
      {Valid("jwt:\n  jwksFile: j.json\n  issuer: i\n  audiences: [a]\n"
             "  claimHeaders: {sub: x-user, email: x-user}\n"),
       "gw.yaml:11: jwt.claimHeaders.email: header \"x-user\" is already "
       "set from claim sub"},
      {absl::StrCat("listen: x:1\nplaintext: true\napiKeys: [{client: a, "
                    "sha256: ", kKey, "}]\nroutes:\n  - {host: h, "
                    "destination: d, requiredScopes: [greet]}\n"),
       "gw.yaml:5: routes[0].requiredScopes: needs jwt (scopes come from the "
       "caller's token)"},
      {"listen: x:1\nplaintext: true\njwt: {jwksFile: j, issuer: i, "
       "audiences: [a]}\nroutes:\n  - {host: h, destination: d, "
       "requiredScopes: []}\n",
       "gw.yaml:5: routes[0].requiredScopes: must be a non-empty list of "
       "strings"},
  };
  for (const Case& c : cases) {
    auto got = ParseGatewayConfig(c.yaml, "gw.yaml");
    ASSERT_FALSE(got.ok()) << c.yaml;
    EXPECT_NE(got.status().message().find(c.error), std::string::npos)
        << "got: " << got.status().message() << "\nwanted: " << c.error;
  }
}

TEST(GatewayConfigTest, ParsesJwt) {
  auto c = ParseGatewayConfig(
      "listen: x:1\nplaintext: true\n"
      "jwt:\n  jwksFile: /etc/jwks.json\n  issuer: https://login.test\n"
      "  audiences: [api.test, other.test]\n  clockSkewSeconds: 5\n"
      "  claimHeaders: {sub: x-user, email: x-user-email}\n"
      "  forwardToken: true\n  jwksCheckSeconds: 30\n"
      "routes:\n  - {host: h, destination: d, requiredScopes: [a, b]}\n",
      "gw.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->has_jwt);
  EXPECT_TRUE(c->api_keys.empty());
  EXPECT_EQ(c->jwt.jwks_file, "/etc/jwks.json");
  EXPECT_EQ(c->jwt.issuer, "https://login.test");
  EXPECT_EQ(c->jwt.audiences, (std::vector<std::string>{"api.test", "other.test"}));
  EXPECT_EQ(c->jwt.clock_skew, absl::Seconds(5));
  EXPECT_EQ(c->jwt.jwks_check_interval, absl::Seconds(30));
  EXPECT_TRUE(c->jwt.forward_token);
  EXPECT_EQ(c->jwt.claim_headers,
            (std::map<std::string, std::string>{{"sub", "x-user"},
                                                {"email", "x-user-email"}}));
  EXPECT_EQ(c->routes[0].required_scopes, (std::vector<std::string>{"a", "b"}));
  // Headers named like a claim header are the gateway's alone.
  EXPECT_FALSE(ForwardRequestHeader("x-user", *c));
  EXPECT_TRUE(ForwardRequestHeader("authorization", *c));  // forwardToken
  c->jwt.forward_token = false;
  EXPECT_FALSE(ForwardRequestHeader("authorization", *c));
  EXPECT_TRUE(ForwardRequestHeader("x-request-id", *c));
}

TEST(GatewayConfigTest, MissingFileIsNotFound) {
  auto c = LoadGatewayConfig("/nonexistent/gw.yaml");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
}

TEST(GatewayHelpersTest, AuthorityPeerAndHeaders) {
  EXPECT_EQ(AuthorityHost("API.Example.test:8443"), "api.example.test");
  EXPECT_EQ(AuthorityHost("api.example.test"), "api.example.test");
  EXPECT_EQ(AuthorityHost("[::1]:8443"), "::1");
  EXPECT_EQ(PeerAddress("ipv4:10.1.2.3:5555"), "10.1.2.3");
  EXPECT_EQ(PeerAddress("ipv6:[::1]:5555"), "::1");
  EXPECT_TRUE(ForwardRequestHeader("x-request-id"));
  EXPECT_TRUE(ForwardRequestHeader("authorization"));
  EXPECT_TRUE(ForwardRequestHeader("trace-bin"));
  for (const char* k : {"x-api-key", "grpc-timeout", "grpc-encoding", "te",
                        "content-type", "user-agent", "connection",
                        "x-mesh-gateway-client", "x-forwarded-for", ":path"}) {
    EXPECT_FALSE(ForwardRequestHeader(k)) << k;
  }
  EXPECT_TRUE(ForwardResponseHeader("x-served-by"));
  EXPECT_FALSE(ForwardResponseHeader("grpc-status"));
  EXPECT_FALSE(ForwardResponseHeader("content-type"));
}

TEST(ClientLimitsTest, TokenBucketAndOpenCalls) {
  Limits l;
  l.calls_per_second_per_client = 2;
  l.burst_per_client = 3;
  l.max_streams_per_client = 100;
  ClientLimits limits(l);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  using V = ClientLimits::Verdict;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limits.Admit("a", t0), V::kAdmit);
  EXPECT_EQ(limits.Admit("a", t0), V::kRateLimited);
  EXPECT_EQ(limits.Admit("b", t0), V::kAdmit);  // Per client.
  EXPECT_EQ(limits.Admit("a", t0 + absl::Milliseconds(499)), V::kRateLimited);
  EXPECT_EQ(limits.Admit("a", t0 + absl::Milliseconds(1000)), V::kAdmit);

  Limits s;
  s.max_streams_per_client = 2;
  ClientLimits open(s);
  EXPECT_EQ(open.Admit("a", t0), V::kAdmit);
  EXPECT_EQ(open.Admit("a", t0), V::kAdmit);
  EXPECT_EQ(open.Admit("a", t0), V::kTooManyStreams);
  open.Release("a");
  EXPECT_EQ(open.Admit("a", t0), V::kAdmit);
}

}  // namespace
}  // namespace gateway
}  // namespace mesh
