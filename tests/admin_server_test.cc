// The admin endpoint's HTTP server: binds loopback or a unix socket, refuses
// other addresses unless allowed, answers GET/HEAD, and writes valid
// Prometheus text.

#include "mesh/telemetry/admin_server.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "mesh/telemetry/http_get.h"
#include "mesh/telemetry/prometheus.h"
#include "tests/temp_dir.h"

namespace mesh {
namespace telemetry {
namespace {

AdminServer::Handler Echo() {
  return [](const std::string& path, const std::string& query) {
    return AdminServer::Response{200, "text/plain", path + "?" + query};
  };
}

TEST(AdminServerTest, ServesOnLoopbackAndUnixSockets) {
  for (const char* addr : {"127.0.0.1:0", "localhost:0", "[::1]:0"}) {
    auto s = AdminServer::Start(addr, false, Echo());
    if (!s.ok() && absl::StrContains(addr, "::1") &&
        absl::StrContains(s.status().message(), "Cannot assign")) {
      continue;  // No IPv6 loopback on this machine.
    }
    ASSERT_TRUE(s.ok()) << addr << ": " << s.status();
    EXPECT_FALSE(absl::EndsWith((*s)->address(), ":0")) << (*s)->address();
    auto body = HttpGet((*s)->address(), "/a/b?x=1");
    ASSERT_TRUE(body.ok()) << body.status();
    EXPECT_EQ(*body, "/a/b?x=1");
    auto head = HttpRequest((*s)->address(), "HEAD", "/a");
    ASSERT_TRUE(head.ok());
    EXPECT_EQ(head->status, 200);
    EXPECT_EQ(head->body, "");
  }
  testing::TempDir dir("mesh-admin");
  const std::string path = "unix:" + dir.path() + "/admin.sock";
  auto s = AdminServer::Start(path, false, Echo());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->address(), path);
  auto body = HttpGet(path, "/x");
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "/x?");
}

TEST(AdminServerTest, RefusesNonLoopbackUnlessAllowed) {
  auto s = AdminServer::Start("0.0.0.0:0", false, Echo());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.status().message(),
                                "admin address 0.0.0.0:0 is not a loopback "
                                "address"))
      << s.status();
  EXPECT_FALSE(AdminServer::Start("[::]:0", false, Echo()).ok());
  EXPECT_TRUE(AdminServer::Start("0.0.0.0:0", true, Echo()).ok());
  for (const char* bad : {"nonsense", "example.com:80", "127.0.0.1:99999",
                          "unix:"}) {
    auto b = AdminServer::Start(bad, false, Echo());
    EXPECT_FALSE(b.ok()) << bad;
    EXPECT_TRUE(absl::StrContains(b.status().message(), bad)) << b.status();
  }
}

TEST(AdminServerTest, MalformedRequestsGetErrorsNotCrashes) {
  auto s = AdminServer::Start("127.0.0.1:0", false, Echo());
  ASSERT_TRUE(s.ok());
  auto r = HttpRequest((*s)->address(), "DELETE", "/");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 405);
  r = HttpRequest((*s)->address(), "GET", "");  // "GET  HTTP/1.1"
  ASSERT_TRUE(r.ok());
  // A request head larger than the limit, then a normal one: still served.
  r = HttpRequest((*s)->address(), "GET", "/" + std::string(20000, 'a'));
  EXPECT_FALSE(r.ok() && r->status == 200);
  auto body = HttpGet((*s)->address(), "/still-here");
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "/still-here?");
}

TEST(PrometheusWriterTest, EscapesLabelValuesAndHelp) {
  PrometheusWriter w;
  w.Family("m_total", "counter", "a \\ b\nc");
  w.Sample("m_total", {{"l", "x\"y\\z\nw"}}, 3);
  EXPECT_EQ(w.Text(),
            "# HELP m_total a \\\\ b\\nc\n# TYPE m_total counter\n"
            "m_total{l=\"x\\\"y\\\\z\\nw\"} 3\n");
}

}  // namespace
}  // namespace telemetry
}  // namespace mesh
