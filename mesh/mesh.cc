// The Mesh object: spawns and supervises the agent (the control plane
// process), sets gRPC's xDS bootstrap to point at it, and creates channels
// and server builders. See mesh.h for the contract and
// docs/architecture.md for why the control plane is a child process.

#include "mesh/mesh.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <deque>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include <grpc/grpc.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/auth_metadata_processor.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "mesh/common/sync.h"
#include "mesh/admin.h"
#include "mesh/agent/agent.h"
#include "mesh/agent/events.h"
#include "mesh/agent/registrar.h"
#include "mesh/common/json.h"
#include "mesh/common/log.h"
#include "mesh/config/config.h"
#include "mesh/identity/keeper.h"
#include "mesh/policy/authorization.h"
#include "mesh/telemetry/admin_server.h"
#include "mesh/telemetry/call_metrics.h"
#include "mesh/xds/names.h"

extern char** environ;

namespace mesh {

namespace {

using internal::Log;

std::atomic<bool> g_mesh_alive{false};

// gRPC reads the xDS bootstrap once per process and keeps its xDS client
// (and so the socket path and node in that bootstrap) after the Mesh that
// set it is gone. A later Mesh therefore reuses the first one's private
// directory, and must present the same node. Guarded by g_mesh_alive's
// compare-exchange: only one Create runs at a time.
std::string* g_runtime_dir = nullptr;
std::string* g_bootstrap = nullptr;

constexpr char kBootstrapEnv[] = "GRPC_XDS_BOOTSTRAP_CONFIG";
constexpr char kBootstrapFileEnv[] = "GRPC_XDS_BOOTSTRAP";
// Marks a bootstrap as written by mesh in process PID (see CheckBootstrap).
constexpr char kOwnerKey[] = "\"mesh_owner_pid\":\"";

using internal::JsonString;

// gRPC reads the bootstrap once per process and child processes inherit the
// environment. A bootstrap written by mesh in *another* process was
// inherited (our parent uses mesh too) and is replaced; anything else
// belongs to someone else and is left alone.
absl::Status CheckBootstrap() {
  if (getenv(kBootstrapFileEnv) != nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        kBootstrapFileEnv, " is set (", getenv(kBootstrapFileEnv),
        "): gRPC's xDS bootstrap belongs to someone else in this process; "
        "unset it to use mesh"));
  }
  const char* existing = getenv(kBootstrapEnv);
  if (existing == nullptr) return absl::OkStatus();
  const std::string mine = absl::StrCat(kOwnerKey, getpid(), "\"");
  if (absl::StrContains(existing, kOwnerKey) &&
      !absl::StrContains(existing, mine)) {
    return absl::OkStatus();  // Inherited from a parent mesh process.
  }
  return absl::FailedPreconditionError(absl::StrCat(
      kBootstrapEnv, " is already set: gRPC's xDS bootstrap belongs to "
      "someone else in this process; unset it to use mesh"));
}

// Where the agent keeps the checked identity files (identity/keeper.h).
std::string IdentityDir(const std::string& socket) {
  return socket.substr(0, socket.rfind('/')) + "/identity";
}

std::string BootstrapJson(const MeshOptions& o, const std::string& socket) {
  char host[256] = "unknown";
  gethostname(host, sizeof(host) - 1);
  const std::string id = absl::StrCat(
      o.service_name.empty() ? "client" : o.service_name, "~", host, "~",
      getpid());
  // Labels travel as node.metadata.labels (a JSON object of strings).
  std::string labels;
  if (!o.labels.empty()) {
    std::vector<std::string> kv;
    for (const auto& [k, v] : o.labels) {
      kv.push_back(absl::StrCat(JsonString(k), ":", JsonString(v)));
    }
    labels = absl::StrCat(",\"labels\":{", absl::StrJoin(kv, ","), "}");
  }
  // mTLS: the certificate providers that the TLS contexts of our clusters
  // and server listeners name. gRPC re-reads the files every second.
  std::string providers;
  std::string mtls;
  if (!o.plaintext) {
    const std::string d = IdentityDir(socket);
    providers = absl::StrCat(
        ",\"certificate_providers\":{",
        JsonString(xds::kIdentityProviderInstance),
        ":{\"plugin_name\":\"file_watcher\",\"config\":{"
        "\"certificate_file\":", JsonString(identity::Keeper::CertPath(d)),
        ",\"private_key_file\":", JsonString(identity::Keeper::KeyPath(d)),
        ",\"refresh_interval\":\"1s\"}},",
        JsonString(xds::kRootsProviderInstance),
        ":{\"plugin_name\":\"file_watcher\",\"config\":{"
        "\"ca_certificate_file\":",
        JsonString(identity::Keeper::BundlePath(d)),
        ",\"refresh_interval\":\"1s\"}}}");
    mtls = absl::StrCat(",", JsonString(xds::kMtlsMetadataKey), ":\"true\"");
  }
  return absl::StrCat(
      "{\"xds_servers\":[{\"server_uri\":", JsonString("unix:" + socket),
      ",\"channel_creds\":[{\"type\":\"insecure\"}],"
      "\"server_features\":[\"xds_v3\"]}],"
      "\"node\":{\"id\":", JsonString(id),
      ",\"cluster\":", JsonString(o.service_name),
      ",\"locality\":{\"region\":", JsonString(o.locality.region),
      ",\"zone\":", JsonString(o.locality.zone),
      ",\"sub_zone\":", JsonString(o.locality.cluster), "},",
      "\"metadata\":{", kOwnerKey, getpid(), "\"", mtls, labels, "}},",
      "\"server_listener_resource_name_template\":"
      "\"grpc/server?xds.resource.listening_address=%s\"", providers, "}");
}

