// File: mesh/telemetry/call_metrics.h
//
// Client call metrics per destination (mesh hostname) and locality, from
// two sources:
//
// - Load reports (always on, cheap): gRPC counts call attempts per locality
//   inside its load balancer and reports them to the control plane every
//   second (mesh/xds/lrs_server.h), which passes them on (AddLoad): attempts
//   issued, succeeded and failed per locality. These drive the admin views
//   and failover detection: when the priority of the plan that received
//   most of a report's successful attempts changes, the PriorityChange
//   callback runs (at most 5 times per destination per 10 s; the metric
//   counts every change). A failover shorter than a report (1 s, gRPC's
//   minimum) may go unreported.
// - A client interceptor (MeshOptions::call_metrics, opt-in: it costs about
//   4 % more instructions per call): calls started, calls completed by
//   status code, and a latency histogram, attributed to the locality of the
//   server that answered the last attempt (the peer address, looked up in
//   the destination's current plan).
//
// Thread-safety: all methods may be called concurrently.

#ifndef MESH_TELEMETRY_CALL_METRICS_H_
#define MESH_TELEMETRY_CALL_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/support/client_interceptor.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "mesh/common/sync.h"
#include "absl/time/time.h"

namespace mesh {
namespace telemetry {

// Latency histogram bucket upper bounds, in seconds.
inline constexpr double kBuckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                      0.025,  0.05,  0.1,    0.25,  0.5,
                                      1,      2.5,   5,      10};
inline constexpr int kNumBuckets = sizeof(kBuckets) / sizeof(kBuckets[0]);
inline constexpr int kNumCodes = 17;  // grpc::StatusCode 0..16.

struct LocalityStats {
  std::string locality;  // "region/zone/cluster", or "unknown".
  std::atomic<uint64_t> by_code[kNumCodes] = {};
  std::atomic<uint64_t> buckets[kNumBuckets + 1] = {};  // Last is +Inf.
  std::atomic<uint64_t> sum_ns{0};
  uint64_t completed() const;
  uint64_t succeeded() const { return by_code[0].load(); }
};

// A locality's place in a destination's plan.
struct Placement {
  int priority = -1;
  double share = 0;  // The locality's percent of its priority's weight.
  std::string locality;
};

// A destination's plan: the locality of each endpoint, and each locality's
// placement. Built once per plan, then immutable and shared (by the call
// metrics and the admin view): a destination may have 10,000s of
// endpoints, so each costs one small hash map entry, and the locality
// strings are stored once.
class EndpointPlan {
 public:
  // `endpoint` is "address:port" (IPv6 in brackets). A locality's priority
  // and share are those of its first endpoint.
  void Add(absl::string_view endpoint, int priority, double share,
           absl::string_view locality);
  // The endpoint's locality placement, nullptr if it is not in the plan.
  const Placement* Find(absl::string_view endpoint) const;
  size_t size() const { return endpoints_.size(); }
  const std::vector<Placement>& localities() const { return localities_; }
  // Calls f(endpoint, placement) for every endpoint, in no order.
  template <typename F>
  void ForEach(F f) const {
    for (const auto& [e, i] : endpoints_) f(e, localities_[i]);
  }

 private:
  std::vector<Placement> localities_;
  absl::flat_hash_map<std::string, uint32_t> endpoints_;  // -> localities_
  uint32_t last_ = 0;  // The locality of the last Add.
};

class CallMetrics {
 public:
  // (destination, old priority, new priority, locality now serving).
  using PriorityChange =
      std::function<void(const std::string&, int, int, const std::string&)>;
  explicit CallMetrics(PriorityChange on_change);
  ~CallMetrics();

  // The interceptor factory for channels to `destination`.
  std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>
  InterceptorFor(const std::string& destination);

  // The destination's current plan.
  void SetPlan(const std::string& destination,
               std::shared_ptr<const EndpointPlan> plan);

  // One load report for `destination`: per locality, attempts that
  // succeeded, failed and were issued since the previous report.
  struct Load {
    std::string locality;
    uint64_t succeeded = 0, failed = 0, issued = 0;
  };
  // `dropped`: calls gRPC failed without sending them (its circuit
  // breaker, config circuitBreaker.maxRequests) since the previous report.
  void AddLoad(const std::string& destination, const std::vector<Load>& load,
               uint64_t dropped = 0);

  // Attempt totals (from load reports) per destination: issued, and per
  // locality (completed, succeeded).
  struct Totals {
    uint64_t started = 0;
    uint64_t dropped = 0;  // Failed at once by the circuit breaker.
    std::map<std::string, std::pair<uint64_t, uint64_t>> by_locality;
  };
  std::map<std::string, Totals> Snapshot() const;

  // The call metrics in the Prometheus text format.
  std::string Prometheus() const;

  struct Destination;  // Internal; public for the interceptor.

 private:
  Destination* Get(const std::string& destination);

  const PriorityChange on_change_;
  mutable internal::Mutex mu_;
  std::map<std::string, std::unique_ptr<Destination>> destinations_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace telemetry
}  // namespace mesh

#endif  // MESH_TELEMETRY_CALL_METRICS_H_
