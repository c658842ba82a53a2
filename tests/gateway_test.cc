// The ingress gateway end to end, with real processes and certificates:
// this test process is the mesh workload "greeter" (two in-process mesh
// servers over mTLS, instance "a" for greeter.mesh.internal and "b" for
// other.mesh.internal); the gateway binary runs as a child with its own
// SPIFFE identity; the test calls the gateway from "outside" over ordinary
// TLS with API keys or JWTs (signed here, tests/jwt_signer.h), the way a
// partner's client would.

#include <atomic>
#include <fstream>
#include <thread>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "examples/gateway/gateway_config.h"
#include "examples/greeter/greeter.grpc.pb.h"
#include "examples/greeter/greeter_service.h"
#include "mesh/identity/dev_ca.h"
#include "mesh/mesh.h"
#include "tests/child.h"
#include "tests/jwt_signer.h"
#include "tests/free_port.h"
#include "tests/temp_dir.h"

namespace mesh {
namespace {

using examples::Greeter;
using examples::HelloReply;
using examples::HelloRequest;

constexpr char kTd[] = "spiffe://example.org/ns/default/sa/";
constexpr int kMaxMessage = 65536;

void WriteFile(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".new";
  std::ofstream(tmp) << data;
  ASSERT_EQ(rename(tmp.c_str(), path.c_str()), 0);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class GatewayTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new testing::TempDir("mesh-gw");
    dir_ = new std::string(tmp_->path());
    auto ca = identity::DevCa::Create("gateway test CA");
    ASSERT_TRUE(ca.ok());
    WriteFile(*dir_ + "/ca.pem", (*ca)->cert_pem());
    for (const char* sa : {"greeter", "gateway"}) {
      identity::LeafOptions o;
      o.uris = {kTd + std::string(sa)};
      auto pem = (*ca)->Issue(o);
      ASSERT_TRUE(pem.ok());
      WriteFile(*dir_ + "/" + sa + ".pem", pem->cert);
      WriteFile(*dir_ + "/" + sa + ".key", pem->key);
    }
    identity::LeafOptions tls;
    // Outside callers check it against the :authority they call.
    tls.dns_names = {"api.example.test", "*.other.test", "nowhere.test"};
    auto server = (*ca)->Issue(tls);
    ASSERT_TRUE(server.ok());
    WriteFile(*dir_ + "/server.pem", server->cert);
    WriteFile(*dir_ + "/server.key", server->key);

    port_a_ = testing::FreePort();
    port_b_ = testing::FreePort();
    ASSERT_GT(port_a_, 0);
    ASSERT_GT(port_b_, 0);
    WriteFile(*dir_ + "/mesh.yaml", MeshConfig(true));
    MeshOptions o;
    o.config_path = *dir_ + "/mesh.yaml";
    o.service_name = "greeter";
    o.locality = {"us-east", "us-east-a", "cluster-1"};
    o.identity = {*dir_ + "/greeter.pem", *dir_ + "/greeter.key",
                  {*dir_ + "/ca.pem"}};
    auto m = Mesh::Create(o);
    ASSERT_TRUE(m.ok()) << m.status();
    mesh_ = m->release();
    service_a_ = new examples::GreeterService("a", "us-east/us-east-a/c1");
    service_b_ = new examples::GreeterService("b", "us-east/us-east-a/c1");
    for (auto [port, service, server] :
         {std::tuple{port_a_, service_a_, &server_a_},
          std::tuple{port_b_, service_b_, &server_b_}}) {
      auto builder = mesh_->NewServerBuilder();
      builder->AddListeningPort(absl::StrCat("127.0.0.1:", port),
                                mesh_->ServerCredentials());
      builder->RegisterService(service);
      *server = builder->BuildAndStart().release();
      ASSERT_NE(*server, nullptr);
    }

    rsa_ = new testing::SigningKey(testing::SigningKey::Rsa("rsa-1"));
    ec_ = new testing::SigningKey(testing::SigningKey::Ec("ec-1"));
    WriteFile(*dir_ + "/jwks.json", testing::Jwks(*rsa_, *ec_));
    WriteFile(*dir_ + "/gateway.yaml",
              absl::StrCat(
                  "listen: 127.0.0.1:0\n"
                  "tls: {certificate: ", *dir_, "/server.pem, privateKey: ",
                  *dir_, "/server.key}\n"
                  "apiKeys:\n"
                  "  - {client: partner-a, sha256: ",
                  gateway::Sha256Hex("key-a"), "}\n"
                  "  - {client: partner-rate, sha256: ",
                  gateway::Sha256Hex("key-rate"), "}\n"
                  "  - {client: partner-streams, sha256: ",
                  gateway::Sha256Hex("key-streams"), "}\n"
                  "jwt:\n"
                  "  jwksFile: ", *dir_, "/jwks.json\n"
                  "  issuer: https://login.example.test\n"
                  "  audiences: [api.example.test]\n"
                  "  claimHeaders: {sub: x-jwt-sub, tier: x-jwt-tier}\n"
                  "routes:\n"
                  "  - {host: api.example.test, methodPrefix: "
                  "/mesh.examples.Greeter/, destination: "
                  "greeter.mesh.internal}\n"
                  "  - {host: scoped.other.test, destination: "
                  "greeter.mesh.internal, requiredScopes: [greeter.write]}\n"
                  "  - {host: '*.other.test', destination: "
                  "other.mesh.internal}\n"
                  "limits: {maxMessageBytes: ", kMaxMessage,
                  ", maxStreamsPerClient: 3, callsPerSecondPerClient: 20, "
                  "burstPerClient: 40}\n"));
    const std::string bin =
        absl::StrCat(getenv("TEST_SRCDIR"), "/mesh/examples/gateway/gateway");
    gateway_ = new testing::Child(
        {bin, "--gateway_config=" + *dir_ + "/gateway.yaml",
         "--config=" + *dir_ + "/mesh.yaml",
         "--locality=us-east/us-east-a/cluster-1",
         "--cert=" + *dir_ + "/gateway.pem",
         "--key=" + *dir_ + "/gateway.key", "--bundle=" + *dir_ + "/ca.pem",
         "--stats_interval_s=1"},
        /*capture=*/true);
    ASSERT_TRUE(gateway_->ReadUntil("gateway listening on 127.0.0.1:",
                                    absl::Seconds(20)))
        << gateway_->output();
    ASSERT_TRUE(gateway_->ReadUntil("routes", absl::Seconds(5)));
    const std::string& out = gateway_->output();
    const size_t at = out.find("listening on 127.0.0.1:") + 23;
    ASSERT_TRUE(absl::SimpleAtoi(
        out.substr(at, out.find(' ', at) - at), &gateway_port_));

    // The mesh servers start serving once their listeners arrive.
    const absl::Time end = absl::Now() + absl::Seconds(20);
    grpc::Status st;
    do {
      HelloReply reply;
      st = Hello("api.example.test", "key-a", "ready", &reply);
    } while (!st.ok() && absl::Now() < end);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }

  static void TearDownTestSuite() {
    if (gateway_ != nullptr) {
      int code = 0;
      gateway_->Finish(&code, SIGTERM);
      EXPECT_EQ(code, 0) << "the gateway did not exit cleanly:\n"
                         << gateway_->output();
    }
    delete gateway_;
    for (grpc::Server* s : {server_a_, server_b_}) {
      if (s != nullptr) s->Shutdown(std::chrono::system_clock::now());
      delete s;
    }
    delete service_a_;
    delete service_b_;
    delete mesh_;
    delete rsa_;
    delete ec_;
    delete dir_;
    delete tmp_;
  }

  // greeter (both servers of this process) admits the gateway, or not.
  static std::string MeshConfig(bool admit_gateway) {
    const std::string callers =
        admit_gateway ? absl::StrCat(kTd, "gateway, ", kTd, "greeter")
                      : absl::StrCat(kTd, "greeter");
    return absl::StrCat(
        "apiVersion: mesh/v1\ntrustDomain: example.org\nservices:\n"
        "  - name: greeter\n    hostname: greeter.mesh.internal\n"
        "    authorization:\n      allow:\n        - callers: [", callers,
        "]\n    endpoints:\n      - {address: 127.0.0.1, port: ", port_a_,
        ", locality: {region: us-east}}\n"
        "  - name: other\n    hostname: other.mesh.internal\n"
        "    identity: ", kTd, "greeter\n"
        "    endpoints:\n      - {address: 127.0.0.1, port: ", port_b_,
        ", locality: {region: us-east}}\n");
  }