// Reads '\n'-terminated lines from a pipe.
class LineReader {
 public:
  explicit LineReader(int fd) : fd_(fd) {}
  // Returns false on EOF, error or timeout (`timed_out` tells which).
  bool Next(std::string* line, absl::Time deadline, bool* timed_out) {
    *timed_out = false;
    while (true) {
      const size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        *line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return true;
      }
      int timeout_ms = -1;
      if (deadline != absl::InfiniteFuture()) {
        timeout_ms = static_cast<int>(
            absl::ToInt64Milliseconds(deadline - absl::Now()));
        if (timeout_ms <= 0) {
          *timed_out = true;
          return false;
        }
      }
      struct pollfd p = {fd_, POLLIN, 0};
      const int r = poll(&p, 1, timeout_ms);
      if (r < 0 && errno == EINTR) continue;
      if (r == 0) continue;  // Re-checks the deadline.
      char chunk[4096];
      const ssize_t n = read(fd_, chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  int fd_;
  std::string buf_;
};

struct AgentProcess {
  pid_t pid = -1;
  int status_fd = -1;    // Read end: events from the agent.
  int lifeline_fd = -1;  // Write end: closing it stops the agent.
};

// MeshOptions::agent_path, else $MESH_AGENT_PATH, else this program.
std::string AgentPath(const MeshOptions& o) {
  if (!o.agent_path.empty()) return o.agent_path;
  const char* env = getenv("MESH_AGENT_PATH");
  if (env != nullptr && env[0] != '\0') return env;
  return "/proc/self/exe";
}

absl::StatusOr<AgentProcess> SpawnAgent(const MeshOptions& o,
                                        const std::string& socket) {
  int status[2], lifeline[2];
  if (pipe2(status, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", strerror(errno)));
  }
  if (pipe2(lifeline, O_CLOEXEC) != 0) {
    close(status[0]);
    close(status[1]);
    return absl::InternalError(absl::StrCat("pipe2: ", strerror(errno)));
  }
  const std::string exe = AgentPath(o);
  const bool self = exe == "/proc/self/exe";
  std::vector<std::string> args = {
      "mesh-agent", "--socket=" + socket, "--status-fd=3", "--lifeline-fd=4",
      "--service=" + o.service_name};
  if (!o.config_path.empty()) args.push_back("--config=" + o.config_path);
  if (!o.etcd.endpoints.empty()) {
    args.push_back("--etcd=" + absl::StrJoin(o.etcd.endpoints, ","));
    args.push_back("--etcd-prefix=" + o.etcd.prefix);
    const std::pair<const char*, const std::string*> more[] = {
        {"--etcd-ca=", &o.etcd.ca_file},
        {"--etcd-cert=", &o.etcd.cert_file},
        {"--etcd-key=", &o.etcd.key_file},
        {"--etcd-server-name=", &o.etcd.server_name},
        {"--etcd-user=", &o.etcd.username},
        {"--etcd-password-file=", &o.etcd.password_file}};
    for (const auto& [flag, value] : more) {
      if (!value->empty()) args.push_back(flag + *value);
    }
  }
  if (!o.dns_servers.empty()) {
    args.push_back("--dns-server=" + absl::StrJoin(o.dns_servers, ","));
  }
  if (!o.plaintext) {
    args.push_back("--cert=" + o.identity.certificate_path);
    args.push_back("--key=" + o.identity.private_key_path);
    for (const std::string& b : o.identity.trust_bundle_paths) {
      args.push_back("--bundle=" + b);
    }
    args.push_back("--identity-dir=" + IdentityDir(socket));
  }
  if (!o.state_dir.empty()) args.push_back("--state-dir=" + o.state_dir);
  if (o.registration.enabled) {
    args.push_back("--register");
    args.push_back(absl::StrCat("--register-ttl=",
                                absl::ToInt64Seconds(o.registration.ttl)));
    if (!o.registration.advertise_address.empty()) {
      args.push_back("--advertise=" + o.registration.advertise_address);
    }
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, absl::StrCat(agent::kAgentEnv, "="))) {
      env_store.push_back(*e);
    }
  }
  if (self) env_store.push_back(absl::StrCat(agent::kAgentEnv, "=1"));
  std::vector<char*> envp;
  for (std::string& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, status[1], 3);
  posix_spawn_file_actions_adddup2(&fa, lifeline[0], 4);
  pid_t pid = -1;
  const int rc =
      posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(status[1]);
  close(lifeline[0]);
  if (rc != 0) {
    close(status[0]);
    close(lifeline[1]);
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot start the mesh agent ", exe, ": ", strerror(rc)));
  }
  return AgentProcess{pid, status[0], lifeline[1]};
}

std::string DescribeExit(int wstatus) {
  if (WIFEXITED(wstatus)) return absl::StrCat("exit code ", WEXITSTATUS(wstatus));
  if (WIFSIGNALED(wstatus)) return absl::StrCat("signal ", WTERMSIG(wstatus));
  return "unknown status";
}

// Removes the identity files of this process's runtime directory (and the
// directory) when the process exits normally; registered at most once. A
// process that dies otherwise has them removed by its agent, which sees the
// lifeline close without kKeepIdentity.
void RemoveIdentityFiles() {
  if (g_runtime_dir == nullptr) return;
  identity::Keeper::RemoveFiles(*g_runtime_dir + "/identity");
  rmdir(g_runtime_dir->c_str());
}

void RemoveIdentityAtExit() {
  static std::atomic<bool> registered{false};
  if (!registered.exchange(true)) atexit(RemoveIdentityFiles);
}

class ServingLogger final
    : public grpc::XdsServerServingStatusNotifierInterface {
 public:
  void OnServingStatusUpdate(std::string uri,
                             ServingStatusUpdate update) override {
    if (update.status.ok()) {
      Log(internal::kInfo, absl::StrCat("mesh server ", uri, " serving"));
    } else {
      Log(internal::kWarning,
          absl::StrCat("mesh server ", uri, " not serving: ",
                       update.status.error_message()));
    }
  }
};

// Client-side fallback of the xDS credentials under mTLS: gRPC uses it only
// for a cluster without a TLS context, which our control plane never sends
// to an mTLS workload. Refuse rather than fall back to anything weaker.
class RefuseVerifier final
    : public grpc::experimental::ExternalCertificateVerifier {
 public:
  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest*,
              std::function<void(grpc::Status)>,
              grpc::Status* sync_status) override {
    *sync_status = grpc::Status(
        grpc::StatusCode::UNAUTHENTICATED,
        "mesh: the control plane sent no TLS settings for this destination; "
        "refusing to connect");
    return true;
  }
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*)
      override {}
};

// The addresses gRPC names the listeners of `uri` by ("10.0.0.1:50051",
// "[::]:50051"): what its xDS server asks the control plane for, and what
// the control plane reports the policies of. A name is resolved as gRPC
// resolves it ("localhost:50051" is 127.0.0.1 and ::1).
std::vector<std::string> ListenerAddresses(absl::string_view uri) {
  absl::ConsumePrefix(&uri, "dns:///");
  absl::ConsumePrefix(&uri, "dns:");
  if (absl::StartsWith(uri, "unix:")) return {std::string(uri)};
  const size_t colon = uri.rfind(':');
  if (colon == absl::string_view::npos) return {std::string(uri)};
  absl::string_view host = uri.substr(0, colon);
  const std::string port(uri.substr(colon + 1));
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  const std::string h(host);
  addrinfo hints = {};
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(h.empty() ? nullptr : h.c_str(), port.c_str(), &hints,
                  &res) != 0) {
    return {std::string(uri)};
  }
  std::vector<std::string> out;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = "";
    std::string name;
    if (a->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr,
                text, sizeof(text));
      name = absl::StrCat(text, ":", port);
    } else if (a->ai_family == AF_INET6) {
      inet_ntop(AF_INET6,
                &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr, text,
                sizeof(text));
      name = absl::StrCat("[", text, "]:", port);
    } else {
      continue;
    }
    if (std::find(out.begin(), out.end(), name) == out.end()) {
      out.push_back(std::move(name));
    }
  }
  freeaddrinfo(res);
  if (out.empty()) out.push_back(std::string(uri));
  return out;
}

class AuthzProcessor;

}  // namespace

class Mesh::Impl {
 public:
  explicit Impl(MeshOptions o)
      : options_(std::move(o)),
        metrics_([this](const std::string& dest, int from, int to,
                        const std::string& locality) {
          AddEvent(absl::StrCat(
              to > from ? "failover: " : "failback: ", dest,
              " now served by priority ", to, " (", locality,
              "), was priority ", from));
        }) {
    status_.mtls = !options_.plaintext;
    status_.security =
        status_.mtls ? "mTLS"
                     : "PLAINTEXT: traffic is neither encrypted nor "
                       "authenticated and every call is allowed (local "
                       "development only)";
    status_.authorization = status_.mtls
                                ? "no mesh server yet"
                                : "none (plaintext: every call allowed)";
  }

  ~Impl() {
    admin_.reset();  // No more requests reading our state.
    {
      // The application may still hold some of them; they keep their last
      // routing (Mesh's destructor says so).
      internal::MutexLock lock(&channels_mu_);
      channels_.clear();
    }
    bool identity_kept = false;
    {
      internal::MutexLock lock(&mu_);
      stopping_ = true;
      // Closing the lifeline tells the agent to stop; its EOF on the status
      // pipe then ends the supervisor. An agent that does not stop in 2 s is
      // killed.
      if (lifeline_fd_ >= 0) {
        if (!options_.plaintext && supervisor_.joinable()) {
          // gRPC in this process keeps its certificate providers (and so
          // reads the identity files every second) after the Mesh is gone:
          // the files stay until the process exits (RemoveIdentityAtExit).
          const char keep = agent::kKeepIdentity;
          if (write(lifeline_fd_, &keep, 1) == 1) {
            identity_kept = true;
            RemoveIdentityAtExit();
          }
        }
        close(lifeline_fd_);
      }
      lifeline_fd_ = -1;
      cv_.SignalAll();
    }
    {
      internal::MutexLock lock(&mu_);
      const absl::Time deadline = absl::Now() + absl::Seconds(2);
      while (!supervisor_done_ && supervisor_.joinable()) {
        if (cv_.WaitWithDeadline(&mu_, deadline)) break;
      }
      if (!supervisor_done_ && pid_ > 0) kill(pid_, SIGKILL);
    }
    if (supervisor_.joinable()) supervisor_.join();
    {
      internal::MutexLock lock(&mu_);
      if (status_fd_ >= 0) close(status_fd_);
      status_fd_ = -1;
    }
    if (!socket_.empty()) {
      unlink(socket_.c_str());  // If the agent was killed.
      if (!identity_kept) {  // A failed Create: nothing of it may remain.
        identity::Keeper::RemoveFiles(IdentityDir(socket_));
      }
    }
    if (!dir_.empty()) rmdir(dir_.c_str());  // Fails while identity files stay.
    const char* b = getenv(kBootstrapEnv);
    if (b != nullptr &&
        absl::StrContains(b, absl::StrCat(kOwnerKey, getpid(), "\""))) {
      unsetenv(kBootstrapEnv);
    }
  }

