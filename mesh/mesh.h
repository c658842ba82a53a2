// File: mesh/mesh.h
//
// The public API of mesh, a proxyless service mesh for gRPC C++.
//
// A Mesh is created once per process from MeshOptions. It starts the mesh
// agent (the embedded xDS control plane, in a child process: see
// docs/architecture.md), points gRPC's built-in xDS client at it, and hands
// out channels to mesh hostnames. Every call on such a channel goes straight
// to the closest healthy instance of the destination service: same cluster,
// then same zone, same region, then anywhere, failing over and back without
// losing calls.
//
//   absl::StatusOr<std::unique_ptr<mesh::Mesh>> m = mesh::Mesh::Create({
//       .config_path = "/etc/mesh/mesh.yaml",
//       .service_name = "frontend",
//       .locality = {"us-east", "us-east-a", "cluster-1"}});
//   if (!m.ok()) { /* m.status() says what is wrong and where */ }
//   auto stub = Greeter::NewStub((*m)->CreateChannel("greeter.mesh.internal"));
//
// Thread-safety: a Mesh is safe for concurrent use from multiple threads
// without external synchronization.

#ifndef MESH_MESH_H_
#define MESH_MESH_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/xds_server_builder.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace mesh {

// Where this workload runs. `cluster` is the finest level (an xDS sub_zone);
// an empty field is "unknown".
struct Locality {
  std::string region;
  std::string zone;
  std::string cluster;
};

// This workload's X.509-SVID and the CAs it trusts (PEM files). The files
// are watched: replace them (atomically, e.g. by rename) to rotate; new
// connections use the new material within about a second, running calls
// are not disturbed. See docs/security.md.
struct Identity {
  std::string certificate_path;  // The SVID chain, leaf first.
  std::string private_key_path;  // The leaf's private key.
  // Trust bundles: one file per trust domain (each may hold several CAs).
  std::vector<std::string> trust_bundle_paths;

  bool empty() const {
    return certificate_path.empty() && private_key_path.empty() &&
           trust_bundle_paths.empty();
  }
};

// etcd as a config source (docs/config.md, "etcd"): the config document at
// PREFIX/config (unless a config file is given) and endpoint sets under
// PREFIX/endpoints/, listed and then watched.
struct EtcdSource {
  // "IP:PORT" of each member, or one "NAME:PORT" resolving to them.
  // Empty = no etcd.
  std::vector<std::string> endpoints;
  std::string prefix = "/mesh/";  // Starts and ends with '/'.
  // TLS to etcd: the CA bundle (PEM) that signed the members' certificates,
  // and a client certificate and key for --client-cert-auth. "" = plaintext.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string server_name;  // If the certificates name another host.
  // etcd users: the name, and a file holding the password (kept out of
  // process arguments).
  std::string username;
  std::string password_file;
};

// Registration (docs/config.md, "Registration"): the mesh servers of this
// process write themselves to etcd as instances of their service, so that
// clients find them with no config edit, and leave before they stop
// (Mesh::Drain).
struct Registration {
  // Register each listening address of this process's mesh servers as an
  // instance of MeshOptions::service_name once it serves. Needs etcd,
  // service_name (a service of the config, whose identity is this
  // process's SVID) and locality. Default: false.
  bool enabled = false;
  // The etcd lease: an instance of a process that dies goes after this
  // long. Whole seconds, 2 s to 5 min; renewed every ttl/3. Default 10 s.
  absl::Duration ttl = absl::Seconds(10);
  // The IP clients should use for a server listening on a wildcard address
  // (0.0.0.0, ::); an address of this host. Default: "" (a wildcard
  // listener is then not registered, and status says why).
  std::string advertise_address;
};

struct MeshOptions {
  // Path of the mesh config file (YAML, schema mesh/v1, docs/config.md). It
  // is watched: edits take effect without a restart; an edit that fails
  // validation is not applied and the previous config stays in force.
  // REQUIRES: this, `etcd`, or both (then the file holds the config
  // document and etcd endpoint sets only).
  std::string config_path;

