// Registration end to end (issue 17), with a real etcd and real servers on
// loopback: greeter_server children register themselves (--register, TTL
// 2 s) as instances of `greeter`, which the config file declares with no
// endpoints; this process is a mesh client (frontend) reading the same file
// and etcd. Shows: a server that registers is routed to with no config
// edit; a drain (SIGTERM) during a rolling restart under load loses no
// call; a killed server's instance goes (at once if its agent lives to
// revoke the lease, within the TTL if the agent dies too); a lease lost
// while the agent was paused is granted again and the instance put back.

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "examples/greeter/greeter.grpc.pb.h"
#include "mesh/common/sync.h"
#include "mesh/identity/dev_ca.h"
#include "mesh/mesh.h"
#include "mesh/source/etcd_client.h"
#include "mesh/telemetry/http_get.h"
#include "tests/child.h"
#include "tests/etcd_process.h"
#include "tests/free_port.h"
#include "tests/temp_dir.h"

namespace mesh {
namespace {

using examples::Greeter;
using examples::HelloReply;
using examples::HelloRequest;
using testing::Child;

constexpr char kTd[] = "spiffe://example.org/ns/default/sa/";
constexpr char kInstances[] = "/mesh/instances/default/greeter/";

void WriteFile(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".new";
  std::ofstream(tmp) << data;
  ASSERT_EQ(rename(tmp.c_str(), path.c_str()), 0);
}

std::string Binary(const std::string& name) {
  return absl::StrCat(getenv("TEST_SRCDIR"), "/mesh/examples/greeter/", name);
}

// The mesh agent a greeter_server child spawned (its only child).
pid_t AgentOf(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/task/", pid, "/children"));
  pid_t child = -1;
  in >> child;
  return child;
}

class RegistrationE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(testing::HaveEtcd())
        << "etcd-server is not installed (bazel/setup.sh --with-test-tools)";
    tmp_ = new testing::TempDir("mesh-registration");
    dir_ = tmp_->path();
    etcd_ = new testing::Etcd(dir_ + "/etcd");
    etcd_->Start();
    ASSERT_TRUE(etcd_->AwaitHealthy(absl::Seconds(30)));
    auto ca = identity::DevCa::Create("registration test CA");
    ASSERT_TRUE(ca.ok());
    WriteFile(dir_ + "/ca.pem", (*ca)->cert_pem());
    for (const char* sa : {"greeter", "frontend"}) {
      identity::LeafOptions o;
      o.uris = {absl::StrCat(kTd, sa)};
      auto pem = (*ca)->Issue(o);
      ASSERT_TRUE(pem.ok());
      WriteFile(dir_ + "/" + sa + ".pem", pem->cert);
      WriteFile(dir_ + "/" + sa + ".key", pem->key);
    }
    WriteFile(dir_ + "/mesh.yaml",
              "apiVersion: mesh/v1\ntrustDomain: example.org\nservices:\n"
              "  - name: greeter\n    hostname: greeter.mesh.internal\n");
    auto c = source::EtcdClient::Create({{etcd_->endpoint()}});
    ASSERT_TRUE(c.ok());
    etcd_client_ = c->release();
    MeshOptions o;
    o.config_path = dir_ + "/mesh.yaml";
    o.etcd.endpoints = {etcd_->endpoint()};
    o.service_name = "frontend";
    o.locality = {"r", "z", "c1"};
    o.identity = {dir_ + "/frontend.pem", dir_ + "/frontend.key",
                  {dir_ + "/ca.pem"}};
    auto m = Mesh::Create(o);
    ASSERT_TRUE(m.ok()) << m.status();
    mesh_ = m->release();
    stub_ = Greeter::NewStub(mesh_->CreateChannel("greeter.mesh.internal"))
                .release();
  }
  static void TearDownTestSuite() {
    delete stub_;
    delete mesh_;
    delete etcd_client_;
    delete etcd_;
    delete tmp_;
  }

  // A registering greeter_server named `name` on `port` (0: a free one).
  static std::unique_ptr<Child> Server(const std::string& name, int port = 0,
                                       const std::string& admin = "") {
    if (port == 0) port = testing::FreePort();
    std::vector<std::string> args = {
        Binary("greeter_server"), "--config=" + dir_ + "/mesh.yaml",
        "--etcd=" + etcd_->endpoint(), "--register", "--register_ttl=2",
        "--drain_ms=500", "--service=greeter",
        absl::StrCat("--listen=127.0.0.1:", port), "--name=" + name,
        "--locality=r/z/c1", "--cert=" + dir_ + "/greeter.pem",
        "--key=" + dir_ + "/greeter.key", "--bundle=" + dir_ + "/ca.pem"};
    if (!admin.empty()) args.push_back("--admin=" + admin);
    return std::make_unique<Child>(args, /*capture=*/true);
  }

