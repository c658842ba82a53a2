#include "mesh/agent/agent.h"

#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "mesh/common/sync.h"
#include "mesh/agent/events.h"
#include "mesh/agent/registrar.h"
#include "mesh/common/log.h"
#include "mesh/config/snapshot.h"
#include "mesh/health/health_checker.h"
#include "mesh/identity/keeper.h"
#include "mesh/identity/tls.h"
#include "mesh/policy/authorization.h"
#include "mesh/source/last_good.h"
#include "mesh/source/sources.h"
#include "mesh/xds/ads_server.h"
#include "mesh/xds/lrs_server.h"

namespace mesh {
namespace agent {

namespace {

using internal::Log;

struct Flags {
  std::string config;
  std::string socket;
  int status_fd = -1;
  int lifeline_fd = -1;
  std::string service;
  identity::IdentityFiles identity;
  std::string identity_dir;
  std::string state_dir;  // Where the last-known-good config is kept.
  source::EtcdOptions etcd;
  std::string etcd_prefix = "/mesh/";
  std::string etcd_password_file;
  source::DnsOptions dns;
  bool register_instances = false;
  int64_t register_ttl_s = 10;
  std::string advertise;
};

bool ParseFlags(int argc, char** argv, Flags* f, std::string* err) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    auto value = [&](absl::string_view name, std::string* out) {
      if (!absl::ConsumePrefix(&a, name)) return false;
      *out = std::string(a);
      return true;
    };
    std::string v;
    if (value("--config=", &f->config) || value("--socket=", &f->socket) ||
        value("--service=", &f->service) ||
        value("--cert=", &f->identity.certificate) ||
        value("--key=", &f->identity.private_key) ||
        value("--identity-dir=", &f->identity_dir) ||
        value("--state-dir=", &f->state_dir) ||
        value("--etcd-prefix=", &f->etcd_prefix) ||
        value("--etcd-ca=", &f->etcd.ca_file) ||
        value("--etcd-cert=", &f->etcd.cert_file) ||
        value("--etcd-key=", &f->etcd.key_file) ||
        value("--etcd-server-name=", &f->etcd.server_name) ||
        value("--etcd-user=", &f->etcd.username) ||
        value("--etcd-password-file=", &f->etcd_password_file)) {
      continue;
    }
    if (value("--etcd=", &v)) {
      for (absl::string_view e : absl::StrSplit(v, ',', absl::SkipEmpty())) {
        f->etcd.endpoints.emplace_back(e);
      }
      continue;
    }
    if (value("--dns-server=", &v)) {
      for (absl::string_view e : absl::StrSplit(v, ',', absl::SkipEmpty())) {
        f->dns.servers.emplace_back(e);
      }
      continue;
    }
    if (a == "--register") {
      f->register_instances = true;
      continue;
    }
    if (value("--advertise=", &f->advertise)) continue;
    if (value("--register-ttl=", &v)) {
      if (!absl::SimpleAtoi(v, &f->register_ttl_s)) {
        *err = absl::StrCat("bad value in ", argv[i]);
        return false;
      }
      continue;
    }
    if (value("--bundle=", &v)) {
      f->identity.trust_bundles.push_back(v);
      continue;
    }
    if (value("--status-fd=", &v) || value("--lifeline-fd=", &v)) {
      int* fd = absl::StartsWith(argv[i], "--status") ? &f->status_fd
                                                      : &f->lifeline_fd;
      if (!absl::SimpleAtoi(v, fd) || *fd < 0) {
        *err = absl::StrCat("bad value in ", argv[i]);
        return false;
      }
      continue;
    }
    *err = absl::StrCat("unknown flag: ", argv[i]);
    return false;
  }
  if ((f->config.empty() && f->etcd.endpoints.empty()) || f->socket.empty()) {
    *err = "--socket=PATH and a config source (--config=PATH, --etcd=HOST:PORT"
           "[,...], or both) are required";
    return false;
  }
  if (f->register_instances && f->etcd.endpoints.empty()) {
    *err = "--register needs --etcd (instances are registered in etcd)";
    return false;
  }
  if (!f->etcd_password_file.empty()) {
    absl::StatusOr<std::string> pw =
        config::ReadFileToString(f->etcd_password_file, 4096);
    if (!pw.ok()) {
      *err = absl::StrCat("--etcd-password-file: ", pw.status().message());
      return false;
    }
    f->etcd.password = std::string(absl::StripTrailingAsciiWhitespace(*pw));
  }
  const bool any = !f->identity.certificate.empty() ||
                   !f->identity.private_key.empty() ||
                   !f->identity.trust_bundles.empty() ||
                   !f->identity_dir.empty();
  const bool all = !f->identity.certificate.empty() &&
                   !f->identity.private_key.empty() &&
                   !f->identity.trust_bundles.empty() &&
                   !f->identity_dir.empty();
  if (any && !all) {
    *err = "--cert, --key, --bundle and --identity-dir go together";
    return false;
  }
  return true;
}

// Writes events to the status fd (if any). Thread-safe.
//
// The explanation of each EDS ACK (the plan for every service the client
// uses, thousands of lines for a large service) is made on a worker thread,
// not on the ADS stream's, 50 ms after the ACK: it is for the application's
// metrics, Explain() and status page, and should neither hold up the next
// update nor compete with the client's own handling of this one (at 10k
// endpoints that took ~20 ms off the propagation). Only the latest ACK of
// each client is explained, so a burst of changes is explained once.
class EventSink final : public xds::AdsServer::Observer {
 public:
  using ListenersFn = std::function<void(const xds::Caller&,
                                         const std::vector<std::string>&)>;
  explicit EventSink(int fd) : fd_(fd) {}
  ~EventSink() { StopExplaining(); }