  // A channel from outside: TLS to the gateway, with `authority` as the
  // calls' :authority (and the name its certificate is checked for).
  static std::shared_ptr<grpc::Channel> Outside(const std::string& authority) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ReadAll(*dir_ + "/ca.pem");
    grpc::ChannelArguments args;
    args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, authority);
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    return grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", gateway_port_),
        grpc::SslCredentials(ssl), args);
  }

  // `key` is an API key, or "Bearer <token>" (or any other
  // `authorization` value, if it has a space).
  static void Prepare(grpc::ClientContext* ctx, const std::string& key,
                      absl::Duration deadline = absl::Seconds(10)) {
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    if (key.find(' ') != std::string::npos) {
      ctx->AddMetadata("authorization", key);
    } else if (!key.empty()) {
      ctx->AddMetadata("x-api-key", key);
    }
  }

  // Claims for a token from the configured issuer, for api.example.test,
  // valid for five more minutes; `extra` goes inside the object.
  static std::string Claims(const std::string& extra = "") {
    return absl::StrCat(
        "{\"iss\": \"https://login.example.test\", \"sub\": \"user-1\", "
        "\"aud\": \"api.example.test\", \"exp\": ",
        absl::ToUnixSeconds(absl::Now()) + 300, extra, "}");
  }

  // Waits until the gateway prints `needle` after output offset `from`.
  static bool AwaitOutput(const std::string& needle, size_t from) {
    const absl::Time end = absl::Now() + absl::Seconds(10);
    while (gateway_->output().find(needle, from) == std::string::npos) {
      if (absl::Now() > end || !gateway_->ReadSome(absl::Milliseconds(100))) {
        return false;
      }
    }
    return true;
  }

  static grpc::Status Hello(const std::string& authority,
                            const std::string& key, const std::string& name,
                            HelloReply* reply,
                            const std::string& payload = "") {
    auto stub = Greeter::NewStub(Outside(authority));
    grpc::ClientContext ctx;
    Prepare(&ctx, key);
    HelloRequest req;
    req.set_name(name);
    req.set_payload(payload);
    return stub->SayHello(&ctx, req, reply);
  }

  // Waits (reading the gateway's stats lines, printed every second) until
  // counter `name` reaches at least `min`.
  static bool AwaitStat(const std::string& name, uint64_t min) {
    const absl::Time end = absl::Now() + absl::Seconds(10);
    while (absl::Now() < end) {
      const std::string& out = gateway_->output();
      const size_t line = out.rfind("gateway stats: ");
      if (line != std::string::npos) {
        const size_t at = out.find(" " + name + "=", line);
        uint64_t v = 0;
        if (at != std::string::npos &&
            absl::SimpleAtoi(out.substr(at + name.size() + 2,
                                        out.find_first_of(" \n",
                                                          at + 1 +
                                                              name.size()) -
                                            at - name.size() - 2),
                             &v) &&
            v >= min) {
          return true;
        }
      }
      // The next stats line (one a second).
      if (!gateway_->ReadSome(absl::Seconds(1))) return false;
    }
    return false;
  }

  static testing::TempDir* tmp_;
  static std::string* dir_;
  static Mesh* mesh_;
  static examples::GreeterService* service_a_;
  static examples::GreeterService* service_b_;
  static grpc::Server* server_a_;
  static grpc::Server* server_b_;
  static testing::Child* gateway_;
  static testing::SigningKey* rsa_;
  static testing::SigningKey* ec_;
  static int port_a_, port_b_, gateway_port_;
};

testing::TempDir* GatewayTest::tmp_ = nullptr;
std::string* GatewayTest::dir_ = nullptr;
Mesh* GatewayTest::mesh_ = nullptr;
examples::GreeterService* GatewayTest::service_a_ = nullptr;
examples::GreeterService* GatewayTest::service_b_ = nullptr;
grpc::Server* GatewayTest::server_a_ = nullptr;
grpc::Server* GatewayTest::server_b_ = nullptr;
testing::Child* GatewayTest::gateway_ = nullptr;
testing::SigningKey* GatewayTest::rsa_ = nullptr;
testing::SigningKey* GatewayTest::ec_ = nullptr;
int GatewayTest::port_a_ = 0;
int GatewayTest::port_b_ = 0;
int GatewayTest::gateway_port_ = 0;

TEST_F(GatewayTest, UnaryReachesTheRoutedDestinationWithForwardedMetadata) {
  auto stub = Greeter::NewStub(Outside("api.example.test:443"));
  grpc::ClientContext ctx;
  Prepare(&ctx, "key-a");
  ctx.AddMetadata("x-request-id", "req-42");
  ctx.AddMetadata("x-mesh-gateway-client", "forged");  // Must not pass.
  ctx.AddMetadata("x-mesh-anything", "forged");
  HelloRequest req;
  req.set_name("metadata");
  HelloReply reply;
  grpc::Status st = stub->SayHello(&ctx, req, &reply);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(reply.instance(), "a");
  const auto& md = reply.request_metadata();
  EXPECT_EQ(md.count("x-request-id") ? md.at("x-request-id") : "", "req-42");
  EXPECT_EQ(md.count("x-mesh-gateway-client")
                ? md.at("x-mesh-gateway-client")
                : "",
            "partner-a");
  EXPECT_EQ(md.count("x-forwarded-for") ? md.at("x-forwarded-for") : "",
            "127.0.0.1");
  EXPECT_EQ(md.count("x-api-key"), 0u) << "the outside credential leaked in";
  EXPECT_EQ(md.count("x-mesh-anything"), 0u);

  // Another host goes to the other destination.
  HelloReply other;
  st = Hello("api.other.test", "key-a", "x", &other);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(other.instance(), "b");
  EXPECT_EQ(other.message(), "hello x");
}

