#include "mesh/telemetry/call_metrics.h"

#include <chrono>

#include <grpcpp/client_context.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "mesh/telemetry/prometheus.h"
#include "mesh/common/sync.h"

namespace mesh {
namespace telemetry {

namespace {

using grpc::experimental::InterceptionHookPoints;

constexpr const char* kCodeNames[kNumCodes] = {
    "OK",        "CANCELLED",         "UNKNOWN",          "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",   "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL",      "UNAVAILABLE",      "DATA_LOSS",
    "UNAUTHENTICATED"};

struct PeerEntry {
  LocalityStats* stats = nullptr;
};

}  // namespace

uint64_t LocalityStats::completed() const {
  uint64_t n = 0;
  for (const auto& c : by_code) n += c.load(std::memory_order_relaxed);
  return n;
}

struct CallMetrics::Destination {
  std::string name;
  std::atomic<uint64_t> started{0};
  std::atomic<uint64_t> priority_changes{0};
  std::atomic<uint64_t> dropped{0};  // From load reports.

  internal::Mutex mu;
  std::shared_ptr<const EndpointPlan> plan ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<std::string, PeerEntry> by_peer ABSL_GUARDED_BY(mu);
  std::map<std::string, std::unique_ptr<LocalityStats>> by_locality
      ABSL_GUARDED_BY(mu);
  absl::Time window_start ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  int reports_in_window ABSL_GUARDED_BY(mu) = 0;
  // From load reports: locality -> attempts, and the serving priority.
  struct Attempts {
    uint64_t succeeded = 0, failed = 0, issued = 0;
  };
  std::map<std::string, Attempts> attempts ABSL_GUARDED_BY(mu);
  int serving_priority ABSL_GUARDED_BY(mu) = -1;

  LocalityStats* StatsLocked(const std::string& locality)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto& s = by_locality[locality];
    if (s == nullptr) {
      s = std::make_unique<LocalityStats>();
      s->locality = locality;
    }
    return s.get();
  }

  // The stats of the locality of the server that answered (`peer` is
  // ClientContext::peer(), e.g. "ipv4:10.0.0.1:50051").
  PeerEntry Lookup(const std::string& peer) {
    {
      internal::ReaderMutexLock lock(&mu);
      auto it = by_peer.find(peer);
      if (it != by_peer.end()) return it->second;
    }
    internal::MutexLock lock(&mu);
    absl::string_view addr = peer;
    if (!absl::ConsumePrefix(&addr, "ipv4:")) absl::ConsumePrefix(&addr, "ipv6:");
    PeerEntry e;
    const Placement* p = plan == nullptr ? nullptr : plan->Find(addr);
    if (p != nullptr) {
      e.stats = StatsLocked(p->locality);
    } else {
      e.stats = StatsLocked("unknown");
    }
    if (by_peer.size() < 10000) by_peer[peer] = e;  // Bounded.
    return e;
  }

  void Record(const std::string& peer, int code, uint64_t ns) {
    const PeerEntry e = Lookup(peer);
    if (code < 0 || code >= kNumCodes) code = 2;  // UNKNOWN
    e.stats->by_code[code].fetch_add(1, std::memory_order_relaxed);
    int b = 0;
    const double s = ns / 1e9;
    while (b < kNumBuckets && s > kBuckets[b]) ++b;
    e.stats->buckets[b].fetch_add(1, std::memory_order_relaxed);
    e.stats->sum_ns.fetch_add(ns, std::memory_order_relaxed);
  }
};

namespace {

class Interceptor final : public grpc::experimental::Interceptor {
 public:
  Interceptor(CallMetrics::Destination* d,
              grpc::experimental::ClientRpcInfo* info)
      : d_(d), info_(info) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
    if (m->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      start_ = std::chrono::steady_clock::now();
      d_->started.fetch_add(1, std::memory_order_relaxed);
    }
    if (m->QueryInterceptionHookPoint(
            InterceptionHookPoints::POST_RECV_STATUS)) {
      const grpc::Status* st = m->GetRecvStatus();
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now() - start_)
                          .count();
      d_->Record(info_->client_context()->peer(),
                 st == nullptr ? 2 : static_cast<int>(st->error_code()),
                 static_cast<uint64_t>(ns));
    }
    m->Proceed();
  }

