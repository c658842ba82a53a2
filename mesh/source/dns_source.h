// File: mesh/source/dns_source.h
//
// The DNS source: resolves the `dns` entries of the config's services with
// c-ares (A and AAAA records of a name, or SRV records and then their
// targets' addresses), and resolves each again when its answer's TTL runs
// out (at least `min_ttl`, at most `max_ttl` apart). A failed resolution is
// retried with backoff (1 s doubling to 30 s) and reported; the entry keeps
// its last good answer meanwhile. The locality and labels of the endpoints
// come from the config entry; an SRV record gives the port and the weight
// (its priority is not used).
//
// Callbacks run on the source's thread.

#ifndef MESH_SOURCE_DNS_SOURCE_H_
#define MESH_SOURCE_DNS_SOURCE_H_

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

namespace mesh {
namespace source {

struct DnsOptions {
  // DNS servers, "IP" or "IP:PORT" ("[::1]:53" for IPv6); empty = the
  // system's (/etc/resolv.conf).
  std::vector<std::string> servers;
  absl::Duration min_ttl = absl::Seconds(1);
  absl::Duration max_ttl = absl::Minutes(5);
  // Per query try; two tries per server.
  absl::Duration query_timeout = absl::Seconds(1);
  absl::Duration max_backoff = absl::Seconds(30);
};

class DnsSource {
 public:
  struct Entry {
    std::string key;      // The part key: "dns:NAMESPACE/NAME ENTRY".
    std::string service;  // "namespace/name".
    config::DnsEndpoints dns;
  };
  struct Answer {
    std::string key;
    std::string service;
    // The endpoints, or why there are none this time (the last good answer
    // stays in force).
    absl::StatusOr<std::vector<config::Endpoint>> endpoints;
    absl::Duration ttl;  // Until the next resolution.
  };
  using Callback = std::function<void(const std::vector<Answer>&)>;

  static absl::StatusOr<std::unique_ptr<DnsSource>> Start(DnsOptions options,
                                                          Callback cb);
  ~DnsSource();

  // The entries to resolve from now on; new ones are resolved at once,
  // dropped ones are forgotten.
  void SetEntries(std::vector<Entry> entries);
  // Waits at most `timeout` until every entry has been tried once.
  bool AwaitFirst(absl::Duration timeout);

  // The entries of `cfg`'s services.
  static std::vector<Entry> EntriesOf(const config::MeshConfig& cfg);

  // One resolution, blocking (at most a few query timeouts). Exposed for
  // tests and `meshctl`.
  static absl::StatusOr<std::vector<config::Endpoint>> Resolve(
      const DnsOptions& options, const config::DnsEndpoints& entry,
      absl::Duration* ttl);

 private:
  DnsSource(DnsOptions options, Callback cb);
  void Run();

  struct State {
    Entry entry;
    absl::Time due = absl::InfinitePast();
    absl::Duration backoff;
    bool tried = false;
  };
  const DnsOptions options_;
  const Callback cb_;
  internal::Mutex mu_;
  std::map<std::string, State> states_ ABSL_GUARDED_BY(mu_);
  bool changed_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace source
}  // namespace mesh

#endif  // MESH_SOURCE_DNS_SOURCE_H_