TEST_F(GatewayTest, ServerStreaming) {
  auto stub = Greeter::NewStub(Outside("api.example.test"));
  grpc::ClientContext ctx;
  Prepare(&ctx, "key-a");
  HelloRequest req;
  req.set_name("s");
  req.set_count(5);
  auto reader = stub->SayHelloStream(&ctx, req);
  std::vector<std::string> got;
  HelloReply reply;
  while (reader->Read(&reply)) got.push_back(reply.message());
  grpc::Status st = reader->Finish();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(got, (std::vector<std::string>{"hello s #0", "hello s #1",
                                           "hello s #2", "hello s #3",
                                           "hello s #4"}));
}

TEST_F(GatewayTest, ClientStreaming) {
  auto stub = Greeter::NewStub(Outside("api.example.test"));
  grpc::ClientContext ctx;
  Prepare(&ctx, "key-a");
  HelloReply reply;
  auto writer = stub->CollectHellos(&ctx, &reply);
  for (const char* n : {"x", "y", "z"}) {
    HelloRequest req;
    req.set_name(n);
    ASSERT_TRUE(writer->Write(req));
  }
  ASSERT_TRUE(writer->WritesDone());
  grpc::Status st = writer->Finish();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(reply.message(), "hello x,y,z");
  EXPECT_EQ(reply.instance(), "a");
}

TEST_F(GatewayTest, BidiStreamingInterleaved) {
  auto stub = Greeter::NewStub(Outside("api.example.test"));
  grpc::ClientContext ctx;
  Prepare(&ctx, "key-a");
  auto stream = stub->Chat(&ctx);
  for (int i = 0; i < 4; ++i) {
    HelloRequest req;
    req.set_name(absl::StrCat("m", i));
    ASSERT_TRUE(stream->Write(req));
    HelloReply reply;
    ASSERT_TRUE(stream->Read(&reply));  // One answer per message, in turn.
    EXPECT_EQ(reply.message(), absl::StrCat("hello m", i));
  }
  ASSERT_TRUE(stream->WritesDone());
  HelloReply extra;
  EXPECT_FALSE(stream->Read(&extra));
  grpc::Status st = stream->Finish();
  EXPECT_TRUE(st.ok()) << st.error_message();
}

// The gateway holds a call's first message for a moment to see whether the
// half-close came with it; a caller that sends nothing until it hears from
// the server must still reach the destination.
TEST_F(GatewayTest, ABidiCallerThatSendsNothingFirstReachesTheDestination) {
  const uint64_t calls = service_a_->calls();
  auto stub = Greeter::NewStub(Outside("api.example.test"));
  grpc::ClientContext ctx;
  Prepare(&ctx, "key-a");
  auto stream = stub->Chat(&ctx);
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (service_a_->calls() == calls && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(5));  // Until the destination has it.
  }
  ASSERT_GT(service_a_->calls(), calls)
      << "the call did not reach the destination before any message";
  HelloRequest req;
  req.set_name("late");
  ASSERT_TRUE(stream->Write(req));
  HelloReply reply;
  ASSERT_TRUE(stream->Read(&reply));
  EXPECT_EQ(reply.message(), "hello late");
  ASSERT_TRUE(stream->WritesDone());
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(GatewayTest, DestinationStatusAndMessagePassThrough) {
  HelloReply reply;
  grpc::Status st = Hello("api.example.test", "key-a", "fail", &reply);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(st.error_message(), "asked to fail");
}

TEST_F(GatewayTest, DeadlinePropagatesToTheDestination) {
  const uint64_t before = service_a_->cancelled();
  auto stub = Greeter::NewStub(Outside("api.example.test"));
  grpc::ClientContext ctx;
  Prepare(&ctx, "key-a", absl::Milliseconds(500));
  HelloRequest req;
  req.set_name("sleep-ms:20000");
  HelloReply reply;
  const absl::Time start = absl::Now();
  grpc::Status st = stub->SayHello(&ctx, req, &reply);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  // The destination's own call ended early too: the deadline went with it.
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (service_a_->cancelled() == before && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(5));  // Polls the server's counter.
  }
  EXPECT_GT(service_a_->cancelled(), before);
}