  // The registered instances: key -> value.
  static std::map<std::string, std::string> Instances() {
    std::map<std::string, std::string> out;
    auto l = etcd_client_->List(kInstances);
    if (l.ok()) {
      for (const auto& kv : l->kvs) out[kv.key] = kv.value;
    }
    return out;
  }
  // Waits (watching etcd, not polling) until `cond(Instances())` holds.
  static bool AwaitInstances(
      const std::function<bool(const std::map<std::string, std::string>&)>&
          cond,
      absl::Duration timeout) {
    auto l = etcd_client_->List(kInstances);
    if (!l.ok()) return false;
    internal::Mutex mu;
    std::map<std::string, std::string> now;
    for (const auto& kv : l->kvs) now[kv.key] = kv.value;
    if (cond(now)) return true;
    source::EtcdClient::WatchCallbacks cb;
    cb.on_events = [&](const std::vector<source::EtcdEvent>& events) {
      internal::MutexLock lock(&mu);
      for (const source::EtcdEvent& e : events) {
        if (e.deleted) {
          now.erase(e.kv.key);
        } else {
          now[e.kv.key] = e.kv.value;
        }
      }
    };
    auto w = etcd_client_->Watch(kInstances, l->revision + 1, cb);
    internal::MutexLock lock(&mu);
    auto holds = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return cond(now); };
    return mu.AwaitWithTimeout(internal::Condition(&holds), timeout);
  }
  static std::string Key(int port) {
    return absl::StrCat(kInstances, "127.0.0.1:", port);
  }
  // One call; the instance that served it ("" on failure, with *st set).
  static std::string Call(grpc::Status* st, bool wait_for_ready = false) {
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(wait_for_ready);
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(wait_for_ready ? 20 : 5));
    HelloRequest req;
    HelloReply reply;
    *st = stub_->SayHello(&ctx, req, &reply);
    return st->ok() ? reply.instance() : "";
  }

  static testing::TempDir* tmp_;
  static std::string dir_;
  static testing::Etcd* etcd_;
  static source::EtcdClient* etcd_client_;
  static Mesh* mesh_;
  static Greeter::Stub* stub_;
};

testing::TempDir* RegistrationE2eTest::tmp_ = nullptr;
std::string RegistrationE2eTest::dir_;
testing::Etcd* RegistrationE2eTest::etcd_ = nullptr;
source::EtcdClient* RegistrationE2eTest::etcd_client_ = nullptr;
Mesh* RegistrationE2eTest::mesh_ = nullptr;
Greeter::Stub* RegistrationE2eTest::stub_ = nullptr;

TEST_F(RegistrationE2eTest, ARegisteredServerIsRoutedToWithNoConfigEdit) {
  const int port = testing::FreePort();
  const std::string admin = absl::StrCat("127.0.0.1:", testing::FreePort());
  auto a = Server("reg-a", port, admin);
  ASSERT_TRUE(AwaitInstances(
      [&](const auto& m) { return m.count(Key(port)) > 0; },
      absl::Seconds(20)))
      << a->output();
  const std::string value = Instances()[Key(port)];
  EXPECT_NE(value.find("kind: Instance"), std::string::npos) << value;
  EXPECT_NE(value.find(absl::StrCat("identity: \"", kTd, "greeter\"")),
            std::string::npos)
      << value;
  EXPECT_NE(value.find("cluster: \"c1\""), std::string::npos) << value;
  grpc::Status st;
  EXPECT_EQ(Call(&st, /*wait_for_ready=*/true), "reg-a") << st.error_message();
  // The server's own status says so.
  auto json = telemetry::HttpGet(admin, "/status");
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_NE(json->find(absl::StrCat("\"registrations\":[{\"listen\":"
                                    "\"127.0.0.1:", port, "\",\"key\":\"",
                                    Key(port), "\"")),
            std::string::npos)
      << *json;
  EXPECT_NE(json->find("\"registrations\":1,\"state\":\"registered\""),
            std::string::npos)
      << *json;
  auto metrics = telemetry::HttpGet(admin, "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NE(metrics->find(absl::StrCat(
                "mesh_registration_registered{listen=\"127.0.0.1:", port,
                "\",state=\"registered\"} 1")),
            std::string::npos)
      << *metrics;
  // SIGTERM: it drains and its instance goes (the lease is revoked).
  int code = -1;
  a->Finish(&code, SIGTERM);
  EXPECT_TRUE(AwaitInstances(
      [&](const auto& m) { return m.count(Key(port)) == 0; },
      absl::Seconds(10)));
}