  absl::Status Start() {
    if (g_runtime_dir != nullptr) {
      // See g_runtime_dir: same path as the first Mesh of this process, and
      // the same node, checked before anything is created.
      if (*g_bootstrap != BootstrapJson(options_, *g_runtime_dir +
                                                      "/ads.sock")) {
        return absl::FailedPreconditionError(
            "gRPC keeps the xDS bootstrap of the first Mesh of a process: a "
            "later Mesh must use the same service_name, locality and "
            "labels");
      }
      dir_ = *g_runtime_dir;
      if (mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) {
        const std::string msg = absl::StrCat(
            "cannot re-create the private directory ", dir_, ": ",
            strerror(errno));
        dir_.clear();
        return absl::FailedPreconditionError(msg);
      }
    } else {
      std::string tmpl = options_.runtime_dir + "/mesh-XXXXXX";
      if (mkdtemp(tmpl.data()) == nullptr) {
        return absl::FailedPreconditionError(
            absl::StrCat("cannot create a private directory in ",
                         options_.runtime_dir, ": ", strerror(errno)));
      }
      dir_ = tmpl;  // mkdtemp makes it 0700.
    }
    socket_ = dir_ + "/ads.sock";
    if (socket_.size() >= 100) {
      return absl::InvalidArgumentError(absl::StrCat(
          "runtime_dir is too long for a unix socket path: ", socket_));
    }
    const std::string bootstrap = BootstrapJson(options_, socket_);
    if (!options_.plaintext &&
        mkdir(IdentityDir(socket_).c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create ", IdentityDir(socket_), ": ",
                       strerror(errno)));
    }
    if (options_.plaintext) Log(internal::kWarning, "mesh: " + status_.security);
    absl::StatusOr<AgentProcess> agent = SpawnAgent(options_, socket_);
    if (!agent.ok()) return agent.status();
    Adopt(*agent);
    // Wait for "ready" (or the reason it will not come).
    LineReader reader(agent->status_fd);
    const absl::Time deadline = absl::Now() + options_.startup_timeout;
    std::string line;
    bool timed_out = false;
    while (reader.Next(&line, deadline, &timed_out)) {
      absl::StatusOr<agent::Event> e = agent::DecodeEvent(line);
      if (!e.ok()) continue;
      Handle(*e);
      if (e->kind == agent::EventKind::kReady) {
        setenv(kBootstrapEnv, bootstrap.c_str(), 1);
        if (g_bootstrap == nullptr) {
          g_bootstrap = new std::string(bootstrap);
          g_runtime_dir = new std::string(dir_);
        }
        supervisor_ = std::thread([this, r = std::move(reader)]() mutable {
          Supervise(std::move(r));
        });
        return absl::OkStatus();
      }
      if (e->kind == agent::EventKind::kRejected ||
          e->kind == agent::EventKind::kError) {
        const bool missing = absl::StrContains(e->text, "No such file");
        Reap(/*wait=*/true);
        return missing ? absl::NotFoundError(e->text)
                       : absl::InvalidArgumentError(e->text);
      }
    }
    if (timed_out) {
      kill(agent->pid, SIGKILL);
      Reap(true);
      return absl::UnavailableError(absl::StrCat(
          "the mesh agent did not become ready within ",
          absl::FormatDuration(options_.startup_timeout)));
    }
    const int ws = Reap(true);
    return absl::UnavailableError(absl::StrCat(
        "the mesh agent (", AgentPath(options_),
        ") exited before it was ready (", DescribeExit(ws),
        "); its log is on stderr. If this program runs under a wrapper that "
        "replaces /proc/self/exe (e.g. valgrind), set MeshOptions::agent_path "
        "or MESH_AGENT_PATH to the mesh_agent binary"));
  }

  MeshStatus GetStatus() const {
    internal::MutexLock lock(&mu_);
    MeshStatus s = status_;
    s.calls_authorized = authorized_.load(std::memory_order_relaxed);
    return s;
  }

  absl::StatusOr<std::string> Explain(absl::string_view hostname) const {
    internal::MutexLock lock(&mu_);
    auto it = explain_.find(std::string(hostname));
    if (it == explain_.end()) {
      // "host:port" (a service's declared port) explains as "host".
      it = explain_.find(std::string(hostname.substr(0, hostname.rfind(':'))));
    }
    if (it == explain_.end()) {
      return absl::NotFoundError(absl::StrCat(
          "no routing for ", hostname,
          " yet: create a channel to it and make a call (or the hostname is "
          "not in the config)"));
    }
    return it->second;
  }

  bool WaitForStatus(const std::function<bool(const MeshStatus&)>& cond,
                     absl::Duration timeout) const {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      MeshStatus s;
      uint64_t gen;
      {
        internal::MutexLock lock(&mu_);
        s = status_;
        gen = generation_;
      }
      if (cond(s)) return true;  // Called without our lock held.
      internal::MutexLock lock(&mu_);
      while (generation_ == gen) {
        if (cv_.WaitWithDeadline(&mu_, deadline)) return false;
      }
    }
  }

  const MeshOptions& options() const { return options_; }
  const std::string& dir() const { return dir_; }
  ServingLogger* serving_logger() { return &serving_logger_; }
  std::string identity_dir() const { return IdentityDir(socket_); }
  telemetry::CallMetrics* metrics() { return &metrics_; }

  // The channels CreateChannel made, by hostname and arguments (see there).
  std::shared_ptr<grpc::Channel> CachedChannel(const std::string& key) {
    internal::MutexLock lock(&channels_mu_);
    auto it = channels_.find(key);
    return it == channels_.end() ? nullptr : it->second;
  }
  // The channel kept for `key`: `made`, or one another thread kept first.
  std::shared_ptr<grpc::Channel> KeepChannel(
      const std::string& key, std::shared_ptr<grpc::Channel> made) {
    internal::MutexLock lock(&channels_mu_);
    return channels_.emplace(key, std::move(made)).first->second;
  }

  absl::Status StartAdmin() {
    if (options_.admin_address.empty()) return absl::OkStatus();
    absl::StatusOr<std::unique_ptr<telemetry::AdminServer>> a =
        telemetry::AdminServer::Start(
            options_.admin_address, options_.admin_allow_remote,
            [this](const std::string& path, const std::string& query) {
              return Serve(path, query);
            });
    if (!a.ok()) return a.status();
    admin_ = std::move(*a);
    Log(internal::kInfo,
        absl::StrCat("mesh admin endpoint on ", admin_->address()));
    return absl::OkStatus();
  }
  std::string admin_address() const {
    return admin_ == nullptr ? "" : admin_->address();
  }

  std::string MetricsText() {
    return absl::StrCat(metrics_.Prometheus(),
                        internal::StatusPrometheus(View()));
  }

  // A consistent copy of everything the admin endpoint shows.
  internal::AdminView View() {
    const absl::Time now = absl::Now();
    std::map<std::string, telemetry::CallMetrics::Totals> totals =
        metrics_.Snapshot();
    internal::AdminView v;
    internal::MutexLock lock(&mu_);
    v.status = status_;
    v.status.calls_authorized = authorized_.load(std::memory_order_relaxed);
    v.config_path = options_.config_path;
    v.config_text = config_text_;
    v.config_time = config_time_;
    v.events.assign(events_.begin(), events_.end());
    // Traffic "now": the change since the oldest sample of the last 10 s.
    samples_.push_back({now, totals});
    while (samples_.size() > 1 && now - samples_.front().first > absl::Seconds(10)) {
      samples_.pop_front();
    }
    const auto& base = samples_.front();
    const bool have_base = samples_.size() > 1;
    std::set<std::string> names;
    for (const auto& [h, p] : plans_) names.insert(h);
    for (const auto& [h, t] : totals) names.insert(h);
    for (const std::string& h : names) {
      internal::DestinationView d;
      d.hostname = h;
      auto p = plans_.find(h);
      if (p != plans_.end()) {
        d.xds_version = p->second.version;
        d.plan_json = p->second.json;
        d.endpoints = p->second.endpoints;
        d.excluded = p->second.excluded;
      }
      d.calls = totals[h];
      d.recent = d.calls;
      d.recent_seconds = absl::ToDoubleSeconds(now - start_time_);
      auto b = base.second.find(h);
      if (have_base && b != base.second.end()) {
        d.recent_seconds = absl::ToDoubleSeconds(now - base.first);
        for (auto& [loc, c] : d.recent.by_locality) {
          auto old = b->second.by_locality.find(loc);
          if (old == b->second.by_locality.end()) continue;
          c.first -= old->second.first;
          c.second -= old->second.second;
        }
        d.recent.started -= b->second.started;
      }
      v.destinations.push_back(std::move(d));
    }
    return v;
  }

  telemetry::AdminServer::Response Serve(const std::string& path,
                                         const std::string& query) {
    constexpr char kJson[] = "application/json";
    if (path == "/metrics") {
      return {200, "text/plain; version=0.0.4; charset=utf-8", MetricsText()};
    }
    if (path == "/status" && query == "format=text") {
      return {200, "text/plain; charset=utf-8", internal::StatusText(View())};
    }
    if (path == "/status") return {200, kJson, internal::StatusJson(View())};
    if (path == "/clusters") {
      return {200, kJson, internal::ClustersJson(View())};
    }
    if (path == "/config") return {200, kJson, internal::ConfigJson(View())};
    if (path == "/" || path == "/index.html") {
      return {200, "text/html; charset=utf-8", internal::StatusPageHtml()};
    }
    return {404, "text/plain; charset=utf-8",
            "not found; try /, /metrics, /status, /status?format=text, "
            "/clusters, /config\n"};
  }

  // The authorization decision for one call to a mesh server (mTLS only)
  // listening on `addresses` (the listener names of one port: usually one;
  // empty if its credentials were never bound to a NewServerBuilder()
  // server): `caller` is the peer's SPIFFE ID ("" if none), `method` its
  // :path.
  grpc::Status Authorize(const std::vector<std::string>& addresses,
                         absl::string_view caller, absl::string_view method) {
    grpc::Status st = Decide(addresses, caller, method);
    if (st.ok()) {
      authorized_.fetch_add(1, std::memory_order_relaxed);
      return st;
    }
    internal::MutexLock lock(&mu_);
    ++status_.calls_denied;
    status_.last_denial = absl::StrCat(
        caller.empty() ? "(no SPIFFE ID)" : caller, " ", method);
    // Rate-limited: the first denial, then one line per 10 s with a count.
    const absl::Time now = absl::Now();
    if (now - last_denial_log_ >= absl::Seconds(10)) {
      Log(internal::kWarning,
          absl::StrCat("mesh: ", st.error_code() ==
                                     grpc::StatusCode::PERMISSION_DENIED
                                     ? "PERMISSION_DENIED "
                                     : "UNAVAILABLE ",
                       status_.last_denial, " (",
                       status_.calls_denied - denials_logged_,
                       " denial(s) since the last line): ",
                       st.error_message()));
      last_denial_log_ = now;
      denials_logged_ = status_.calls_denied;
    }
    ++generation_;
    cv_.SignalAll();
    return st;
  }

  // Sends a registration command (agent.h) to the agent; false if there is
  // no agent to send it to.
  bool Command(char c) {
    internal::MutexLock lock(&mu_);
    return lifeline_fd_ >= 0 && write(lifeline_fd_, &c, 1) == 1;
  }

  // Credentials made by ServerCredentials(), so that the server builder can
  // tell their processors which port they guard.
  void AddServerCredentials(const std::shared_ptr<grpc::ServerCredentials>& c,
                            std::shared_ptr<AuthzProcessor> p) {
    internal::MutexLock lock(&mu_);
    server_creds_.erase(
        std::remove_if(server_creds_.begin(), server_creds_.end(),
                       [](const auto& e) { return e.first.expired(); }),
        server_creds_.end());
    server_creds_.emplace_back(c, std::move(p));
  }
  std::shared_ptr<AuthzProcessor> ProcessorFor(
      const std::shared_ptr<grpc::ServerCredentials>& c) {
    internal::MutexLock lock(&mu_);
    for (const auto& [creds, p] : server_creds_) {
      if (creds.lock() == c) return p;
    }
    return nullptr;
  }
  // A mesh server listens on `addresses` (shown as waiting for their
  // policy until it arrives).
  void AddListening(const std::vector<std::string>& addresses) {
    internal::MutexLock lock(&mu_);
    listening_.insert(addresses.begin(), addresses.end());
    RefreshServersLocked();
    ++generation_;
    cv_.SignalAll();
  }

 private:
  grpc::Status Decide(const std::vector<std::string>& addresses,
                      absl::string_view caller, absl::string_view method) {
    if (addresses.empty()) {
      return grpc::Status(
          grpc::StatusCode::PERMISSION_DENIED,
          "mesh: this server's credentials were not used with a "
          "Mesh::NewServerBuilder() server, so the mesh cannot tell which "
          "service it serves; every call is denied");
    }
    internal::ReaderMutexLock lock(&authz_mu_);
    const policy::ServerPolicy* first = nullptr;
    for (const std::string& a : addresses) {
      auto it = server_policies_.find(a);
      if (it == server_policies_.end()) {
        return grpc::Status(
            grpc::StatusCode::UNAVAILABLE,
            absl::StrCat("mesh: the server on ", a,
                         " has not received its authorization policy from "
                         "the control plane yet"));
      }
      const policy::ServerPolicy& p = it->second;
      if (!p.problem.empty()) {
        return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                            absl::StrCat("mesh: the server on ", a,
                                         " denies every call: ", p.problem));
      }
      if (first != nullptr && first->service != p.service) {
        return grpc::Status(
            grpc::StatusCode::PERMISSION_DENIED,
            absl::StrCat("mesh: one ServerCredentials() object is used for "
                         "ports of different services (", first->service,
                         " on ", first->address, ", ", p.service, " on ",
                         p.address, "); call ServerCredentials() once per "
                         "port. Every call is denied"));
      }
      if (first == nullptr) first = &p;
    }
    // Health checks (grpc.health.v1) are open to any caller with a
    // certificate from the trust bundle, so that the mesh's health
    // checkers work whatever the service's policy; but only on a server
    // that provably serves its service (above).
    if (!caller.empty() && absl::StartsWith(method, "/grpc.health.v1.Health/")) {
      return grpc::Status::OK;
    }
    if (first->authorizer.Allowed(caller, method)) return grpc::Status::OK;
    return grpc::Status(
        grpc::StatusCode::PERMISSION_DENIED,
        absl::StrCat("mesh: caller ",
                     caller.empty() ? "(no SPIFFE ID)" : caller,
                     " may not call ", method, " of ", first->service));
  }

  // status_.servers and status_.authorization from the policies and the
  // listening addresses.
  void RefreshServersLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::set<std::string> addresses = listening_;
    std::map<std::string, policy::ServerPolicy> policies;
    {
      internal::ReaderMutexLock lock(&authz_mu_);
      policies = server_policies_;
    }
    for (const auto& [a, p] : policies) addresses.insert(a);
    status_.servers.clear();
    status_.servers_failing_closed = 0;
    std::vector<std::string> words;
    for (const std::string& a : addresses) {
      ServerStatus st;
      st.address = a;
      auto it = policies.find(a);
      if (it == policies.end()) {
        st.problem = "waiting for its policy from the control plane";
        st.policy = "deny every call (UNAVAILABLE) until it arrives";
      } else {
        st.service = it->second.service;
        st.problem = it->second.problem;
        st.enforcing = st.problem.empty();
        st.policy = st.enforcing ? it->second.authorizer.Describe()
                                 : "deny every call";
        if (!st.enforcing) ++status_.servers_failing_closed;
      }
      words.push_back(st.enforcing
                          ? absl::StrCat(a, " serves ", st.service, ": ",
                                         st.policy)
                          : absl::StrCat(a, ": DENIES EVERY CALL: ",
                                         st.problem));
      status_.servers.push_back(std::move(st));
    }
    if (!status_.mtls) {
      status_.authorization = "none (plaintext: every call allowed)";
    } else if (words.empty()) {
      status_.authorization = "no mesh server yet";
    } else {
      status_.authorization = absl::StrJoin(words, "; ");
    }
  }

  void Adopt(const AgentProcess& a) {
    internal::MutexLock lock(&mu_);
    pid_ = a.pid;
    status_fd_ = a.status_fd;
    lifeline_fd_ = a.lifeline_fd;
  }

  // Returns the wait status; -1 if there was no child.
  int Reap(bool wait) {
    pid_t pid;
    {
      internal::MutexLock lock(&mu_);
      pid = pid_;
    }
    if (pid <= 0) return -1;
    int ws = 0;
    while (waitpid(pid, &ws, wait ? 0 : WNOHANG) < 0 && errno == EINTR) {
    }
    internal::MutexLock lock(&mu_);
    pid_ = -1;
    return ws;
  }

  void Handle(const agent::Event& e) {
    if (e.kind == agent::EventKind::kLoad) {
      // Not under our lock: AddLoad may report a failover (AddEvent).
      HandleLoad(e.text);
      return;
    }
    internal::MutexLock lock(&mu_);
    switch (e.kind) {
      case agent::EventKind::kReady:
        status_.control_plane_running = true;
        status_.control_plane_pid = pid_;
        status_.config_version = e.version;
        ++status_.configs_applied;
        break;
      case agent::EventKind::kApplied:
        status_.config_version = e.version;
        ++status_.configs_applied;
        AddEventLocked(absl::StrCat("config version ", e.version, " applied"));
        break;
      case agent::EventKind::kLoad:  // Handled above.
        break;
      case agent::EventKind::kStale: {
        // "SAVED_UNIX_SECONDS\nWHY".
        const size_t nl = e.text.find('\n');
        int64_t saved = 0;
        (void)absl::SimpleAtoi(e.text.substr(0, nl), &saved);
        status_.config_stale = true;
        status_.last_good_saved = absl::FromUnixSeconds(saved);
        status_.config_stale_reason =
            nl == std::string::npos ? "" : e.text.substr(nl + 1);
        status_.last_error = absl::StrCat(
            "STALE: running the last-known-good config (version ", e.version,
            "): ", status_.config_stale_reason);
        status_.last_error_time = absl::Now();
        AddEventLocked(absl::StrCat(
            "config STALE: the source failed at start; serving the "
            "last-known-good version ", e.version));
        break;
      }
      case agent::EventKind::kSource: {
        absl::StatusOr<agent::SourceState> st =
            agent::DecodeSourceState(e.text);
        if (!st.ok()) break;
        auto time = [](int64_t ms) {
          return ms < 0 ? absl::InfinitePast() : absl::FromUnixMillis(ms);
        };
        SourceStatus s{st->name,    st->ok,
                       st->where,   st->version,
                       time(st->last_success_ms), st->last_error,
                       time(st->last_error_ms)};
        auto it = std::find_if(
            status_.sources.begin(), status_.sources.end(),
            [&](const SourceStatus& x) { return x.name == s.name; });
        if (it == status_.sources.end()) {
          status_.sources.push_back(std::move(s));
        } else {
          *it = std::move(s);
        }
        break;
      }
      case agent::EventKind::kFresh:
        status_.config_stale = false;
        status_.config_stale_reason.clear();
        AddEventLocked(absl::StrCat("config source answered again (version ",
                                    e.version, "); no longer stale"));
        break;
      case agent::EventKind::kConfig:
        // Only the admin endpoint shows it (at 10k endpoints it is ~1 MB).
        if (!options_.admin_address.empty()) {
          config_text_ = std::make_shared<const std::string>(e.text);
        }
        config_time_ = absl::Now();
        break;
      case agent::EventKind::kPlan: {
        // "HOSTNAME\nJSON\n" then "ADDR PRIO SHARE LOCALITY" or
        // "excluded TEXT" lines.
        std::vector<absl::string_view> lines =
            absl::StrSplit(e.text, '\n', absl::SkipEmpty());
        if (lines.size() < 2) break;
        const std::string hostname(lines[0]);
        PlanInfo& p = plans_[hostname];
        p.version = e.version;
        p.json = std::string(lines[1]);
        p.excluded.clear();
        auto plan = std::make_shared<telemetry::EndpointPlan>();
        for (size_t i = 2; i < lines.size(); ++i) {
          absl::string_view l = lines[i];
          if (absl::ConsumePrefix(&l, "excluded ")) {
            p.excluded.emplace_back(l);
            continue;
          }
          std::vector<absl::string_view> f =
              absl::StrSplit(l, absl::MaxSplits(' ', 3));
          int priority = 0;
          double share = 0;
          if (f.size() == 4 && absl::SimpleAtoi(f[1], &priority) &&
              absl::SimpleAtod(f[2], &share)) {
            plan->Add(f[0], priority, share, f[3]);
          }
        }
        p.endpoints = plan;
        metrics_.SetPlan(hostname, std::move(plan));
        break;
      }
      case agent::EventKind::kRejected:
        ++status_.configs_rejected;
        SetError(absl::StrCat("config rejected, keeping version ",
                              e.version.empty() ? "(none)" : e.version, ":\n",
                              e.text));
        AddEventLocked(absl::StrCat(
            "config rejected, keeping version ",
            e.version.empty() ? "(none)" : e.version, ": ",
            e.text.substr(0, e.text.find('\n')),
            e.text.find('\n') == std::string::npos ? "" : " (and more)"));
        break;
      case agent::EventKind::kError:
        SetError(e.text);
        break;
      case agent::EventKind::kSynced:
        status_.applied_version = e.version;
        break;
      case agent::EventKind::kExplain: {
        const size_t nl = e.text.find('\n');
        if (nl != std::string::npos) {
          explain_[e.text.substr(0, nl)] = absl::StrCat(
              "xDS version ", e.version, "\n", e.text.substr(nl + 1));
        }
        break;
      }
      case agent::EventKind::kHealth:
        ++status_.health_changes;
        status_.last_health_change = e.text;
        AddEventLocked(absl::StrCat("health check: ", e.text));
        break;
      case agent::EventKind::kIdentity: {
        // "ID SERIAL NOT_AFTER"
        std::vector<std::string> f = absl::StrSplit(e.text, ' ');
        int64_t not_after = 0;
        if (f.size() == 3 && absl::SimpleAtoi(f[2], &not_after)) {
          if (status_.identity_serial != f[1] && status_.identity_loads > 0) {
            AddEventLocked(absl::StrCat("identity ", f[0],
                                        " rotated: serial ",
                                        status_.identity_serial, " -> ", f[1]));
          }
          status_.identity = f[0];
          status_.identity_serial = f[1];
          status_.identity_expiry = absl::FromUnixSeconds(not_after);
          ++status_.identity_loads;
        }
        break;
      }
      case agent::EventKind::kAuthz: {
        absl::StatusOr<policy::ServerPolicy> p =
            policy::ServerPolicy::Decode(e.text);
        if (!p.ok()) {
          SetError(std::string(p.status().message()));
          break;
        }
        if (!p->problem.empty()) {
          // Loud: a server that denies everything is an outage.
          const std::string msg = absl::StrCat(
              "mesh server on ", p->address, " DENIES EVERY CALL",
              status_.mtls ? "" : " (it would, with mTLS; under plaintext "
                                  "every call is allowed)",
              ": ", p->problem);
          Log(internal::kError, "mesh: " + msg);
          SetError(msg);
          AddEventLocked(msg);
        } else {
          AddEventLocked(absl::StrCat("mesh server on ", p->address,
                                      " enforces the policy of ",
                                      p->service));
        }
        {
          internal::MutexLock lock(&authz_mu_);
          const std::string address = p->address;
          server_policies_[address] = *std::move(p);
        }
        RefreshServersLocked();
        break;
      }
      case agent::EventKind::kRegistration: {
        absl::StatusOr<std::vector<agent::Registrar::State>> states =
            agent::DecodeRegistrations(e.text);
        if (!states.ok()) {
          SetError(std::string(states.status().message()));
          break;
        }
        std::vector<RegistrationStatus> out;
        for (const agent::Registrar::State& st : *states) {
          out.push_back({st.listen, st.key, st.lease, st.ttl_left,
                         st.last_keepalive, st.registrations, st.state,
                         st.error});
        }
        status_.registrations = std::move(out);
        break;
      }
      case agent::EventKind::kInstances: {
        absl::StatusOr<agent::InstancesState> st =
            agent::DecodeInstances(e.text);
        if (!st.ok()) {
          SetError(std::string(st.status().message()));
          break;
        }
        std::vector<ServiceInstances> by_service;
        for (const agent::InstancesState::Service& v : st->services) {
          by_service.push_back({v.name, v.declared, v.endpoint_set, v.dns,
                                v.registered, v.held});
        }
        // A new problem is the last error (the agent logs each).
        for (const std::string& l : st->ignored) {
          if (std::find(status_.ignored_instances.begin(),
                        status_.ignored_instances.end(),
                        l) == status_.ignored_instances.end()) {
            SetError(absl::StrCat("registered instance ", l));
          }
        }
        for (const std::string& l : st->held) {
          if (std::find(status_.held_instances.begin(),
                        status_.held_instances.end(),
                        l) == status_.held_instances.end()) {
            SetError(absl::StrCat("mass-removal guard: holding ", l));
          }
        }
        status_.instances = std::move(by_service);
        status_.ignored_instances = std::move(st->ignored);
        status_.held_instances = std::move(st->held);
        break;
      }
      case agent::EventKind::kNack:
        ++status_.nacks;
        SetError(absl::StrCat("gRPC rejected xDS version ", e.version, ": ",
                              e.text));
        break;
    }
    ++generation_;
    cv_.SignalAll();
  }

  // A load report: "HOSTNAME\n" then "LOCALITY SUCCEEDED FAILED ISSUED"
  // lines.
  void HandleLoad(const std::string& text) {
    std::vector<std::string> lines =
        absl::StrSplit(text, '\n', absl::SkipEmpty());
    if (lines.empty()) return;
    std::vector<telemetry::CallMetrics::Load> load;
    uint64_t dropped = 0;
    for (size_t i = 1; i < lines.size(); ++i) {
      std::vector<std::string> f = absl::StrSplit(lines[i], ' ');
      if (f.size() == 2 && f[0] == "dropped") {
        (void)absl::SimpleAtoi(f[1], &dropped);
        continue;
      }
      telemetry::CallMetrics::Load l;
      if (f.size() == 4 && absl::SimpleAtoi(f[1], &l.succeeded) &&
          absl::SimpleAtoi(f[2], &l.failed) &&
          absl::SimpleAtoi(f[3], &l.issued)) {
        l.locality = f[0];
        load.push_back(std::move(l));
      }
    }
    metrics_.AddLoad(lines[0], load, dropped);
  }

  void AddEvent(std::string text) {
    internal::MutexLock lock(&mu_);
    AddEventLocked(std::move(text));
    ++generation_;
    cv_.SignalAll();
  }

  // Keeps the last 100 events (the admin endpoint shows them) and logs
  // them, at most 10 lines per 10 s: a flapping endpoint cannot flood the
  // application's log; what was held back is counted in the next line.
  void AddEventLocked(std::string text) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const absl::Time now = absl::Now();
    if (now - log_window_start_ >= absl::Seconds(10)) {
      log_window_start_ = now;
      log_lines_in_window_ = 0;
    }
    if (log_lines_in_window_ < 10) {
      ++log_lines_in_window_;
      Log(internal::kInfo,
          absl::StrCat("mesh event: ", text,
                       events_suppressed_ == 0
                           ? ""
                           : absl::StrCat(" (", events_suppressed_,
                                          " earlier events not logged)")));
      events_suppressed_ = 0;
    } else {
      ++events_suppressed_;
    }
    events_.push_back({now, std::move(text)});
    if (events_.size() > 100) events_.pop_front();
  }

  void SetError(std::string msg) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    status_.last_error = std::move(msg);
    status_.last_error_time = absl::Now();
  }

  // Reads the agent's events; restarts it (same socket, so gRPC's xDS client
  // reconnects by itself) if it dies. gRPC keeps the last resources while
  // the control plane is away, so calls keep flowing meanwhile.
  void Supervise(LineReader reader) {
    absl::Duration backoff = absl::Milliseconds(200);
    while (true) {
      std::string line;
      bool timed_out;
      while (reader.Next(&line, absl::InfiniteFuture(), &timed_out)) {
        absl::StatusOr<agent::Event> e = agent::DecodeEvent(line);
        if (e.ok()) {
          Handle(*e);
          if (e->kind == agent::EventKind::kReady) {
            backoff = absl::Milliseconds(200);
          }
        } else {
          Log(internal::kWarning, std::string(e.status().message()));
        }
      }
      const int ws = Reap(true);
      internal::MutexLock lock(&mu_);
      close(status_fd_);
      status_fd_ = -1;
      status_.control_plane_running = false;
      status_.control_plane_pid = -1;
      if (stopping_) break;
      ++status_.control_plane_restarts;
      SetError(absl::StrCat("the mesh agent exited (", DescribeExit(ws),
                            "); restarting it in ",
                            absl::FormatDuration(backoff)));
      Log(internal::kWarning, status_.last_error);
      ++generation_;
      cv_.SignalAll();
      const absl::Time retry_at = absl::Now() + backoff;
      while (!stopping_ && !cv_.WaitWithDeadline(&mu_, retry_at)) {
      }
      if (stopping_) break;
      close(lifeline_fd_);
      lifeline_fd_ = -1;
      mu_.Unlock();
      absl::StatusOr<AgentProcess> a = SpawnAgent(options_, socket_);
      mu_.Lock();
      backoff = std::min(backoff * 2, absl::Seconds(30));
      if (!a.ok()) {
        SetError(std::string(a.status().message()));
        continue;  // Loops: the reader sees EOF at once on the closed fd.
      }
      pid_ = a->pid;
      status_fd_ = a->status_fd;
      lifeline_fd_ = a->lifeline_fd;
      if (stopping_) {  // The destructor ran while we were spawning.
        close(lifeline_fd_);
        lifeline_fd_ = -1;
      }
      reader = LineReader(status_fd_);
    }
    internal::MutexLock lock(&mu_);
    supervisor_done_ = true;
    cv_.SignalAll();
  }

  struct PlanInfo {
    std::string version;
    std::string json;
    std::shared_ptr<const telemetry::EndpointPlan> endpoints;
    std::vector<std::string> excluded;
  };

  const MeshOptions options_;
  const absl::Time start_time_ = absl::Now();
  telemetry::CallMetrics metrics_;
  std::unique_ptr<telemetry::AdminServer> admin_;
  std::shared_ptr<const std::string> config_text_ ABSL_GUARDED_BY(mu_);
  absl::Time config_time_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::map<std::string, PlanInfo> plans_ ABSL_GUARDED_BY(mu_);
  std::deque<internal::Event> events_ ABSL_GUARDED_BY(mu_);
  absl::Time log_window_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int log_lines_in_window_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t events_suppressed_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<std::pair<absl::Time,
                       std::map<std::string, telemetry::CallMetrics::Totals>>>
      samples_ ABSL_GUARDED_BY(mu_);
  // Never held with another lock.
  internal::Mutex channels_mu_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_
      ABSL_GUARDED_BY(channels_mu_);
  // Taken after mu_ when both are held.
  internal::Mutex authz_mu_;
  // By listening address. An address without one denies every call.
  std::map<std::string, policy::ServerPolicy> server_policies_
      ABSL_GUARDED_BY(authz_mu_);
  std::set<std::string> listening_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::weak_ptr<grpc::ServerCredentials>,
                        std::shared_ptr<AuthzProcessor>>>
      server_creds_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> authorized_{0};
  absl::Time last_denial_log_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t denials_logged_ ABSL_GUARDED_BY(mu_) = 0;
  std::string dir_;
  std::string socket_;
  ServingLogger serving_logger_;
  std::thread supervisor_;

  mutable internal::Mutex mu_;
  mutable internal::CondVar cv_;
  MeshStatus status_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> explain_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool supervisor_done_ ABSL_GUARDED_BY(mu_) = false;
  pid_t pid_ ABSL_GUARDED_BY(mu_) = -1;
  // Written by Start (before the supervisor exists) and by the supervisor.
  int status_fd_ ABSL_GUARDED_BY(mu_) = -1;
  int lifeline_fd_ ABSL_GUARDED_BY(mu_) = -1;
};

