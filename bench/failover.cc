// failover: how fast the mesh moves calls to the next locality when the
// local instance fails, and back when it returns (docs/benchmarks.md,
// scenario F). Two bench_server processes (local: cluster-1, the client's;
// next: cluster-2, same region), a mesh client calling at a fixed rate
// (open loop), then one failure:
//   refused  the local server shuts down (SIGTERM): its port is closed;
//   killed   the local server is killed (SIGKILL) mid-traffic;
//   hung     the local server is frozen (SIGSTOP): port open, no answers.
// and recovery (restart on the same port, or SIGCONT).
//
//   failover --server=bazel-bin/bench/bench_server --kind=killed
//       [--rate=1000] [--deadline_ms=1000] [--phase_s=4] [--recover_s=10]
//       [--outlier='{interval: 500ms, baseEjectionTime: 2s}']
//
// --outlier is the service's `outlierDetection` (docs/config.md), as YAML
// flow mapping; without it the built-in defaults apply.
//
// Prints: kind failover_ms failed failed_codes failback_ms failback_failed.
// failover_ms: from the failure until the start of the first 50 ms window
// (by send time) from which on every window has >= 99 % of its calls served
// by the next locality; failback_ms likewise back to the local one.
// -1 = not within the phase. Bounded: steady and failed phases of
// --phase_s, a recovery phase of --recover_s, at --rate.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "examples/greeter/greeter.grpc.pb.h"
#include "mesh/mesh.h"

