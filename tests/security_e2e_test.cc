// Security end to end, with certificates from a real CA (DevCa) and real
// processes: this test process is the mesh workload "greeter" (identity
// spiffe://example.org/ns/default/sa/greeter) serving an in-process mesh
// server and calling through mesh channels; other workloads are child
// processes (the example greeter_server and greeter_client), each with its
// own identity. Shows: allowed callers succeed; a caller from the same CA
// that the policy does not name gets PERMISSION_DENIED (and is counted);
// plaintext peers are refused both ways; a server presenting another
// identity from the same CA, or a certificate of another CA, is refused;
// rotating certificates under load loses no call; a bad bundle is refused
// and the previous one kept.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "mesh/common/sync.h"
#include "examples/greeter/greeter.grpc.pb.h"
#include "mesh/identity/dev_ca.h"
#include "mesh/identity/svid.h"
#include "mesh/mesh.h"
#include "mesh/telemetry/http_get.h"
#include "tests/child.h"
#include "tests/free_port.h"
#include "tests/temp_dir.h"

namespace mesh {
namespace {

using examples::Greeter;
using examples::HelloReply;
using examples::HelloRequest;
using identity::DevCa;

constexpr char kTd[] = "spiffe://example.org/ns/default/sa/";

// Answers with the caller's SPIFFE ID and certificate serial.
class PeerEcho final : public Greeter::Service {
 public:
  grpc::Status SayHello(grpc::ServerContext* ctx, const HelloRequest*,
                        HelloReply* reply) override {
    std::string id, serial;
    auto ac = ctx->auth_context();
    for (const auto& v : ac->FindPropertyValues("peer_spiffe_id")) {
      id.assign(v.data(), v.size());
    }
    for (const auto& v : ac->FindPropertyValues("x509_pem_cert")) {
      auto svid = identity::PeerSvid(std::string(v.data(), v.size()));
      if (svid.ok()) serial = svid->serial_hex;
    }
    reply->set_message(id + " " + serial);
    reply->set_instance("in-process");
    return grpc::Status::OK;
  }
  grpc::Status SayGoodbye(grpc::ServerContext* ctx, const HelloRequest* req,
                          HelloReply* reply) override {
    return SayHello(ctx, req, reply);
  }
};

void WriteFile(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".new";
  std::ofstream(tmp) << data;
  ASSERT_EQ(rename(tmp.c_str(), path.c_str()), 0);  // Atomic replace.
}

std::string Binary(const std::string& name) {
  return absl::StrCat(getenv("TEST_SRCDIR"), "/mesh/examples/greeter/", name);
}

using testing::Child;

class SecurityE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new testing::TempDir("mesh-sec");
    dir_ = new std::string(tmp_->path());
    auto ca = DevCa::Create("mesh test CA");
    auto other = DevCa::Create("another CA");
    ASSERT_TRUE(ca.ok() && other.ok());
    ca_ = ca->release();
    other_ca_ = other->release();
    WriteFile(*dir_ + "/ca.pem", ca_->cert_pem());
    WriteFile(*dir_ + "/other-ca.pem", other_ca_->cert_pem());
    for (const char* sa : {"greeter", "frontend", "batch"}) Issue(sa, ca_);
    Issue("greeter", other_ca_, "greeter-other-ca");
    port_ = testing::FreePort();
    ASSERT_GT(port_, 0);
    WriteFile(*dir_ + "/mesh.yaml", Config({}));
    MeshOptions o;
    o.config_path = *dir_ + "/mesh.yaml";
    o.service_name = "greeter";
    o.locality = {"us-east", "us-east-a", "cluster-1"};
    o.identity = {*dir_ + "/greeter.pem", *dir_ + "/greeter.key",
                  {*dir_ + "/ca.pem"}};
    o.admin_address = "127.0.0.1:0";
    auto m = Mesh::Create(o);
    ASSERT_TRUE(m.ok()) << m.status();
    mesh_ = m->release();
    service_ = new PeerEcho();
    grpc::EnableDefaultHealthCheckService(true);
    auto builder = mesh_->NewServerBuilder();
    builder->AddListeningPort(absl::StrCat("127.0.0.1:", port_),
                              mesh_->ServerCredentials());
    builder->RegisterService(service_);
    server_ = builder->BuildAndStart().release();
    ASSERT_NE(server_, nullptr);
  }
  static void TearDownTestSuite() {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
    delete server_;
    delete service_;
    delete mesh_;
    delete ca_;
    delete other_ca_;
    delete dir_;
    delete tmp_;
  }

