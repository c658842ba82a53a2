// loadgen: the benchmark suite's load generator (docs/benchmarks.md).
// Greeter.SayHello calls with a payload, to a plain target or a mesh
// hostname, closed loop (N calls in flight) or open loop (a fixed rate),
// bounded by a call count and a duration (whichever comes first).
//
//   loadgen --target=127.0.0.1:8080 [--authority=NAME]
//   loadgen --mesh_config=mesh.yaml --mesh_host=greeter.mesh.internal
//           [--locality=R/Z/C] (--cert=F --key=F --bundle=F | --plaintext)
//   common: [--inflight=1 | --rate=QPS] [--calls=20000] [--duration_s=60]
//           [--payload=1024] [--warmup=500] [--deadline_ms=10000]
//
// Prints one line of key=value: calls ok failed dropped qps p50_us p90_us
// p99_us p999_us (from a log histogram, 1 % resolution) cpu_us_per_call
// (this process) agent_cpu_us_per_call (its mesh agent; 0 without) rss_kb
// (peak). Open-loop latency counts from when a call was due, not when it
// was sent, so a stalled client shows up in the tail; calls that would
// exceed 10,000 outstanding are dropped and counted.

#include <sys/resource.h>

#include <atomic>
#include <cmath>
#include <iostream>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "closed_loop.h"
#include "examples/greeter/security_flags.h"
#include "mesh/mesh.h"

namespace {

using mesh::bench::Clock;
using mesh::examples::Greeter;
using mesh::examples::HelloReply;
using mesh::examples::HelloRequest;

// Latencies in log buckets 1 % wide, from 1 µs to ~100 s.
class Histogram {
 public:
  Histogram() : counts_(kBuckets, 0) {}
  void Add(double us) {
    const int b = us <= 1 ? 0
                          : std::min<int>(kBuckets - 1,
                                          static_cast<int>(std::log(us) /
                                                           std::log(kBase)));
    ++counts_[b];
    ++total_;
  }
  // The upper edge of the bucket holding the p-th percentile.
  double Percentile(double p) const {
    if (total_ == 0) return 0;
    const uint64_t rank =
        static_cast<uint64_t>(std::ceil(p / 100.0 * total_));
    uint64_t seen = 0;
    for (int b = 0; b < kBuckets; ++b) {
      seen += counts_[b];
      if (seen >= rank) return std::pow(kBase, b + 1);
    }
    return std::pow(kBase, kBuckets);
  }

 private:
  static constexpr double kBase = 1.01;
  static constexpr int kBuckets = 1860;  // 1.01^1860 ≈ 1e8 µs.
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
};

struct Call {
  grpc::ClientContext ctx;
  HelloReply reply;
  grpc::Status status;
  Clock::time_point due;
  std::unique_ptr<grpc::ClientAsyncResponseReader<HelloReply>> rpc;
};

struct Options {
  int calls = 20000, inflight = 1, payload = 1024, warmup = 500;
  double rate = 0, duration_s = 60;
  int deadline_ms = 10000;
};

struct Outcome {
  Histogram hist;
  uint64_t ok = 0, failed = 0, dropped = 0;
  double wall_s = 0;
};

// Runs `o.calls` calls (or until `o.duration_s`), closed or open loop.
Outcome Drive(Greeter::Stub* stub, const Options& o, int calls) {
  grpc::CompletionQueue cq;
  HelloRequest req;
  req.set_name("bench");
  req.set_payload(std::string(o.payload, 'x'));
  Outcome out;
  std::atomic<int> outstanding{0};
  std::atomic<int> started{0};
  const auto t0 = Clock::now();
  const auto end = t0 + std::chrono::microseconds(
                            static_cast<int64_t>(o.duration_s * 1e6));
  auto start_one = [&](Clock::time_point due) {
    auto* c = new Call;
    c->ctx.set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(o.deadline_ms));
    c->due = due;
    c->rpc = stub->AsyncSayHello(&c->ctx, req, &cq);
    c->rpc->Finish(&c->reply, &c->status, c);
    outstanding.fetch_add(1);
    started.fetch_add(1);
  };
  std::thread pacer;
  std::atomic<bool> pacer_done{o.rate <= 0};
  std::atomic<uint64_t> dropped{0};
  if (o.rate > 0) {
    // Open loop: calls fall due every 1/rate seconds.
    pacer = std::thread([&] {
      const auto period = std::chrono::duration<double>(1.0 / o.rate);
      for (int i = 0; i < calls; ++i) {
        const auto due =
            t0 + std::chrono::duration_cast<Clock::duration>(period * i);
        if (due > end) break;
        std::this_thread::sleep_until(due);
        if (outstanding.load() >= 10000) {
          dropped.fetch_add(1);
          continue;
        }
        start_one(due);
      }
      pacer_done = true;
    });
  } else {
    for (int i = 0; i < o.inflight && i < calls; ++i) {
      start_one(Clock::now());
    }
  }
  void* tag;
  bool ok;
  // Until nothing more will start and nothing is outstanding.
  while (!(pacer_done.load() && outstanding.load() == 0)) {
    if (cq.AsyncNext(&tag, &ok, std::chrono::system_clock::now() +
                                    std::chrono::milliseconds(50)) !=
        grpc::CompletionQueue::GOT_EVENT) {
      continue;
    }
    auto* c = static_cast<Call*>(tag);
    if (c->status.ok()) {
      ++out.ok;
      out.hist.Add(std::chrono::duration<double, std::micro>(Clock::now() -
                                                             c->due)
                       .count());
    } else {
      ++out.failed;
    }
    delete c;
    if (o.rate <= 0 && started.load() < calls && Clock::now() < end) {
      start_one(Clock::now());  // Before the decrement: never seen at 0.
    }
    outstanding.fetch_sub(1);
  }
  if (pacer.joinable()) pacer.join();
  out.dropped = dropped.load();
  out.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return out;
}

