// discovery: how fast a registered server gets traffic, how fast a drained
// one stops getting it, and what registration costs etcd and the agents.
//
//   discovery --etcd=HOST:PORT --server=PATH [--instances=N] [--changes=K]
//   discovery --etcd=HOST:PORT --registry --instances=N [--seconds=S]
//             [--etcd_pid=PID]
//
// Discovery mode. This process is a mesh client in cluster r/z/c1 (config
// file + etcd; mTLS with a throwaway CA). The service has N registered
// instances: N-2 simulated ones in 100 far-away clusters (leases kept alive
// by this process; nothing listens there, and the caller's nearer
// localities have priority, so gRPC does not connect to them), one real
// greeter_server "a" in cluster r/z/c2, and the one each round starts in
// r/z/c2 too (`--server`, with --register, default TTL). Each round:
//   discovery: from the new server's BuildAndStart returning (its
//     "listening on" line; it then gets its xDS listener, registers, and
//     every client's agent composes and pushes the instance) to the first
//     call it answers (calls back to back, one in flight);
//   drain: SIGTERM (Mesh::Drain: DRAINING, the drain delay, shutdown) to
//     the start of the last call it answered; calls keep running until its
//     key is gone, and every failed call is counted.
// Prints "discovery N p50_ms p99_ms max_ms" and "drain N p50_ms p99_ms
// max_ms failed_calls calls".
//
// Registry mode: N simulated registrants (a lease each, TTL 10 s, renewed
// every TTL/3 as the agent's registrar does: one LeaseKeepAlive exchange)
// for S seconds, while a mesh client follows the prefix. Measures the
// keep-alives per second, etcd's CPU (--etcd_pid; the same S seconds with
// no registrant first, as the baseline), the client's agent's CPU, and the
// registrants' own CPU (their threads). Prints "registry N S
// keepalives_per_s etcd_cpu_pct etcd_idle_cpu_pct agent_cpu_pct
// registrants_cpu_pct" (CPU in percent of one core).
//
// Bounded: at most K rounds, each given 30 s; S at most 600.

#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "greeter.grpc.pb.h"
#include "mesh/config/config.h"
#include "mesh/identity/dev_ca.h"
#include "mesh/mesh.h"
#include "mesh/source/etcd_client.h"
#include "tests/child.h"
#include "tests/free_port.h"
#include "tests/temp_dir.h"

namespace {

using mesh::examples::Greeter;
using mesh::source::EtcdClient;

constexpr char kTd[] = "spiffe://example.org/ns/default/sa/";
constexpr char kInstances[] = "/mesh/instances/default/greeter/";

bool Flag(const char* arg, const char* name, std::string* out) {
  const size_t n = strlen(name);
  if (strncmp(arg, name, n) != 0) return false;
  *out = arg + n;
  return true;
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path) << data;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))];
}

// CPU time (user + system) of process `pid`, from /proc/PID/stat.
absl::Duration ProcessCpu(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string s((std::istreambuf_iterator<char>(in)),
                std::istreambuf_iterator<char>());
  const size_t close = s.rfind(')');
  if (close == std::string::npos) return absl::ZeroDuration();
  std::istringstream f(s.substr(close + 2));
  std::string field;
  int64_t utime = 0, stime = 0;
  // Fields after the name start at field 3 (state); utime is 14.
  for (int i = 3; i <= 15 && f >> field; ++i) {
    if (i == 14) absl::SimpleAtoi(field, &utime);
    if (i == 15) absl::SimpleAtoi(field, &stime);
  }
  return absl::Seconds(static_cast<double>(utime + stime) /
                       sysconf(_SC_CLK_TCK));
}

absl::Duration ThreadCpu() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return absl::DurationFromTimespec(ts);
}

// The instance value a registrant in `cluster` at `address` writes.
std::string InstanceValue(const std::string& address, int port,
                          const std::string& region, const std::string& zone,
                          const std::string& cluster) {
  mesh::config::EndpointSet set;
  set.service = "default/greeter";
  set.instance = true;
  set.identity = absl::StrCat(kTd, "greeter");
  set.started = "2026-12-07T00:00:00Z";
  mesh::config::Endpoint e;
  e.address = address;
  e.port = port;
  e.locality = {region, zone, cluster};
  set.endpoints.push_back(e);
  return mesh::config::EndpointSetToYaml(set);
}