TEST_F(GatewayTest, CancellationPropagatesToTheDestination) {
  const uint64_t calls = service_a_->calls();
  const uint64_t before = service_a_->cancelled();
  auto stub = Greeter::NewStub(Outside("api.example.test"));
  grpc::ClientContext ctx;
  Prepare(&ctx, "key-a", absl::Seconds(30));
  HelloRequest req;
  req.set_name("sleep-ms:20000");
  HelloReply reply;
  std::atomic<bool> done{false};
  grpc::Status st;
  stub->async()->SayHello(&ctx, &req, &reply, [&](grpc::Status s) {
    st = s;
    done = true;
  });
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (service_a_->calls() == calls && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(5));  // Until the destination has it.
  }
  ASSERT_GT(service_a_->calls(), calls);
  ctx.TryCancel();
  while ((!done || service_a_->cancelled() == before) && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE(done);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_GT(service_a_->cancelled(), before);
  EXPECT_TRUE(AwaitStat("cancelled", 1));
}

TEST_F(GatewayTest, UnknownHostOrMethodIsUnimplemented) {
  HelloReply reply;
  grpc::Status st = Hello("nowhere.test", "key-a", "x", &reply);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(st.error_message(),
            "gateway: no route for host \"nowhere.test\" and method "
            "/mesh.examples.Greeter/SayHello");
  // api.example.test routes only /mesh.examples.Greeter/ methods.
  grpc::GenericStub generic(Outside("api.example.test"));
  grpc::ClientContext ctx;
  Prepare(&ctx, "key-a");
  grpc::Slice empty("");
  grpc::ByteBuffer req(&empty, 1), resp;
  std::atomic<bool> done{false};
  grpc::Status gst;
  generic.UnaryCall(&ctx, "/other.Service/Method", grpc::StubOptions(), &req,
                    &resp, [&](grpc::Status s) {
                      gst = s;
                      done = true;
                    });
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (!done && absl::Now() < end) absl::SleepFor(absl::Milliseconds(2));
  ASSERT_TRUE(done);
  EXPECT_EQ(gst.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_TRUE(AwaitStat("no_route", 2));
}

// Load balancers in front of the gateway check it without a key.
TEST_F(GatewayTest, ServesHealthChecksWithoutAKey) {
  grpc::GenericStub generic(Outside("api.example.test"));
  grpc::ClientContext ctx;
  Prepare(&ctx, "");
  grpc::Slice empty("");  // An empty HealthCheckRequest: the server itself.
  grpc::ByteBuffer req(&empty, 1), resp;
  std::atomic<bool> done{false};
  grpc::Status st;
  generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                    &req, &resp, [&](grpc::Status s) {
                      st = s;
                      done = true;
                    });
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (!done && absl::Now() < end) absl::SleepFor(absl::Milliseconds(2));
  ASSERT_TRUE(done);
  ASSERT_TRUE(st.ok()) << st.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(resp.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& sl : slices) {
    bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  }
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));  // status: SERVING
}

TEST_F(GatewayTest, HealthWatchStreamsServingAndUnknownServicesAreNotFound) {
  grpc::GenericStub generic(Outside("api.example.test"));
  grpc::CompletionQueue cq;
  auto next = [&cq](int want) {
    void* tag = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(reinterpret_cast<intptr_t>(tag), want);
    return ok;
  };
  auto bytes_of = [](const grpc::ByteBuffer& b) {
    std::vector<grpc::Slice> slices;
    EXPECT_TRUE(b.Dump(&slices).ok());
    std::string out;
    for (const grpc::Slice& sl : slices) {
      out.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
    }
    return out;
  };
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, "");
    auto call = generic.PrepareCall(&ctx, "/grpc.health.v1.Health/Watch", &cq);
    call->StartCall(reinterpret_cast<void*>(1));
    ASSERT_TRUE(next(1));
    grpc::Slice empty("");
    call->WriteLast(grpc::ByteBuffer(&empty, 1), grpc::WriteOptions(),
                    reinterpret_cast<void*>(2));
    ASSERT_TRUE(next(2));
    grpc::ByteBuffer resp;
    call->Read(&resp, reinterpret_cast<void*>(3));
    ASSERT_TRUE(next(3));
    EXPECT_EQ(bytes_of(resp), std::string("\x08\x01", 2));  // SERVING
    ctx.TryCancel();  // The watcher goes away; the stream was held open.
    grpc::Status st;
    call->Finish(&st, reinterpret_cast<void*>(4));
    next(4);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::CANCELLED);
  }
  {
    grpc::ClientContext ctx;
    Prepare(&ctx, "");
    auto call = generic.PrepareCall(&ctx, "/grpc.health.v1.Health/Check", &cq);
    call->StartCall(reinterpret_cast<void*>(1));
    ASSERT_TRUE(next(1));
    const std::string req = std::string("\x0a\x05other", 7);  // service
    grpc::Slice s(req);
    call->WriteLast(grpc::ByteBuffer(&s, 1), grpc::WriteOptions(),
                    reinterpret_cast<void*>(2));
    next(2);
    grpc::Status st;
    call->Finish(&st, reinterpret_cast<void*>(3));
    next(3);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  }
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
}