  // etcd as a config source. Default: none.
  EtcdSource etcd;

  // DNS servers for the services' `dns` entries, "IP" or "IP:PORT".
  // Default: empty = the system's resolver (/etc/resolv.conf).
  std::vector<std::string> dns_servers;

  // This workload's own service name (sent to the control plane as the xDS
  // node cluster). Default: "" (a client that serves nothing).
  std::string service_name;

  // This workload's locality: decides which instances are "closest".
  // Default: unknown (all instances are equally far).
  Locality locality;

  // This workload's labels (e.g. {"version": "v2"}), compared with endpoint
  // labels by a service's `localityPolicy.failoverPriority`, and matched by
  // routes' `match.source.labels` (routes only for some callers). Default:
  // none.
  std::map<std::string, std::string> labels;

  // A fresh private directory (mode 0700) for the control plane's unix
  // socket is created inside this one and removed on destruction.
  // Default: "/tmp".
  std::string runtime_dir = "/tmp";

  // Program to run as the mesh agent. Default: "" = the environment
  // variable MESH_AGENT_PATH if set, else this program itself
  // (/proc/self/exe), which mesh makes run the agent instead of main().
  // Set it to the path of `mesh_agent` where re-executing this program does
  // not work (under valgrind, /proc/self/exe is valgrind).
  std::string agent_path;

  // How long Create waits for the control plane to come up.
  // Default: 10 seconds.
  absl::Duration startup_timeout = absl::Seconds(10);

  // mTLS with this identity: every mesh channel and server authenticates
  // both ends with SPIFFE identities, and servers authorize callers by
  // identity (config `authorization`). Exactly one of `identity` and
  // `plaintext` must be given: there is no silent fallback to plaintext.
  Identity identity;

  // Plaintext, for local development only: no encryption, no
  // authentication, so no authorization either (every call is allowed).
  // GetStatus() and the log say so loudly. Default: false.
  bool plaintext = false;

  // The admin endpoint (docs/observability.md): "" = off (default);
  // "127.0.0.1:9901", "[::1]:9901" (port 0 picks one; see admin_address()),
  // or "unix:/run/app/mesh-admin.sock". It serves /metrics (Prometheus),
  // /status, /clusters, /config (JSON), /status?format=text and a live
  // status page at /. Never key material.
  std::string admin_address;
  // Where the last-known-good config is kept: every config applied is
  // saved to STATE_DIR/last-good.yaml (atomically, with a checksum). If the
  // config source cannot be read or fails validation when the mesh starts,
  // it starts from that copy instead, reports itself stale (MeshStatus::
  // config_stale, metric mesh_config_stale, /status) and switches to the
  // source's config as soon as the source gives a valid one. A corrupt copy
  // is ignored with a message. The directory is created (mode 0700) if
  // missing; give each workload on a machine its own. Default: "" (off).
  std::string state_dir;
  // Allow a non-loopback admin_address. Default: false (refused).
  bool admin_allow_remote = false;

  // Per-locality call attempt counts (from gRPC's own load reports) are
  // always on. This adds calls by status code and latency histograms per
  // destination and locality (a client interceptor; /metrics), at about 4 %
  // more instructions per call (docs/benchmarks.md). Default: false.
  bool call_metrics = false;

  // Registration in etcd (see Registration). Default: off.
  Registration registration;
};

// How Mesh::Drain stops a server.
struct DrainOptions {
  // After this process's instances are marked DRAINING, how long clients
  // get to stop picking them before the server stops taking calls.
  // Default: 1 s (docs/config.md, "Registration", says how it was chosen).
  absl::Duration delay = absl::Seconds(1);
  // How long calls already running get to finish (grpc::Server::Shutdown's
  // deadline). Default: 10 s.
  absl::Duration shutdown_deadline = absl::Seconds(10);
};

