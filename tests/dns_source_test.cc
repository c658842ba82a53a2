// The DNS source against a real dnsmasq on a loopback port (started and
// stopped by PID): A, AAAA and SRV records resolved with their TTL and the
// config entry's locality; a mesh routes by SRV records, follows a change
// once the TTL runs out, and keeps the last good answer (and says so) when
// the DNS server is gone.

#include <signal.h>

#include <fstream>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "examples/greeter/greeter.grpc.pb.h"
#include "mesh/mesh.h"
#include "mesh/source/dns_source.h"
#include "tests/backend.h"
#include "tests/dnsmasq.h"
#include "tests/served_by.h"
#include "tests/temp_dir.h"

namespace mesh {
namespace {

using testing::AwaitServedBy;
using testing::Dnsmasq;
using testing::ServedBy;

class DnsSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::HaveDnsmasq())
        << "dnsmasq is not installed (bazel/setup.sh --with-test-tools)";
    dns_.SetHosts("127.0.0.5 app.test\n::1 app6.test\n127.0.0.1 a.test\n");
  }
  source::DnsOptions Options() {
    source::DnsOptions o;
    o.servers = {dns_.server()};
    return o;
  }
  // Resolves until the answer is `want` (dnsmasq may still be starting or
  // re-reading), at most 10 s.
  absl::StatusOr<std::vector<config::Endpoint>> ResolveUntil(
      const config::DnsEndpoints& e, const std::string& want,
      absl::Duration* ttl) {
    absl::StatusOr<std::vector<config::Endpoint>> r;
    const absl::Time end = absl::Now() + absl::Seconds(10);
    do {
      r = source::DnsSource::Resolve(Options(), e, ttl);
      if (r.ok() && !r->empty() && Text(*r) == want) break;
      absl::SleepFor(absl::Milliseconds(50));  // Polls another process.
    } while (absl::Now() < end);
    return r;
  }
  static std::string Text(const std::vector<config::Endpoint>& eps) {
    std::string out;
    for (const auto& e : eps) {
      absl::StrAppend(&out, out.empty() ? "" : " ", e.address, ":", e.port,
                      "@", e.locality.cluster, "w", e.weight);
    }
    return out;
  }

  testing::TempDir tmp_{"mesh-dns"};
  Dnsmasq dns_{tmp_.path()};
};

TEST_F(DnsSourceTest, ResolvesARecordsAaaaAndSrvWithTheEntrysLocality) {
  dns_.SetSrv({"_grpc._tcp.svc.test,a.test,7001,0,5",
               "_grpc._tcp.svc.test,app.test,7002,1,0"});
  dns_.Start();
  config::DnsEndpoints a;
  a.name = "app.test";
  a.port = 8080;
  a.weight = 3;
  a.locality = {"r1", "z1", "c2"};
  absl::Duration ttl;
  auto r = ResolveUntil(a, "127.0.0.5:8080@c2w3", &ttl);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Text(*r), "127.0.0.5:8080@c2w3");
  EXPECT_EQ(ttl, absl::Seconds(1));  // dnsmasq's --local-ttl.

  config::DnsEndpoints six = a;
  six.name = "app6.test";
  r = ResolveUntil(six, "::1:8080@c2w3", &ttl);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Text(*r), "::1:8080@c2w3");

  config::DnsEndpoints srv;
  srv.srv = true;
  srv.name = "_grpc._tcp.svc.test";
  srv.locality = {"r1", "z2", "c3"};
  srv.labels = {{"via", "srv"}};
  // Port and weight from each record (weight 0 counts as 1).
  r = ResolveUntil(srv, "127.0.0.1:7001@c3w5 127.0.0.5:7002@c3w1", &ttl);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Text(*r), "127.0.0.1:7001@c3w5 127.0.0.5:7002@c3w1");
  EXPECT_EQ((*r)[0].labels.at("via"), "srv");

  // A changed hosts file is read again on SIGHUP.
  dns_.SetHosts("127.0.0.6 app.test\n127.0.0.1 a.test\n");
  dns_.Reload();
  r = ResolveUntil(a, "127.0.0.6:8080@c2w3", &ttl);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Text(*r), "127.0.0.6:8080@c2w3");

  // Unknown names and a bad server list are clear errors.
  config::DnsEndpoints none = a;
  none.name = "nosuch.test";
  auto nx = source::DnsSource::Resolve(Options(), none, &ttl);
  ASSERT_FALSE(nx.ok());
  EXPECT_TRUE(absl::StrContains(nx.status().message(), "nosuch.test"))
      << nx.status();
  source::DnsOptions bad;
  bad.servers = {"not-an-ip"};
  auto st = source::DnsSource::Start(bad, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(absl::StrContains(st.status().message(), "DNS servers"))
      << st.status();
}

TEST_F(DnsSourceTest, AMeshRoutesBySrvRecordsAndKeepsTheLastAnswer) {
  testing::Backend a("a", "r1/z1/c1"), b("b", "r1/z1/c1");
  a.Start();
  b.Start();
  dns_.SetSrv({absl::StrCat("_grpc._tcp.greeter.test,a.test,", a.port())});
  dns_.Start();
  // dnsmasq answers before the mesh starts (else the first answer is empty
  // until the retry).
  absl::Duration ttl;
  config::DnsEndpoints e;
  e.srv = true;
  e.name = "_grpc._tcp.greeter.test";
  ASSERT_TRUE(ResolveUntil(e, absl::StrCat("127.0.0.1:", a.port(), "@w1"),
                           &ttl)
                  .ok());
  std::ofstream(tmp_.path() + "/mesh.yaml") << R"(apiVersion: mesh/v1
trustDomain: example.org
services:
  - name: greeter
    hostname: greeter.mesh.internal
    dns:
      - srv: _grpc._tcp.greeter.test
        locality: {region: r1, zone: z1, cluster: c1}
)";
  MeshOptions o;
  o.config_path = tmp_.path() + "/mesh.yaml";
  o.dns_servers = {dns_.server()};
  o.service_name = "dns-client";
  o.locality = {"r1", "z1", "c1"};
  o.plaintext = true;
  auto m = Mesh::Create(o);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(ServedBy(**m), "a");
  auto dns_status = [&]() -> SourceStatus {
    for (const SourceStatus& s : (*m)->GetStatus().sources) {
      if (s.name == "dns") return s;
    }
    return {};
  };
  EXPECT_TRUE(dns_status().ok) << dns_status().last_error;
  EXPECT_EQ(dns_status().version, "1 answers");

  // The record moves to b: routing follows once the TTL (1 s) runs out.
  dns_.Stop();
  dns_.SetSrv({absl::StrCat("_grpc._tcp.greeter.test,a.test,", b.port())});
  dns_.Start();
  EXPECT_EQ(AwaitServedBy(**m, "b"), "b");

  // The DNS server is gone: the last answer stays, the failure is reported.
  dns_.Stop();
  ASSERT_TRUE((*m)->WaitForStatus(
      [&](const MeshStatus& s) {
        for (const SourceStatus& src : s.sources) {
          if (src.name == "dns" && !src.ok) return true;
        }
        return false;
      },
      absl::Seconds(20)));
  EXPECT_TRUE(absl::StrContains(dns_status().last_error,
                                "keeping the last answer"))
      << dns_status().last_error;
  EXPECT_EQ(ServedBy(**m), "b");
  EXPECT_EQ((*m)->GetStatus().configs_rejected, 0u);
}

}  // namespace
}  // namespace mesh