bool Flag(absl::string_view arg, absl::string_view name, std::string* out) {
  if (!absl::ConsumePrefix(&arg, name)) return false;
  *out = std::string(arg);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string target, authority, mesh_config, mesh_host, locality;
  std::string calls_s, inflight_s, rate_s, duration_s, payload_s, warmup_s,
      deadline_s;
  mesh::MeshOptions mo;
  for (int i = 1; i < argc; ++i) {
    if (mesh::examples::SecurityFlag(argv[i], &mo)) continue;
    if (!Flag(argv[i], "--target=", &target) &&
        !Flag(argv[i], "--authority=", &authority) &&
        !Flag(argv[i], "--mesh_config=", &mesh_config) &&
        !Flag(argv[i], "--mesh_host=", &mesh_host) &&
        !Flag(argv[i], "--locality=", &locality) &&
        !Flag(argv[i], "--calls=", &calls_s) &&
        !Flag(argv[i], "--inflight=", &inflight_s) &&
        !Flag(argv[i], "--rate=", &rate_s) &&
        !Flag(argv[i], "--duration_s=", &duration_s) &&
        !Flag(argv[i], "--payload=", &payload_s) &&
        !Flag(argv[i], "--warmup=", &warmup_s) &&
        !Flag(argv[i], "--deadline_ms=", &deadline_s)) {
      std::cerr << "loadgen: unknown flag " << argv[i] << "\n";
      return 2;
    }
  }
  Options o;
  bool ok = true;
  auto num = [&](const std::string& s, auto* v, double min) {
    if (s.empty()) return;
    double d = 0;
    if (!absl::SimpleAtod(s, &d) || d < min) {
      ok = false;
      return;
    }
    *v = static_cast<std::remove_pointer_t<decltype(v)>>(d);
  };
  num(calls_s, &o.calls, 1);
  num(inflight_s, &o.inflight, 1);
  num(rate_s, &o.rate, 0);
  num(duration_s, &o.duration_s, 0.001);
  num(payload_s, &o.payload, 0);
  num(warmup_s, &o.warmup, 0);
  num(deadline_s, &o.deadline_ms, 1);
  if (!ok || target.empty() == (mesh_config.empty() || mesh_host.empty())) {
    std::cerr << "usage: loadgen (--target=HOST:PORT [--authority=NAME] | "
                 "--mesh_config=FILE --mesh_host=HOSTNAME [--locality=R/Z/C] "
              << mesh::examples::kSecurityUsage
              << ") [--inflight=N | --rate=QPS] [--calls=N] "
                 "[--duration_s=S] [--payload=BYTES] [--warmup=N] "
                 "[--deadline_ms=N]\n";
    return 2;
  }
  std::unique_ptr<mesh::Mesh> m;
  std::shared_ptr<grpc::Channel> channel;
  if (!target.empty()) {
    grpc::ChannelArguments args;
    if (!authority.empty()) {
      args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, authority);
    }
    channel = grpc::CreateCustomChannel(
        target, grpc::InsecureChannelCredentials(), args);
  } else {
    std::vector<std::string> loc = absl::StrSplit(locality, '/');
    loc.resize(3);
    mo.config_path = mesh_config;
    mo.service_name = "loadgen";
    mo.locality = {loc[0], loc[1], loc[2]};
    auto created = mesh::Mesh::Create(mo);
    if (!created.ok()) {
      std::cerr << "loadgen: " << created.status() << "\n";
      return 1;
    }
    m = std::move(*created);
    channel = m->CreateChannel(mesh_host);
  }
  auto stub = Greeter::NewStub(channel);
  // Warm-up: connect (waiting for it) and run the first calls unmeasured.
  {
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(20));
    HelloReply reply;
    const grpc::Status st = stub->SayHello(&ctx, HelloRequest(), &reply);
    if (!st.ok()) {
      std::cerr << "loadgen: first call failed: " << st.error_message()
                << "\n";
      return 1;
    }
  }
  if (o.warmup > 0) {
    Options w = o;
    w.rate = 0;
    Drive(stub.get(), w, o.warmup);
  }
  const int64_t agent = m ? m->GetStatus().control_plane_pid : -1;
  const double agent0 = agent > 0 ? mesh::bench::ProcessCpuSeconds(agent) : 0;
  const double cpu0 = mesh::bench::CpuSeconds();
  const Outcome r = Drive(stub.get(), o, o.calls);
  const double cpu = mesh::bench::CpuSeconds() - cpu0;
  const double agent_cpu =
      agent > 0 ? mesh::bench::ProcessCpuSeconds(agent) - agent0 : 0;
  const uint64_t done = std::max<uint64_t>(1, r.ok + r.failed);
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  std::cout << "calls=" << r.ok + r.failed << " ok=" << r.ok
            << " failed=" << r.failed << " dropped=" << r.dropped
            << " qps=" << (r.ok + r.failed) / r.wall_s
            << " p50_us=" << r.hist.Percentile(50)
            << " p90_us=" << r.hist.Percentile(90)
            << " p99_us=" << r.hist.Percentile(99)
            << " p999_us=" << r.hist.Percentile(99.9)
            << " cpu_us_per_call=" << cpu * 1e6 / done
            << " agent_cpu_us_per_call=" << agent_cpu * 1e6 / done
            << " rss_kb=" << u.ru_maxrss << std::endl;
  return r.failed == 0 && r.dropped == 0 ? 0 : 1;
}
