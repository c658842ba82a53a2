#include "mesh/source/etcd_source.h"

#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_cat.h"

namespace mesh {
namespace source {

absl::StatusOr<std::unique_ptr<EtcdSource>> EtcdSource::Start(
    EtcdOptions options, std::string prefix, Callbacks callbacks) {
  if (prefix.empty() || prefix.front() != '/' || prefix.back() != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "etcd prefix \"", prefix, "\": must start and end with '/', e.g. "
        "/mesh/"));
  }
  absl::StatusOr<std::unique_ptr<EtcdClient>> client =
      EtcdClient::Create(std::move(options));
  if (!client.ok()) return client.status();
  return std::unique_ptr<EtcdSource>(new EtcdSource(
      *std::move(client), std::move(prefix), std::move(callbacks)));
}

EtcdSource::EtcdSource(std::unique_ptr<EtcdClient> client, std::string prefix,
                       Callbacks cb)
    : client_(std::move(client)), prefix_(std::move(prefix)), cb_(std::move(cb)) {
  thread_ = std::thread([this] { Run(); });
}

EtcdSource::~EtcdSource() {
  {
    internal::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

bool EtcdSource::AwaitFirst(absl::Duration timeout) {
  internal::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(internal::Condition(&listed_), timeout);
}

void EtcdSource::Relist() {
  internal::MutexLock lock(&mu_);
  relist_ = true;
}

void EtcdSource::Run() {
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    {
      internal::MutexLock lock(&mu_);
      if (stop_) return;
      relist_ = false;
    }
    absl::StatusOr<EtcdClient::Listing> l = client_->List(prefix_);
    if (!l.ok()) {
      if (cb_.on_error) cb_.on_error(std::string(l.status().message()));
      internal::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(internal::Condition(&stop_), backoff)) return;
      backoff = std::min(backoff * 2, absl::Seconds(2));
      continue;
    }
    backoff = absl::Milliseconds(100);
    Change full;
    full.full = true;
    full.revision = l->revision;
    for (EtcdKv& kv : l->kvs) full.events.push_back({false, std::move(kv)});
    if (cb_.on_change) cb_.on_change(full);
    {
      internal::MutexLock lock(&mu_);
      listed_ = true;
    }
    EtcdClient::WatchCallbacks wc;
    wc.on_events = [this](const std::vector<EtcdEvent>& events) {
      Change c;
      c.events = events;
      c.revision = events.back().kv.mod_revision;
      if (cb_.on_change) cb_.on_change(c);
    };
    wc.on_compacted = [this](int64_t rev) {
      if (cb_.on_error) {
        cb_.on_error(absl::StrCat("etcd history compacted to revision ", rev,
                                  " while disconnected; listing again"));
      }
      internal::MutexLock lock(&mu_);
      relist_ = true;
    };
    wc.on_error = cb_.on_error;
    wc.on_watching = cb_.on_watching;
    std::unique_ptr<EtcdClient::Watcher> watcher =
        client_->Watch(prefix_, l->revision + 1, std::move(wc));
    {
      internal::MutexLock lock(&mu_);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || relist_;
      };
      mu_.Await(internal::Condition(&wake));
    }
    watcher.reset();  // Outside the lock: its callbacks take it.
  }
}

std::vector<std::string> EtcdSource::Apply(const std::string& prefix,
                                           const Change& change,
                                           Composer* composer, bool* changed) {
  std::vector<std::string> ignored;
  if (change.full) {
    // Only what the listing no longer has goes (the rest is set again
    // below): removing everything first would look to the mass-removal
    // guard like every instance vanishing at once.
    std::set<std::string> listed;
    for (const EtcdEvent& e : change.events) listed.insert(PartKey(e.kv.key));
    *changed |= composer->RemoveIf([&](const std::string& key) {
      return absl::StartsWith(key, "etcd:") && !listed.count(key);
    }) > 0;
  }
  const std::string config_key = prefix + "config";
  const std::string endpoints = prefix + "endpoints/";
  const std::string instances = prefix + "instances/";
  for (const EtcdEvent& e : change.events) {
    const std::string& key = e.kv.key;
    const bool is_config = key == config_key;
    // instances/NAMESPACE/NAME/INSTANCE: the service its value may name.
    std::string owner;
    if (absl::StartsWith(key, instances)) {
      std::vector<std::string> f =
          absl::StrSplit(key.substr(instances.size()), '/');
      if (f.size() == 3 && !f[0].empty() && !f[1].empty() && !f[2].empty()) {
        owner = absl::StrCat(f[0], "/", f[1]);
      }
    }
    if (!is_config && !absl::StartsWith(key, endpoints) && owner.empty()) {
      ignored.push_back(key);
      continue;
    }
    if (e.deleted) {
      *changed |= composer->Remove(PartKey(key));
    } else if (is_config) {
      *changed |= composer->SetDocument(PartKey(key), e.kv.value);
    } else if (!owner.empty()) {
      *changed |= composer->SetInstance(PartKey(key), e.kv.value, owner);
    } else {
      *changed |= composer->SetEndpointSet(PartKey(key), e.kv.value);
    }
  }
  if (change.full) *changed = true;  // Parts may have been set back.
  return ignored;
}

}  // namespace source
}  // namespace mesh
