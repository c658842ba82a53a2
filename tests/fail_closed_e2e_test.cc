// Fail closed, end to end (issue 16): a mesh server enforces the policy of
// the service its listening address belongs to, per port, and denies every
// call, loudly, where that cannot be told. Real servers on loopback, real
// certificates from a CA made here (DevCa), real mesh clients in child
// processes (greeter_client) and direct mTLS callers made here (for
// addresses no mesh client would be routed to).
//
// This process is the workload app1 (SVID spiffe://example.org/ns/default/
// sa/app1) and serves, from one Mesh:
//   app1        127.0.0.1:P_APP1    allows only app2
//   app1-admin  127.0.0.1:P_ADMIN   same identity; no authorization section
//   (nobody)    127.0.0.1:P_NONE    no service has this endpoint
//   other       127.0.0.1:P_OTHER   a service with another identity
//   pair-a/-b   P_PAIR_A, P_PAIR_B  one ServerCredentials() for both ports
// and a greeter_server child serves `bugged` (identity app1, allows only
// app2) as the defect report had it: SVID app1, service_name "greeter".

#include <atomic>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "examples/greeter/greeter.grpc.pb.h"
#include "mesh/identity/dev_ca.h"
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
using testing::Child;

constexpr char kTd[] = "spiffe://example.org/ns/default/sa/";
constexpr char kHello[] = "/mesh.examples.Greeter/SayHello";
constexpr char kHealth[] = "/grpc.health.v1.Health/Check";

class Echo final : public Greeter::Service {
 public:
  grpc::Status SayHello(grpc::ServerContext*, const HelloRequest*,
                        HelloReply* reply) override {
    reply->set_instance("in-process");
    return grpc::Status::OK;
  }
};