TEST_F(GatewayTest, CallersWithoutAValidKeyAreRefused) {
  HelloReply reply;
  grpc::Status st = Hello("api.example.test", "", "x", &reply);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(st.error_message(),
            "gateway: a valid API key (metadata x-api-key) or bearer token "
            "(metadata authorization) is required");
  st = Hello("api.example.test", "key-wrong", "x", &reply);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(AwaitStat("unauthenticated", 2));
}

// A payload that makes the encoded HelloRequest exactly `size` bytes.
std::string PayloadForRequestOf(size_t size) {
  HelloRequest req;
  req.set_payload(std::string(size, 'x'));
  const size_t overhead = req.ByteSizeLong() - size;
  return std::string(size - overhead, 'x');
}

TEST_F(GatewayTest, MessagesOverTheLimitAreRefused) {
  HelloReply reply;
  // A request one byte over the limit: seen and counted by the gateway.
  grpc::Status st = Hello("api.example.test", "key-a", "", &reply,
                          PayloadForRequestOf(kMaxMessage + 1));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(st.error_message(),
            absl::StrCat("gateway: request message of ", kMaxMessage + 1,
                         " bytes is over the limit of ", kMaxMessage,
                         " bytes"));
  // Far over: refused by gRPC itself before the message is read.
  st = Hello("api.example.test", "key-a", "", &reply,
             std::string(4 * kMaxMessage, 'x'));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // A request at the limit whose reply is over it (the echo adds the
  // reply's other fields): refused on the way back.
  st = Hello("api.example.test", "key-a", "", &reply,
             PayloadForRequestOf(kMaxMessage));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StartsWith(st.error_message(),
                               "gateway: response message of "))
      << st.error_message();
  // Within the limit both ways.
  st = Hello("api.example.test", "key-a", "", &reply,
             std::string(kMaxMessage / 2, 'x'));
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(reply.payload().size(), static_cast<size_t>(kMaxMessage / 2));
  EXPECT_TRUE(AwaitStat("message_too_large", 2));
}

TEST_F(GatewayTest, CallRateIsLimitedPerClient) {
  // A burst of 40, then 20 per second: over any span of T seconds at most
  // 40 + 20 T calls get through, and the first 40 always do.
  auto stub = Greeter::NewStub(Outside("api.example.test"));
  int ok = 0, limited = 0;
  std::string message;
  const absl::Time start = absl::Now();
  for (int i = 0; i < 100; ++i) {
    grpc::ClientContext ctx;
    Prepare(&ctx, "key-rate");
    HelloRequest req;
    req.set_name("r");
    HelloReply reply;
    grpc::Status st = stub->SayHello(&ctx, req, &reply);
    if (st.ok()) {
      ++ok;
    } else if (st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++limited;
      message = st.error_message();
    } else {
      ADD_FAILURE() << st.error_code() << " " << st.error_message();
    }
  }
  const double allowed =
      40 + 20 * absl::ToDoubleSeconds(absl::Now() - start) + 1;
  EXPECT_GE(ok, 40);
  EXPECT_LE(ok, allowed);
  ASSERT_LT(allowed, 100) << "too slow to show the limit";
  EXPECT_EQ(ok + limited, 100);
  EXPECT_EQ(message,
            "gateway: client partner-rate is over its rate of 20 calls per "
            "second");
  // Other clients are not affected.
  HelloReply reply;
  EXPECT_TRUE(Hello("api.example.test", "key-a", "x", &reply).ok());
  EXPECT_TRUE(AwaitStat("rate_limited", limited));
}

