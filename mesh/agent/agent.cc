#include "mesh/agent/agent.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "mesh/common/sync.h"
#include "mesh/agent/events.h"
#include "mesh/common/log.h"
#include "mesh/config/snapshot.h"
#include "mesh/health/health_checker.h"
#include "mesh/identity/keeper.h"
#include "mesh/identity/tls.h"
#include "mesh/policy/authorization.h"
#include "mesh/source/file_watcher.h"
#include "mesh/source/last_good.h"
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
        value("--state-dir=", &f->state_dir)) {
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
  if (f->config.empty() || f->socket.empty()) {
    *err = "--config=PATH and --socket=PATH are required";
    return false;
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
class EventSink final : public xds::AdsServer::Observer {
 public:
  explicit EventSink(int fd) : fd_(fd) {}

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

  void OnAck(const xds::Caller& caller, absl::string_view type_url,
             absl::string_view version,
             const std::vector<std::string>& names) override {
    if (type_url == xds::kEndpointType && explain_) {
      explain_(caller, version, names);
    }
  }

  // Called on each EDS ACK with the clusters the client uses.
  using ExplainFn = std::function<void(const xds::Caller&, absl::string_view,
                                       const std::vector<std::string>&)>;
  void set_explain(ExplainFn fn) { explain_ = std::move(fn); }
  void OnSynced(const xds::Caller&, absl::string_view version) override {
    Emit(EventKind::kSynced, version, "");
  }
  void OnNack(const xds::Caller&, absl::string_view type_url,
              absl::string_view version, absl::string_view message) override {
    Emit(EventKind::kNack, version,
         absl::StrCat(xds::TypeName(type_url), ": ", message));
  }

 private:
  const int fd_;
  internal::Mutex mu_;
  ExplainFn explain_;  // Set before the server starts.
};

// Blocks until the lifeline reaches EOF, or (without one) until SIGTERM or
// SIGINT arrives.
// Returns whether the application asked, before closing the lifeline, to
// keep the identity files (kKeepIdentity: it lives on, and gRPC in it still
// reads them).
bool WaitForEnd(int lifeline_fd) {
  bool keep = false;
  if (lifeline_fd >= 0) {
    while (true) {
      struct pollfd p = {lifeline_fd, POLLIN, 0};
      int r = poll(&p, 1, -1);
      if (r < 0 && errno == EINTR) continue;
      char c;
      if (r < 0 || read(lifeline_fd, &c, 1) <= 0) return keep;
      keep = keep || c == kKeepIdentity;
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

  absl::StatusOr<std::string> data =
      config::ReadFileToString(flags.config, config::kMaxConfigBytes);
  absl::StatusOr<std::shared_ptr<const config::Snapshot>> snap =
      data.ok() ? config::MakeSnapshot(*data, flags.config)
                : absl::StatusOr<std::shared_ptr<const config::Snapshot>>(
                      data.status());
  // What the file watcher has already seen (not reported again).
  std::string watched = data.ok() ? *data : "";
  bool stale = false;
  if (!snap.ok() && !flags.state_dir.empty()) {
    // Start from the last config that was applied, and say so.
    absl::StatusOr<source::LastGood> lg = source::LoadLastGood(flags.state_dir);
    absl::StatusOr<std::shared_ptr<const config::Snapshot>> old =
        lg.ok() ? config::MakeSnapshot(lg->text, source::LastGoodPath(
                                                     flags.state_dir))
                : absl::StatusOr<std::shared_ptr<const config::Snapshot>>(
                      lg.status());
    if (old.ok()) {
      const std::string why = absl::StrCat(
          "the config source failed at start:\n", snap.status().message());
      Log(internal::kWarning,
          absl::StrCat("mesh agent: STALE: serving the last-known-good "
                       "config (version ", (*old)->version, ", saved ",
                       absl::FormatTime(lg->saved), ") because ", why));
      sink.Emit(EventKind::kStale, (*old)->version,
                absl::StrCat(absl::ToUnixSeconds(lg->saved), "\n", why));
      snap = std::move(old);
      data = lg->text;
      stale = true;
    } else if (lg.status().code() != absl::StatusCode::kNotFound) {
      // A corrupt copy is no fallback; say so with the source's error.
      snap = absl::Status(snap.status().code(),
                          absl::StrCat(snap.status().message(), "\n",
                                       old.status().message()));
    }
  }
  if (!snap.ok()) {
    sink.Emit(EventKind::kRejected, "", snap.status().message());
    Log(internal::kError, absl::StrCat("mesh agent: config rejected:\n",
                                       snap.status().message()));
    return 3;
  }
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
  if (!stale) save_last_good(*data, (*snap)->version);

  // The application's identity: checked and in place before it is ready.
  std::unique_ptr<identity::Keeper> keeper;
  if (!flags.identity_dir.empty()) {
    absl::StatusOr<std::unique_ptr<identity::Keeper>> k =
        identity::Keeper::Start(
            flags.identity, (*snap)->config->trust_domain,
            flags.identity_dir,
            [&sink](const identity::SvidInfo& info) {
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
  // What the application needs to know of each config it runs: its
  // authorization policy, and the text (for its admin endpoint).
  auto announce = [&sink, &flags](const config::Snapshot& s,
                                  const std::string& text) {
    sink.Emit(EventKind::kAuthz, s.version,
              policy::Authorizer::ForService(*s.config, flags.service)
                  .Encode());
    sink.Emit(EventKind::kConfig, s.version, text);
  };
  announce(**snap, *data);

  xds::AdsServer ads(&sink);
  Publisher publisher(&ads, &sink);
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
  publisher.SetConfig(*snap);
  health::HealthChecker checker(
      [&publisher](const config::HealthOverrides& failing,
                   const std::string& change) {
        publisher.SetFailing(failing, change);
      },
      // With an identity, health checks are mTLS calls like any other.
      keeper == nullptr ? nullptr
                        : identity::MtlsCredentialsFactory(flags.identity_dir));
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
    if (any) sink.Emit(EventKind::kLoad, "", text);
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

  std::string current_version = (*snap)->version;
  absl::StatusOr<std::unique_ptr<source::FileWatcher>> watcher =
      source::FileWatcher::Start(
          flags.config, watched,
          [&](absl::StatusOr<std::string> contents) {
            if (!contents.ok()) {
              sink.Emit(EventKind::kError, current_version,
                        contents.status().message());
              Log(internal::kWarning,
                  absl::StrCat("config source: ", contents.status().message(),
                               "; keeping version ", current_version));
              return;
            }
            auto next = config::MakeSnapshot(*contents, flags.config);
            if (!next.ok()) {
              sink.Emit(EventKind::kRejected, current_version,
                        next.status().message());
              Log(internal::kWarning,
                  absl::StrCat("config rejected, keeping version ",
                               current_version, ":\n",
                               next.status().message()));
              return;
            }
            current_version = (*next)->version;
            announce(**next, *contents);
            publisher.SetConfig(*next);
            checker.Update((*next)->config);
            save_last_good(*contents, current_version);
            if (stale) {
              stale = false;
              sink.Emit(EventKind::kFresh, current_version, flags.config);
              Log(internal::kInfo,
                  "mesh agent: the config source answered; no longer stale");
            }
            sink.Emit(EventKind::kApplied, current_version, flags.config);
            Log(internal::kInfo,
                absl::StrCat("config version ", current_version, " applied"));
          });
  if (!watcher.ok()) {
    sink.Emit(EventKind::kError, "", watcher.status().message());
    Log(internal::kError, absl::StrCat("mesh agent: ",
                                       watcher.status().message()));
    return 4;
  }
  sink.Emit(EventKind::kReady, (*snap)->version, flags.socket);

  const bool keep_identity = WaitForEnd(flags.lifeline_fd);

  watcher->reset();
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