// One registered listening address (MeshOptions::registration).
struct RegistrationStatus {
  std::string listen;  // As gRPC listens: "0.0.0.0:50051".
  std::string key;     // The etcd key; "" until registered.
  int64_t lease = 0;   // The etcd lease (0: none at the moment).
  int64_t ttl_left = 0;  // Seconds, as of the last keep-alive.
  absl::Time last_keepalive = absl::InfinitePast();
  // Registrations on a new lease: 1 unless the lease was lost (etcd lost
  // it, or the process was paused past the TTL) and granted again.
  uint64_t registrations = 0;
  // "registering", "registered", "draining", "deregistered", "lost"
  // (re-registering), "refused" (see error).
  std::string state;
  std::string error;
};

// Where one service's endpoints come from, in the config in force.
struct ServiceInstances {
  std::string service;   // "namespace/name"
  int declared = 0;      // The config document's `endpoints`.
  int endpoint_set = 0;  // etcd endpoint sets (`meshctl put`).
  int dns = 0;           // DNS answers.
  int registered = 0;    // Instances registered by mesh servers.
  // Registered instances whose keys went but that the mass-removal guard
  // keeps (docs/config.md, "Registration").
  int held = 0;
};

// One config source's state ("file", "etcd", "dns").
struct SourceStatus {
  std::string name;
  bool ok = false;    // Its last attempt succeeded.
  std::string where;  // The path; the endpoints and prefix; the servers.
  // What it last gave: the file's version, etcd's "revision N", "N answers".
  std::string version;
  absl::Time last_success = absl::InfinitePast();
  std::string last_error;  // "" if none since the start.
  absl::Time last_error_time = absl::InfinitePast();
};

// One address this process's mesh servers listen on, and the policy it
// enforces (docs/security.md, "Which policy a server enforces").
struct ServerStatus {
  std::string address;  // As gRPC listens on it: "10.0.0.1:50051".
  // The service it serves ("namespace/name"): the one whose endpoint the
  // address is. "" if that cannot be told.
  std::string service;
  // True: it enforces `service`'s authorization. False: it denies every
  // call (fail closed) and `problem` says why, e.g. no service has an
  // endpoint at the address, the SVID is not the service's identity, or
  // the policy has not arrived yet.
  bool enforcing = false;
  std::string problem;
  std::string policy;  // In words.
};

// A point-in-time view of the mesh, for status pages and health checks.
struct MeshStatus {
  // Version of the config the control plane serves ("" before the first),
  // the first 12 hex digits of the SHA-256 of the config file.
  std::string config_version;
  // The xDS version this process's gRPC client has applied completely
  // (every listener, route, cluster and endpoint set it uses is at this
  // version): config_version, plus "+hN" after N health-check changes.
  // "" before the first.
  std::string applied_version;
  // The last problem (a rejected config, a NACK, a lost control plane), or
  // "" if none since the start. A later success does not clear it; see
  // last_error_time.
  std::string last_error;
  absl::Time last_error_time = absl::InfinitePast();
  uint64_t configs_applied = 0;   // Including the first.
  // True while the running config is the last-known-good copy
  // (MeshOptions::state_dir) because the source failed at start; why, and
  // when that copy was saved.
  bool config_stale = false;
  std::string config_stale_reason;
  absl::Time last_good_saved = absl::InfinitePast();
  uint64_t configs_rejected = 0;  // Edits that failed validation.
  // Each config source, by name.
  std::vector<SourceStatus> sources;
  uint64_t nacks = 0;             // xDS responses gRPC rejected.
  // Endpoints that active health checks (config `healthCheck`) changed, and
  // the last such change, e.g. "10.0.0.1:50051 is UNHEALTHY: ...".
  uint64_t health_changes = 0;
  std::string last_health_change;
  bool control_plane_running = false;
  int64_t control_plane_pid = -1;  // The agent process, while running.
  uint64_t control_plane_restarts = 0;