absl::StatusOr<std::unique_ptr<Mesh>> Mesh::Create(MeshOptions options) {
  if (options.config_path.empty() && options.etcd.endpoints.empty()) {
    return absl::InvalidArgumentError(
        "MeshOptions needs a config source: config_path, etcd.endpoints, or "
        "both");
  }
  if (options.startup_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "MeshOptions.startup_timeout must be positive");
  }
  if (options.plaintext && !options.identity.empty()) {
    return absl::InvalidArgumentError(
        "MeshOptions: identity and plaintext exclude each other");
  }
  if (!options.plaintext) {
    const Identity& id = options.identity;
    if (id.certificate_path.empty() || id.private_key_path.empty() ||
        id.trust_bundle_paths.empty()) {
      return absl::InvalidArgumentError(
          "MeshOptions.identity needs certificate_path, private_key_path and "
          "trust_bundle_paths (mTLS); for local development without "
          "security set MeshOptions.plaintext = true");
    }
  }
  if (options.registration.enabled) {
    const absl::Duration ttl = options.registration.ttl;
    if (options.etcd.endpoints.empty()) {
      return absl::InvalidArgumentError(
          "MeshOptions.registration needs etcd (MeshOptions.etcd.endpoints): "
          "instances are registered there");
    }
    if (ttl < absl::Seconds(2) || ttl > absl::Minutes(5) ||
        ttl != absl::Seconds(absl::ToInt64Seconds(ttl))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MeshOptions.registration.ttl must be whole seconds from 2 s to 5 "
          "min, got ",
          absl::FormatDuration(ttl)));
    }
    std::string ip;
    uint32_t port;
    const std::string& adv = options.registration.advertise_address;
    if (!adv.empty() &&
        !policy::SplitAddress(
            adv.find(':') == std::string::npos ? adv + ":1"
                                               : "[" + adv + "]:1",
            &ip, &port)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MeshOptions.registration.advertise_address must be an IP "
          "address, got \"",
          adv, "\""));
    }
  }
  // The agent may run in another working directory later: make paths
  // absolute now.
  auto absolute = [](std::string* path) {
    if (path->empty() || (*path)[0] == '/') return;
    char cwd[4096];
    if (getcwd(cwd, sizeof(cwd)) != nullptr) {
      *path = absl::StrCat(cwd, "/", *path);
    }
  };
  absolute(&options.identity.certificate_path);
  absolute(&options.identity.private_key_path);
  for (std::string& b : options.identity.trust_bundle_paths) absolute(&b);
  absolute(&options.config_path);
  absolute(&options.state_dir);
  absolute(&options.etcd.ca_file);
  absolute(&options.etcd.cert_file);
  absolute(&options.etcd.key_file);
  absolute(&options.etcd.password_file);
  bool expected = false;
  if (!g_mesh_alive.compare_exchange_strong(expected, true)) {
    return absl::FailedPreconditionError(
        "a mesh::Mesh is already alive in this process (gRPC's xDS "
        "bootstrap is process-wide); share that one");
  }
  absl::Status st = CheckBootstrap();
  if (!st.ok()) {
    g_mesh_alive = false;
    return st;
  }
  auto impl = std::make_unique<Impl>(std::move(options));
  st = impl->Start();
  if (st.ok()) st = impl->StartAdmin();
  if (!st.ok()) {
    impl.reset();
    g_mesh_alive = false;
    return st;
  }
  return std::unique_ptr<Mesh>(new Mesh(std::move(impl)));
}