namespace {

using Clock = std::chrono::steady_clock;

// A bench_server child on a fixed port.
struct Server {
  std::string bin;
  int port = 0;
  pid_t pid = -1;
  bool Start() {
    int out[2];
    if (pipe(out) != 0) return false;
    pid = fork();
    if (pid == 0) {
      dup2(out[1], 1);
      const std::string flag = absl::StrCat("--port=", port);
      execl(bin.c_str(), bin.c_str(), flag.c_str(), nullptr);
      _exit(127);
    }
    close(out[1]);
    char buf[64] = {0};
    const ssize_t n = read(out[0], buf, sizeof(buf) - 1);  // Its port.
    close(out[0]);
    return n > 0 && absl::SimpleAtoi(absl::StripAsciiWhitespace(buf), &port);
  }
  void Signal(int sig) {
    if (pid > 0) kill(pid, sig);
  }
  void Reap() {
    if (pid > 0) waitpid(pid, nullptr, 0);
    pid = -1;
  }
  ~Server() {
    if (pid > 0) {
      kill(pid, SIGCONT);
      kill(pid, SIGKILL);
      Reap();
    }
  }
};

struct Record {
  Clock::time_point sent;
  int port = 0;  // Who served it; 0 = failed.
  grpc::StatusCode code = grpc::StatusCode::OK;
};

// Start of the first 50 ms window (by send time, from `from`, before
// `until`) from which every window has >= 99 % of its calls on `port`; -1 if
// none.
double SettledMs(const std::vector<Record>& calls, Clock::time_point from,
                 Clock::time_point until, int port) {
  const auto window = std::chrono::milliseconds(50);
  std::map<int64_t, std::pair<int, int>> windows;  // index -> (on port, all)
  for (const Record& r : calls) {
    if (r.sent < from || r.sent >= until) continue;
    auto& w = windows[(r.sent - from) / window];
    ++w.second;
    if (r.port == port) ++w.first;
  }
  int64_t settled = -1;
  for (auto it = windows.rbegin(); it != windows.rend(); ++it) {
    if (it->second.first < 0.99 * it->second.second) break;
    settled = it->first;
  }
  if (settled < 0) return -1;
  return settled * 50.0;
}

bool Flag(absl::string_view arg, absl::string_view name, std::string* out) {
  if (!absl::ConsumePrefix(&arg, name)) return false;
  *out = std::string(arg);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server_bin, kind, rate_s = "1000", deadline_s = "1000",
                                phase_s = "4", recover_s = "10", outlier;
  for (int i = 1; i < argc; ++i) {
    if (!Flag(argv[i], "--server=", &server_bin) &&
        !Flag(argv[i], "--kind=", &kind) &&
        !Flag(argv[i], "--rate=", &rate_s) &&
        !Flag(argv[i], "--deadline_ms=", &deadline_s) &&
        !Flag(argv[i], "--phase_s=", &phase_s) &&
        !Flag(argv[i], "--recover_s=", &recover_s) &&
        !Flag(argv[i], "--outlier=", &outlier)) {
      std::cerr << "failover: unknown flag " << argv[i] << "\n";
      return 2;
    }
  }
  double rate = 0, phase = 0, recover = 0;
  int deadline_ms = 0;
  if (server_bin.empty() ||
      (kind != "refused" && kind != "killed" && kind != "hung") ||
      !absl::SimpleAtod(rate_s, &rate) || rate <= 0 || rate > 20000 ||
      !absl::SimpleAtod(phase_s, &phase) || phase <= 0 || phase > 60 ||
      !absl::SimpleAtod(recover_s, &recover) || recover <= 0 ||
      recover > 60 ||
      !absl::SimpleAtoi(deadline_s, &deadline_ms) || deadline_ms <= 0) {
    std::cerr << "usage: failover --server=BENCH_SERVER "
                 "--kind=refused|killed|hung [--rate=QPS] "
                 "[--deadline_ms=N] [--phase_s=S] [--recover_s=S]\n";
    return 2;
  }
  Server local{server_bin}, next{server_bin};
  if (!local.Start() || !next.Start()) {
    std::cerr << "failover: cannot start " << server_bin << "\n";
    return 1;
  }
  char dir_template[] = "/tmp/mesh-failover-XXXXXX";
  const std::string dir = mkdtemp(dir_template);
  const std::string config = dir + "/mesh.yaml";
  std::ofstream(config) << absl::StrCat(
      "apiVersion: mesh/v1\ntrustDomain: bench.local\nservices:\n"
      "  - name: bench\n    hostname: bench.mesh.internal\n",
      outlier.empty() ? "" : absl::StrCat("    outlierDetection: ", outlier,
                                          "\n"),
      "    endpoints:\n"
      "      - {address: 127.0.0.1, port: ", local.port,
      ", locality: {region: r1, zone: z1, cluster: c1}}\n"
      "      - {address: 127.0.0.1, port: ", next.port,
      ", locality: {region: r1, zone: z2, cluster: c2}}\n");
  int rc = 0;
  {
    mesh::MeshOptions o;
    o.config_path = config;
    o.service_name = "failover-bench";
    o.locality = {"r1", "z1", "c1"};
    o.plaintext = true;
    auto m = mesh::Mesh::Create(o);
    if (!m.ok()) {
      std::cerr << "failover: " << m.status() << "\n";
      return 1;
    }
    auto stub = mesh::examples::Greeter::NewStub(
        (*m)->CreateChannel("bench.mesh.internal"));
    {
      grpc::ClientContext ctx;
      ctx.set_wait_for_ready(true);
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(20));
      mesh::examples::HelloReply reply;
      if (!stub->SayHello(&ctx, mesh::examples::HelloRequest(), &reply).ok()) {
        std::cerr << "failover: the first call failed\n";
        return 1;
      }
    }

    // Open loop for three phases: steady, failed, recovered.
    struct Call {
      grpc::ClientContext ctx;
      mesh::examples::HelloReply reply;
      grpc::Status status;
      Clock::time_point sent;
      std::unique_ptr<grpc::ClientAsyncResponseReader<
          mesh::examples::HelloReply>>
          rpc;
    };
    grpc::CompletionQueue cq;
    mesh::examples::HelloRequest req;
    req.set_payload(std::string(1024, 'x'));
    std::vector<Record> records;
    std::atomic<bool> sending{true};
    std::atomic<int> outstanding{0};
    const auto t0 = Clock::now();
    const auto phase_d = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(phase));
    const auto t_fail = t0 + phase_d, t_recover = t0 + 2 * phase_d,
               t_end = t_recover +
                       std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(recover));
    std::thread pacer([&] {
      const auto period = std::chrono::duration<double>(1.0 / rate);
      for (int64_t i = 0;; ++i) {
        const auto due =
            t0 + std::chrono::duration_cast<Clock::duration>(period * i);
        if (due >= t_end) break;
        std::this_thread::sleep_until(due);
        auto* c = new Call;
        c->ctx.set_deadline(std::chrono::system_clock::now() +
                            std::chrono::milliseconds(deadline_ms));
        c->sent = due;
        outstanding.fetch_add(1);
        c->rpc = stub->AsyncSayHello(&c->ctx, req, &cq);
        c->rpc->Finish(&c->reply, &c->status, c);
      }
      sending = false;
    });
    std::thread events([&] {
      std::this_thread::sleep_until(t_fail);
      if (kind == "refused") {
        local.Signal(SIGTERM);
        local.Reap();
      } else if (kind == "killed") {
        local.Signal(SIGKILL);
        local.Reap();
      } else {
        local.Signal(SIGSTOP);
      }
      std::this_thread::sleep_until(t_recover);
      if (kind == "hung") {
        local.Signal(SIGCONT);
      } else if (!local.Start()) {
        std::cerr << "failover: cannot restart the local server\n";
      }
    });
    void* tag;
    bool ok;
    while (sending.load() || outstanding.load() > 0) {
      if (cq.AsyncNext(&tag, &ok, std::chrono::system_clock::now() +
                                      std::chrono::milliseconds(50)) !=
          grpc::CompletionQueue::GOT_EVENT) {
        continue;
      }
      auto* c = static_cast<Call*>(tag);
      Record r;
      r.sent = c->sent;
      r.code = c->status.error_code();
      if (c->status.ok()) {
        const std::string peer = c->ctx.peer();
        absl::SimpleAtoi(peer.substr(peer.rfind(':') + 1), &r.port);
      }
      records.push_back(r);
      delete c;
      outstanding.fetch_sub(1);
    }
    pacer.join();
    events.join();
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }

    std::map<std::string, int> failed_codes;
    int failed = 0, failback_failed = 0, steady_failed = 0;
    for (const Record& r : records) {
      if (r.code == grpc::StatusCode::OK) continue;
      if (r.sent < t_fail) {
        ++steady_failed;
      } else if (r.sent < t_recover) {
        ++failed;
        ++failed_codes[std::to_string(static_cast<int>(r.code))];
      } else {
        ++failback_failed;
      }
    }
    const double failover_ms =
        SettledMs(records, t_fail, t_recover, next.port);
    const double failback_ms =
        SettledMs(records, t_recover, t_end, local.port);
    if (getenv("FAILOVER_TRACE") != nullptr) {  // Calls per 250 ms by port.
      std::map<int64_t, std::map<int, int>> trace;
      for (const Record& r : records) {
        ++trace[(r.sent - t0) / std::chrono::milliseconds(250)][r.port];
      }
      for (const auto& [w, ports] : trace) {
        std::cerr << w * 250 << " ms:";
        for (const auto& [p, n] : ports) std::cerr << " " << p << "=" << n;
        std::cerr << "\n";
      }
    }
    std::string codes;
    for (const auto& [code, n] : failed_codes) {
      absl::StrAppend(&codes, codes.empty() ? "" : ",", code, ":", n);
    }
    std::cout << "kind=" << kind << " calls=" << records.size()
              << " failover_ms=" << failover_ms << " failed=" << failed
              << " failed_codes=" << (codes.empty() ? "-" : codes)
              << " failback_ms=" << failback_ms
              << " failback_failed=" << failback_failed
              << " steady_failed=" << steady_failed << std::endl;
    if (failover_ms < 0 || failback_ms < 0) rc = 1;
  }
  unlink(config.c_str());
  rmdir(dir.c_str());
  return rc;
}