  // Writes NAME.pem / NAME.key with identity kTd + sa.
  static void Issue(const std::string& sa, DevCa* ca,
                    const std::string& name = "") {
    identity::LeafOptions o;
    o.uris = {kTd + sa};
    auto pem = ca->Issue(o);
    ASSERT_TRUE(pem.ok());
    const std::string base = *dir_ + "/" + (name.empty() ? sa : name);
    WriteFile(base + ".pem", pem->cert);
    WriteFile(base + ".key", pem->key);
  }

  // greeter (this process) allows greeter and frontend to SayHello only;
  // `extra` services are appended.
  static std::string Config(const std::vector<std::string>& extra,
                            const std::string& greeter_extra = "") {
    std::string s = absl::StrCat(
        "apiVersion: mesh/v1\ntrustDomain: example.org\nservices:\n"
        "  - name: greeter\n    hostname: greeter.mesh.internal\n",
        greeter_extra,
        "    authorization:\n      allow:\n"
        "        - callers: [", kTd, "greeter, ", kTd, "frontend]\n"
        "          methods: [/mesh.examples.Greeter/SayHello]\n"
        "    endpoints:\n      - {address: 127.0.0.1, port: ", port_,
        ", locality: {region: us-east}}\n");
    for (const std::string& e : extra) s += e;
    return s;
  }
  static std::string Service(const std::string& name, int port,
                             const std::string& identity_line = "") {
    return absl::StrCat("  - name: ", name, "\n    hostname: ", name,
                        ".mesh.internal\n", identity_line,
                        "    endpoints:\n      - {address: 127.0.0.1, "
                        "port: ", port, ", locality: {region: us-east}}\n");
  }
  // Applies a config and waits until the control plane serves it.
  static void Apply(const std::string& yaml) {
    const uint64_t before = mesh_->GetStatus().configs_applied;
    WriteFile(*dir_ + "/mesh.yaml", yaml);
    ASSERT_TRUE(mesh_->WaitForStatus(
        [&](const MeshStatus& s) { return s.configs_applied > before; },
        absl::Seconds(10)));
  }

  static grpc::Status Call(const std::string& host, HelloReply* reply,
                           bool goodbye = false,
                           const grpc::ChannelArguments& args = {},
                           std::string* server_serial = nullptr) {
    auto stub = Greeter::NewStub(mesh_->CreateChannel(host, args));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    ctx.set_wait_for_ready(false);
    HelloRequest req;
    req.set_name("sec");
    grpc::Status st = goodbye ? stub->SayGoodbye(&ctx, req, reply)
                              : stub->SayHello(&ctx, req, reply);
    if (server_serial != nullptr) {
      for (const auto& v :
           ctx.auth_context()->FindPropertyValues("x509_pem_cert")) {
        auto svid = identity::PeerSvid(std::string(v.data(), v.size()));
        if (svid.ok()) *server_serial = svid->serial_hex;
      }
    }
    return st;
  }
  // Calls until the server answers (its listener arrives asynchronously).
  static grpc::Status CallWhenServing(const std::string& host,
                                      HelloReply* reply) {
    grpc::Status st;
    for (int i = 0; i < 100; ++i) {
      auto stub = Greeter::NewStub(mesh_->CreateChannel(host));
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
      ctx.set_wait_for_ready(true);
      HelloRequest req;
      st = stub->SayHello(&ctx, req, reply);
      if (st.error_code() != grpc::StatusCode::UNAVAILABLE) return st;
      // UNAVAILABLE: refused handshake (what some tests expect) or not
      // serving yet; the caller decides. Return it after a few tries.
      if (i >= 2) return st;
    }
    return st;
  }

