// File: mesh/agent/registrar.h
//
// Registration (docs/config.md, "Registration"): the agent writes each
// listening address of the application's mesh servers to etcd as an
// instance of its service, on one lease, and keeps the lease alive at a
// third of its TTL. Clients' agents read the instances like any other part
// of the config (mesh/source/etcd_source.h, kind: Instance).
//
//   PREFIX instances/NAMESPACE/NAME/ADDRESS:PORT   (kind: Instance)
//
// When a keep-alive finds the lease gone (etcd lost it, or this process was
// paused past the TTL), a new lease is granted and every instance put again
// as soon as etcd answers; the gap is reported. A crashed process's
// instances vanish when its lease expires. Deregister() revokes the lease:
// every instance goes at once.
//
// Thread-safety: all methods may be called from any thread. The state
// callback runs on the registrar's thread.

#ifndef MESH_AGENT_REGISTRAR_H_
#define MESH_AGENT_REGISTRAR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "mesh/common/sync.h"
#include "mesh/config/config.h"
#include "mesh/source/etcd_client.h"

namespace mesh {
namespace agent {

class Registrar {
 public:
  struct Options {
    source::EtcdOptions etcd;
    std::string prefix = "/mesh/";
    absl::Duration ttl = absl::Seconds(10);  // Whole seconds, 2 s to 5 min.
    std::string identity;  // The SPIFFE ID the servers present.
  };
  // One registered listening address.
  struct Instance {
    std::string listen;   // As gRPC names the listener: "0.0.0.0:50051".
    std::string service;  // "namespace/name".
    config::Endpoint endpoint;  // What clients see (the advertised address).
  };
  // What status shows, per listening address.
  struct State {
    std::string listen;
    std::string key;        // The etcd key ("" until registered).
    int64_t lease = 0;      // 0: none at the moment.
    int64_t ttl_left = 0;   // As of the last keep-alive, seconds.
    absl::Time last_keepalive = absl::InfinitePast();
    uint64_t registrations = 0;  // Puts on a new lease (1 = never lost).
    // "registering", "registered", "draining", "refused", "lost".
    std::string state;
    std::string error;      // The last problem ("" if none).
  };
  using OnState = std::function<void(const std::vector<State>&)>;

  static absl::StatusOr<std::unique_ptr<Registrar>> Start(Options options,
                                                          OnState on_state);
  // Revokes the lease (unless Deregister did) and stops.
  ~Registrar();

  // Registers `instance` (replacing one on the same listening address).
  void Add(Instance instance);
  // A listening address that cannot be registered, and why (status only).
  void Refuse(const std::string& listen, const std::string& why);
  // The health every instance is put with from now on (SERVING, NOT_SERVING
  // = UNHEALTHY, DRAINING); the keys follow at once.
  void SetHealth(config::Health health);
  // Revokes the lease: every instance goes now. Blocks until etcd answered
  // (or its call timeout). No further registration.
  void Deregister();

  // The etcd key of an instance.
  static std::string KeyFor(const std::string& prefix,
                            const std::string& service,
                            const config::Endpoint& e);

 private:
  Registrar(Options options, std::unique_ptr<source::EtcdClient> client,
            OnState on_state);
  void Run();
  void ReportLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  struct Entry {
    Instance instance;
    State state;
    bool dirty = true;  // To be put (again).
  };

  const Options options_;
  const std::unique_ptr<source::EtcdClient> client_;
  const OnState on_state_;
  const std::string started_;  // RFC 3339.
  internal::Mutex mu_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  config::Health health_ ABSL_GUARDED_BY(mu_) = config::Health::kHealthy;
  int64_t lease_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool deregistered_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// "LISTEN\tKEY\tLEASE\tTTL_LEFT\tLAST_KEEPALIVE_MS\tREGISTRATIONS\tSTATE\tERROR"
// per line, for the events pipe; Decode(Encode()) gives the same states.
std::string EncodeRegistrations(const std::vector<Registrar::State>& states);
absl::StatusOr<std::vector<Registrar::State>> DecodeRegistrations(
    absl::string_view text);

}  // namespace agent
}  // namespace mesh

#endif  // MESH_AGENT_REGISTRAR_H_