  // Stops and joins the explain worker (before what it uses goes).
  void StopExplaining() {
    {
      internal::MutexLock lock(&explain_mu_);
      stop_ = true;
    }
    if (worker_.joinable()) worker_.join();
  }

  void Emit(EventKind kind, absl::string_view version,
            absl::string_view text) {
    if (fd_ < 0) return;
    const std::string line = EncodeEvent(
        {kind, std::string(version), std::string(text)});
    internal::MutexLock lock(&mu_);
    size_t off = 0;
    while (off < line.size()) {
      ssize_t n = write(fd_, line.data() + off, line.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // The application is gone; the lifeline ends us.
      off += static_cast<size_t>(n);
    }
  }

  // Called with the server listener addresses of each LDS ACK: those
  // mesh servers have their listener, so they serve.
  void set_on_server_listeners_acked(ListenersFn fn) {
    on_acked_ = std::move(fn);
  }
  void OnAck(const xds::Caller& caller, absl::string_view type_url,
             absl::string_view version,
             const std::vector<std::string>& names) override {
    if (type_url == xds::kListenerType && on_acked_ != nullptr) {
      on_acked_(caller, ServerAddresses(names));
    }
    if (type_url != xds::kEndpointType || !explain_) return;
    internal::MutexLock lock(&explain_mu_);
    pending_[caller.id] = {caller, std::string(version), names};
  }

  // Called (on the worker) after EDS ACKs with the clusters the client uses.
  using ExplainFn = std::function<void(const xds::Caller&, absl::string_view,
                                       const std::vector<std::string>&)>;
  // Before the ADS server starts.
  void set_explain(ExplainFn fn) {
    explain_ = std::move(fn);
    worker_ = std::thread([this] { ExplainLoop(); });
  }
  // Called (on the ADS stream's thread, before the server answers) with the
  // server listener names of each LDS request.
  // Before the ADS server starts.
  void set_on_server_listeners(ListenersFn fn) {
    on_server_listeners_ = std::move(fn);
  }
  void OnRequest(const xds::Caller& caller, absl::string_view type_url,
                 const std::vector<std::string>& names) override {
    if (type_url != xds::kListenerType || on_server_listeners_ == nullptr) {
      return;
    }
    on_server_listeners_(caller, ServerAddresses(names));
  }
  void OnSynced(const xds::Caller&, absl::string_view version) override {
    Emit(EventKind::kSynced, version, "");
  }
  void OnNack(const xds::Caller&, absl::string_view type_url,
              absl::string_view version, absl::string_view message) override {
    Emit(EventKind::kNack, version,
         absl::StrCat(xds::TypeName(type_url), ": ", message));
  }

 private:
  struct Ack {
    xds::Caller caller;
    std::string version;
    std::vector<std::string> names;
  };
  void ExplainLoop() {
    while (true) {
      std::map<std::string, Ack> batch;
      {
        internal::MutexLock lock(&explain_mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(explain_mu_) {
          return stop_ || !pending_.empty();
        };
        explain_mu_.Await(internal::Condition(&ready));
        // Let a burst of ACKs (and the client's own work on the update)
        // settle first: only the latest of each client is explained.
        auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(explain_mu_) {
          return stop_;
        };
        if (explain_mu_.AwaitWithTimeout(internal::Condition(&stopping),
                                         kExplainDelay)) {
          return;
        }
        if (stop_) return;
        batch.swap(pending_);
      }
      for (const auto& [id, ack] : batch) {
        explain_(ack.caller, ack.version, ack.names);
      }
    }
  }

  static std::vector<std::string> ServerAddresses(
      const std::vector<std::string>& names) {
    std::vector<std::string> addresses;
    for (const std::string& n : names) {
      absl::string_view a = n;
      if (absl::ConsumePrefix(&a, xds::kServerListenerPrefix)) {
        addresses.emplace_back(a);
      }
    }
    return addresses;
  }

  static constexpr absl::Duration kExplainDelay = absl::Milliseconds(50);
  const int fd_;
  ListenersFn on_server_listeners_;  // Set before the server starts.
  ListenersFn on_acked_;             // Set before the server starts.
  internal::Mutex mu_;
  ExplainFn explain_;  // Set before the server starts.
  internal::Mutex explain_mu_;
  std::map<std::string, Ack> pending_ ABSL_GUARDED_BY(explain_mu_);
  bool stop_ ABSL_GUARDED_BY(explain_mu_) = false;
  std::thread worker_;
};

// Gives the memory freed after a config change back to the system once
// changes have been quiet for kQuiet. Applying a config makes a transient
// peak (yaml-cpp's node tree, the old and new resources, the explanations)
// that malloc would otherwise keep for good: at 10,000 endpoints the agent's
// RSS was 7.2 KB per endpoint, 1.0 KB after a trim (docs/benchmarks.md). A
// trim took 13-25 ms there, on this thread; a burst of changes gets one.
class IdleTrim final {
 public:
  static constexpr absl::Duration kQuiet = absl::Seconds(2);
  IdleTrim() : thread_([this] { Run(); }) {}
  ~IdleTrim() {
    {
      internal::MutexLock lock(&mu_);
      stop_ = true;
      cv_.Signal();
    }
    thread_.join();
  }
  void Changed() {
    internal::MutexLock lock(&mu_);
    due_ = absl::Now() + kQuiet;
    cv_.Signal();
  }

 private:
  void Run() {
    internal::MutexLock lock(&mu_);
    while (!stop_) {
      if (due_ == absl::InfiniteFuture()) {
        cv_.Wait(&mu_);
      } else if (absl::Now() < due_) {
        cv_.WaitWithDeadline(&mu_, due_);
      } else {
        due_ = absl::InfiniteFuture();
        mu_.Unlock();
        malloc_trim(0);
        mu_.Lock();
      }
    }
  }

  internal::Mutex mu_;
  internal::CondVar cv_;
  absl::Time due_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // Last: starts once the rest is initialised.
};

// Blocks until the lifeline reaches EOF, or (without one) until SIGTERM or
// SIGINT arrives.
// Returns whether the application asked, before closing the lifeline, to
// keep the identity files (kKeepIdentity: it lives on, and gRPC in it still
// reads them).
// Other bytes on the lifeline are commands, given to `command`.
bool WaitForEnd(int lifeline_fd, const std::function<void(char)>& command) {
  bool keep = false;
  if (lifeline_fd >= 0) {
    while (true) {
      struct pollfd p = {lifeline_fd, POLLIN, 0};
      int r = poll(&p, 1, -1);
      if (r < 0 && errno == EINTR) continue;
      char c;
      if (r < 0 || read(lifeline_fd, &c, 1) <= 0) return keep;
      if (c == kKeepIdentity) {
        keep = true;
      } else {
        command(c);
      }
    }
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
  return false;
}

// The snapshot the agent serves: the last good config plus the results of
// active health checks. Either input changing publishes a new snapshot.
class Publisher final {
 public:
  Publisher(xds::AdsServer* ads, EventSink* sink) : ads_(ads), sink_(sink) {}

  void SetConfig(std::shared_ptr<const config::Snapshot> snap) {
    internal::MutexLock lock(&mu_);
    config_ = std::move(snap);
    PublishLocked();
  }

  std::shared_ptr<const config::Snapshot> Current() {
    internal::MutexLock lock(&mu_);
    return current_;
  }

  void SetFailing(const config::HealthOverrides& failing,
                  const std::string& change) {
    {
      internal::MutexLock lock(&mu_);
      failing_ = failing;
      ++generation_;
      PublishLocked();
    }
    sink_->Emit(EventKind::kHealth, "", change);
  }

 private:
  void PublishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto snap = std::make_shared<config::Snapshot>(*config_);
    snap->health = failing_;
    snap->health_generation = generation_;
    current_ = snap;
    ads_->SetSnapshot(std::move(snap));
  }

  xds::AdsServer* const ads_;
  EventSink* const sink_;
  internal::Mutex mu_;
  std::shared_ptr<const config::Snapshot> config_ ABSL_GUARDED_BY(mu_);
  config::HealthOverrides failing_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<const config::Snapshot> current_ ABSL_GUARDED_BY(mu_);
};

// The policy of every address the application's mesh servers listen on
// (the server listeners its xDS client asks for), told to the application
// (kAuthz) when a server first asks, before the ADS server answers with
// the listener (so before the server can take a call), and again whenever
// the config or the identity changes it. Thread-safe.
class ServerPolicies final {
 public:
  // With `mtls`, nothing is reported before the identity is known.
  ServerPolicies(EventSink* sink, std::string service, bool mtls)
      : sink_(sink), service_(std::move(service)), mtls_(mtls) {}

  void SetConfig(std::shared_ptr<const config::Snapshot> snap) {
    internal::MutexLock lock(&mu_);
    snap_ = std::move(snap);
    ReportLocked();
  }
  void SetIdentity(const std::string& id) {
    internal::MutexLock lock(&mu_);
    identity_ = id;
    ReportLocked();
  }
  // `address` is registered as an instance of `service` (before the put).
  void SetRegistered(const std::string& address, const std::string& service) {
    internal::MutexLock lock(&mu_);
    registered_[address] = service;
    ReportLocked();
  }
  std::string identity() {
    internal::MutexLock lock(&mu_);
    return identity_;
  }
  void SetListeners(const xds::Caller& caller,
                    const std::vector<std::string>& addresses) {
    internal::MutexLock lock(&mu_);
    std::set<std::string>& mine = by_caller_[caller.id];
    const std::set<std::string> now(addresses.begin(), addresses.end());
    if (mine == now) return;
    mine = now;
    ReportLocked();
  }

 private:
  void ReportLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (snap_ == nullptr || (mtls_ && identity_.empty())) return;
    std::set<std::string> all;
    for (const auto& [id, addresses] : by_caller_) {
      all.insert(addresses.begin(), addresses.end());
    }
    const policy::ServerSelf self{service_, identity_, policy::IsLocalAddress,
                                  registered_};
    for (const std::string& a : all) {
      const policy::ServerPolicy p =
          policy::PolicyForServer(*snap_->config, a, self);
      std::string text = p.Encode();
      std::string& last = sent_[a];
      if (last == text) continue;
      if (!p.problem.empty()) {
        Log(internal::kError,
            absl::StrCat("mesh agent: the mesh server on ", a,
                         " DENIES EVERY CALL: ", p.problem));
      }
      sink_->Emit(EventKind::kAuthz, snap_->version, text);
      last = std::move(text);
    }
  }

  EventSink* const sink_;
  const std::string service_;
  const bool mtls_;
  internal::Mutex mu_;
  std::shared_ptr<const config::Snapshot> snap_ ABSL_GUARDED_BY(mu_);
  std::string identity_ ABSL_GUARDED_BY(mu_);  // "" under plaintext.
  std::map<std::string, std::set<std::string>> by_caller_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> sent_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> registered_ ABSL_GUARDED_BY(mu_);
};

std::string EncodeSourceStatus(const source::SourceStatus& st) {
  auto ms = [](absl::Time t) {
    return t == absl::InfinitePast() ? int64_t{-1} : absl::ToUnixMillis(t);
  };
  return EncodeSourceState({st.name, st.ok, st.where, st.version,
                            ms(st.last_success), ms(st.last_error_time),
                            st.last_error});
}

}  // namespace

int RunAgent(int argc, char** argv) {
  Flags flags;
  std::string err;
  if (!ParseFlags(argc, argv, &flags, &err)) {
    Log(internal::kError, "mesh agent: " + err);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  if (flags.lifeline_fd >= 0) {
    // Spawned by an application: drop every descriptor we inherited except
    // stdio and our two pipes, so that the agent never holds the
    // application's sockets or files open.
    const int keep = std::max(flags.status_fd, flags.lifeline_fd);
    for (int fd = 3; fd < keep; ++fd) {
      if (fd != flags.status_fd && fd != flags.lifeline_fd) close(fd);
    }
    close_range(static_cast<unsigned>(keep) + 1, ~0U, 0);
  }
  if (flags.lifeline_fd < 0) {
    // Standalone: stop on SIGTERM/SIGINT, taken by sigwait in WaitForEnd.
    // Block them before any thread starts so every thread inherits the mask.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
  }
  EventSink sink(flags.status_fd);

  // Every config applied is the next start's fallback.
  auto save_last_good = [&flags](const std::string& text,
                                 const std::string& version) {
    if (flags.state_dir.empty()) return;
    const absl::Status st =
        source::SaveLastGood(flags.state_dir, text, version, absl::Now());
    if (!st.ok()) {
      Log(internal::kWarning,
          absl::StrCat("mesh agent: cannot save the last-known-good config: ",
                       st.message()));
    }
  };
  xds::AdsServer ads(&sink);
  Publisher publisher(&ads, &sink);
  health::HealthChecker checker(
      [&publisher](const config::HealthOverrides& failing,
                   const std::string& change) {
        publisher.SetFailing(failing, change);
      },
      // With an identity, health checks are mTLS calls like any other.
      flags.identity_dir.empty()
          ? nullptr
          : identity::MtlsCredentialsFactory(flags.identity_dir));
  // What the application needs to know of each config it runs: the
  // authorization policy of each of its servers, and the text (for its
  // admin endpoint).
  ServerPolicies server_policies(&sink, flags.service,
                                 !flags.identity_dir.empty());
  auto announce = [&sink](const config::Snapshot& s, const std::string& text) {
    sink.Emit(EventKind::kConfig, s.version, text);
  };
  const std::string origin =
      flags.config.empty() ? absl::StrCat("etcd ", flags.etcd_prefix)
                           : flags.config;

  IdleTrim idle_trim;
  // Where the endpoints come from, and the instances left out or held:
  // each change to the application, and the new problems to the log.
  InstancesState instances;
  auto report_instances = [&](const source::Composer::Result& r) {
    InstancesState next;
    for (const auto& [name, o] : r.origins) {
      next.services.push_back(
          {name, o.declared, o.endpoint_set, o.dns, o.registered, o.held});
    }
    next.ignored = r.ignored;
    next.held = r.held;
    if (next == instances) return;
    auto news = [](const std::vector<std::string>& now,
                   const std::vector<std::string>& before) {
      std::vector<std::string> out;
      for (const std::string& l : now) {
        if (std::find(before.begin(), before.end(), l) == before.end()) {
          out.push_back(l);
        }
      }
      return out;
    };
    for (const std::string& l : news(next.ignored, instances.ignored)) {
      Log(internal::kWarning, absl::StrCat("mesh agent: instance ", l));
    }
    for (const std::string& l : news(next.held, instances.held)) {
      Log(internal::kWarning,
          absl::StrCat("mesh agent: mass-removal guard: HOLDING ", l));
    }
    if (next.held.empty() && !instances.held.empty()) {
      Log(internal::kInfo, "mesh agent: mass-removal guard: nothing held");
    }
    instances = std::move(next);
    sink.Emit(EventKind::kInstances, r.snapshot->version,
              EncodeInstances(instances));
  };
  // The sources' callbacks run one at a time (under the sources' lock),
  // from Begin() on.
  std::string current_version;
  bool stale = false;
  source::Sources::Callbacks callbacks;
  callbacks.on_config = [&](const source::Composer::Result& r, bool now_stale) {
    const config::Snapshot& next = *r.snapshot;
    const bool changed = next.version != current_version;
    current_version = next.version;
    if (changed) report_instances(r);
    if (changed) {
      // Serve it first (after the servers' policies, which are small):
      // telling the application the whole text through the status pipe
      // and saving the copy are not on the way to routing.
      server_policies.SetConfig(r.snapshot);
      publisher.SetConfig(r.snapshot);
      announce(next, r.text);
      checker.Update(next.config);
      save_last_good(r.text, current_version);
    }
    if (stale && !now_stale) {
      stale = false;
      sink.Emit(EventKind::kFresh, current_version, origin);
      Log(internal::kInfo,
          "mesh agent: every config source answered; no longer stale");
    }
    if (changed) {
      sink.Emit(EventKind::kApplied, current_version, origin);
      Log(internal::kInfo,
          absl::StrCat("config version ", current_version, " applied"));
      idle_trim.Changed();
    }
  };
  callbacks.on_rejected = [&](const std::string& why) {
    sink.Emit(EventKind::kRejected, current_version, why);
    Log(internal::kWarning, absl::StrCat("config rejected, keeping version ",
                                         current_version, ":\n", why));
  };
  callbacks.on_error = [&](const std::string& err) {
    sink.Emit(EventKind::kError, current_version, err);
    Log(internal::kWarning, absl::StrCat("config source: ", err,
                                         "; keeping version ",
                                         current_version));
  };
  callbacks.on_status = [&sink](const source::SourceStatus& st) {
    sink.Emit(EventKind::kSource, "", EncodeSourceStatus(st));
  };
  source::SourcesOptions so;
  so.config_path = flags.config;
  so.etcd = flags.etcd;
  so.etcd_prefix = flags.etcd_prefix;
  so.dns = flags.dns;
  so.state_dir = flags.state_dir;
  absl::StatusOr<std::unique_ptr<source::Sources>> sources =
      source::Sources::Start(so, callbacks);
  if (!sources.ok()) {
    sink.Emit(EventKind::kRejected, "", sources.status().message());
    Log(internal::kError, absl::StrCat("mesh agent: config rejected:\n",
                                       sources.status().message()));
    return 3;
  }
  const source::Composer::Result& initial = (*sources)->initial();
  const std::shared_ptr<const config::Snapshot> first = initial.snapshot;
  current_version = first->version;
  if ((*sources)->initial_stale()) {
    stale = true;
    const std::string why = absl::StrCat(
        "a config source failed at start:\n", (*sources)->stale_reason());
    Log(internal::kWarning,
        absl::StrCat("mesh agent: STALE: serving the last-known-good "
                     "config (version ", first->version, ", saved ",
                     absl::FormatTime((*sources)->last_good_saved()),
                     ") because ", why));
    sink.Emit(EventKind::kStale, first->version,
              absl::StrCat(absl::ToUnixSeconds((*sources)->last_good_saved()),
                           "\n", why));
  } else {
    save_last_good(initial.text, first->version);
  }
  const std::shared_ptr<const config::Snapshot>* snap = &first;
  report_instances(initial);

  // The application's identity: checked and in place before it is ready.
  std::unique_ptr<identity::Keeper> keeper;
  if (!flags.identity_dir.empty()) {
    absl::StatusOr<std::unique_ptr<identity::Keeper>> k =
        identity::Keeper::Start(
            flags.identity, (*snap)->config->trust_domain,
            flags.identity_dir,
            [&sink, &server_policies](const identity::SvidInfo& info) {
              server_policies.SetIdentity(info.id.ToString());
              sink.Emit(EventKind::kIdentity, "",
                        absl::StrCat(info.id.ToString(), " ",
                                     info.serial_hex, " ", info.not_after));
            },
            [&sink](const std::string& err) {
              sink.Emit(EventKind::kError, "", err);
              Log(internal::kWarning, err);
            });
    if (!k.ok()) {
      sink.Emit(EventKind::kError, "", k.status().message());
      Log(internal::kError,
          absl::StrCat("mesh agent: ", k.status().message()));
      return 3;
    }
    keeper = std::move(*k);
  }
  server_policies.SetConfig(*snap);
  announce(**snap, initial.text);


  // After each EDS ACK: the explanation of what that client now does, for
  // every service it uses (Mesh::Explain).
  sink.set_explain([&sink, &publisher](const xds::Caller& caller,
                                       absl::string_view version,
                                       const std::vector<std::string>& names) {
    std::shared_ptr<const config::Snapshot> snap = publisher.Current();
    if (snap == nullptr || snap->ServingVersion() != version) return;
    for (const std::string& cluster : names) {
      const config::Service* s = snap->config->FindByName(cluster);
      if (s == nullptr) continue;
      const policy::Plan plan =
          xds::PlanFor(*snap->config, *s, caller, snap->health);
      // For the application's metrics and status page: the plan, and which
      // priority and locality each endpoint is in.
      std::string plan_text =
          absl::StrCat(s->hostname, "\n", plan.ToJson(), "\n");
      for (size_t p = 0; p < plan.priorities.size(); ++p) {
        uint64_t total = 0;
        for (const policy::LocalityGroup& g : plan.priorities[p].localities) {
          total += g.weight;
        }
        for (const policy::LocalityGroup& g : plan.priorities[p].localities) {
          const std::string share = absl::StrFormat(
              "%.1f", total == 0 ? 0.0 : 100.0 * g.weight / total);
          for (const policy::EndpointRef& e : g.endpoints) {
            const bool v6 = e.address.find(':') != std::string::npos;
            absl::StrAppend(&plan_text, v6 ? "[" : "", e.address,
                            v6 ? "]" : "", ":", e.port, " ", p, " ", share,
                            " ", g.locality.ToString(), "\n");
          }
        }
      }
      for (const std::string& x : plan.excluded) {
        absl::StrAppend(&plan_text, "excluded ", x, "\n");
      }
      sink.Emit(EventKind::kPlan, version, plan_text);
      // After the plan: once Mesh::Explain answers, the plan is in place.
      sink.Emit(EventKind::kExplain, version,
                absl::StrCat(s->hostname, "\n", plan.Explain()));
    }
  });
  // The explain worker uses the publisher: stopped before it goes.
  struct StopExplaining {
    EventSink* sink;
    ~StopExplaining() { sink->StopExplaining(); }
  } stop_explaining{&sink};
  publisher.SetConfig(*snap);
  checker.Update((*snap)->config);
  unlink(flags.socket.c_str());  // A stale socket from a previous agent.
  // Load reports: per-locality call counts, for the application's metrics.
  xds::LrsServer lrs([&sink, &publisher](
                         const xds::Caller&,
                         const envoy::config::endpoint::v3::ClusterStats& cs) {
    std::shared_ptr<const config::Snapshot> snap = publisher.Current();
    if (snap == nullptr) return;
    // "NAMESPACE/NAME" or "NAMESPACE/NAME/SUBSET".
    const std::string& cluster = cs.cluster_name();
    const config::Service* s =
        snap->config->FindByName(cluster.substr(0, cluster.find('/', cluster.find('/') + 1)));
    if (s == nullptr) return;
    std::string text = s->hostname + "\n";
    bool any = false;
    for (const auto& l : cs.upstream_locality_stats()) {
      if (l.total_issued_requests() == 0 && l.total_successful_requests() == 0 &&
          l.total_error_requests() == 0) {
        continue;
      }
      any = true;
      absl::StrAppend(&text, l.locality().region(), "/", l.locality().zone(), "/",
                      l.locality().sub_zone(), " ", l.total_successful_requests(),
                      " ", l.total_error_requests(), " ",
                      l.total_issued_requests(), "\n");
    }
    // Calls gRPC failed without sending them: the circuit breaker's
    // (circuitBreaker.maxRequests; gRPC counts them as uncategorized drops).
    if (cs.total_dropped_requests() > 0) {
      any = true;
      absl::StrAppend(&text, "dropped ", cs.total_dropped_requests(), "\n");
    }
    if (any) sink.Emit(EventKind::kLoad, "", text);
  });
  // Registration (--register): each address the application's mesh
  // servers serve on (their listener ACKed), as an instance of its service.
  internal::Mutex registered_mu;
  std::unique_ptr<Registrar> registrar;  // Reset under registered_mu.
  if (flags.register_instances) {
    Registrar::Options ro;
    ro.etcd = flags.etcd;
    ro.prefix = flags.etcd_prefix;
    ro.ttl = absl::Seconds(flags.register_ttl_s);
    ro.identity = server_policies.identity();
    absl::StatusOr<std::unique_ptr<Registrar>> r = Registrar::Start(
        ro, [&sink](const std::vector<Registrar::State>& states) {
          sink.Emit(EventKind::kRegistration, "", EncodeRegistrations(states));
        });
    if (!r.ok()) {
      sink.Emit(EventKind::kRejected, "", r.status().message());
      Log(internal::kError, absl::StrCat("mesh agent: ", r.status().message()));
      return 2;
    }
    registrar = std::move(*r);
  }
  // What registering each listening address means: the instance, or why
  // it cannot be registered. Decided when the server first asks for its
  // listener, so that its policy counts the registration from the start.
  struct Decision {
    Registrar::Instance instance;
    std::string why;  // Not registered, because.
    bool done = false;  // Given to the registrar.
  };
  std::map<std::string, Decision> decisions ABSL_GUARDED_BY(registered_mu);
  auto decide = [&](const xds::Caller& caller, const std::string& a) {
    const std::shared_ptr<const config::Snapshot> snap = publisher.Current();
    Decision d;
    const config::Service* s =
        caller.service.empty() ? nullptr
                               : snap->config->FindByName(caller.service);
    std::string ip;
    uint32_t port = 0;
    const std::string id = server_policies.identity();
    if (caller.service.empty()) {
      d.why = "MeshOptions::service_name is empty: it names the service "
              "this server registers as";
    } else if (s == nullptr) {
      d.why = absl::StrCat("service ", caller.service,
                           " (MeshOptions::service_name) is not in the "
                           "config; registration adds instances, never "
                           "services");
    } else if (!id.empty() && s->Identity(snap->config->trust_domain) != id) {
      d.why = absl::StrCat("this server's SVID is ", id, " but ",
                           caller.service, "'s servers must be ",
                           s->Identity(snap->config->trust_domain));
    } else if (!policy::SplitAddress(a, &ip, &port)) {
      d.why = absl::StrCat(a, " is not IP:PORT");
    } else if (caller.locality.region.empty()) {
      d.why = "registration needs this workload's locality "
              "(MeshOptions::locality, at least the region)";
    }
    if (d.why.empty() && (ip == "0.0.0.0" || ip == "::")) {
      if (flags.advertise.empty()) {
        d.why = absl::StrCat(
            a, " is a wildcard address: give the address clients should "
               "use (MeshOptions::registration.advertise_address)");
      } else if (!policy::IsLocalAddress(flags.advertise)) {
        d.why = absl::StrCat("the advertise address ", flags.advertise,
                             " is not an address of this host");
      } else {
        ip = flags.advertise;
      }
    }
    if (d.why.empty()) {
      d.instance.listen = a;
      d.instance.service = absl::StrCat(s->namespace_name, "/", s->name);
      d.instance.endpoint.address = ip;
      d.instance.endpoint.port = port;
      d.instance.endpoint.locality = caller.locality;
      d.instance.endpoint.labels = caller.labels;
    }
    return d;
  };
  sink.set_on_server_listeners([&](const xds::Caller& caller,
                                   const std::vector<std::string>& addresses) {
    {
      internal::MutexLock lock(&registered_mu);
      for (const std::string& a : addresses) {
        if (registrar == nullptr || decisions.count(a) > 0) continue;
        Decision d = decide(caller, a);
        if (d.why.empty()) {
          server_policies.SetRegistered(a, d.instance.service);
        }
        decisions.emplace(a, std::move(d));
      }
    }
    server_policies.SetListeners(caller, addresses);
  });
  // Registered once the server has its listener (it serves).
  sink.set_on_server_listeners_acked([&](const xds::Caller&,
                                         const std::vector<std::string>&
                                             addresses) {
    internal::MutexLock lock(&registered_mu);
    if (registrar == nullptr) return;
    for (const std::string& a : addresses) {
      auto it = decisions.find(a);
      if (it == decisions.end() || it->second.done) continue;
      it->second.done = true;
      const Decision& d = it->second;
      if (!d.why.empty()) {
        Log(internal::kError, absl::StrCat("mesh agent: not registering ", a,
                                           ": ", d.why));
        registrar->Refuse(a, d.why);
        continue;
      }
      registrar->Add(d.instance);
      Log(internal::kInfo,
          absl::StrCat("mesh agent: registering ", a, " as ",
                       d.instance.service, " (", d.instance.endpoint.address,
                       ":", d.instance.endpoint.port, ")"));
    }
  });

  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + flags.socket,
                           grpc::InsecureServerCredentials());
  builder.RegisterService(&ads);
  builder.RegisterService(&lrs);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    const std::string msg =
        absl::StrCat("cannot serve ADS on unix:", flags.socket);
    sink.Emit(EventKind::kError, "", msg);
    Log(internal::kError, "mesh agent: " + msg);
    return 4;
  }