  // Calls (without waiting for a ready connection) until the TLS handshake
  // is refused, a call succeeds, or 10 s pass; a server that is not
  // listening yet fails calls with "connection refused" meanwhile. Returns
  // the last status and every distinct message seen.
  static grpc::Status CallUntilRefused(const std::string& host,
                                       std::set<std::string>* seen) {
    grpc::Status st;
    const absl::Time end = absl::Now() + absl::Seconds(10);
    while (absl::Now() < end) {
      HelloReply reply;
      st = Call(host, &reply);
      seen->insert(st.error_message());
      if (st.ok() || absl::StrContains(st.error_message(), "andshake") ||
          absl::StrContains(st.error_message(), "SANs")) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(50));  // Server still starting.
    }
    return st;
  }

  // Starts a greeter_server child with `cert_name` (or "plaintext") as the
  // endpoint of service "refused", and expects our calls to it to be
  // refused with `why` in the message.
  static void ExpectServerRefused(const std::string& cert_name,
                                  const std::string& bundle,
                                  const std::string& identity_line,
                                  const std::string& why) {
    int port = 0;
    std::unique_ptr<Child> server =
        StartServer(cert_name, bundle, &port, "refused");
    Apply(Config({Service("refused", port, identity_line)}));
    std::set<std::string> seen;
    grpc::Status st = CallUntilRefused("refused.mesh.internal", &seen);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE)
        << ::testing::PrintToString(seen);
    EXPECT_TRUE(absl::StrContains(st.error_message(), why))
        << ::testing::PrintToString(seen);
    Apply(Config({}));
  }

  // Runs greeter_client once (`calls` calls) as `sa` (or plaintext); returns
  // its output and exit code.
  static std::string RunClient(const std::string& sa, int* code,
                               int calls = 3) {
    std::vector<std::string> args = {
        Binary("greeter_client"), "--config=" + *dir_ + "/mesh.yaml",
        "--target=greeter.mesh.internal", "--batches=1",
        absl::StrCat("--batch_size=", calls),
        "--interval_ms=0", "--show=instance"};
    if (sa == "plaintext") {
      args.push_back("--plaintext");
    } else {
      args.push_back("--cert=" + *dir_ + "/" + sa + ".pem");
      args.push_back("--key=" + *dir_ + "/" + sa + ".key");
      args.push_back("--bundle=" + *dir_ + "/ca.pem");
    }
    Child c(args, /*capture=*/true);
    return c.Finish(code);
  }

  // A greeter_server child of `service` on a free port, with the given
  // identity files ("plaintext" for none).
  static std::unique_ptr<Child> StartServer(const std::string& cert_name,
                                            const std::string& bundle,
                                            int* port,
                                            const std::string& service) {
    *port = testing::FreePort();
    std::vector<std::string> args = {
        Binary("greeter_server"), "--config=" + *dir_ + "/mesh.yaml",
        absl::StrCat("--listen=127.0.0.1:", *port), "--name=" + cert_name,
        "--service=" + service};
    if (cert_name == "plaintext") {
      args.push_back("--plaintext");
    } else {
      args.push_back("--cert=" + *dir_ + "/" + cert_name + ".pem");
      args.push_back("--key=" + *dir_ + "/" + cert_name + ".key");
      args.push_back("--bundle=" + *dir_ + "/" + bundle);
    }
    return std::make_unique<Child>(args);
  }

  static testing::TempDir* tmp_;
  static std::string* dir_;
  static DevCa* ca_;
  static DevCa* other_ca_;
  static int port_;
  static Mesh* mesh_;
  static PeerEcho* service_;
  static grpc::Server* server_;
};

testing::TempDir* SecurityE2eTest::tmp_ = nullptr;
std::string* SecurityE2eTest::dir_ = nullptr;
DevCa* SecurityE2eTest::ca_ = nullptr;
DevCa* SecurityE2eTest::other_ca_ = nullptr;
int SecurityE2eTest::port_ = 0;
Mesh* SecurityE2eTest::mesh_ = nullptr;
PeerEcho* SecurityE2eTest::service_ = nullptr;
grpc::Server* SecurityE2eTest::server_ = nullptr;

TEST_F(SecurityE2eTest, StatusShowsIdentityAndPolicy) {
  // The server's policy arrives when its listener is asked for.
  ASSERT_TRUE(mesh_->WaitForStatus(
      [](const MeshStatus& s) {
        return s.servers.size() == 1 && s.servers[0].enforcing;
      },
      absl::Seconds(10)));
  const MeshStatus s = mesh_->GetStatus();
  ASSERT_EQ(s.servers.size(), 1u);
  EXPECT_EQ(s.servers[0].address, absl::StrCat("127.0.0.1:", port_));
  EXPECT_EQ(s.servers[0].service, "default/greeter");
  EXPECT_TRUE(s.servers[0].enforcing) << s.servers[0].problem;
  EXPECT_EQ(s.servers_failing_closed, 0u);
  EXPECT_TRUE(s.mtls);
  EXPECT_EQ(s.security, "mTLS");
  EXPECT_EQ(s.identity, std::string(kTd) + "greeter");
  EXPECT_FALSE(s.identity_serial.empty());
  EXPECT_GT(s.identity_expiry, absl::Now() + absl::Hours(23));
  EXPECT_TRUE(absl::StrContains(s.authorization, "sa/frontend"))
      << s.authorization;
}