Mesh::Mesh(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Mesh::~Mesh() {
  impl_.reset();
  g_mesh_alive = false;
}

namespace {

// Runs the authorization policy on each call to a mesh server, before the
// handler: gRPC's server auth filter gives it the peer's auth context and
// the call's metadata (with :path). Inline, never blocking. One per
// ServerCredentials() object; MeshServerBuilder tells it which listening
// addresses it guards.
class AuthzProcessor final : public grpc::AuthMetadataProcessor {
 public:
  explicit AuthzProcessor(Mesh::Impl* impl) : impl_(impl) {}
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& md, grpc::AuthContext* ctx,
                       OutputMetadata*, OutputMetadata*) override;

  void Bind(const std::vector<std::string>& addresses) {
    internal::MutexLock lock(&mu_);
    for (const std::string& a : addresses) {
      if (std::find(addresses_.begin(), addresses_.end(), a) ==
          addresses_.end()) {
        addresses_.push_back(a);
      }
    }
  }

 private:
  Mesh::Impl* const impl_;
  internal::Mutex mu_;
  std::vector<std::string> addresses_ ABSL_GUARDED_BY(mu_);
};

// NewServerBuilder()'s builder: before the server starts, binds each
// port's mesh credentials to the addresses gRPC will listen on, so that
// each port enforces the policy of the service it serves.
class MeshServerBuilder final : public grpc::XdsServerBuilder {
 public:
  explicit MeshServerBuilder(Mesh::Impl* impl) : impl_(impl) {}
  std::unique_ptr<grpc::Server> BuildAndStart() override {
    for (const Port& port : ports()) {
      const std::vector<std::string> addresses = ListenerAddresses(port.addr);
      std::shared_ptr<AuthzProcessor> p = impl_->ProcessorFor(port.creds);
      if (p != nullptr) p->Bind(addresses);
      impl_->AddListening(addresses);
    }
    return grpc::XdsServerBuilder::BuildAndStart();
  }

 private:
  Mesh::Impl* const impl_;
};

}  // namespace

