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
#include <set>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
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

std::string Meshctl() {
  return absl::StrCat(getenv("TEST_SRCDIR"), "/mesh/mesh/cli/meshctl");
}

// The client's view of service default/greeter's endpoints by origin.
ServiceInstances GreeterInstances(const MeshStatus& s) {
  for (const ServiceInstances& i : s.instances) {
    if (i.service == "default/greeter") return i;
  }
  return {};
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
    // The guard's window and hold short enough for a test (defaults: 30 s
    // and 5 min); its share and minimum are the defaults (50 %, 3).
    WriteFile(dir_ + "/mesh.yaml",
              "apiVersion: mesh/v1\ntrustDomain: example.org\nservices:\n"
              "  - name: greeter\n    hostname: greeter.mesh.internal\n"
              "registration:\n  removalGuard: {window: 5s, maxHold: 3s}\n");
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
    o.admin_address = absl::StrCat("127.0.0.1:", testing::FreePort());
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
  // `name` "sleep-ms:N" makes the server answer after N ms.
  static std::string Call(grpc::Status* st, bool wait_for_ready = false,
                          const std::string& name = "") {
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(wait_for_ready);
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(wait_for_ready ? 20 : 5));
    HelloRequest req;
    req.set_name(name);
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
  const absl::Time start = absl::Now();
  for (int t = 0; t < 5; ++t) {
    load.emplace_back([&] {
      // Bounded: at most 60 s of calls, 100/s per thread (500/s in all).
      const absl::Time end = absl::Now() + absl::Seconds(60);
      absl::Time next = absl::Now();
      while (!stop && absl::Now() < end) {
        grpc::Status s;
        Call(&s);
        ++calls;
        if (!s.ok()) {
          ++failed;
          internal::MutexLock lock(&mu);
          ++errors[absl::StrCat(s.error_code(), " ", s.error_message())];
        }
        next += absl::Milliseconds(10);
        absl::SleepFor(next - absl::Now());  // Pacing, not waiting.
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
  std::cout << "rolling restart: " << calls.load() << " calls ("
            << calls.load() / absl::ToDoubleSeconds(absl::Now() - start)
            << "/s), " << failed.load() << " failed\n";
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

// Drain: once the client has applied the DRAINING key, no new call reaches
// the instance; the calls it was already serving finish (OK).
TEST_F(RegistrationE2eTest, ADrainedServerGetsNoNewCallsAndFinishesItsOwn) {
  const int port_a = testing::FreePort(), port_b = testing::FreePort();
  auto a = Server("drain-a", port_a);
  auto b = Server("drain-b", port_b);
  ASSERT_TRUE(AwaitInstances(
      [&](const auto& m) { return m.count(Key(port_a)) && m.count(Key(port_b)); },
      absl::Seconds(20)));
  // Both take calls, and the client is settled (everything applied).
  std::set<std::string> seen;
  grpc::Status st;
  for (int i = 0; i < 100 && seen.size() < 2; ++i) seen.insert(Call(&st, true));
  ASSERT_EQ(seen, (std::set<std::string>{"drain-a", "drain-b"}));
  ASSERT_TRUE(mesh_->WaitForStatus(
      [](const MeshStatus& s) {
        return GreeterInstances(s).registered == 2 &&
               s.applied_version == s.config_version;
      },
      absl::Seconds(10)));
  const std::string before = mesh_->GetStatus().applied_version;
  // Slow calls in flight on both (2.5 s each; the drain delay is 0.5 s).
  std::vector<std::thread> slow;
  std::vector<std::string> slow_by(6);
  std::vector<grpc::Status> slow_st(6);
  for (int i = 0; i < 6; ++i) {
    slow.emplace_back([&, i] {
      slow_by[i] = Call(&slow_st[i], false, "sleep-ms:2500");
    });
  }
  // SIGTERM at once: a slow call that starts even after it still reaches a
  // (the client has not applied DRAINING yet) and is in flight when the
  // server shuts down, 0.5 s later.
  kill(a->pid(), SIGTERM);
  // The key says DRAINING; the client applies it (a new xDS version).
  ASSERT_TRUE(AwaitInstances(
      [&](const auto& m) {
        auto it = m.find(Key(port_a));
        return it != m.end() &&
               it->second.find("DRAINING") != std::string::npos;
      },
      absl::Seconds(5)));
  ASSERT_TRUE(mesh_->WaitForStatus(
      [&](const MeshStatus& s) {
        return s.applied_version != before &&
               s.applied_version == s.config_version;
      },
      absl::Seconds(5)));
  // From now on every new call goes to b.
  int to_a = 0;
  for (int i = 0; i < 50; ++i) {
    const std::string by = Call(&st);
    EXPECT_TRUE(st.ok()) << st.error_message();
    if (by == "drain-a") ++to_a;
  }
  EXPECT_EQ(to_a, 0);
  for (std::thread& t : slow) t.join();
  int on_a = 0;
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(slow_st[i].ok()) << slow_st[i].error_message();
    if (slow_by[i] == "drain-a") ++on_a;
  }
  EXPECT_GT(on_a, 0) << "no slow call was in flight on the drained server";
  int code = -1;
  a->Finish(&code);
  EXPECT_EQ(code, 0) << a->output();
  EXPECT_TRUE(AwaitInstances(
      [&](const auto& m) { return m.count(Key(port_a)) == 0; },
      absl::Seconds(10)));
  b->Finish(&code, SIGTERM);
}

// etcd stops (SIGKILL) and comes back on the same data: every instance is
// there again, and no client lost its endpoints meanwhile (the etcd source
// keeps its last parts while etcd is away).
TEST_F(RegistrationE2eTest, AnEtcdRestartLosesNoInstanceAndNoCall) {
  std::vector<std::unique_ptr<Child>> servers;
  std::vector<int> ports;
  for (int i = 0; i < 3; ++i) {
    ports.push_back(testing::FreePort());
    servers.push_back(Server(absl::StrCat("etcd-restart-", i), ports.back()));
  }
  auto all_there = [&](const auto& m) {
    for (int p : ports) {
      if (!m.count(Key(p))) return false;
    }
    return true;
  };
  ASSERT_TRUE(AwaitInstances(all_there, absl::Seconds(20)));
  ASSERT_TRUE(mesh_->WaitForStatus(
      [](const MeshStatus& s) { return GreeterInstances(s).registered == 3; },
      absl::Seconds(10)));
  grpc::Status st;
  ASSERT_FALSE(Call(&st, true).empty()) << st.error_message();
  std::atomic<bool> stop{false};
  std::atomic<int> calls{0}, failed{0};
  std::thread load([&] {
    const absl::Time end = absl::Now() + absl::Seconds(60);  // Bounded.
    while (!stop && absl::Now() < end) {
      grpc::Status s;
      Call(&s);
      ++calls;
      if (!s.ok()) ++failed;
      absl::SleepFor(absl::Milliseconds(5));  // Pacing.
    }
  });
  etcd_->Kill();
  // Away longer than the instances' TTL (2 s): their agents' keep-alives
  // fail meanwhile.
  ASSERT_TRUE(mesh_->WaitForStatus(
      [](const MeshStatus& s) {
        for (const SourceStatus& src : s.sources) {
          if (src.name == "etcd" && !src.ok) return true;
        }
        return false;
      },
      absl::Seconds(20)));
  absl::SleepFor(absl::Seconds(3));  // The outage itself, by design.
  EXPECT_EQ(GreeterInstances(mesh_->GetStatus()).registered, 3);
  etcd_->Start();
  ASSERT_TRUE(etcd_->AwaitHealthy(absl::Seconds(30)));
  EXPECT_TRUE(AwaitInstances(all_there, absl::Seconds(15)));
  EXPECT_TRUE(mesh_->WaitForStatus(
      [](const MeshStatus& s) {
        for (const SourceStatus& src : s.sources) {
          if (src.name == "etcd" && !src.ok) return false;
        }
        return GreeterInstances(s).registered == 3 && s.held_instances.empty();
      },
      absl::Seconds(15)));
  stop = true;
  load.join();
  EXPECT_GT(calls.load(), 100);
  EXPECT_EQ(failed.load(), 0);
  std::cout << "etcd restart: " << calls.load() << " calls, " << failed.load()
            << " failed\n";
  for (auto& s : servers) {
    int code;
    s->Finish(&code, SIGTERM);
  }
}

// The mass-removal guard: three instances whose keys all go at once while
// the servers live (their agents paused past the TTL, as in a partition
// between them and etcd) are not all removed: the 2nd and 3rd are held,
// shown in status, and still called; the hold ends after maxHold (3 s
// here); the agents back, the instances register again.
TEST_F(RegistrationE2eTest, TheMassRemovalGuardHoldsInstancesThatVanishTogether) {
  std::vector<std::unique_ptr<Child>> servers;
  std::vector<int> ports;
  for (int i = 0; i < 3; ++i) {
    ports.push_back(testing::FreePort());
    servers.push_back(Server(absl::StrCat("guarded-", i), ports.back()));
  }
  ASSERT_TRUE(AwaitInstances(
      [&](const auto& m) {
        for (int p : ports) {
          if (!m.count(Key(p))) return false;
        }
        return true;
      },
      absl::Seconds(20)));
  ASSERT_TRUE(mesh_->WaitForStatus(
      [](const MeshStatus& s) { return GreeterInstances(s).registered == 3; },
      absl::Seconds(10)));
  std::vector<pid_t> agents;
  for (auto& s : servers) {
    agents.push_back(AgentOf(s->pid()));
    ASSERT_GT(agents.back(), 0);
  }
  for (pid_t a : agents) kill(a, SIGSTOP);
  // The leases expire (TTL 2 s): one instance goes, two are held.
  ASSERT_TRUE(mesh_->WaitForStatus(
      [](const MeshStatus& s) {
        return GreeterInstances(s).held == 2 &&
               GreeterInstances(s).registered == 0;
      },
      absl::Seconds(10)))
      << GreeterInstances(mesh_->GetStatus()).registered;
  MeshStatus held = mesh_->GetStatus();
  ASSERT_EQ(held.held_instances.size(), 2u);
  EXPECT_NE(held.held_instances[0].find(
                "instances of default/greeter r/z/c1 vanished within 5s"),
            std::string::npos)
      << held.held_instances[0];
  EXPECT_NE(held.last_error.find("mass-removal guard: holding"),
            std::string::npos)
      << held.last_error;
  // The client's /metrics and /status say so too.
  auto metrics = telemetry::HttpGet(mesh_->admin_address(), "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_NE(metrics->find("mesh_instances{service=\"default/greeter\","
                          "origin=\"held\"} 2"),
            std::string::npos)
      << *metrics;
  EXPECT_NE(metrics->find("\nmesh_instances_held 2"), std::string::npos)
      << *metrics;
  auto json = telemetry::HttpGet(mesh_->admin_address(), "/status");
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_NE(json->find("\"registered\":0,\"held\":2}"), std::string::npos)
      << *json;
  EXPECT_NE(json->find("\"held_instances\":[\"etcd:/mesh/instances/"),
            std::string::npos)
      << *json;
  auto text = telemetry::HttpGet(mesh_->admin_address(), "/status?format=text");
  ASSERT_TRUE(text.ok());
  EXPECT_NE(text->find("instances      default/greeter: 0 declared, 0 from "
                       "endpoint sets, 0 from DNS, 0 registered, 2 HELD"),
            std::string::npos)
      << *text;
  // The servers still serve: calls reach the held instances.
  grpc::Status st;
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(absl::StartsWith(Call(&st), "guarded-")) << st.error_message();
  }
  // The hold ends (maxHold 3 s) by the clock alone: no source changed.
  EXPECT_TRUE(mesh_->WaitForStatus(
      [](const MeshStatus& s) {
        return s.held_instances.empty() && GreeterInstances(s).held == 0;
      },
      absl::Seconds(8)));
  for (pid_t a : agents) kill(a, SIGCONT);
  EXPECT_TRUE(mesh_->WaitForStatus(
      [](const MeshStatus& s) { return GreeterInstances(s).registered == 3; },
      absl::Seconds(15)));
  for (auto& s : servers) {
    int code;
    s->Finish(&code, SIGTERM);
  }
}

// Bad instance values are left out and reported; the good instance and the
// rest of the config stay; meshctl get lists the instances with their
// leases and explain says where each endpoint came from.
TEST_F(RegistrationE2eTest, BadInstancesAreLeftOutAndReportedAndNothingIsLost) {
  const int port = testing::FreePort();
  auto a = Server("good", port);
  ASSERT_TRUE(AwaitInstances([&](const auto& m) { return m.count(Key(port)); },
                             absl::Seconds(20)));
  grpc::Status st;
  ASSERT_EQ(Call(&st, true), "good") << st.error_message();
  const std::string good = Instances()[Key(port)];
  auto with = [&](const std::string& from, const std::string& to) {
    std::string v = good;
    const size_t at = v.find(from);
    EXPECT_NE(at, std::string::npos) << from << " in " << v;
    if (at != std::string::npos) v.replace(at, from.size(), to);
    return v;
  };
  const std::string bad_port = absl::StrCat(testing::FreePort());
  ASSERT_TRUE(etcd_client_->Put(absl::StrCat(kInstances, "garbage"),
                                "kind: Instance\n{{{not yaml").ok());
  ASSERT_TRUE(etcd_client_
                  ->Put(absl::StrCat(kInstances, "127.0.0.2:", bad_port),
                        with(absl::StrCat(kTd, "greeter"),
                             absl::StrCat(kTd, "impostor")))
                  .ok());
  ASSERT_TRUE(etcd_client_
                  ->Put(absl::StrCat(kInstances, "127.0.0.3:", bad_port),
                        with("cluster: \"c1\"", "cluster: \"bad cluster!\""))
                  .ok());
  ASSERT_TRUE(mesh_->WaitForStatus(
      [](const MeshStatus& s) { return s.ignored_instances.size() == 3; },
      absl::Seconds(10)));
  const MeshStatus s = mesh_->GetStatus();
  std::string all;
  for (const std::string& l : s.ignored_instances) all += l + "\n";
  EXPECT_NE(all.find(absl::StrCat(kInstances, "garbage: ignored")),
            std::string::npos)
      << all;
  EXPECT_NE(all.find(absl::StrCat("it serves as ", kTd, "impostor but "
                                  "default/greeter's servers must be ",
                                  kTd, "greeter")),
            std::string::npos)
      << all;
  EXPECT_NE(all.find(absl::StrCat(kInstances, "127.0.0.3:", bad_port,
                                  ": ignored")),
            std::string::npos)
      << all;
  EXPECT_NE(s.last_error.find("registered instance etcd:/mesh/instances/"),
            std::string::npos)
      << s.last_error;
  EXPECT_EQ(GreeterInstances(s).registered, 1);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(Call(&st), "good") << st.error_message();
  }
  // meshctl get: the instances, with their leases.
  int code = -1;
  Child get({Meshctl(), "get", "--etcd", etcd_->endpoint()}, true);
  const std::string out = get.Finish(&code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find(absl::StrCat("#   default/greeter/127.0.0.1:", port,
                                  "  127.0.0.1:", port, " r/z/c1 HEALTHY  "
                                  "(lease ")),
            std::string::npos)
      << out;
  EXPECT_NE(out.find(" s left of 2)"), std::string::npos) << out;
  EXPECT_NE(out.find("#   default/greeter/garbage  not an instance"),
            std::string::npos)
      << out;
  // meshctl explain: where each endpoint came from.
  Child explain({Meshctl(), "explain", "--config", dir_ + "/mesh.yaml",
                 "--etcd", etcd_->endpoint(), "--from", "r/z/c1",
                 "greeter.mesh.internal"},
                true);
  const std::string why = explain.Finish(&code);
  EXPECT_EQ(code, 0) << why;
  EXPECT_NE(why.find(absl::StrCat("default/greeter 127.0.0.1:", port,
                                  " r/z/c1: registered instance ",
                                  Key(port))),
            std::string::npos)
      << why;
  EXPECT_NE(why.find("note: etcd:/mesh/instances/default/greeter/garbage: ignored"),
            std::string::npos)
      << why;
  for (const char* k : {"garbage", "127.0.0.2:", "127.0.0.3:"}) {
    std::string key = absl::StrCat(kInstances, k);
    if (key.back() == ':') key += bad_port;
    EXPECT_TRUE(etcd_client_->Delete(key).ok());
  }
  EXPECT_TRUE(mesh_->WaitForStatus(
      [](const MeshStatus& s) { return s.ignored_instances.empty(); },
      absl::Seconds(10)));
  a->Finish(&code, SIGTERM);
}

// Health from the server: NOT_SERVING (SIGUSR1 in the example server:
// Mesh::SetServing(false)) puts its instance UNHEALTHY within a keep-alive
// period and clients stop calling it; SERVING (SIGUSR2) brings it back.
TEST_F(RegistrationE2eTest, NotServingTakesTheInstanceOutAndServingBringsItBack) {
  const int port_a = testing::FreePort(), port_b = testing::FreePort();
  auto a = Server("health-a", port_a);
  auto b = Server("health-b", port_b);
  ASSERT_TRUE(AwaitInstances(
      [&](const auto& m) { return m.count(Key(port_a)) && m.count(Key(port_b)); },
      absl::Seconds(20)));
  grpc::Status st;
  std::set<std::string> seen;
  // Until both have answered: both are in etcd, but under load the client
  // may not have the update yet, or a subchannel may still be connecting.
  for (const absl::Time end = absl::Now() + absl::Seconds(10);
       seen.size() < 2 && absl::Now() < end;) {
    seen.insert(Call(&st, true));
  }
  ASSERT_EQ(seen, (std::set<std::string>{"health-a", "health-b"}));
  auto health_of_a = [&](const char* h) {
    return [&, h](const auto& m) {
      auto it = m.find(Key(port_a));
      return it != m.end() && (std::string(h) == "HEALTHY"
                                   ? it->second.find("health:") ==
                                         std::string::npos
                                   : it->second.find(h) != std::string::npos);
    };
  };
  kill(a->pid(), SIGUSR1);
  ASSERT_TRUE(a->ReadUntil("NOT_SERVING", absl::Seconds(5)));
  const absl::Time marked = absl::Now();
  // Within one keep-alive period (TTL 2 s / 3).
  ASSERT_TRUE(AwaitInstances(health_of_a("UNHEALTHY"), absl::Seconds(2)));
  std::cout << "UNHEALTHY in etcd " << absl::Now() - marked << " after\n";
  // The client stops calling it once it has applied that.
  EXPECT_TRUE(mesh_->WaitForStatus(
      [](const MeshStatus& s) {
        return s.applied_version == s.config_version &&
               GreeterInstances(s).registered >= 2;
      },
      absl::Seconds(5)));
  bool only_b = false;
  for (int round = 0; round < 20 && !only_b; ++round) {
    int to_a = 0;
    for (int i = 0; i < 20; ++i) {
      if (Call(&st) == "health-a") ++to_a;
      EXPECT_TRUE(st.ok()) << st.error_message();
    }
    only_b = to_a == 0;
  }
  EXPECT_TRUE(only_b) << "calls still reach the NOT_SERVING instance";
  kill(a->pid(), SIGUSR2);
  ASSERT_TRUE(a->ReadUntil(" SERVING", absl::Seconds(5)));
  ASSERT_TRUE(AwaitInstances(health_of_a("HEALTHY"), absl::Seconds(2)));
  bool back = false;
  for (int i = 0; i < 200 && !back; ++i) back = Call(&st) == "health-a";
  EXPECT_TRUE(back);
  int code;
  a->Finish(&code, SIGTERM);
  b->Finish(&code, SIGTERM);
}

}  // namespace
}  // namespace mesh