TEST_F(SecurityE2eTest, AllowedCallerSucceedsAndSeesTheServerIdentity) {
  HelloReply reply;
  grpc::Status st = CallWhenServing("greeter.mesh.internal", &reply);
  ASSERT_TRUE(st.ok()) << st.error_code() << " " << st.error_message();
  // The server saw our identity and certificate.
  EXPECT_EQ(reply.message(), absl::StrCat(kTd, "greeter ",
                                          mesh_->GetStatus().identity_serial));
  // Another process, as frontend (allowed).
  int code = -1;
  std::string out = RunClient("frontend", &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "served by in-process=3")) << out;
}

TEST_F(SecurityE2eTest, CallerFromTheSameCaThatThePolicyDoesNotNameIsDenied) {
  HelloReply reply;
  ASSERT_TRUE(CallWhenServing("greeter.mesh.internal", &reply).ok());
  const uint64_t denied = mesh_->GetStatus().calls_denied;
  int code = -1;
  std::string out = RunClient("batch", &code);
  EXPECT_EQ(code, 1) << out;
  // 7 = PERMISSION_DENIED, for each of the 3 calls.
  EXPECT_TRUE(absl::StrContains(
      out, absl::StrCat("7 mesh: caller ", kTd,
                        "batch may not call /mesh.examples.Greeter/SayHello "
                        "of default/greeter x3")))
      << out;
  const MeshStatus s = mesh_->GetStatus();
  EXPECT_EQ(s.calls_denied, denied + 3);
  EXPECT_EQ(s.last_denial,
            absl::StrCat(kTd, "batch /mesh.examples.Greeter/SayHello"));
}

TEST_F(SecurityE2eTest, MethodOutsideThePolicyIsDenied) {
  HelloReply reply;
  ASSERT_TRUE(CallWhenServing("greeter.mesh.internal", &reply).ok());
  grpc::Status st = Call("greeter.mesh.internal", &reply, /*goodbye=*/true);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << st.error_message();
}

TEST_F(SecurityE2eTest, PlaintextClientIsRefused) {
  HelloReply reply;
  ASSERT_TRUE(CallWhenServing("greeter.mesh.internal", &reply).ok());
  int code = -1;
  std::string out = RunClient("plaintext", &code, /*calls=*/1);
  // The handshake never completes: the client (waiting for a ready
  // connection, as greeter_client's first batch does) times out, and no
  // call reaches the server.
  EXPECT_EQ(code, 1) << out;
  EXPECT_TRUE(absl::StrContains(out, "1 calls, 0 ok")) << out;
  EXPECT_TRUE(absl::StrContains(out, "security: PLAINTEXT")) << out;
}

// The server of `hostname` presents a certificate of the same CA but for
// another service. gRPC 1.51.1 ignores match_typed_subject_alt_names; this
// is the test that our (deprecated-field) SAN match is really enforced. The
// control: the same server is accepted once the config names its identity.
TEST_F(SecurityE2eTest, ServerWithAnotherIdentityFromTheSameCaIsRefused) {
  int port = 0;
  std::unique_ptr<Child> impostor =
      StartServer("batch", "ca.pem", &port, "billing");
  Apply(Config({Service("billing", port)}));
  HelloReply reply;
  std::set<std::string> seen;
  grpc::Status st = CallUntilRefused("billing.mesh.internal", &seen);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE)
      << ::testing::PrintToString(seen);
  EXPECT_TRUE(absl::StrContains(
      st.error_message(),
      "SANs from certificate did not match SANs from xDS control plane"))
      << ::testing::PrintToString(seen);
  // Control: expecting the identity it really has, calls succeed.
  Apply(Config({Service("billing", port,
                        absl::StrCat("    identity: ", kTd, "batch\n"))}));
  std::string serial;
  for (int i = 0; i < 50 && !st.ok(); ++i) {
    st = Call("billing.mesh.internal", &reply, false, {}, &serial);
  }
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(reply.instance(), "batch");
  Apply(Config({}));
}

