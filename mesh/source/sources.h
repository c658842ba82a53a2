// File: mesh/source/sources.h
//
// Every config source of one agent, and the composition of what they give
// (compose.h): the config file (watched, file_watcher.h), etcd
// (etcd_source.h) and the DNS names the config lists (dns_source.h). Each
// change from any source composes the config again; a new version goes to
// `on_config`, a composition that fails to `on_rejected` (the running
// config stays).
//
// At start each source is read once. If the file or etcd cannot be read (or
// the composition fails) and a last-known-good copy exists (last_good.h),
// the parts of the sources that failed come from that copy and the config
// is *stale*; each source that answers later replaces its own parts, and the
// config is fresh again once every source has answered. A DNS name that
// does not resolve at start is reported, not a reason to be stale: its
// entry has no endpoints until it resolves.
//
// Sources are named "file", "etcd" and "dns" in status. Part keys: the
// file's path, "etcd:KEY", "dns:NAMESPACE/NAME ENTRY".

#ifndef MESH_SOURCE_SOURCES_H_
#define MESH_SOURCE_SOURCES_H_

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "mesh/common/sync.h"
#include "mesh/source/compose.h"
#include "mesh/source/dns_source.h"
#include "mesh/source/etcd_client.h"

namespace mesh {
namespace source {

class EtcdSource;
class FileWatcher;

struct SourcesOptions {
  std::string config_path;  // "" = no config file.
  EtcdOptions etcd;         // No endpoints = no etcd.
  std::string etcd_prefix = "/mesh/";
  DnsOptions dns;
  std::string state_dir;  // "" = no last-known-good copy.
  // How long the start waits for etcd's first listing and the first DNS
  // answers before it falls back to the last-known-good copy.
  absl::Duration start_wait = absl::Seconds(3);
};

// One source's state, for status pages and metrics.
struct SourceStatus {
  std::string name;   // "file", "etcd", "dns"
  std::string where;  // The path, the endpoints and prefix, the servers.
  // What it last gave: the file's version, "revision N", "N answers".
  std::string version;
  absl::Time last_success = absl::InfinitePast();
  std::string last_error;  // "" if none since the start.
  absl::Time last_error_time = absl::InfinitePast();
  bool ok = false;  // Its last attempt succeeded.
};

class Sources {
 public:
  struct Callbacks {
    // A new config (a new version). `stale`: some parts are still the
    // last-known-good copy's.
    std::function<void(const Composer::Result&, bool stale)> on_config;
    // The sources changed but their parts do not compose; why.
    std::function<void(const std::string& why)> on_rejected;
    // A source failed (it is retried; its last parts stay).
    std::function<void(const std::string& error)> on_error;
    std::function<void(const SourceStatus&)> on_status;
  };

  // Reads every source once and composes the first config. Fails if there
  // is no usable config at all (the message says why, with each source's
  // problem). No callback runs before Begin().
  static absl::StatusOr<std::unique_ptr<Sources>> Start(SourcesOptions options,
                                                        Callbacks callbacks);
  // From now on, report: each source's status once, then every change
  // (including any since Start).
  void Begin();
  ~Sources();

  // The first config.
  const Composer::Result& initial() const { return initial_; }
  // Whether it is stale, why, and when the copy it came from was saved.
  bool initial_stale() const { return initial_stale_; }
  const std::string& stale_reason() const { return stale_reason_; }
  absl::Time last_good_saved() const { return last_good_saved_; }
  std::vector<SourceStatus> Status();

 private:
  explicit Sources(SourcesOptions options, Callbacks cb);
  // Under mu_: compose and report (once started).
  void RecomposeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Under mu_: the source `name` answered; drops its restored parts the
  // first time.
  void AnsweredLocked(const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetStatusLocked(const std::string& name, bool ok,
                       const std::string& version_or_error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnFile(absl::StatusOr<std::string> contents);
  void OnDns(const std::vector<DnsSource::Answer>& answers);
  // Resolves the DNS entries of the document's services (and forgets the
  // answers for entries it no longer has).
  void UpdateDnsEntriesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The thread that ends the mass-removal guard's holds when they pass
  // (compose.h) and composes again.
  void ExpireHeldLoop();

  const SourcesOptions options_;
  const Callbacks cb_;
  internal::Mutex mu_;
  Composer composer_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  // Whether the last config reported was stale.
  bool reported_stale_ ABSL_GUARDED_BY(mu_) = false;
  std::string version_ ABSL_GUARDED_BY(mu_);
  // Sources that have not answered since a stale start.
  std::set<std::string> waiting_ ABSL_GUARDED_BY(mu_);
  // Part keys the sources gave since the start (not the copy's).
  std::set<std::string> fresh_keys_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, SourceStatus> status_ ABSL_GUARDED_BY(mu_);
  // When each source's status was last reported.
  std::map<std::string, absl::Time> reported_ ABSL_GUARDED_BY(mu_);
  // Wakes the expiry thread: a composition (a hold may have begun) or the
  // end.
  internal::CondVar expiry_cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread expirer_;
  Composer::Result initial_;
  bool initial_stale_ = false;
  bool relist_etcd_ = false;  // Begin asks etcd for a full listing.
  std::string stale_reason_;
  absl::Time last_good_saved_ = absl::InfinitePast();
  std::unique_ptr<FileWatcher> file_;
  std::unique_ptr<EtcdSource> etcd_;
  std::unique_ptr<DnsSource> dns_;
};

}  // namespace source
}  // namespace mesh

#endif  // MESH_SOURCE_SOURCES_H_