std::shared_ptr<grpc::ChannelCredentials> Mesh::ChannelCredentials() const {
  if (impl_->options().plaintext) {
    return grpc::XdsCredentials(grpc::InsecureChannelCredentials());
  }
  grpc::experimental::TlsChannelCredentialsOptions o;
  o.set_certificate_verifier(
      grpc::experimental::ExternalCertificateVerifier::Create<
          RefuseVerifier>());
  o.set_check_call_host(false);
  return grpc::XdsCredentials(grpc::experimental::TlsCredentials(o));
}

std::shared_ptr<grpc::ServerCredentials> Mesh::ServerCredentials() const {
  if (impl_->options().plaintext) {
    return grpc::XdsServerCredentials(grpc::InsecureServerCredentials());
  }
  // The fallback (used only for a listener without a TLS context, which
  // our control plane never sends to an mTLS workload) is mTLS too, with
  // the same files.
  const std::string d = impl_->identity_dir();
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          identity::Keeper::KeyPath(d), identity::Keeper::CertPath(d),
          identity::Keeper::BundlePath(d), 1);
  grpc::experimental::TlsServerCredentialsOptions o(provider);
  o.watch_root_certs();
  o.watch_identity_key_cert_pairs();
  o.set_cert_request_type(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  std::shared_ptr<grpc::ServerCredentials> creds =
      grpc::XdsServerCredentials(grpc::experimental::TlsServerCredentials(o));
  auto processor = std::make_shared<AuthzProcessor>(impl_.get());
  creds->SetAuthMetadataProcessor(processor);
  impl_->AddServerCredentials(creds, std::move(processor));
  return creds;
}