TEST_F(SecurityE2eTest, ServerWithACertificateOfAnotherCaIsRefused) {
  ExpectServerRefused("greeter-other-ca", "other-ca.pem",
                      absl::StrCat("    identity: ", kTd, "greeter\n"),
                      "andshake");
}

TEST_F(SecurityE2eTest, PlaintextServerIsRefused) {
  ExpectServerRefused("plaintext", "", "", "andshake");
}

// Rotates this workload's certificate (server and client side at once)
// while calls run: none fails, and new connections show the new serial on
// both ends.
TEST_F(SecurityE2eTest, RotationUnderLoadLosesNoCallAndNewConnectionsUseIt) {
  HelloReply reply;
  ASSERT_TRUE(CallWhenServing("greeter.mesh.internal", &reply).ok());
  const std::string old_serial = mesh_->GetStatus().identity_serial;
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0};
  internal::Mutex mu;
  std::map<std::string, int> failures;
  std::thread load([&] {
    auto stub = Greeter::NewStub(mesh_->CreateChannel("greeter.mesh.internal"));
    const absl::Time end = absl::Now() + absl::Seconds(30);  // Bounded.
    while (!stop && absl::Now() < end) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
      HelloReply r;
      grpc::Status st = stub->SayHello(&ctx, HelloRequest(), &r);
      if (st.ok()) {
        ++ok;
      } else {
        internal::MutexLock lock(&mu);
        ++failures[absl::StrCat(st.error_code(), " ", st.error_message())];
      }
    }
  });
  // A failed ASSERT below returns early: the load still stops and joins.
  struct StopAndJoin {
    std::atomic<bool>* stop;
    std::thread* thread;
    ~StopAndJoin() {
      *stop = true;
      if (thread->joinable()) thread->join();
    }
  } stop_and_join{&stop, &load};
  // Rotate: the key first, then the certificate (as rotation tools do).
  identity::LeafOptions o;
  o.uris = {std::string(kTd) + "greeter"};
  auto pem = ca_->Issue(o);
  ASSERT_TRUE(pem.ok());
  const std::string new_serial =
      identity::PeerSvid(pem->cert).value().serial_hex;
  WriteFile(*dir_ + "/greeter.key", pem->key);
  WriteFile(*dir_ + "/greeter.pem", pem->cert);
  ASSERT_TRUE(mesh_->WaitForStatus(
      [&](const MeshStatus& s) { return s.identity_serial == new_serial; },
      absl::Seconds(10)));
  // gRPC re-reads the files every second: new connections (a channel with
  // its own subchannel pool; a new one each time, as CreateChannel shares
  // a channel per set of args) soon present and see the new certificate.
  std::string server_serial, seen_by_server;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  for (int attempt = 0;
       absl::Now() < deadline &&
       (server_serial != new_serial ||
        seen_by_server != absl::StrCat(kTd, "greeter ", new_serial));
       ++attempt) {
    grpc::ChannelArguments fresh;
    fresh.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    fresh.SetInt("mesh.test.attempt", attempt);
    HelloReply r;
    grpc::Status st =
        Call("greeter.mesh.internal", &r, false, fresh, &server_serial);
    ASSERT_TRUE(st.ok()) << st.error_message();
    seen_by_server = r.message();
  }
  EXPECT_EQ(server_serial, new_serial);
  EXPECT_EQ(seen_by_server, absl::StrCat(kTd, "greeter ", new_serial));
  EXPECT_NE(new_serial, old_serial);
  // Keep the load running a little past the switch.
  const int at_switch = ok.load();
  while (ok.load() < at_switch + 200 && failures.empty()) {
    std::this_thread::yield();
  }
  stop = true;
  load.join();
  internal::MutexLock lock(&mu);
  EXPECT_TRUE(failures.empty()) << ::testing::PrintToString(failures);
  EXPECT_GT(ok.load(), 200);
}

