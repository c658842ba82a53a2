#include "mesh/xds/ads_server.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "mesh/common/log.h"
#include "mesh/common/sync.h"

namespace mesh {
namespace xds {

using envoy::service::discovery::v3::DiscoveryRequest;
using envoy::service::discovery::v3::DiscoveryResponse;

AdsServer::~AdsServer() { Stop(); }

void AdsServer::SetSnapshot(std::shared_ptr<const config::Snapshot> snapshot) {
  internal::MutexLock lock(&mu_);
  snapshot_ = std::move(snapshot);
  cv_.SignalAll();
}

void AdsServer::Stop() {
  internal::MutexLock lock(&mu_);
  stopped_ = true;
  cv_.SignalAll();
}

grpc::Status AdsServer::StreamAggregatedResources(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<DiscoveryResponse, DiscoveryRequest>* stream) {
  Stream s;
  {
    internal::MutexLock lock(&mu_);
    if (stopped_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "stopping");
    streams_.insert(&s);
  }
  // One thread reads requests (this one); one writes responses. gRPC's sync
  // streams allow one concurrent reader and writer.
  std::thread writer([this, &s, stream] {
    while (WriteNext(&s, stream)) {
    }
  });
  DiscoveryRequest req;
  while (stream->Read(&req)) HandleRequest(&s, req);
  {
    internal::MutexLock lock(&mu_);
    s.done = true;
    cv_.SignalAll();
  }
  writer.join();
  {
    internal::MutexLock lock(&mu_);
    streams_.erase(&s);
  }
  return grpc::Status::OK;
}

void AdsServer::HandleRequest(Stream* s, const DiscoveryRequest& req) {
  enum { kNone, kAck, kNack } event = kNone;
  Caller caller;
  std::string version;
  std::vector<std::string> subscribed;
  std::string synced;
  std::vector<std::string> names(req.resource_names().begin(),
                                 req.resource_names().end());
  std::sort(names.begin(), names.end());
  if (observer_ != nullptr) {
    {
      internal::MutexLock lock(&mu_);
      if (req.has_node()) s->caller = CallerFromNode(req.node());
      caller = s->caller;
    }
    observer_->OnRequest(caller, req.type_url(), names);
  }
  {
    internal::MutexLock lock(&mu_);
    if (req.has_node()) s->caller = CallerFromNode(req.node());
    caller = s->caller;
    TypeState& t = s->types[req.type_url()];
    if (!req.response_nonce().empty() && req.response_nonce() != t.sent_nonce) {
      return;  // Stale: answers a response that a newer one superseded.
    }
    if (!req.response_nonce().empty()) {
      event = req.has_error_detail() ? kNack : kAck;
      version = req.has_error_detail() ? t.sent_version : req.version_info();
      if (event == kAck && t.acked_nonce == req.response_nonce()) {
        // A second request for a response already ACKed: the client changed
        // its watchers in between (gRPC drops a resource from its cache
        // when its last watcher goes, and a new watcher may re-add it before
        // the request that dropped it is sent), so it may no longer hold
        // what it has. Send the set again rather than wait for a change
        // that may never come; gRPC ignores what it has unchanged.
        event = kNone;
        t.dirty = true;
        cv_.SignalAll();
      }
      if (event == kAck) {
        t.acked_nonce = req.response_nonce();
        t.acked_version = version;
        // The nonce is the latest, so nothing was sent since: if the writer
        // has meanwhile found a newer snapshot to give the same resources
        // (computed_version), the client is in sync with that one too.
        t.synced_version = t.dirty ? version : t.computed_version;
        synced = NewlySynced(s);
      }
    }
    subscribed = names;
    if (!t.subscribed || names != t.names) {
      t.names = std::move(names);
      t.subscribed = true;
      t.dirty = true;
      cv_.SignalAll();
    }
  }
  if (event == kNack) {
    nacks_.fetch_add(1);
    internal::Log(internal::kWarning,
                  absl::StrCat("xDS client ", caller.id, " rejected ",
                               TypeName(req.type_url()), " version ", version,
                               ": ", req.error_detail().message()));
    if (observer_ != nullptr) {
      observer_->OnNack(caller, req.type_url(), version,
                        req.error_detail().message());
    }
  } else if (event == kAck && observer_ != nullptr) {
    observer_->OnAck(caller, req.type_url(), version, subscribed);
  }
  if (!synced.empty() && observer_ != nullptr) {
    observer_->OnSynced(caller, synced);
  }
}

std::string AdsServer::NewlySynced(Stream* s) {
  if (snapshot_ == nullptr) return "";
  const std::string current = snapshot_->ServingVersion();
  bool any = false;
  for (const auto& [type, t] : s->types) {
    if (!t.subscribed) continue;
    if (t.synced_version != current) return "";
    any = true;
  }
  if (!any || s->reported_synced == current) return "";
  s->reported_synced = current;
  return current;
}

bool AdsServer::HasWork(Stream* s) {
  if (s->done || stopped_) return true;
  if (snapshot_ == nullptr) return false;
  for (const auto& [type, t] : s->types) {
    if (t.subscribed &&
        (t.dirty || t.computed_version != snapshot_->ServingVersion())) {
      return true;
    }
  }
  return false;
}

bool AdsServer::WriteNext(
    Stream* s, grpc::ServerReaderWriter<DiscoveryResponse, DiscoveryRequest>*
                   stream) {
  std::shared_ptr<const config::Snapshot> snap;
  Caller caller;
  std::string type_url;
  std::vector<std::string> names;
  {
    internal::MutexLock lock(&mu_);
    while (!HasWork(s)) cv_.Wait(&mu_);
    if (s->done || stopped_) return false;
    snap = snapshot_;
    caller = s->caller;
    for (auto& [type, t] : s->types) {
      if (t.subscribed &&
          (t.dirty || t.computed_version != snap->ServingVersion())) {
        type_url = type;
        names = t.names;
        break;
      }
    }
  }
  // Translate outside the lock: it is a pure function of its inputs.
  std::map<std::string, google::protobuf::Any> resources =
      Translate(*snap->config, caller, type_url, names, snap->health);
  std::map<std::string, std::string> serialized;
  for (const auto& [name, any] : resources) {
    serialized[name] = any.SerializeAsString();
  }
  DiscoveryResponse resp;
  std::string synced;
  {
    internal::MutexLock lock(&mu_);
    TypeState& t = s->types[type_url];
    const bool names_changed = t.names != names;
    t.computed_version = snap->ServingVersion();
    if (names_changed) return true;  // Superseded; the next round redoes it.
    const bool first = t.sent_nonce.empty();
    if (!t.dirty && !first && serialized == t.sent) {
      // Unchanged: if the client has ACKed what it has, it is in sync with
      // this version too.
      if (t.acked_version == t.sent_version) {
        t.synced_version = t.computed_version;
        synced = NewlySynced(s);
      }
      if (!synced.empty() && observer_ != nullptr) {
        const Caller caller_copy = s->caller;
        mu_.Unlock();
        observer_->OnSynced(caller_copy, synced);
        mu_.Lock();
      }
      return true;
    }
    t.dirty = false;
    t.sent = std::move(serialized);
    t.sent_version = snap->ServingVersion();
    t.sent_nonce = absl::StrCat(s->next_nonce++);
    resp.set_version_info(t.sent_version);
    resp.set_nonce(t.sent_nonce);
  }
  resp.set_type_url(type_url);
  for (auto& [name, any] : resources) *resp.add_resources() = std::move(any);
  return stream->Write(resp);
}

}  // namespace xds
}  // namespace mesh
