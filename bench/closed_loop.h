// File: bench/closed_loop.h
//
// The measuring core shared by the benchmarks: a closed-loop driver of
// Greeter.SayHello calls with per-call latency, client CPU per call, and
// the CPU of other processes (server, agent) from /proc.

#ifndef MESH_BENCH_CLOSED_LOOP_H_
#define MESH_BENCH_CLOSED_LOOP_H_

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "greeter.grpc.pb.h"

namespace mesh {
namespace bench {

using examples::Greeter;
using examples::HelloReply;
using examples::HelloRequest;
using Clock = std::chrono::steady_clock;

inline double CpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec +
         (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// utime + stime of another process, in seconds (0 if unreadable).
inline double ProcessCpuSeconds(int64_t pid) {
  std::ifstream f(absl::StrCat("/proc/", pid, "/stat"));
  std::string s((std::istreambuf_iterator<char>(f)),
                std::istreambuf_iterator<char>());
  const size_t close = s.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream in(s.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);
  }
  return ticks / sysconf(_SC_CLK_TCK);
}

struct Result {
  double cpu_us_per_call = 0;
  double p50_us = 0, p99_us = 0;
  double qps = 0;
  int failed = 0;
};

// Closed loop: `inflight` calls outstanding until `calls` are done, driven
// by one thread on one completion queue.
inline Result Run(Greeter::Stub* stub, int calls, int inflight, int payload) {
  struct Call {
    grpc::ClientContext ctx;
    HelloReply reply;
    grpc::Status status;
    Clock::time_point start;
    std::unique_ptr<grpc::ClientAsyncResponseReader<HelloReply>> rpc;
  };
  grpc::CompletionQueue cq;
  HelloRequest req;
  req.set_name("bench");
  req.set_payload(std::string(payload, 'x'));
  std::vector<double> lat;
  lat.reserve(calls);
  int started = 0, failed = 0;
  auto start_one = [&]() {
    auto* c = new Call;
    c->ctx.set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(10));
    c->start = Clock::now();
    c->rpc = stub->AsyncSayHello(&c->ctx, req, &cq);
    c->rpc->Finish(&c->reply, &c->status, c);
    ++started;
  };
  const double cpu0 = CpuSeconds();
  const auto t0 = Clock::now();
  for (int i = 0; i < inflight && started < calls; ++i) start_one();
  void* tag;
  bool ok;
  while (lat.size() + failed < static_cast<size_t>(calls) &&
         cq.Next(&tag, &ok)) {
    auto* c = static_cast<Call*>(tag);
    if (c->status.ok()) {
      lat.push_back(
          std::chrono::duration<double, std::micro>(Clock::now() - c->start)
              .count());
    } else {
      ++failed;
    }
    delete c;
    if (started < calls) start_one();
  }
  const double wall =
      std::chrono::duration<double>(Clock::now() - t0).count();
  Result r;
  r.cpu_us_per_call = (CpuSeconds() - cpu0) * 1e6 / calls;
  std::sort(lat.begin(), lat.end());
  if (!lat.empty()) {
    r.p50_us = lat[lat.size() / 2];
    r.p99_us = lat[std::min(lat.size() - 1, lat.size() * 99 / 100)];
  }
  r.qps = calls / wall;
  r.failed = failed;
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return r;
}

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace bench
}  // namespace mesh

#endif  // MESH_BENCH_CLOSED_LOOP_H_