  (*sources)->Begin();
  sink.Emit(EventKind::kReady, (*snap)->version, flags.socket);

  const bool keep_identity = WaitForEnd(flags.lifeline_fd, [&](char c) {
    if (registrar == nullptr) return;
    switch (c) {
      case kServing:
        registrar->SetHealth(config::Health::kHealthy);
        break;
      case kNotServing:
        registrar->SetHealth(config::Health::kUnhealthy);
        break;
      case kDraining:
        registrar->SetHealth(config::Health::kDraining);
        break;
      case kDeregister:
        registrar->Deregister();
        break;
    }
  });
  {
    internal::MutexLock lock(&registered_mu);
    registrar.reset();  // Revokes the lease: the instances go now.
  }

  sources->reset();
  keeper.reset();
  if (flags.lifeline_fd >= 0 && !flags.identity_dir.empty() &&
      !keep_identity) {
    // The application is gone: its copies of the identity (the private key
    // among them) go too. (If it only destroyed its Mesh, it removes them
    // when it exits.)
    identity::Keeper::RemoveFiles(flags.identity_dir);
  }
  ads.Stop();
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(500));
  unlink(flags.socket.c_str());
  if (flags.lifeline_fd >= 0) {
    // The application made this private directory for us; if it died
    // without cleaning up (SIGKILL), nobody else will. rmdir only removes
    // it when empty.
    const size_t slash = flags.socket.rfind('/');
    if (slash != std::string::npos && slash > 0) {
      rmdir(flags.socket.substr(0, slash).c_str());
    }
  }
  return 0;
}

}  // namespace agent
}  // namespace mesh
