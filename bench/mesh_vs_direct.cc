// mesh_vs_direct: the cost of the mesh on the data path. Calls one server
// through a direct channel and through a mesh channel, in interleaved rounds,
// and reports per-call client CPU and latency percentiles as ratios to direct
// from the same round. Also reports the CPU the mesh agent (the control
// plane process) used meanwhile.
//
//   mesh_vs_direct --port=PORT [--rounds=5] [--calls=20000] [--payload=1024]
//   mesh_vs_direct --port=PORT --only=direct|mesh --calls=N [--inflight=K]
//       [--inproc_server]
//       runs one variant once (for instruction counts under callgrind:
//       bench/instructions_per_call.sh). --inproc_server also runs an idle
//       sync gRPC server inside this process, as a naive embedded control
//       plane would: the hosting mesh avoids (docs/architecture.md).
//
// Run by bench/mesh_vs_direct.sh, which starts bench_server.

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "greeter.grpc.pb.h"
#include "closed_loop.h"
#include "mesh/mesh.h"

namespace {

using mesh::examples::Greeter;
using mesh::examples::HelloReply;
using mesh::examples::HelloRequest;
using mesh::bench::CpuSeconds;
using mesh::bench::Median;
using mesh::bench::ProcessCpuSeconds;
using mesh::bench::Result;
using mesh::bench::Run;

bool Flag(absl::string_view arg, absl::string_view name, int* out) {
  return absl::ConsumePrefix(&arg, name) && absl::SimpleAtoi(arg, out);
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0, rounds = 5, calls = 20000, payload = 1024, inflight_only = 1;
  std::string only;
  bool inproc_server = false;
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (a == "--inproc_server") {
      inproc_server = true;
      continue;
    }
    if (absl::ConsumePrefix(&a, "--only=")) {
      only = std::string(a);
      continue;
    }
    if (!Flag(argv[i], "--port=", &port) &&
        !Flag(argv[i], "--inflight=", &inflight_only) &&
        !Flag(argv[i], "--rounds=", &rounds) &&
        !Flag(argv[i], "--calls=", &calls) &&
        !Flag(argv[i], "--payload=", &payload)) {
      std::cerr << "usage: mesh_vs_direct --port=PORT [--rounds=N] "
                   "[--calls=N] [--payload=BYTES]\n";
      return 2;
    }
  }
  if (port <= 0 || rounds <= 0 || calls <= 0 || payload < 0) {
    std::cerr << "mesh_vs_direct: --port is required; counts must be > 0\n";
    return 2;
  }
  char dir[] = "/tmp/mesh-bench-XXXXXX";
  if (mkdtemp(dir) == nullptr) return 1;
  const std::string config = std::string(dir) + "/mesh.yaml";
  std::ofstream(config) << "apiVersion: mesh/v1\ntrustDomain: bench.local\n"
                           "services:\n  - name: greeter\n"
                           "    hostname: greeter.mesh.internal\n"
                           "    endpoints:\n      - {address: 127.0.0.1, "
                           "port: "
                        << port
                        << ", locality: {region: r, zone: z, cluster: c}}\n";
  auto m = mesh::Mesh::Create({.config_path = config,
                               .service_name = "bench",
                               .locality = {"r", "z", "c"},
        .plaintext = true});
  if (!m.ok()) {
    std::cerr << m.status() << "\n";
    return 1;
  }
  const int64_t agent_pid = (*m)->GetStatus().control_plane_pid;
  // An idle in-process server (sync API), for the comparison only.
  mesh::examples::Greeter::Service idle_service;
  std::unique_ptr<grpc::Server> idle_server;
  if (inproc_server) {
    grpc::ServerBuilder b;
    b.AddListeningPort(absl::StrCat("unix:", dir, "/idle.sock"),
                       grpc::InsecureServerCredentials());
    b.RegisterService(&idle_service);
    idle_server = b.BuildAndStart();
  }
  std::map<std::string, std::unique_ptr<Greeter::Stub>> stubs;
  stubs["direct"] = Greeter::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  stubs["mesh"] =
      Greeter::NewStub((*m)->CreateChannel("greeter.mesh.internal"));
  // The same with the optional call metrics (the interceptor: status codes
  // and latency histograms), to show their cost.
  grpc::ChannelArguments with_metrics;
  with_metrics.SetInt(mesh::Mesh::kCallMetricsArg, 1);
  stubs["mesh+call-metrics"] = Greeter::NewStub(
      (*m)->CreateChannel("greeter.mesh.internal", with_metrics));
  for (auto& [name, stub] : stubs) {
    if (!only.empty() && name != only) continue;
    Result w = Run(stub.get(), 2000, 4, payload);  // Warm up, connect.
    if (w.failed) {
      std::cerr << name << ": warm-up calls failed\n";
      return 1;
    }
  }
  if (!only.empty()) {
    if (!stubs.count(only)) {
      std::cerr << "--only must be direct, mesh or mesh+call-metrics\n";
      return 2;
    }
    Result r = Run(stubs[only].get(), calls, inflight_only, payload);
    std::cout << absl::StrFormat(
        "%s%s calls=%d inflight=%d failed=%d cpu_us_per_call=%.2f "
        "p50_us=%.1f p99_us=%.1f qps=%.0f\n",
        only, inproc_server ? "+inproc_server" : "", calls, inflight_only,
        r.failed, r.cpu_us_per_call, r.p50_us, r.p99_us, r.qps);
    if (idle_server) idle_server->Shutdown();
    stubs.clear();
    m->reset();
    std::remove(config.c_str());
    rmdir(dir);
    return r.failed == 0 ? 0 : 1;
  }
  std::cout << absl::StrFormat(
      "# mesh vs direct: %d rounds x %d calls, %d-byte payload, "
      "variants interleaved (order alternates per round)\n",
      rounds, calls, payload);
  std::cout << "| in flight | variant | CPU us/call | p50 us | p99 us | "
               "QPS | CPU ratio | p50 ratio | p99 ratio |\n"
               "|---|---|---|---|---|---|---|---|---|\n";
  int total_failed = 0;
  const std::vector<std::string> variants = {"direct", "mesh",
                                             "mesh+call-metrics"};
  for (int inflight : {1, 16}) {
    std::map<std::string, std::vector<Result>> res;
    // Per variant, per round: the variant's figure / direct's.
    std::map<std::string, std::vector<double>> cpu_ratio, p50_ratio, p99_ratio;
    double agent_cpu = 0;
    for (int r = 0; r < rounds; ++r) {
      std::vector<std::string> order = variants;
      if (r % 2) std::reverse(order.begin(), order.end());
      for (const std::string& v : order) {
        const double a0 = ProcessCpuSeconds(agent_pid);
        res[v].push_back(Run(stubs[v].get(), calls, inflight, payload));
        agent_cpu += ProcessCpuSeconds(agent_pid) - a0;
        total_failed += res[v].back().failed;
      }
      const Result& d = res["direct"].back();
      for (const std::string& v : variants) {
        const Result& x = res[v].back();
        cpu_ratio[v].push_back(x.cpu_us_per_call / d.cpu_us_per_call);
        p50_ratio[v].push_back(x.p50_us / d.p50_us);
        p99_ratio[v].push_back(x.p99_us / d.p99_us);
      }
    }
    for (const std::string& v : variants) {
      std::vector<double> cpu, p50, p99, qps;
      for (const Result& x : res[v]) {
        cpu.push_back(x.cpu_us_per_call);
        p50.push_back(x.p50_us);
        p99.push_back(x.p99_us);
        qps.push_back(x.qps);
      }
      const bool is_direct = v == "direct";
      auto range = [](std::vector<double> x) {
        std::sort(x.begin(), x.end());
        return absl::StrFormat("%.2f (%.2f-%.2f)", x[x.size() / 2], x.front(),
                               x.back());
      };
      std::cout << absl::StrFormat(
          "| %d | %s | %.1f | %.0f | %.0f | %.0f | %s | %s | %s |\n",
          inflight, v, Median(cpu), Median(p50), Median(p99), Median(qps),
          is_direct ? "1" : range(cpu_ratio[v]),
          is_direct ? "1" : range(p50_ratio[v]),
          is_direct ? "1" : range(p99_ratio[v]));
    }
    std::cout << absl::StrFormat(
        "| %d | mesh agent (control plane) | %.3f CPU us per mesh call | | "
        "| | | | |\n",
        inflight, agent_cpu * 1e6 / (rounds * calls * 3));
  }
  std::cout << "\nratios: median of per-round variant/direct (min-max); "
               "failed calls: "
            << total_failed << "\n";
  stubs.clear();
  m->reset();  // Stop the agent before its config goes away.
  std::remove(config.c_str());
  rmdir(dir);
  return total_failed == 0 ? 0 : 1;
}