  // Security. `security` is "mTLS" or a loud "PLAINTEXT ..." warning.
  bool mtls = false;
  std::string security;
  std::string identity;          // This workload's SPIFFE ID (mTLS).
  std::string identity_serial;   // Serial (hex) of the SVID in force.
  absl::Time identity_expiry = absl::InfinitePast();
  uint64_t identity_loads = 0;   // The first load plus every rotation.
  // The authorization policy this process's servers enforce, in words
  // (one "ADDRESS serves SERVICE: RULES" or "ADDRESS: DENIES EVERY CALL:
  // WHY" per listening address; see `servers`).
  std::string authorization;
  // Each listening address of this process's mesh servers.
  std::vector<ServerStatus> servers;
  // How many of them deny every call because the policy they should
  // enforce cannot be told (fail closed).
  uint64_t servers_failing_closed = 0;
  // Calls to this process's mesh servers that the policy allowed or
  // denied (PERMISSION_DENIED), and the last denial ("CALLER METHOD").
  uint64_t calls_authorized = 0;
  uint64_t calls_denied = 0;
  std::string last_denial;

  // Registration, per listening address (MeshOptions::registration).
  std::vector<RegistrationStatus> registrations;
  // Discovery, as this process's agent sees it: each service's endpoints
  // by origin (services that have any); registered instances left out
  // ("KEY: ignored: WHY", e.g. another SPIFFE ID than the service's); and
  // instances the mass-removal guard holds ("KEY: WHY").
  std::vector<ServiceInstances> instances;
  std::vector<std::string> ignored_instances;
  std::vector<std::string> held_instances;
};

class Mesh final {
 public:
  // Starts the mesh. Errors:
  //   InvalidArgument     bad options, or the config fails validation (the
  //                       message lists every problem with file:line), or
  //                       the identity files fail the X.509-SVID checks
  //                       (the message names the file and the rule);
  //   NotFound            the config file does not exist;
  //   FailedPrecondition  another Mesh is alive in this process; another
  //                       party already set gRPC's xDS bootstrap
  //                       (GRPC_XDS_BOOTSTRAP or GRPC_XDS_BOOTSTRAP_CONFIG);
  //                       or an earlier Mesh of this process had another
  //                       service_name, locality or labels (gRPC keeps the
  //                       first xDS bootstrap for the life of the process);
  //   Unavailable         the control plane did not come up in time.
  // REQUIRES: called before this process creates any other xDS channel or
  // server (gRPC reads its xDS bootstrap once per process).
  static absl::StatusOr<std::unique_ptr<Mesh>> Create(MeshOptions options);

  // Stops the control plane. Channels created by this Mesh keep their last
  // routing but receive no further updates.
  ~Mesh();
  Mesh(const Mesh&) = delete;
  Mesh& operator=(const Mesh&) = delete;

  // Channel argument (integer) that turns call metrics off (0) or on (1)
  // for one channel, overriding MeshOptions::call_metrics.
  static constexpr char kCallMetricsArg[] = "mesh.call_metrics";

  // A channel to a mesh hostname ("app1.mesh.internal", or
  // "app1.mesh.internal:PORT" if the service declares that port). A
  // hostname the config does not know fails calls with UNAVAILABLE (the
  // control plane reports it as not existing). `args` are added to the
  // mesh's defaults (docs/config.md, "Built-in defaults") and win over them.
  // Shared: calls with the same hostname and arguments return the same
  // channel, kept open (never idle) for the Mesh's life, so a new stub per
  // call needs no new connection and no xDS exchange. Arguments holding a
  // pointer (a resource quota, a socket mutator) give a new channel each
  // time. Why: docs/config.md, "Channels".
  std::shared_ptr<grpc::Channel> CreateChannel(
      absl::string_view hostname,
      const grpc::ChannelArguments& args = grpc::ChannelArguments()) const;