// Three instances restarted one after the other (each drained by SIGTERM,
// then a new one started) while calls run: no call fails.
TEST_F(RegistrationE2eTest, ARollingRestartUnderLoadLosesNoCall) {
  std::vector<std::unique_ptr<Child>> servers;
  std::vector<int> ports;
  for (int i = 0; i < 3; ++i) {
    ports.push_back(testing::FreePort());
    servers.push_back(Server(absl::StrCat("roll-", i), ports.back()));
  }
  ASSERT_TRUE(AwaitInstances([&](const auto& m) { return m.size() >= 3; },
                             absl::Seconds(20)));
  grpc::Status st;
  ASSERT_FALSE(Call(&st, true).empty()) << st.error_message();
  std::atomic<bool> stop{false};
  std::atomic<int> calls{0}, failed{0};
  internal::Mutex mu;
  std::map<std::string, int> errors;
  std::vector<std::thread> load;
  for (int t = 0; t < 4; ++t) {
    load.emplace_back([&] {
      // Bounded: at most 60 s of calls, about 500/s in all.
      const absl::Time end = absl::Now() + absl::Seconds(60);
      while (!stop && absl::Now() < end) {
        grpc::Status s;
        Call(&s);
        ++calls;
        if (!s.ok()) {
          ++failed;
          internal::MutexLock lock(&mu);
          ++errors[absl::StrCat(s.error_code(), " ", s.error_message())];
        }
        absl::SleepFor(absl::Milliseconds(8));  // Pacing, not waiting.
      }
    });
  }
  for (int i = 0; i < 3; ++i) {
    int code = -1;
    servers[i]->Finish(&code, SIGTERM);  // Drains, then exits.
    EXPECT_EQ(code, 0) << servers[i]->output();
    ports[i] = testing::FreePort();
    servers[i] = Server(absl::StrCat("roll-", i, "-new"), ports[i]);
    ASSERT_TRUE(AwaitInstances(
        [&](const auto& m) { return m.count(Key(ports[i])) > 0; },
        absl::Seconds(20)));
  }
  // The last new instance takes calls too before the load stops.
  bool served = false;
  for (int i = 0; i < 200 && !served; ++i) {
    served = Call(&st) == "roll-2-new";
  }
  EXPECT_TRUE(served);
  stop = true;
  for (std::thread& t : load) t.join();
  EXPECT_GT(calls.load(), 500);
  EXPECT_EQ(failed.load(), 0) << ::testing::PrintToString(errors);
  std::cout << "rolling restart: " << calls.load() << " calls, "
            << failed.load() << " failed\n";
  for (auto& s : servers) {
    int code;
    s->Finish(&code, SIGTERM);
  }
}

TEST_F(RegistrationE2eTest, AKilledServersInstanceGoes) {
  // The application dies; its agent sees it and revokes the lease.
  int port = testing::FreePort();
  auto a = Server("killed", port);
  ASSERT_TRUE(AwaitInstances([&](const auto& m) { return m.count(Key(port)); },
                             absl::Seconds(20)));
  int code = -1;
  a->Finish(&code, SIGKILL);
  EXPECT_TRUE(AwaitInstances(
      [&](const auto& m) { return m.count(Key(port)) == 0; },
      absl::Seconds(3)));
  // Application and agent die together: the lease expires (TTL 2 s).
  port = testing::FreePort();
  auto b = Server("killed-with-agent", port);
  ASSERT_TRUE(AwaitInstances([&](const auto& m) { return m.count(Key(port)); },
                             absl::Seconds(20)));
  const pid_t agent = AgentOf(b->pid());
  ASSERT_GT(agent, 0);
  // The application stopped first (so that it cannot start a new agent),
  // the agent killed (so that it cannot revoke), then the application.
  kill(b->pid(), SIGSTOP);
  kill(agent, SIGKILL);
  const absl::Time killed = absl::Now();
  b->Finish(&code, SIGKILL);
  EXPECT_TRUE(AwaitInstances(
      [&](const auto& m) { return m.count(Key(port)) == 0; },
      absl::Seconds(4)));
  const absl::Duration gone = absl::Now() - killed;
  EXPECT_LE(gone, absl::Seconds(3)) << "TTL 2 s + 1 s";
  std::cout << "instance gone " << gone << " after SIGKILL (TTL 2 s)\n";
}

TEST_F(RegistrationE2eTest, ALeaseLostWhileTheAgentWasPausedIsGrantedAgain) {
  const int port = testing::FreePort();
  auto a = Server("paused", port);
  ASSERT_TRUE(AwaitInstances([&](const auto& m) { return m.count(Key(port)); },
                             absl::Seconds(20)));
  const pid_t agent = AgentOf(a->pid());
  ASSERT_GT(agent, 0);
  kill(agent, SIGSTOP);
  // The lease expires while nobody renews it...
  EXPECT_TRUE(AwaitInstances(
      [&](const auto& m) { return m.count(Key(port)) == 0; },
      absl::Seconds(6)));
  kill(agent, SIGCONT);
  // ...and the first keep-alive after waking finds it gone: registered
  // again on a new lease.
  EXPECT_TRUE(AwaitInstances([&](const auto& m) { return m.count(Key(port)); },
                             absl::Seconds(10)));
  grpc::Status st;
  bool reached = false;
  for (int i = 0; i < 100 && !reached; ++i) {
    reached = Call(&st, true) == "paused";
  }
  EXPECT_TRUE(reached);
  int code;
  a->Finish(&code, SIGTERM);
}

}  // namespace
}  // namespace mesh
