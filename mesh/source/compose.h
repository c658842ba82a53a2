// File: mesh/source/compose.h
//
// The merge rule: how the parts that the config sources give make one
// config (docs/config.md, "Sources").
//
//   - The config document (trust domain, services, policies) comes from
//     exactly one part: the config file or etcd's PREFIX/config key.
//   - A service's endpoints are its `endpoints` in the document, plus every
//     endpoint set (etcd keys under PREFIX/endpoints/) that names it, plus
//     the DNS answers for its `dns` entries.
//   - Registered instances (etcd keys under PREFIX/instances/, kind:
//     Instance) add one endpoint each, but never make a composition fail:
//     an instance that does not parse, names a service the document does
//     not have, or carries another identity than the service's is left out
//     and reported (Result::ignored); one whose address:port another part
//     already gives is left out, silently if the two agree.
//   - The mass-removal guard (config `registration.removalGuard`): an
//     instance whose key goes while it was healthy (no DRAINING or
//     UNHEALTHY goodbye) is kept ("held") when too many of its locality's
//     instances vanished within the guard's window; held instances join
//     like registered ones and are reported (Result::held) until they
//     register again or their hold passes (ExpireHeld).
//   - Conflicts are errors: no document or two of them, an endpoint set that
//     names a service the document does not have, the same address:port
//     twice in one service (whichever parts it comes from), a part that
//     fails validation. A composition with any error is rejected as a whole
//     and the message names every part at fault; the running config stays.
//
// Parts are parsed when they are set (and not again while their text is
// unchanged), so one changed endpoint set costs its own parse only.
//
// Not thread-safe: the agent calls it under its own lock.

#ifndef MESH_SOURCE_COMPOSE_H_
#define MESH_SOURCE_COMPOSE_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "mesh/config/config.h"
#include "mesh/config/snapshot.h"

namespace mesh {
namespace source {

enum class PartKind { kDocument, kEndpointSet, kDns, kInstance };

class Composer {
 public:
  // Each setter names its part by `key`, which is also how messages name it:
  // the file's path, "etcd:KEY", "dns:NAMESPACE/NAME ENTRY". They return
  // false when the part already had this text (nothing to compose again).
  bool SetDocument(const std::string& key, std::string text);
  bool SetEndpointSet(const std::string& key, std::string text);
  bool SetDnsAnswer(const std::string& key, config::EndpointSet set);
  // `owner` ("namespace/name"): the only service the instance may name
  // (its key says so; etcd's permissions are per key range).
  bool SetInstance(const std::string& key, std::string text,
                   std::string owner);
  bool Remove(const std::string& key);
  // Removes every part whose key starts with `prefix`; returns how many.
  int RemovePrefix(absl::string_view prefix);
  // Removes the parts whose key `pred` accepts; returns how many.
  int RemoveIf(const std::function<bool(const std::string&)>& pred);
  // Copies the parts of `other` whose key `pred` accepts (as they are, no
  // parsing again).
  void CopyFrom(const Composer& other,
                const std::function<bool(const std::string&)>& pred);
  // Where the guard's "now" comes from (tests set their own).
  void SetClock(std::function<absl::Time()> clock) { clock_ = std::move(clock); }
  // Drops the held instances whose hold has passed by `now`; returns how
  // many (compose again if any).
  int ExpireHeld(absl::Time now);
  // When the next hold passes; InfiniteFuture if nothing is held.
  absl::Time NextExpiry() const;

  // The config document, if there is exactly one and it is valid.
  std::shared_ptr<const config::MeshConfig> Document() const;
  // The keys of the parts there are, in order.
  std::vector<std::string> Keys() const;

  struct Result {
    std::shared_ptr<const config::Snapshot> snapshot;
    // Every part, for the last-known-good copy (Restore reads it back).
    // With only a document, exactly the document's text, so the version of
    // a lone config file is the SHA-256 of its bytes.
    std::string text;
    // Instances left out, one line each ("KEY: why"), in key order.
    std::vector<std::string> ignored;
    // Instances held by the guard, one line each ("KEY: why"), key order.
    std::vector<std::string> held;
    // Where each service's endpoints came from, by service
    // ("namespace/name"); only services that have any.
    struct Origins {
      int declared = 0;      // The document's `endpoints`.
      int endpoint_set = 0;  // etcd endpoint sets.
      int dns = 0;           // DNS answers.
      int registered = 0;    // Registered instances.
      int held = 0;          // Instances the guard keeps (gone from etcd).
      // The part each endpoint ("ADDRESS:PORT") came from: the part's key
      // (an instance held by the guard: its key + " (held)").
      std::map<std::string, std::string> from;
    };
    std::map<std::string, Origins> origins;
  };
  // The config the parts make, or InvalidArgument naming every problem.
  absl::StatusOr<Result> Compose() const;

  // Parts saved as Result::text. Text without part markers is one document,
  // named `name`.
  static absl::StatusOr<Composer> Restore(absl::string_view text,
                                          const std::string& name);

 private:
  struct Part {
    PartKind kind;
    std::string text;
    absl::StatusOr<std::shared_ptr<const config::MeshConfig>> document =
        absl::UnknownError("");
    absl::StatusOr<config::EndpointSet> set = absl::UnknownError("");
    std::string owner;  // kInstance.
    std::string group;  // kInstance: GroupOf(*this), kept.
  };
  // A registered instance whose key went (the guard's memory).
  struct Vanished {
    Part part;
    std::string group;  // "SERVICE LOCALITY"
    absl::Time at;      // When its key went.
    bool held = false;
    absl::Time until;   // Held: when the hold passes.
    std::string why;    // Held: the counts that made it so.
  };
  // The instance `part` (a healthy one, of the service its key owns):
  // the guard's group, or "" if the guard does not count it.
  static std::string GroupOf(const Part& part);
  // Erases the part at `it`, remembering a registered instance for the
  // guard.
  std::map<std::string, Part>::iterator Erase(
      std::map<std::string, Part>::iterator it);
  std::map<std::string, Part> parts_;
  std::map<std::string, Vanished> vanished_;
  // Parts by guard group (Part::group), so that counting is cheap.
  std::map<std::string, int> live_;
  // Puts `p` at `key`, keeping live_.
  void Put(const std::string& key, Part p);
  std::function<absl::Time()> clock_ = [] { return absl::Now(); };
};

}  // namespace source
}  // namespace mesh

#endif  // MESH_SOURCE_COMPOSE_H_