grpc::Status AuthzProcessor::Process(const InputMetadata& md,
                                     grpc::AuthContext* ctx, OutputMetadata*,
                                     OutputMetadata*) {
  absl::string_view method;
  auto path = md.find(":path");
  if (path != md.end()) method = {path->second.data(), path->second.size()};
  std::string caller;
  for (const grpc::string_ref& v : ctx->FindPropertyValues("peer_spiffe_id")) {
    caller.assign(v.data(), v.size());
  }
  internal::ReaderMutexLock lock(&mu_);
  return impl_->Authorize(addresses_, caller, method);
}

namespace {

// What identifies a channel's arguments, for sharing it: every argument's
// key, type and value, in key order; none if one is a pointer (a resource
// quota, a socket mutator: not comparable by value, so never shared).
std::optional<std::string> ChannelArgsKey(const grpc_channel_args& a) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < a.num_args; ++i) {
    const grpc_arg& arg = a.args[i];
    switch (arg.type) {
      case GRPC_ARG_INTEGER:
        parts.push_back(absl::StrCat(arg.key, "=i", arg.value.integer));
        break;
      case GRPC_ARG_STRING:
        parts.push_back(absl::StrCat(arg.key, "=s", arg.value.string));
        break;
      default:
        return std::nullopt;
    }
  }
  std::sort(parts.begin(), parts.end());
  return absl::StrJoin(parts, "\n");
}

}  // namespace