// Simulated registrants: a lease and an instance key each, renewed every
// TTL/3 (one keep-alive exchange per lease, as the registrar does) by
// `threads` threads until destroyed.
class Registrants {
 public:
  Registrants(EtcdClient* etcd, int n, int ttl_s, int threads = 2)
      : etcd_(etcd), ttl_s_(ttl_s) {
    for (int i = 0; i < n; ++i) {
      absl::StatusOr<int64_t> lease = etcd_->Grant(ttl_s);
      if (!lease.ok()) {
        std::cerr << "grant: " << lease.status() << "\n";
        exit(1);
      }
      const std::string addr =
          absl::StrCat("127.1.", i / 250, ".", 1 + i % 250);
      absl::StatusOr<int64_t> put = etcd_->Put(
          absl::StrCat(kInstances, addr, ":9"),
          InstanceValue(addr, 9, "far", "far-z", absl::StrCat("far-c", i % 100)),
          *lease);
      if (!put.ok()) {
        std::cerr << "put: " << put.status() << "\n";
        exit(1);
      }
      leases_.push_back(*lease);
    }
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, t, threads] { Run(t, threads); });
    }
  }
  ~Registrants() {
    stop_ = true;
    for (std::thread& t : threads_) t.join();
  }
  int64_t keepalives() const { return keepalives_; }
  int64_t errors() const { return errors_; }
  absl::Duration cpu() const {
    return absl::Nanoseconds(cpu_ns_.load());
  }

 private:
  void Run(int t, int threads) {
    const absl::Duration period = absl::Seconds(ttl_s_) / 3;
    absl::Time next = absl::Now();
    while (!stop_) {
      const absl::Duration c0 = ThreadCpu();
      for (size_t i = t; i < leases_.size() && !stop_; i += threads) {
        (etcd_->KeepAliveOnce(leases_[i]).ok() ? keepalives_ : errors_)++;
      }
      cpu_ns_ += absl::ToInt64Nanoseconds(ThreadCpu() - c0);
      next += period;
      while (!stop_ && absl::Now() < next) {
        absl::SleepFor(absl::Milliseconds(50));  // The renewal period.
      }
    }
  }
  EtcdClient* const etcd_;
  const int ttl_s_;
  std::vector<int64_t> leases_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> keepalives_{0}, errors_{0}, cpu_ns_{0};
};

struct Setup {
  std::string dir;
  std::string config;
};

// Certificates (greeter, frontend) and the config file in `dir`.
Setup MakeSetup(const std::string& dir) {
  auto ca = mesh::identity::DevCa::Create("discovery bench CA");
  if (!ca.ok()) exit(1);
  WriteFile(dir + "/ca.pem", (*ca)->cert_pem());
  for (const char* sa : {"greeter", "frontend"}) {
    mesh::identity::LeafOptions o;
    o.uris = {absl::StrCat(kTd, sa)};
    auto pem = (*ca)->Issue(o);
    if (!pem.ok()) exit(1);
    WriteFile(dir + "/" + sa + ".pem", pem->cert);
    WriteFile(dir + "/" + sa + ".key", pem->key);
  }
  // The guard off: rounds remove instances back to back on purpose.
  WriteFile(dir + "/mesh.yaml",
            "apiVersion: mesh/v1\ntrustDomain: example.org\nservices:\n"
            "  - name: greeter\n    hostname: greeter.mesh.internal\n"
            "registration:\n  removalGuard: {maxVanishPercent: 100}\n");
  return {dir, dir + "/mesh.yaml"};
}

std::unique_ptr<mesh::Mesh> Client(const Setup& s, const std::string& etcd) {
  mesh::MeshOptions o;
  o.config_path = s.config;
  o.etcd.endpoints = {etcd};
  o.service_name = "frontend";
  o.locality = {"r", "z", "c1"};
  o.identity = {s.dir + "/frontend.pem", s.dir + "/frontend.key",
                {s.dir + "/ca.pem"}};
  auto m = mesh::Mesh::Create(o);
  if (!m.ok()) {
    std::cerr << m.status() << "\n";
    exit(1);
  }
  return *std::move(m);
}

int Registered(const mesh::MeshStatus& s) {
  for (const mesh::ServiceInstances& i : s.instances) {
    if (i.service == "default/greeter") return i.registered;
  }
  return 0;
}