 private:
  CallMetrics::Destination* const d_;
  grpc::experimental::ClientRpcInfo* const info_;
  std::chrono::steady_clock::time_point start_ =
      std::chrono::steady_clock::now();
};

class Factory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit Factory(CallMetrics::Destination* d) : d_(d) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* info) override {
    return new Interceptor(d_, info);
  }

 private:
  CallMetrics::Destination* const d_;
};

}  // namespace

CallMetrics::CallMetrics(PriorityChange on_change)
    : on_change_(std::move(on_change)) {}
CallMetrics::~CallMetrics() = default;

CallMetrics::Destination* CallMetrics::Get(const std::string& destination) {
  internal::MutexLock lock(&mu_);
  auto& d = destinations_[destination];
  if (d == nullptr) {
    d = std::make_unique<Destination>();
    d->name = destination;
  }
  return d.get();
}

std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>
CallMetrics::InterceptorFor(const std::string& destination) {
  return std::make_unique<Factory>(Get(destination));
}

void CallMetrics::AddLoad(const std::string& destination,
                          const std::vector<Load>& load, uint64_t dropped) {
  Destination* d = Get(destination);
  d->dropped.fetch_add(dropped, std::memory_order_relaxed);
  int old = -1, now = -1;
  std::string serving;
  {
    internal::MutexLock lock(&d->mu);
    std::map<std::string, int> prio;
    if (d->plan != nullptr) {
      for (const Placement& p : d->plan->localities()) {
        prio.emplace(p.locality, p.priority);
      }
    }
    // The serving priority: the one whose localities had most of this
    // report's successful attempts.
    std::map<int, uint64_t> by_priority;
    for (const Load& l : load) {
      Destination::Attempts& a = d->attempts[l.locality];
      a.succeeded += l.succeeded;
      a.failed += l.failed;
      a.issued += l.issued;
      auto p = prio.find(l.locality);
      if (l.succeeded > 0 && p != prio.end()) {
        by_priority[p->second] += l.succeeded;
      }
    }
    int lowest = -1;
    uint64_t most = 0;
    for (const auto& [p, n] : by_priority) {
      if (n > most) {
        most = n;
        lowest = p;
      }
    }
    uint64_t best = 0;
    for (const Load& l : load) {
      auto p = prio.find(l.locality);
      if (p != prio.end() && p->second == lowest && l.succeeded > best) {
        best = l.succeeded;
        serving = l.locality;
      }
    }
    if (lowest < 0 || lowest == d->serving_priority) return;  // Unchanged.
    old = d->serving_priority;
    now = d->serving_priority = lowest;
    if (old < 0) return;  // The first report: nothing moved.
    d->priority_changes.fetch_add(1, std::memory_order_relaxed);
    // Rate limit: at most 5 reports per destination per 10 s, so that a
    // flapping destination cannot flood the log (the metric counts all).
    const absl::Time t = absl::Now();
    if (t - d->window_start >= absl::Seconds(10)) {
      d->window_start = t;
      d->reports_in_window = 0;
    }
    if (++d->reports_in_window > 5) return;
  }
  on_change_(destination, old, now, serving);
}

void EndpointPlan::Add(absl::string_view endpoint, int priority,
                       double share, absl::string_view locality) {
  // Endpoints come grouped by locality, and localities are few (the plan's
  // rows): the previous endpoint's locality, else a linear search.
  uint32_t i = last_;
  if (i >= localities_.size() || localities_[i].locality != locality) {
    i = 0;
    while (i < localities_.size() && localities_[i].locality != locality) ++i;
    if (i == localities_.size()) {
      localities_.push_back({priority, share, std::string(locality)});
    }
    last_ = i;
  }
  endpoints_.emplace(endpoint, i);
}

const Placement* EndpointPlan::Find(absl::string_view endpoint) const {
  auto it = endpoints_.find(endpoint);
  return it == endpoints_.end() ? nullptr : &localities_[it->second];
}

void CallMetrics::SetPlan(const std::string& destination,
                          std::shared_ptr<const EndpointPlan> plan) {
  Destination* d = Get(destination);
  internal::MutexLock lock(&d->mu);
  d->plan = std::move(plan);
  d->by_peer.clear();
}