TEST_F(GatewayTest, OpenCallsAreLimitedPerClient) {
  auto stub = Greeter::NewStub(Outside("api.example.test"));
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<
      grpc::ClientReaderWriter<HelloRequest, HelloReply>>> streams;
  for (int i = 0; i < 3; ++i) {  // The limit: 3 open calls.
    ctxs.push_back(std::make_unique<grpc::ClientContext>());
    Prepare(ctxs.back().get(), "key-streams");
    streams.push_back(stub->Chat(ctxs.back().get()));
    HelloRequest req;
    req.set_name("open");
    ASSERT_TRUE(streams.back()->Write(req));
    HelloReply reply;
    ASSERT_TRUE(streams.back()->Read(&reply));  // Open end to end.
  }
  HelloReply reply;
  grpc::Status st = Hello("api.example.test", "key-streams", "x", &reply);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(st.error_message(),
            "gateway: client partner-streams already has 3 calls open (the "
            "limit)");
  // Closing one makes room.
  ASSERT_TRUE(streams[0]->WritesDone());
  ASSERT_TRUE(streams[0]->Finish().ok());
  const absl::Time end = absl::Now() + absl::Seconds(10);
  do {
    st = Hello("api.example.test", "key-streams", "x", &reply);
  } while (!st.ok() && absl::Now() < end);  // Until the gateway's side ends.
  EXPECT_TRUE(st.ok()) << st.error_message();
  for (size_t i = 1; i < streams.size(); ++i) {
    streams[i]->WritesDone();
    EXPECT_TRUE(streams[i]->Finish().ok());
  }
  EXPECT_TRUE(AwaitStat("stream_limited", 1));
}

TEST_F(GatewayTest, DestinationPolicyAppliesToTheGateway) {
  // The gateway is a mesh workload like any other: when greeter's policy no
  // longer names it, its calls are denied by greeter's servers.
  const uint64_t applied = mesh_->GetStatus().configs_applied;
  WriteFile(*dir_ + "/mesh.yaml", MeshConfig(false));
  ASSERT_TRUE(mesh_->WaitForStatus(
      [&](const MeshStatus& s) { return s.configs_applied > applied; },
      absl::Seconds(10)));
  HelloReply reply;
  grpc::Status st = Hello("api.example.test", "key-a", "x", &reply);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(absl::StrContains(st.error_message(), kTd + std::string("gateway")))
      << st.error_message();
  WriteFile(*dir_ + "/mesh.yaml", MeshConfig(true));
  ASSERT_TRUE(mesh_->WaitForStatus(
      [&](const MeshStatus& s) { return s.configs_applied > applied + 1; },
      absl::Seconds(10)));
  st = Hello("api.example.test", "key-a", "x", &reply);
  EXPECT_TRUE(st.ok()) << st.error_message();
}

}  // namespace
}  // namespace mesh