std::unique_ptr<mesh::testing::Child> Server(const Setup& s,
                                             const std::string& bin,
                                             const std::string& etcd,
                                             const std::string& name,
                                             int port) {
  return std::make_unique<mesh::testing::Child>(
      std::vector<std::string>{
          bin, "--config=" + s.config, "--etcd=" + etcd, "--register",
          "--service=greeter", absl::StrCat("--listen=127.0.0.1:", port),
          "--name=" + name, "--locality=r/z/c2", "--cert=" + s.dir +
          "/greeter.pem", "--key=" + s.dir + "/greeter.key",
          "--bundle=" + s.dir + "/ca.pem"},
      /*capture=*/true);
}

// Failed calls, by status, for the log.
std::map<std::string, int> g_errors;

// One call: who answered ("" on failure, counted in g_errors).
std::string Call(Greeter::Stub* stub, bool wait = false) {
  grpc::ClientContext ctx;
  ctx.set_wait_for_ready(wait);
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::seconds(wait ? 20 : 5));
  mesh::examples::HelloRequest req;
  mesh::examples::HelloReply reply;
  const grpc::Status st = stub->SayHello(&ctx, req, &reply);
  if (st.ok()) return reply.instance();
  ++g_errors[absl::StrCat(st.error_code(), " ", st.error_message())];
  return "";
}

int Discovery(const std::string& etcd, const std::string& bin, int n,
              int changes) {
  mesh::testing::TempDir tmp("mesh-discovery");
  const Setup s = MakeSetup(tmp.path());
  auto ec = EtcdClient::Create({{etcd}});
  if (!ec.ok()) return 1;
  std::cerr << "registering " << n - 2 << " simulated instances...\n";
  Registrants sim(ec->get(), std::max(0, n - 2), 10);
  auto a = Server(s, bin, etcd, "a", mesh::testing::FreePort());
  auto m = Client(s, etcd);
  auto stub = Greeter::NewStub(m->CreateChannel("greeter.mesh.internal"));
  if (Call(stub.get(), true) != "a") {
    std::cerr << "instance a is not reached: " << a->output() << "\n";
    return 1;
  }
  m->WaitForStatus([&](const mesh::MeshStatus& st) {
    return Registered(st) == n - 1;
  }, absl::Seconds(30));
  std::vector<double> found, drained;
  int64_t calls = 0, failed = 0;
  for (int round = 0; round < changes; ++round) {
    const std::string name = absl::StrCat("new-", round);
    auto b = Server(s, bin, etcd, name, mesh::testing::FreePort());
    if (!b->ReadUntil("listening on", absl::Seconds(30))) {
      std::cerr << name << " did not start: " << b->output() << "\n";
      return 1;
    }
    const absl::Time started = absl::Now();
    const absl::Time end = started + absl::Seconds(30);
    bool reached = false;
    while (!reached && absl::Now() < end) {
      const std::string by = Call(stub.get());
      ++calls;
      if (by.empty()) ++failed;
      reached = by == name;
    }
    if (!reached) {
      std::cerr << name << " was never reached\n";
      return 1;
    }
    found.push_back(absl::ToDoubleMilliseconds(absl::Now() - started));
    // Drain it: calls until its instance is gone from the client.
    const std::string before = m->GetStatus().applied_version;
    const absl::Time term = absl::Now();
    kill(b->pid(), SIGTERM);
    absl::Time last = term;
    absl::Time applied = absl::InfiniteFuture();
    const absl::Time drain_end = term + absl::Seconds(30);
    while (absl::Now() < drain_end) {
      const absl::Time t = absl::Now();
      const std::string by = Call(stub.get());
      ++calls;
      if (by.empty()) ++failed;
      if (by == name) last = t;
      const mesh::MeshStatus st = m->GetStatus();
      if (applied == absl::InfiniteFuture() && st.applied_version != before) {
        applied = absl::Now();
      }
      if (Registered(st) == n - 1 && absl::Now() - term > absl::Seconds(1)) {
        break;
      }
    }
    drained.push_back(absl::ToDoubleMilliseconds(last - term));
    kill(b->pid(), SIGKILL);  // Its teardown is not measured here.
    int code;
    b->Finish(&code);
    std::cerr << "round " << round << ": reached after " << found.back()
              << " ms, last new call " << drained.back()
              << " ms after SIGTERM (the client's gRPC applied the next "
                 "version "
              << absl::ToDoubleMilliseconds(applied - term) << " ms after)\n";
  }
  for (const auto& [e, count] : g_errors) {
    std::cerr << "failed calls: " << count << " x " << e << "\n";
  }
  std::printf("discovery %d %.1f %.1f %.1f\n", n, Percentile(found, 0.5),
              Percentile(found, 0.99), Percentile(found, 1.0));
  std::printf("drain %d %.1f %.1f %.1f %lld %lld\n", n,
              Percentile(drained, 0.5), Percentile(drained, 0.99),
              Percentile(drained, 1.0), static_cast<long long>(failed),
              static_cast<long long>(calls));
  int code;
  a->Finish(&code, SIGKILL);
  return 0;
}