std::map<std::string, CallMetrics::Totals> CallMetrics::Snapshot() const {
  std::map<std::string, Totals> out;
  internal::MutexLock lock(&mu_);
  for (const auto& [name, d] : destinations_) {
    Totals& t = out[name];
    t.dropped = d->dropped.load(std::memory_order_relaxed);
    internal::ReaderMutexLock dl(&d->mu);
    for (const auto& [loc, a] : d->attempts) {
      t.started += a.issued;
      t.by_locality[loc] = {a.succeeded + a.failed, a.succeeded};
    }
  }
  return out;
}

std::string CallMetrics::Prometheus() const {
  PrometheusWriter w;
  internal::MutexLock lock(&mu_);
  w.Family("mesh_client_attempts_total", "counter",
           "Call attempts (retries count separately) by destination, "
           "locality and result, from gRPC's load reports (every second).");
  for (const auto& [name, d] : destinations_) {
    internal::ReaderMutexLock dl(&d->mu);
    for (const auto& [loc, a] : d->attempts) {
      w.Sample("mesh_client_attempts_total",
               {{"destination", name}, {"locality", loc}, {"result", "success"}},
               a.succeeded);
      w.Sample("mesh_client_attempts_total",
               {{"destination", name}, {"locality", loc}, {"result", "error"}},
               a.failed);
    }
  }
  w.Family("mesh_client_calls_dropped_total", "counter",
           "Calls gRPC failed at once without sending them, by destination: "
           "more than circuitBreaker.maxRequests were in flight (from load "
           "reports).");
  for (const auto& [name, d] : destinations_) {
    w.Sample("mesh_client_calls_dropped_total", {{"destination", name}},
             d->dropped.load(std::memory_order_relaxed));
  }
  w.Family("mesh_client_attempts_issued_total", "counter",
           "Call attempts started, by destination and locality, from gRPC's "
           "load reports.");
  for (const auto& [name, d] : destinations_) {
    internal::ReaderMutexLock dl(&d->mu);
    for (const auto& [loc, a] : d->attempts) {
      w.Sample("mesh_client_attempts_issued_total",
               {{"destination", name}, {"locality", loc}}, a.issued);
    }
  }
  w.Family("mesh_client_calls_started_total", "counter",
           "Calls started on mesh channels, by destination (with "
           "MeshOptions::call_metrics).");
  for (const auto& [name, d] : destinations_) {
    w.Sample("mesh_client_calls_started_total", {{"destination", name}},
             d->started.load());
  }
  w.Family("mesh_client_calls_total", "counter",
           "Calls completed, by destination, locality of the server that "
           "answered (\"unknown\" if none did) and gRPC status code (with "
           "MeshOptions::call_metrics).");
  for (const auto& [name, d] : destinations_) {
    internal::ReaderMutexLock dl(&d->mu);
    for (const auto& [loc, s] : d->by_locality) {
      for (int c = 0; c < kNumCodes; ++c) {
        const uint64_t n = s->by_code[c].load();
        if (n == 0) continue;
        w.Sample("mesh_client_calls_total",
                 {{"destination", name}, {"locality", loc},
                  {"code", kCodeNames[c]}},
                 n);
      }
    }
  }
  w.Family("mesh_client_call_duration_seconds", "histogram",
           "Call latency as the application sees it (retries included), by "
           "destination and locality (with MeshOptions::call_metrics).");
  for (const auto& [name, d] : destinations_) {
    internal::ReaderMutexLock dl(&d->mu);
    for (const auto& [loc, s] : d->by_locality) {
      uint64_t cum = 0;
      for (int b = 0; b <= kNumBuckets; ++b) {
        cum += s->buckets[b].load();
        w.Sample("mesh_client_call_duration_seconds_bucket",
                 {{"destination", name},
                  {"locality", loc},
                  {"le", b == kNumBuckets ? "+Inf"
                                          : absl::StrFormat("%g", kBuckets[b])}},
                 cum);
      }
      w.Sample("mesh_client_call_duration_seconds_sum",
               {{"destination", name}, {"locality", loc}},
               s->sum_ns.load() / 1e9);
      w.Sample("mesh_client_call_duration_seconds_count",
               {{"destination", name}, {"locality", loc}}, cum);
    }
  }
  w.Family("mesh_client_priority_changes_total", "counter",
           "Times successful attempts to a destination moved to another "
           "priority of its plan (failover or failback).");
  for (const auto& [name, d] : destinations_) {
    w.Sample("mesh_client_priority_changes_total", {{"destination", name}},
             d->priority_changes.load());
  }
  return w.Text();
}

}  // namespace telemetry
}  // namespace mesh
