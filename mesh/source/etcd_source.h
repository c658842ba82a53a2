// File: mesh/source/etcd_source.h
//
// The etcd config source: keeps the parts stored under a key prefix in step
// with etcd. It lists the prefix, watches from the listing's revision + 1,
// resumes after any disconnect from the revision after the last event
// (etcd_client.h), and lists again when that revision has been compacted.
//
// Key layout under PREFIX (default "/mesh/"; docs/config.md, "etcd"):
//   PREFIX config                            the config document (mesh/v1)
//   PREFIX endpoints/NAMESPACE/NAME/SET      an endpoint set (kind:
//                                            EndpointSet); SET names its
//                                            publisher, e.g. the cluster
//   PREFIX instances/NAMESPACE/NAME/INSTANCE a registered server (kind:
//                                            Instance) of that service, on
//                                            a lease
// Other keys under the prefix are ignored and reported.
//
// Callbacks run on the source's threads, one at a time.

#ifndef MESH_SOURCE_ETCD_SOURCE_H_
#define MESH_SOURCE_ETCD_SOURCE_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "mesh/common/sync.h"
#include "mesh/source/compose.h"
#include "mesh/source/etcd_client.h"

namespace mesh {
namespace source {

class EtcdSource {
 public:
  // What changed in etcd.
  struct Change {
    bool full = false;  // A listing: it replaces every part from etcd.
    std::vector<EtcdEvent> events;  // For a listing, puts of every key.
    int64_t revision = 0;           // The store's revision after it.
  };
  struct Callbacks {
    std::function<void(const Change&)> on_change;
    // A failure (listing, a broken watch); retried with backoff.
    std::function<void(const std::string&)> on_error;
    // Watching again from `revision` (after the start or a break).
    std::function<void(int64_t revision)> on_watching;
  };
  static absl::StatusOr<std::unique_ptr<EtcdSource>> Start(
      EtcdOptions options, std::string prefix, Callbacks callbacks);
  ~EtcdSource();

  // Waits at most `timeout` for the first listing to have been delivered.
  bool AwaitFirst(absl::Duration timeout);
  // Lists again (a full Change) and watches from there.
  void Relist();

  // Applies `change` to the composer's "etcd:" parts. Returns the keys it
  // ignored (outside the layout); sets *changed if a part changed.
  static std::vector<std::string> Apply(const std::string& prefix,
                                        const Change& change,
                                        Composer* composer, bool* changed);

  // The part key of an etcd key ("etcd:" + key).
  static std::string PartKey(const std::string& key) { return "etcd:" + key; }

 private:
  EtcdSource(std::unique_ptr<EtcdClient> client, std::string prefix,
             Callbacks cb);
  void Run();

  const std::unique_ptr<EtcdClient> client_;
  const std::string prefix_;
  const Callbacks cb_;
  internal::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool relist_ ABSL_GUARDED_BY(mu_) = false;
  bool listed_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace source
}  // namespace mesh

#endif  // MESH_SOURCE_ETCD_SOURCE_H_