int Registry(const std::string& etcd, int n, int seconds, pid_t etcd_pid) {
  mesh::testing::TempDir tmp("mesh-registry");
  const Setup s = MakeSetup(tmp.path());
  auto ec = EtcdClient::Create({{etcd}});
  if (!ec.ok()) return 1;
  auto m = Client(s, etcd);
  const pid_t agent = m->GetStatus().control_plane_pid;
  const absl::Duration window = absl::Seconds(seconds);
  // Baseline: etcd and the agent with no registrant.
  absl::Duration e0 = etcd_pid > 0 ? ProcessCpu(etcd_pid) : absl::ZeroDuration();
  absl::SleepFor(window);  // The measurement window itself.
  const absl::Duration idle =
      etcd_pid > 0 ? ProcessCpu(etcd_pid) - e0 : absl::ZeroDuration();
  std::cerr << "registering " << n << " simulated instances...\n";
  Registrants sim(ec->get(), n, 10);
  m->WaitForStatus([&](const mesh::MeshStatus& st) {
    return Registered(st) == n;
  }, absl::Seconds(60));
  const int64_t k0 = sim.keepalives();
  const absl::Duration r0 = sim.cpu();
  e0 = etcd_pid > 0 ? ProcessCpu(etcd_pid) : absl::ZeroDuration();
  const absl::Duration a0 = ProcessCpu(agent);
  absl::SleepFor(window);  // The measurement window itself.
  const double pct = 100.0 / absl::ToDoubleSeconds(window);
  const double busy =
      etcd_pid > 0 ? absl::ToDoubleSeconds(ProcessCpu(etcd_pid) - e0) * pct
                   : -1;
  std::printf("registry %d %d %.1f %.2f %.2f %.2f %.2f\n", n, seconds,
              (sim.keepalives() - k0) / absl::ToDoubleSeconds(window), busy,
              etcd_pid > 0 ? absl::ToDoubleSeconds(idle) * pct : -1,
              absl::ToDoubleSeconds(ProcessCpu(agent) - a0) * pct,
              absl::ToDoubleSeconds(sim.cpu() - r0) * pct);
  if (sim.errors() > 0) {
    std::cerr << sim.errors() << " keep-alives failed\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string etcd, server, n_s = "10", changes_s = "20", seconds_s = "30",
                              pid_s = "0", registry;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--registry") {
      registry = "1";
      continue;
    }
    if (!Flag(argv[i], "--etcd=", &etcd) &&
        !Flag(argv[i], "--server=", &server) &&
        !Flag(argv[i], "--instances=", &n_s) &&
        !Flag(argv[i], "--changes=", &changes_s) &&
        !Flag(argv[i], "--seconds=", &seconds_s) &&
        !Flag(argv[i], "--etcd_pid=", &pid_s)) {
      std::cerr << "unknown flag " << argv[i] << "\n";
      return 2;
    }
  }
  int n = 0, changes = 0, seconds = 0, pid = 0;
  if (etcd.empty() || !absl::SimpleAtoi(n_s, &n) || n < 2 ||
      !absl::SimpleAtoi(changes_s, &changes) || changes < 1 ||
      !absl::SimpleAtoi(seconds_s, &seconds) || seconds < 1 ||
      seconds > 600 || !absl::SimpleAtoi(pid_s, &pid) ||
      (registry.empty() && server.empty())) {
    std::cerr << "usage: discovery --etcd=HOST:PORT --server=PATH "
                 "[--instances=N>=2] [--changes=K]\n"
                 "       discovery --etcd=HOST:PORT --registry "
                 "--instances=N [--seconds=S<=600] [--etcd_pid=PID]\n";
    return 2;
  }
  return registry.empty() ? Discovery(etcd, server, n, changes)
                          : Registry(etcd, n, seconds, pid);
}