// The agent's active health checks are mTLS calls too (checking the
// server's SPIFFE ID), and are allowed by every authorization policy: here
// they see NOT_SERVING and SERVING again, which they could not over a
// refused connection.
TEST_F(SecurityE2eTest, HealthChecksRunOverMtls) {
  HelloReply reply;
  ASSERT_TRUE(CallWhenServing("greeter.mesh.internal", &reply).ok());
  Apply(Config({}, "    healthCheck: {interval: 100ms, timeout: 100ms, "
                   "healthyThreshold: 1, unhealthyThreshold: 1}\n"));
  auto await_change = [](const std::string& what) {
    return mesh_->WaitForStatus(
        [&](const MeshStatus& s) {
          return absl::StrContains(s.last_health_change, what);
        },
        absl::Seconds(10));
  };
  server_->GetHealthCheckService()->SetServingStatus(false);
  EXPECT_TRUE(await_change("is UNHEALTHY"))
      << mesh_->GetStatus().last_health_change;
  server_->GetHealthCheckService()->SetServingStatus(true);
  EXPECT_TRUE(await_change("is HEALTHY again"))
      << mesh_->GetStatus().last_health_change;
  const uint64_t denied = mesh_->GetStatus().calls_denied;
  Apply(Config({}));
  EXPECT_EQ(mesh_->GetStatus().calls_denied, denied);
}

// The admin endpoint shows the identity, its expiry and the denials, and
// never key material: every page is searched for the private key.
TEST_F(SecurityE2eTest, AdminEndpointShowsIdentityButNeverKeys) {
  HelloReply reply;
  ASSERT_TRUE(CallWhenServing("greeter.mesh.internal", &reply).ok());
  int code = -1;
  RunClient("batch", &code, 1);  // One denial.
  std::ifstream key_file(*dir_ + "/greeter.key");
  const std::string key((std::istreambuf_iterator<char>(key_file)),
                        std::istreambuf_iterator<char>());
  ASSERT_FALSE(key.empty());
  std::vector<std::string> key_lines;
  for (absl::string_view l : absl::StrSplit(key, '\n', absl::SkipEmpty())) {
    if (!absl::StartsWith(l, "-----")) key_lines.emplace_back(l);
  }
  ASSERT_FALSE(key_lines.empty());
  for (const char* path : {"/", "/metrics", "/status", "/status?format=text",
                           "/clusters", "/config"}) {
    auto body = telemetry::HttpGet(mesh_->admin_address(), path);
    ASSERT_TRUE(body.ok()) << path << ": " << body.status();
    EXPECT_FALSE(absl::StrContains(*body, "PRIVATE KEY")) << path;
    for (const std::string& l : key_lines) {
      EXPECT_FALSE(absl::StrContains(*body, l)) << path;
    }
  }
  auto status = telemetry::HttpGet(mesh_->admin_address(), "/status");
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(absl::StrContains(*status, absl::StrCat("\"identity\":\"", kTd,
                                                      "greeter\"")))
      << *status;
  auto metrics = telemetry::HttpGet(mesh_->admin_address(), "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_TRUE(absl::StrContains(
      *metrics, absl::StrCat("mesh_identity_expiry_timestamp_seconds{identity=\"",
                             kTd, "greeter\"} ")))
      << *metrics;
  EXPECT_TRUE(absl::StrContains(
      *metrics, absl::StrCat("mesh_authz_denied_total ",
                             mesh_->GetStatus().calls_denied, "\n")))
      << *metrics;
}

TEST_F(SecurityE2eTest, BadBundleIsRefusedAndThePreviousOneKept) {
  HelloReply reply;
  ASSERT_TRUE(CallWhenServing("greeter.mesh.internal", &reply).ok());
  const std::string serial = mesh_->GetStatus().identity_serial;
  WriteFile(*dir_ + "/ca.pem", "not a certificate\n");
  ASSERT_TRUE(mesh_->WaitForStatus(
      [](const MeshStatus& s) {
        return absl::StrContains(s.last_error, "trust bundle");
      },
      absl::Seconds(10)));
  const MeshStatus s = mesh_->GetStatus();
  EXPECT_TRUE(absl::StrContains(s.last_error, "no PEM certificate found"))
      << s.last_error;
  EXPECT_TRUE(absl::StrContains(s.last_error,
                                "the previous trust bundle stays in force"))
      << s.last_error;
  EXPECT_EQ(s.identity_serial, serial);
  // New connections still work with the previous bundle (a channel no
  // other test has, so a new one: its own subchannel pool).
  grpc::ChannelArguments fresh;
  fresh.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  fresh.SetInt("mesh.test.bad_bundle", 1);
  grpc::Status st = Call("greeter.mesh.internal", &reply, false, fresh);
  EXPECT_TRUE(st.ok()) << st.error_message();
  WriteFile(*dir_ + "/ca.pem", ca_->cert_pem());
}

}  // namespace
}  // namespace mesh
