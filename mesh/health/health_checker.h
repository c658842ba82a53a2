// File: mesh/health/health_checker.h
//
// Active health checking: calls grpc.health.v1.Health/Check on every endpoint
// of the services whose config has `healthCheck`, and reports which
// endpoints are failing, as HealthOverrides for the locality policy. An
// endpoint becomes UNHEALTHY after `unhealthyThreshold` consecutive failed
// checks (not SERVING, an error, or no answer within `timeout`) and HEALTHY
// again after `healthyThreshold` consecutive successes. Endpoints start
// healthy, and endpoints the config already marks UNHEALTHY or DRAINING are
// not checked.
//
// The Health messages are encoded by hand over grpc::GenericStub rather than
// with generated code, so that linking mesh never registers
// grpc/health/v1/health.proto a second time in an application that has its
// own copy (protobuf aborts on duplicate files).
//
// Runs in the agent process (it uses its own completion queue thread).
// Thread-safety: Update may be called from any thread; the callback runs on
// the checker's thread, never with its lock held.

#ifndef MESH_HEALTH_HEALTH_CHECKER_H_
#define MESH_HEALTH_HEALTH_CHECKER_H_

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "mesh/common/sync.h"
#include "absl/time/time.h"
#include "mesh/config/config.h"

namespace mesh {
namespace health {

class HealthChecker final {
 public:
  // Called with the full set of endpoints currently failing their checks,
  // each time it changes, and with a one-line description of the change.
  using Callback = std::function<void(const config::HealthOverrides& failing,
                                      const std::string& change)>;

  // Credentials for the connection to an endpoint whose servers must
  // present the SPIFFE ID `identity` (mTLS meshes; see the agent).
  using Credentials = std::function<std::shared_ptr<grpc::ChannelCredentials>(
      const std::string& identity)>;

  // Without `credentials`, checks use plaintext connections.
  explicit HealthChecker(Callback cb, Credentials credentials = nullptr);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Checks the endpoints of `config` from now on. Endpoints that stay keep
  // their state; new ones start healthy.
  void Update(std::shared_ptr<const config::MeshConfig> config);

  // The Health/Check request for `service`, and the status in a response
  // (0 UNKNOWN, 1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN; -1 if the
  // bytes are not a HealthCheckResponse). Exposed for tests.
  static std::string EncodeRequest(const std::string& service);
  static int DecodeStatus(const std::string& response);

 private:
  struct Target {
    std::string address;  // "ip:port" / "[ip6]:port"
    std::string service;
    std::string identity;  // The SPIFFE ID its server must present.
    config::HealthCheck spec;
    absl::Time next_check = absl::InfinitePast();
    int successes = 0;
    int failures = 0;
    bool healthy = true;
    bool in_flight = false;
    std::string last_failure;
    std::unique_ptr<grpc::GenericStub> stub;
  };
  struct Check;

  void Run();
  void StartDueChecks() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records a result; returns a change description if health flipped.
  std::string Record(const std::string& key, bool ok, const std::string& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  config::HealthOverrides Failing() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Callback cb_;
  const Credentials credentials_;
  grpc::CompletionQueue cq_;
  std::thread thread_;

  internal::Mutex mu_;
  std::map<std::string, Target> targets_ ABSL_GUARDED_BY(mu_);  // By key.
  std::set<Check*> in_flight_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace health
}  // namespace mesh

#endif  // MESH_HEALTH_HEALTH_CHECKER_H_