std::shared_ptr<grpc::Channel> Mesh::CreateChannel(
    absl::string_view hostname, const grpc::ChannelArguments& args) const {
  // One channel per hostname and arguments, kept for the Mesh's life: gRPC
  // 1.51's xDS client forgets a resource when its last watcher goes (a
  // channel destroyed) and, if a new channel watches it again before the
  // client's next request is sent, that request can look like a plain ACK,
  // so the control plane cannot know to send it again: the new channel then
  // waits for resources that never come (calls hung until their deadline;
  // tests/channel_sharing_test.cc). A kept channel keeps its resources
  // watched, and a call on a new stub needs no xDS exchange at all.
  grpc_channel_args c_args;
  args.SetChannelArgs(&c_args);
  std::optional<std::string> key = ChannelArgsKey(c_args);
  if (key.has_value()) {
    *key = absl::StrCat(hostname, "\n", *key);
    if (auto kept = impl_->CachedChannel(*key)) return kept;
  }
  // Defaults, each applied only if the caller did not set it. Reconnect
  // backoff: gRPC's default (1 s x 1.6^n up to 120 s) can keep a recovered
  // locality unused for minutes; we cap it at 1 s. gRPC gives a connection
  // attempt max(backoff, GRPC_ARG_MIN_RECONNECT_BACKOFF_MS) to reach READY
  // (TCP, TLS, the server's SETTINGS), so that argument is the minimum
  // connect timeout: a small value fails every slower connection forever.
  // 5 s (Envoy's default connect timeout; gRPC's is 20 s) gives up on a
  // black-holed endpoint sooner. Keepalive finds dead connections that
  // never close. No idle timeout: an idle channel drops its resolver, and
  // with it its xDS watches (the hazard above, on its next call).
  const std::pair<const char*, int> defaults[] = {
      {GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100},
      {GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 5000},
      {GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000},
      {GRPC_ARG_KEEPALIVE_TIME_MS, 10000},
      {GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000},
      {GRPC_ARG_CLIENT_IDLE_TIMEOUT_MS, INT_MAX},
  };
  grpc::ChannelArguments merged = args;
  for (const auto& [arg_key, value] : defaults) {
    bool set = false;
    for (size_t i = 0; i < c_args.num_args; ++i) {
      set = set || strcmp(c_args.args[i].key, arg_key) == 0;
    }
    if (!set) merged.SetInt(arg_key, value);
  }
  const std::string target = absl::StrCat("xds:///", hostname);
  bool metrics = impl_->options().call_metrics;
  for (size_t i = 0; i < c_args.num_args; ++i) {
    if (strcmp(c_args.args[i].key, kCallMetricsArg) == 0 &&
        c_args.args[i].type == GRPC_ARG_INTEGER) {
      metrics = c_args.args[i].value.integer != 0;
    }
  }
  std::shared_ptr<grpc::Channel> made;
  if (!metrics) {
    made = grpc::CreateCustomChannel(target, ChannelCredentials(), merged);
  } else {
    std::vector<std::unique_ptr<
        grpc::experimental::ClientInterceptorFactoryInterface>>
        interceptors;
    // Metrics are kept per hostname, without a declared port.
    interceptors.push_back(impl_->metrics()->InterceptorFor(
        std::string(hostname.substr(0, hostname.rfind(':')))));
    made = grpc::experimental::CreateCustomChannelWithInterceptors(
        target, ChannelCredentials(), merged, std::move(interceptors));
  }
  if (!key.has_value()) return made;
  return impl_->KeepChannel(*key, std::move(made));
}

std::unique_ptr<grpc::XdsServerBuilder> Mesh::NewServerBuilder() const {
  auto b = std::make_unique<MeshServerBuilder>(impl_.get());
  b->set_status_notifier(impl_->serving_logger());
  // Let mesh clients' keepalive pings (every 10 s) through.
  b->AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                        5000);
  return b;
}

MeshStatus Mesh::GetStatus() const { return impl_->GetStatus(); }

void Mesh::SetServing(bool serving) const {
  if (!impl_->options().registration.enabled) return;
  impl_->Command(serving ? agent::kServing : agent::kNotServing);
}

void Mesh::Drain(grpc::Server* server, const DrainOptions& options) const {
  const bool registered = impl_->options().registration.enabled;
  auto all_in = [](const MeshStatus& s, absl::string_view state) {
    for (const RegistrationStatus& r : s.registrations) {
      if (r.state != state && r.state != "refused") return false;
    }
    return true;
  };
  if (registered && impl_->Command(agent::kDraining)) {
    // The keys say DRAINING (bounded: etcd may be away), then clients get
    // the delay to stop picking this instance.
    WaitForStatus([&](const MeshStatus& s) { return all_in(s, "draining"); },
                  absl::Seconds(2));
    Log(internal::kInfo,
        absl::StrCat("mesh: draining; stopping the server in ",
                     absl::FormatDuration(options.delay)));
    absl::SleepFor(options.delay);  // The delay itself, by design.
  }
  if (server != nullptr) {
    server->Shutdown(absl::ToChronoTime(absl::Now() +
                                        options.shutdown_deadline));
  }
  if (registered && impl_->Command(agent::kDeregister)) {
    WaitForStatus(
        [&](const MeshStatus& s) { return all_in(s, "deregistered"); },
        absl::Seconds(2));
  }
}

absl::StatusOr<std::string> Mesh::Explain(absl::string_view hostname) const {
  return impl_->Explain(hostname);
}

bool Mesh::WaitForStatus(
    const std::function<bool(const MeshStatus&)>& condition,
    absl::Duration timeout) const {
  return impl_->WaitForStatus(condition, timeout);
}

const std::string& Mesh::runtime_dir() const { return impl_->dir(); }

std::string Mesh::admin_address() const { return impl_->admin_address(); }

std::string Mesh::MetricsText() const { return impl_->MetricsText(); }

absl::StatusOr<std::string> ServiceAt(const std::string& config_path,
                                      absl::string_view listen_address) {
  absl::StatusOr<std::shared_ptr<const config::MeshConfig>> c =
      config::LoadConfigFile(config_path);
  if (!c.ok()) return c.status();
  std::vector<std::string> addresses = ListenerAddresses(listen_address);
  const policy::ServerPolicy p = policy::PolicyForServer(
      **c, addresses.front(), {"", "", policy::IsLocalAddress});
  if (!p.service.empty()) return p.service;
  if (absl::StartsWith(p.problem, "several")) {
    return absl::InvalidArgumentError(p.problem);
  }
  return absl::NotFoundError(p.problem);
}

}  // namespace mesh