namespace mesh {
namespace {

TEST_F(GatewayTest, AValidTokenReachesTheDestinationWithItsClaimsAsHeaders) {
  for (const testing::SigningKey* key : {ec_, rsa_}) {
    auto stub = Greeter::NewStub(Outside("api.example.test"));
    grpc::ClientContext ctx;
    Prepare(&ctx, "Bearer " + key->Sign(Claims(", \"tier\": \"gold\"")));
    ctx.AddMetadata("x-jwt-sub", "forged");  // Only the gateway sets it.
    ctx.AddMetadata("x-request-id", "req-7");
    HelloRequest req;
    req.set_name("metadata");  // The greeter echoes the request metadata.
    HelloReply reply;
    grpc::Status st = stub->SayHello(&ctx, req, &reply);
    ASSERT_TRUE(st.ok()) << key->alg() << ": " << st.error_message();
    EXPECT_EQ(reply.instance(), "a");
    const auto& md = reply.request_metadata();
    auto at = [&](const std::string& k) {
      return md.count(k) ? md.at(k) : std::string("(none)");
    };
    EXPECT_EQ(at("x-jwt-sub"), "user-1");
    EXPECT_EQ(at("x-jwt-tier"), "gold");
    EXPECT_EQ(at("x-mesh-gateway-client"), "user-1");
    EXPECT_EQ(at("x-request-id"), "req-7");
    EXPECT_EQ(md.count("authorization"), 0u)
        << "the token leaked into the mesh (forwardToken is off)";
  }
}

TEST_F(GatewayTest, BadTokensAreUnauthenticatedWithTheReasonOnlyInTheLog) {
  testing::SigningKey other = testing::SigningKey::Rsa("rsa-1");
  const std::string now = absl::StrCat(absl::ToUnixSeconds(absl::Now()));
  const std::string exp = absl::StrCat(absl::ToUnixSeconds(absl::Now()) + 300);
  struct Case {
    std::string what, authorization, logged;
  };
  const std::vector<Case> cases = {
      {"expired",
       "Bearer " + ec_->Sign(absl::StrCat(
                       "{\"iss\": \"https://login.example.test\", \"sub\": "
                       "\"u\", \"aud\": \"api.example.test\", \"exp\": ",
                       absl::ToUnixSeconds(absl::Now()) - 120, "}")),
       "bearer token refused: expired at "},
      {"wrong audience",
       "Bearer " + ec_->Sign(absl::StrCat(
                       "{\"iss\": \"https://login.example.test\", \"sub\": "
                       "\"u\", \"aud\": \"evil.test\", \"exp\": ",
                       exp, "}")),
       "bearer token refused: audience [evil.test] names none of "
       "[api.example.test]"},
      {"wrong key", "Bearer " + other.Sign(Claims()),
       "bearer token refused: the RS256 signature does not verify with kid "
       "rsa-1"},
      {"alg none", "Bearer " + testing::UnsignedToken(Claims()),
       "bearer token refused: alg \"none\" is not accepted"},
      {"HS256 with the public key as secret",
       "Bearer " + testing::Hs256Token(rsa_->Header("HS256"), Claims(),
                                       rsa_->PublicPem()),
       "bearer token refused: alg \"HS256\" is not accepted"},
      {"garbage", "Bearer not.a.token",
       "bearer token refused: the header is not base64url JSON"},
      {"not a bearer token", "Basic dXNlcjpwYXNz",
       "bearer token refused: authorization is not \"Bearer <token>\""},
  };
  for (const Case& c : cases) {
    const size_t from = gateway_->output().size();
    HelloReply reply;
    grpc::Status st = Hello("api.example.test", c.authorization, "x", &reply);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << c.what;
    // The caller learns nothing about why.
    EXPECT_EQ(st.error_message(), "gateway: the bearer token is not valid")
        << c.what;
    EXPECT_TRUE(AwaitOutput(c.logged, from))
        << c.what << ": wanted in the log: " << c.logged << "\n"
        << gateway_->output().substr(from);
  }
  // A bad token is refused even with a valid API key beside it.
  auto stub = Greeter::NewStub(Outside("api.example.test"));
  grpc::ClientContext ctx;
  Prepare(&ctx, "key-a");
  ctx.AddMetadata("authorization", "Bearer " + other.Sign(Claims()));
  HelloRequest req;
  HelloReply reply;
  EXPECT_EQ(stub->SayHello(&ctx, req, &reply).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(GatewayTest, ARouteCanRequireAScope) {
  HelloReply reply;
  grpc::Status st =
      Hello("scoped.other.test",
            "Bearer " + rsa_->Sign(Claims(
                            ", \"scope\": \"greeter.read greeter.write\"")),
            "x", &reply);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(reply.instance(), "a");

  const size_t from = gateway_->output().size();
  st = Hello("scoped.other.test",
             "Bearer " + rsa_->Sign(Claims(", \"scope\": \"greeter.read\"")),
             "x", &reply);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(st.error_message(),
            "gateway: the caller's credentials do not allow this method");
  EXPECT_TRUE(AwaitOutput("for client user-1: the token lacks scope "
                          "greeter.write",
                          from))
      << gateway_->output().substr(from);
  // An API key carries no scope.
  st = Hello("scoped.other.test", "key-a", "x", &reply);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(AwaitOutput("for client partner-a: no token, so no scope "
                          "greeter.write",
                          from));
  EXPECT_TRUE(AwaitStat("forbidden", 2));
}

TEST_F(GatewayTest, TheKeySetIsReloadedWhenItsFileChanges) {
  testing::SigningKey next = testing::SigningKey::Ec("ec-2");
  const std::string jwks = *dir_ + "/jwks.json";
  HelloReply reply;
  EXPECT_EQ(Hello("api.example.test", "Bearer " + next.Sign(Claims()), "x",
                  &reply)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // Rotation: ec-2 in, ec-1 out.
  size_t from = gateway_->output().size();
  WriteFile(jwks, testing::Jwks(*rsa_, next));
  ASSERT_TRUE(AwaitOutput("jwks: loaded 2 key(s) from " + jwks, from));
  grpc::Status st =
      Hello("api.example.test", "Bearer " + next.Sign(Claims()), "x", &reply);
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(Hello("api.example.test", "Bearer " + ec_->Sign(Claims()), "x",
                  &reply)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // A broken file is logged; the keys in force stay.
  from = gateway_->output().size();
  WriteFile(jwks, "{\"keys\": [{\"kty\": \"RSA\"}]}");
  ASSERT_TRUE(AwaitOutput("the keys loaded before stay in force", from))
      << gateway_->output().substr(from);
  st = Hello("api.example.test", "Bearer " + next.Sign(Claims()), "x", &reply);
  EXPECT_TRUE(st.ok()) << st.error_message();
  // Back to the set the other tests use.
  from = gateway_->output().size();
  WriteFile(jwks, testing::Jwks(*rsa_, *ec_));
  ASSERT_TRUE(AwaitOutput("jwks: loaded 2 key(s) from " + jwks, from));
}

}  // namespace
}  // namespace mesh
