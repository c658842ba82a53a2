// File: mesh/xds/ads_server.h
//
// A state-of-the-world ADS server (envoy.service.discovery.v3.Aggregated-
// DiscoveryService) that serves the translation of the current Snapshot to
// each connected client, computed for the locality in that client's Node.
//
// Protocol, per stream and per resource type:
//   - every response carries the full set of subscribed resources that exist
//     (leaving an LDS/CDS resource out deletes it at the client), the
//     snapshot version as version_info, and a fresh nonce;
//   - a request whose response_nonce is not the last one sent for its type is
//     stale and ignored;
//   - a request with error_detail is a NACK: it is logged, counted and
//     reported; nothing is resent until the snapshot or the subscription
//     changes, so the client keeps the previous resources;
//   - a new snapshot or a changed subscription sends a new response only when
//     the resources actually differ from those last sent.
//
// This uses gRPC's synchronous server API, so it must run in its own process
// (the mesh agent), never inside an application: see docs/architecture.md.
//
// Thread-safety: all public methods may be called from any thread.

#ifndef MESH_XDS_ADS_SERVER_H_
#define MESH_XDS_ADS_SERVER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "mesh/common/sync.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "mesh/config/snapshot.h"
#include "mesh/xds/translate.h"

namespace mesh {
namespace xds {

class AdsServer final
    : public envoy::service::discovery::v3::AggregatedDiscoveryService::
          Service {
 public:
  // What the server saw; called without locks held, from stream threads.
  struct Observer {
    virtual ~Observer() = default;
    // Every request, before the server acts on it (so before any response
    // to it is sent): `names` are the resources of that type the client
    // subscribes to.
    virtual void OnRequest(const Caller& caller, absl::string_view type_url,
                           const std::vector<std::string>& names) {}
    // `names`: the resources of that type the client subscribes to.
    virtual void OnAck(const Caller& caller, absl::string_view type_url,
                       absl::string_view version,
                       const std::vector<std::string>& names) {}
    virtual void OnNack(const Caller& caller, absl::string_view type_url,
                        absl::string_view version,
                        absl::string_view message) {}
    // The client has applied `version` completely: every type it subscribes
    // to was ACKed at this version or is unchanged since its last ACK.
    virtual void OnSynced(const Caller& caller, absl::string_view version) {}
  };

  // `observer` may be null; it must outlive the server.
  explicit AdsServer(Observer* observer) : observer_(observer) {}
  ~AdsServer() override;

  // Makes `snapshot` current and pushes it to every stream whose resources
  // change.
  void SetSnapshot(std::shared_ptr<const config::Snapshot> snapshot);

  // Ends every open stream's writer (call before grpc::Server::Shutdown).
  void Stop();

  uint64_t nacks() const { return nacks_.load(); }

  grpc::Status StreamAggregatedResources(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<envoy::service::discovery::v3::DiscoveryResponse,
                               envoy::service::discovery::v3::DiscoveryRequest>*
          stream) override;

 private:
  struct TypeState {
    std::vector<std::string> names;  // Sorted; empty = wildcard.
    bool subscribed = false;
    bool dirty = false;            // Subscription changed since last send.
    std::string sent_version;      // version_info of the last response.
    std::string sent_nonce;        // nonce of the last response.
    std::string computed_version;  // Snapshot version last translated.
    std::string acked_version;     // Last version the client ACKed.
    std::string acked_nonce;       // Nonce of the last ACK.
    std::string synced_version;    // Latest version it has the state of.
    std::map<std::string, std::string> sent;  // name -> serialized Any.
  };
  struct Stream {
    Caller caller;
    bool done = false;
    uint64_t next_nonce = 1;
    std::string reported_synced;  // Last version passed to OnSynced.
    std::map<std::string, TypeState> types;  // By type URL.
  };

  void HandleRequest(
      Stream* s, const envoy::service::discovery::v3::DiscoveryRequest& req);
  // Returns false when the stream is done.
  bool WriteNext(
      Stream* s,
      grpc::ServerReaderWriter<envoy::service::discovery::v3::DiscoveryResponse,
                               envoy::service::discovery::v3::DiscoveryRequest>*
          stream);
  bool HasWork(Stream* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The version to report as synced, if the stream just became synced.
  std::string NewlySynced(Stream* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Observer* const observer_;
  std::atomic<uint64_t> nacks_{0};

  internal::Mutex mu_;
  internal::CondVar cv_;
  std::shared_ptr<const config::Snapshot> snapshot_ ABSL_GUARDED_BY(mu_);
  std::set<Stream*> streams_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace xds
}  // namespace mesh

#endif  // MESH_XDS_ADS_SERVER_H_