  // Credentials for channels to mesh hostnames (used by CreateChannel).
  // With mTLS, a server must present the SPIFFE ID its service is
  // configured with; anything else (another identity, another CA,
  // plaintext) fails the call with UNAVAILABLE.
  std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials() const;

  // A server builder whose server the mesh configures: use it exactly like a
  // grpc::ServerBuilder, listening with ServerCredentials() on a fixed port
  // ("10.0.0.1:50051", "0.0.0.0:50051"; port 0 is not supported by gRPC's
  // xDS server). The server starts serving once the control plane has sent
  // its listener. With mTLS it accepts only clients with a certificate from
  // the trust bundle, and on each listening address it enforces the
  // `authorization` of the service that has an endpoint at that address
  // (for a wildcard address: at an address of this host with that port):
  // callers it does not allow fail with PERMISSION_DENIED (counted in
  // MeshStatus). Fail closed: where the served service cannot be told (no
  // service or several have an endpoint there, this process's SVID is not
  // that service's identity, or service_name names a service with another
  // identity) every call fails with PERMISSION_DENIED saying why, and
  // MeshStatus::servers, the log, /status and the metric
  // mesh_servers_failing_closed say so; until the address's policy has
  // arrived, calls fail with UNAVAILABLE (clients retry elsewhere).
  // BuildAndStart does not refuse such a server: the config is live, and an
  // edit (or a registration) can make the address an endpoint later.
  std::unique_ptr<grpc::XdsServerBuilder> NewServerBuilder() const;
  // Credentials for one listening port of a NewServerBuilder() server; call
  // it once per port. (Used with any other builder, every call is denied.)
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials() const;

  MeshStatus GetStatus() const;

  // Registration (MeshOptions::registration): this process's instances are
  // SERVING (true) or NOT_SERVING (false; clients stop picking them); the
  // etcd keys follow at once. No-op without registration.
  void SetServing(bool serving) const;

  // Stops `server` without losing calls: marks this process's instances
  // DRAINING (clients stop picking them), waits `options.delay` for
  // clients to apply that, shuts the server down (calls in flight get
  // `options.shutdown_deadline`), then removes the registration. Without
  // registration, only the shutdown. Blocks until done.
  void Drain(grpc::Server* server, const DrainOptions& options = {}) const;

  // How calls on a channel to `hostname` are routed right now: the
  // priorities, localities and weights in force for this workload, with the
  // rule and numbers behind them (the same text as `meshctl explain`).
  // `hostname` may carry the service's declared port. NotFound until a
  // channel to `hostname` has received its endpoints.
  absl::StatusOr<std::string> Explain(absl::string_view hostname) const;

  // Waits until `condition(status)` holds or `timeout` passes; returns
  // whether it held. Wakes on every status change, never polls.
  bool WaitForStatus(const std::function<bool(const MeshStatus&)>& condition,
                     absl::Duration timeout) const;

  // The directory holding the control plane socket (for diagnostics).
  const std::string& runtime_dir() const;

  // Where the admin endpoint listens ("127.0.0.1:40123"), "" if off.
  std::string admin_address() const;

  // The call metrics and status in the Prometheus text format (what the
  // admin endpoint serves at /metrics; usable without it).
  std::string MetricsText() const;

  class Impl;

 private:
  explicit Mesh(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The service ("namespace/name") that has an endpoint at `listen_address`
// ("10.0.0.1:50051"; a wildcard address means an address of this host with
// that port) in the config file at `config_path`: what a server listening
// there serves, e.g. as the default of a server's MeshOptions::service_name.
// NotFound if no service has one there, InvalidArgument if several do or
// the file fails validation.
absl::StatusOr<std::string> ServiceAt(const std::string& config_path,
                                      absl::string_view listen_address);

}  // namespace mesh

#endif  // MESH_MESH_H_
