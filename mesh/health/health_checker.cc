#include "mesh/health/health_checker.h"

#include "absl/strings/str_cat.h"
#include "mesh/common/log.h"
#include "mesh/common/sync.h"

namespace mesh {
namespace health {

namespace {

constexpr char kCheckMethod[] = "/grpc.health.v1.Health/Check";
constexpr int kServing = 1;

std::string StatusName(int s) {
  switch (s) {
    case 0:
      return "UNKNOWN";
    case 1:
      return "SERVING";
    case 2:
      return "NOT_SERVING";
    case 3:
      return "SERVICE_UNKNOWN";
    default:
      return "unreadable response";
  }
}

// "address:port" for IPv4, "[address]:port" for IPv6 (gRPC target form).
std::string DialTarget(const config::Endpoint& e) {
  return e.address.find(':') == std::string::npos
             ? absl::StrCat(e.address, ":", e.port)
             : absl::StrCat("[", e.address, "]:", e.port);
}

}  // namespace

// One Check call in flight; its address is the completion queue tag.
struct HealthChecker::Check {
  std::string key;
  grpc::ClientContext ctx;
  grpc::ByteBuffer response;
  grpc::Status status;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> call;
};

std::string HealthChecker::EncodeRequest(const std::string& service) {
  // HealthCheckRequest { string service = 1; }: tag 0x0a, varint length.
  if (service.empty()) return "";
  std::string out = "\x0a";
  uint64_t n = service.size();
  while (n >= 0x80) {
    out += static_cast<char>((n & 0x7f) | 0x80);
    n >>= 7;
  }
  out += static_cast<char>(n);
  return out + service;
}

int HealthChecker::DecodeStatus(const std::string& bytes) {
  // HealthCheckResponse { ServingStatus status = 1; }: tag 0x08, varint.
  // Absent field = 0 (UNKNOWN). Other fields are skipped.
  int status = 0;
  size_t i = 0;
  auto varint = [&](uint64_t* v) {
    *v = 0;
    for (int shift = 0; i < bytes.size() && shift < 64; shift += 7) {
      const uint8_t b = static_cast<uint8_t>(bytes[i++]);
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  };
  while (i < bytes.size()) {
    uint64_t tag, v;
    if (!varint(&tag)) return -1;
    switch (tag & 7) {
      case 0:
        if (!varint(&v)) return -1;
        if (tag >> 3 == 1) status = static_cast<int>(v);
        break;
      case 1:
        i += 8;
        break;
      case 2:
        if (!varint(&v) || v > bytes.size() - i) return -1;
        i += v;
        break;
      case 5:
        i += 4;
        break;
      default:
        return -1;
    }
  }
  return i == bytes.size() ? status : -1;
}

HealthChecker::HealthChecker(Callback cb, Credentials credentials)
    : cb_(std::move(cb)), credentials_(std::move(credentials)) {
  thread_ = std::thread([this] { Run(); });
}

HealthChecker::~HealthChecker() {
  {
    internal::MutexLock lock(&mu_);
    stopping_ = true;
  }
  // The thread cancels and drains every check in flight before it exits, so
  // the channels (held by the stubs and by each call) are released after.
  thread_.join();
}

void HealthChecker::Update(std::shared_ptr<const config::MeshConfig> config) {
  std::map<std::string, Target> next;
  for (const config::Service& s : config->services) {
    if (!s.health_check.enabled) continue;
    for (const config::Endpoint& e : s.endpoints) {
      if (e.health != config::Health::kHealthy) continue;
      const std::string key = absl::StrCat(e.address, ":", e.port);
      Target& t = next[key];
      t.address = DialTarget(e);
      t.service = s.health_check.service_name;
      t.identity = s.Identity(config->trust_domain);
      t.spec = s.health_check;
    }
  }
  internal::MutexLock lock(&mu_);
  for (auto& [key, t] : next) {
    auto old = targets_.find(key);
    if (old != targets_.end() &&
        old->second.spec.service_name == t.spec.service_name &&
        old->second.identity == t.identity) {
      // Keep its state and connection.
      old->second.spec = t.spec;
      t = std::move(old->second);
    }
  }
  targets_ = std::move(next);
}

void HealthChecker::StartDueChecks() {
  const absl::Time now = absl::Now();
  for (auto& [key, t] : targets_) {
    if (t.in_flight || t.next_check > now) continue;
    if (t.stub == nullptr) {
      grpc::ChannelArguments args;
      // A separate connection from the application's own, retried quickly.
      args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
      t.stub = std::make_unique<grpc::GenericStub>(grpc::CreateCustomChannel(
          t.address,
          credentials_ ? credentials_(t.identity)
                       : grpc::InsecureChannelCredentials(),
          args));
    }
    auto* c = new Check;
    c->key = key;
    c->ctx.set_deadline(absl::ToChronoTime(now + absl::Milliseconds(
                                                     t.spec.timeout_ms)));
    const std::string req = EncodeRequest(t.service);
    grpc::Slice slice(req);
    grpc::ByteBuffer buf(&slice, 1);
    c->call = t.stub->PrepareUnaryCall(&c->ctx, kCheckMethod, buf, &cq_);
    c->call->StartCall();
    c->call->Finish(&c->response, &c->status, c);
    in_flight_.insert(c);
    t.in_flight = true;
    t.next_check = now + absl::Milliseconds(t.spec.interval_ms);
  }
}

std::string HealthChecker::Record(const std::string& key, bool ok,
                                  const std::string& why) {
  auto it = targets_.find(key);
  if (it == targets_.end()) return "";  // Removed by an Update meanwhile.
  Target& t = it->second;
  t.in_flight = false;
  if (ok) {
    t.failures = 0;
    ++t.successes;
    if (!t.healthy &&
        t.successes >= static_cast<int>(t.spec.healthy_threshold)) {
      t.healthy = true;
      return absl::StrCat(key, " is HEALTHY again (", t.successes,
                          " successful health checks)");
    }
  } else {
    t.successes = 0;
    ++t.failures;
    t.last_failure = why;
    if (t.healthy &&
        t.failures >= static_cast<int>(t.spec.unhealthy_threshold)) {
      t.healthy = false;
      return absl::StrCat(key, " is UNHEALTHY: ", t.failures,
                          " failed health check(s), last: ", why);
    }
  }
  return "";
}

config::HealthOverrides HealthChecker::Failing() const {
  config::HealthOverrides out;
  for (const auto& [key, t] : targets_) {
    if (!t.healthy) out[key] = config::Health::kUnhealthy;
  }
  return out;
}

void HealthChecker::Run() {
  while (true) {
    {
      internal::MutexLock lock(&mu_);
      if (stopping_) break;
      StartDueChecks();
    }
    // Wake at least every 50 ms to start due checks and to notice stopping.
    void* tag;
    bool ok;
    const auto r = cq_.AsyncNext(
        &tag, &ok, std::chrono::system_clock::now() +
                       std::chrono::milliseconds(50));
    if (r != grpc::CompletionQueue::GOT_EVENT) continue;
    std::unique_ptr<Check> c(static_cast<Check*>(tag));
    {
      internal::MutexLock lock(&mu_);
      in_flight_.erase(c.get());
    }
    std::string why;
    bool success = false;
    if (!c->status.ok()) {
      why = absl::StrCat("RPC failed: ", c->status.error_code(), " ",
                         c->status.error_message());
    } else {
      std::string bytes;
      std::vector<grpc::Slice> slices;
      (void)c->response.Dump(&slices);
      for (const grpc::Slice& s : slices) {
        bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
      const int status = DecodeStatus(bytes);
      success = status == kServing;
      if (!success) why = StatusName(status);
    }
    std::string change;
    config::HealthOverrides failing;
    {
      internal::MutexLock lock(&mu_);
      change = Record(c->key, success, why);
      if (!change.empty()) failing = Failing();
    }
    if (!change.empty()) {
      internal::Log(internal::kInfo, "health check: " + change);
      cb_(failing, change);
    }
  }
  // Drain: cancel what is in flight, then shut the queue down.
  {
    internal::MutexLock lock(&mu_);
    for (Check* c : in_flight_) c->ctx.TryCancel();
  }
  cq_.Shutdown();
  void* tag;
  bool ok;
  while (cq_.Next(&tag, &ok)) delete static_cast<Check*>(tag);
}

}  // namespace health
}  // namespace mesh