void WriteFile(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".new";
  std::ofstream(tmp) << data;
  ASSERT_EQ(rename(tmp.c_str(), path.c_str()), 0);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string Binary(const std::string& name) {
  return absl::StrCat(getenv("TEST_SRCDIR"), "/mesh/examples/greeter/", name);
}

class FailClosedE2eTest : public ::testing::Test {
 protected:
  enum Port { kApp1, kAdmin, kNone, kOther, kPairA, kPairB, kBugged, kPorts };

  static void SetUpTestSuite() {
    tmp_ = new testing::TempDir("mesh-fail-closed");
    dir_ = tmp_->path();
    auto ca = DevCa::Create("fail-closed test CA");
    ASSERT_TRUE(ca.ok());
    WriteFile(dir_ + "/ca.pem", (*ca)->cert_pem());
    for (const char* sa : {"app1", "app2", "evil"}) {
      Issue(**ca, absl::StrCat(kTd, sa), sa);
    }
    // Same CA, another trust domain: outside the mesh's.
    Issue(**ca, "spiffe://other.org/ns/default/sa/app2", "foreign");
    for (int& p : ports_) {
      p = testing::FreePort();
      ASSERT_GT(p, 0);
    }
    WriteFile(dir_ + "/mesh.yaml", Config(""));
    MeshOptions o;
    o.config_path = dir_ + "/mesh.yaml";
    o.service_name = "app1";
    o.locality = {"us-east", "us-east-a", "cluster-1"};
    o.identity = {dir_ + "/app1.pem", dir_ + "/app1.key", {dir_ + "/ca.pem"}};
    o.admin_address = "127.0.0.1:0";
    auto m = Mesh::Create(o);
    ASSERT_TRUE(m.ok()) << m.status();
    mesh_ = m->release();
    service_ = new Echo();
    grpc::EnableDefaultHealthCheckService(true);
    // One server, one ServerCredentials() per port...
    auto b = mesh_->NewServerBuilder();
    for (Port p : {kApp1, kAdmin, kNone, kOther}) {
      b->AddListeningPort(Address(p), mesh_->ServerCredentials());
    }
    b->RegisterService(service_);
    server_ = b->BuildAndStart().release();
    ASSERT_NE(server_, nullptr);
    // ...and one that (wrongly) shares one object between two services.
    auto shared = mesh_->ServerCredentials();
    auto b2 = mesh_->NewServerBuilder();
    b2->AddListeningPort(Address(kPairA), shared);
    b2->AddListeningPort(Address(kPairB), shared);
    b2->RegisterService(service_);
    pair_server_ = b2->BuildAndStart().release();
    ASSERT_NE(pair_server_, nullptr);
  }
  static void TearDownTestSuite() {
    for (grpc::Server* s : {server_, pair_server_}) {
      if (s != nullptr) s->Shutdown(std::chrono::system_clock::now());
      delete s;
    }
    delete service_;
    delete mesh_;
    delete tmp_;
  }

  static void Issue(DevCa& ca, const std::string& uri,
                    const std::string& name) {
    identity::LeafOptions o;
    o.uris = {uri};
    auto pem = ca.Issue(o);
    ASSERT_TRUE(pem.ok());
    WriteFile(dir_ + "/" + name + ".pem", pem->cert);
    WriteFile(dir_ + "/" + name + ".key", pem->key);
  }

  static std::string Address(Port p) {
    return absl::StrCat("127.0.0.1:", ports_[p]);
  }
  static std::string Endpoint(Port p) {
    return absl::StrCat("      - {address: 127.0.0.1, port: ", ports_[p],
                        ", locality: {region: us-east}}\n");
  }
  // `admin_extra`: more endpoints of app1-admin.
  static std::string Config(const std::string& admin_extra) {
    auto svc = [](const std::string& name, const std::string& body,
                  Port p) {
      return absl::StrCat("  - name: ", name, "\n    hostname: ", name,
                          ".mesh.internal\n", body, "    endpoints:\n",
                          Endpoint(p));
    };
    const std::string app1_id = absl::StrCat("    identity: ", kTd, "app1\n");
    const std::string only_app2 = absl::StrCat(
        "    authorization:\n      allow: [{callers: [", kTd, "app2]}]\n");
    return absl::StrCat(
        "apiVersion: mesh/v1\ntrustDomain: example.org\nservices:\n",
        svc("app1", only_app2, kApp1),
        svc("app1-admin", app1_id, kAdmin), admin_extra,
        svc("other", "", kOther), svc("pair-a", app1_id, kPairA),
        svc("pair-b", app1_id, kPairB),
        svc("bugged", app1_id + only_app2, kBugged));
  }
  static void Apply(const std::string& yaml) {
    const uint64_t before = mesh_->GetStatus().configs_applied;
    WriteFile(dir_ + "/mesh.yaml", yaml);
    ASSERT_TRUE(mesh_->WaitForStatus(
        [&](const MeshStatus& s) { return s.configs_applied > before; },
        absl::Seconds(10)));
  }

  // The status of `address` in MeshStatus::servers, once `cond` holds.
  static ServerStatus WaitForServer(
      const std::string& address,
      const std::function<bool(const ServerStatus&)>& cond) {
    ServerStatus out;
    mesh_->WaitForStatus(
        [&](const MeshStatus& s) {
          for (const ServerStatus& srv : s.servers) {
            if (srv.address == address && cond(srv)) {
              out = srv;
              return true;
            }
          }
          return false;
        },
        absl::Seconds(10));
    return out;
  }

  // A direct mTLS call (no mesh) to `port` as the holder of NAME.pem, with
  // an empty request: what an attacker inside the network can do.
  static grpc::Status DirectCall(Port port, const std::string& name,
                                 const std::string& method = kHello) {
    return DirectCallTo(Address(port), name, method);
  }
  static grpc::Status DirectCallTo(const std::string& address,
                                   const std::string& name,
                                   const std::string& method) {
    grpc::experimental::IdentityKeyCertPair pair{
        ReadFile(dir_ + "/" + name + ".key"),
        ReadFile(dir_ + "/" + name + ".pem")};
    auto provider =
        std::make_shared<grpc::experimental::StaticDataCertificateProvider>(
            ReadFile(dir_ + "/ca.pem"),
            std::vector<grpc::experimental::IdentityKeyCertPair>{pair});
    grpc::experimental::TlsChannelCredentialsOptions o;
    o.set_certificate_provider(provider);
    o.watch_root_certs();
    o.watch_identity_key_cert_pairs();
    // The chain is verified against the CA; the name is not (the server's
    // certificate has a SPIFFE ID, no DNS name).
    o.set_certificate_verifier(
        std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
    o.set_check_call_host(false);
    auto channel =
        grpc::CreateChannel(address, grpc::experimental::TlsCredentials(o));
    grpc::GenericStub stub(channel);
    grpc::CompletionQueue cq;
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);  // Until the xDS server serves.
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    // An empty message (a ByteBuffer without a slice is no message).
    grpc::Slice empty("");
    grpc::ByteBuffer request(&empty, 1), reply;
    grpc::Status st;
    auto call = stub.PrepareUnaryCall(&ctx, method, request, &cq);
    call->StartCall();
    call->Finish(&reply, &st, reinterpret_cast<void*>(1));
    void* tag;
    bool ok;
    cq.Next(&tag, &ok);
    return st;
  }

  // greeter_client as `sa` calling `host` three times; its output.
  static std::string MeshCalls(const std::string& sa, const std::string& host,
                               int* code) {
    Child c({Binary("greeter_client"), "--config=" + dir_ + "/mesh.yaml",
             "--target=" + host, "--batches=1", "--batch_size=3",
             "--interval_ms=0", "--show=instance",
             "--cert=" + dir_ + "/" + sa + ".pem",
             "--key=" + dir_ + "/" + sa + ".key",
             "--bundle=" + dir_ + "/ca.pem"},
            /*capture=*/true);
    return c.Finish(code);
  }

  static testing::TempDir* tmp_;
  static std::string dir_;
  static int ports_[kPorts];
  static Mesh* mesh_;
  static Echo* service_;
  static grpc::Server* server_;
  static grpc::Server* pair_server_;
};

testing::TempDir* FailClosedE2eTest::tmp_ = nullptr;
std::string FailClosedE2eTest::dir_;
int FailClosedE2eTest::ports_[kPorts];
Mesh* FailClosedE2eTest::mesh_ = nullptr;
Echo* FailClosedE2eTest::service_ = nullptr;
grpc::Server* FailClosedE2eTest::server_ = nullptr;
grpc::Server* FailClosedE2eTest::pair_server_ = nullptr;

// Two services on two ports of one process: each port enforces its own
// service's policy.
TEST_F(FailClosedE2eTest, EachPortEnforcesThePolicyOfTheServiceItServes) {
  int code = -1;
  std::string out = MeshCalls("app2", "app1.mesh.internal", &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "3 calls, 3 ok")) << out;
  out = MeshCalls("evil", "app1.mesh.internal", &code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_TRUE(absl::StrContains(
      out, absl::StrCat("7 mesh: caller ", kTd, "evil may not call ", kHello,
                        " of default/app1 x3")))
      << out;
  // app1-admin has no authorization section: any caller in the trust
  // domain, evil included...
  out = MeshCalls("evil", "app1-admin.mesh.internal", &code);
  EXPECT_EQ(code, 0) << out;
  // ...but not a certificate of the same CA for another trust domain.
  grpc::Status st = DirectCall(kAdmin, "foreign");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << st.error_message();
  EXPECT_EQ(st.error_message(),
            absl::StrCat("mesh: caller spiffe://other.org/ns/default/sa/app2 "
                         "may not call ", kHello, " of default/app1-admin"));
  const ServerStatus admin = WaitForServer(
      Address(kAdmin), [](const ServerStatus& s) { return s.enforcing; });
  EXPECT_EQ(admin.service, "default/app1-admin");
  EXPECT_EQ(admin.policy,
            "allow spiffe://example.org/* to call any method");
}

// The reported defect: SVID app1 on app1's endpoint, but service_name
// "greeter" (not in the config). It used to allow any caller in the trust
// domain; now it denies every call, saying why. Without --service, the
// example server takes the service that owns --listen and enforces its
// policy.
TEST_F(FailClosedE2eTest, TheReportedCaseIsDenied) {
  auto server = [](const std::vector<std::string>& extra) {
    std::vector<std::string> args = {
        Binary("greeter_server"), "--config=" + dir_ + "/mesh.yaml",
        "--listen=" + Address(kBugged), "--name=bugged",
        "--cert=" + dir_ + "/app1.pem", "--key=" + dir_ + "/app1.key",
        "--bundle=" + dir_ + "/ca.pem"};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<Child>(args, /*capture=*/true);
  };
  {
    auto s = server({"--service=greeter"});
    ASSERT_TRUE(s->ReadUntil("listening on", absl::Seconds(10)));
    for (const char* caller : {"evil", "app2"}) {
      int code = -1;
      const std::string out =
          MeshCalls(caller, "bugged.mesh.internal", &code);
      EXPECT_EQ(code, 1) << out;
      EXPECT_TRUE(absl::StrContains(
          out, absl::StrCat("7 mesh: the server on ", Address(kBugged),
                            " denies every call: this process says it is "
                            "service 'greeter' (MeshOptions::service_name), "
                            "which the config does not have, but ",
                            Address(kBugged),
                            " is an endpoint of default/bugged x3")))
          << caller << ": " << out;
    }
  }
  auto s = server({});
  ASSERT_TRUE(s->ReadUntil("listening on", absl::Seconds(10)));
  EXPECT_TRUE(absl::StrContains(s->output(), "(default/bugged, "))
      << s->output();
  int code = -1;
  std::string out = MeshCalls("evil", "bugged.mesh.internal", &code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_TRUE(absl::StrContains(
      out, absl::StrCat("7 mesh: caller ", kTd, "evil may not call ", kHello,
                        " of default/bugged x3")))
      << out;
  out = MeshCalls("app2", "bugged.mesh.internal", &code);
  EXPECT_EQ(code, 0) << out;
}

// An address no service has an endpoint at: every call denied, and
// MeshStatus, /status and /metrics say so. An edit that gives the address
// to a service makes it enforce that service's policy, live.
TEST_F(FailClosedE2eTest, AnAddressOfNoServiceDeniesEveryCallAndSaysSo) {
  grpc::Status st = DirectCall(kNone, "app2");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  const std::string why = absl::StrCat(
      "no service in the config has an endpoint at ", Address(kNone),
      ", so this server cannot tell whose policy to enforce");
  EXPECT_EQ(st.error_message(),
            absl::StrCat("mesh: the server on ", Address(kNone),
                         " denies every call: ", why));
  ServerStatus srv = WaitForServer(
      Address(kNone), [](const ServerStatus& s) { return !s.problem.empty(); });
  EXPECT_FALSE(srv.enforcing);
  EXPECT_EQ(srv.problem, why);
  EXPECT_EQ(srv.service, "");
  const MeshStatus s = mesh_->GetStatus();
  // kNone and kOther (the shared credentials' two ports enforce their
  // services; it is the object they share that denies).
  EXPECT_EQ(s.servers_failing_closed, 2u) << s.authorization;
  EXPECT_TRUE(absl::StrContains(
      s.authorization, absl::StrCat(Address(kNone), ": DENIES EVERY CALL: ")))
      << s.authorization;
  auto json = telemetry::HttpGet(mesh_->admin_address(), "/status");
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_TRUE(absl::StrContains(
      *json, absl::StrCat("{\"address\":\"", Address(kNone),
                          "\",\"service\":\"\",\"enforcing\":false,"
                          "\"problem\":\"", why, "\"")))
      << *json;
  auto text = telemetry::HttpGet(mesh_->admin_address(), "/status?format=text");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_TRUE(absl::StrContains(
      *text, absl::StrCat("server         ", Address(kNone),
                          " DENIES EVERY CALL: ", why)))
      << *text;
  auto metrics = telemetry::HttpGet(mesh_->admin_address(), "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_TRUE(absl::StrContains(*metrics, "\nmesh_servers_failing_closed 2\n"))
      << *metrics;
  EXPECT_TRUE(absl::StrContains(
      *metrics, absl::StrCat("mesh_server_enforcing{address=\"",
                             Address(kNone), "\",service=\"\"} 0")))
      << *metrics;

  Apply(Config(Endpoint(kNone)));
  srv = WaitForServer(Address(kNone),
                      [](const ServerStatus& s) { return s.enforcing; });
  EXPECT_EQ(srv.service, "default/app1-admin");
  st = DirectCall(kNone, "app2");
  EXPECT_TRUE(st.ok()) << st.error_message();
  Apply(Config(""));
  WaitForServer(Address(kNone),
                [](const ServerStatus& s) { return !s.enforcing; });
  EXPECT_EQ(DirectCall(kNone, "app2").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

// The address belongs to a service whose servers must present another
// identity than this process's SVID.
TEST_F(FailClosedE2eTest, AnSvidThatIsNotTheServicesIdentityDeniesEveryCall) {
  const std::string why = absl::StrCat(
      Address(kOther), " is an endpoint of default/other, whose servers must "
      "be ", kTd, "other, but this server's SVID is ", kTd, "app1");
  grpc::Status st = DirectCall(kOther, "app2");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(st.error_message(),
            absl::StrCat("mesh: the server on ", Address(kOther),
                         " denies every call: ", why));
  const ServerStatus srv = WaitForServer(
      Address(kOther), [](const ServerStatus& s) { return !s.problem.empty(); });
  EXPECT_EQ(srv.problem, why);
  EXPECT_EQ(srv.service, "default/other");
}

// One ServerCredentials() object on ports of two services: the mesh cannot
// tell the ports apart per call, so both deny.
TEST_F(FailClosedE2eTest, SharedCredentialsForTwoServicesDenyEveryCall) {
  for (Port p : {kPairA, kPairB}) {
    grpc::Status st = DirectCall(p, "app2");
    EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_TRUE(absl::StrContains(
        st.error_message(),
        "one ServerCredentials() object is used for ports of different "
        "services (default/pair-a on "))
        << st.error_message();
  }
}

// Health checks are open to any certificate of the trust bundle, but only
// on a server that provably serves its service.
TEST_F(FailClosedE2eTest, HealthChecksAreOpenOnlyWhereTheServiceIsKnown) {
  EXPECT_EQ(DirectCall(kApp1, "evil", kHello).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  grpc::Status st = DirectCall(kApp1, "evil", kHealth);
  EXPECT_TRUE(st.ok()) << st.error_message();
  st = DirectCall(kNone, "evil", kHealth);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << st.error_message();
}

// Mesh server credentials used with a plain grpc::ServerBuilder: the mesh
// does not know which address they guard, so every call is denied.
TEST_F(FailClosedE2eTest, CredentialsOutsideAMeshServerDenyEveryCall) {
  const int port = testing::FreePort();
  grpc::ServerBuilder b;
  b.AddListeningPort(absl::StrCat("127.0.0.1:", port),
                     mesh_->ServerCredentials());
  Echo echo;
  b.RegisterService(&echo);
  std::unique_ptr<grpc::Server> plain = b.BuildAndStart();
  ASSERT_NE(plain, nullptr);
  grpc::Status st =
      DirectCallTo(absl::StrCat("127.0.0.1:", port), "app2", kHello);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(st.error_message(),
            "mesh: this server's credentials were not used with a "
            "Mesh::NewServerBuilder() server, so the mesh cannot tell which "
            "service it serves; every call is denied");
  plain->Shutdown(std::chrono::system_clock::now());
}

}  // namespace
}  // namespace mesh
