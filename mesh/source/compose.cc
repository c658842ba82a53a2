#include "mesh/source/compose.h"

#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace mesh {
namespace source {
namespace {

// Each part of a saved composition starts with this line:
// "--- # mesh-part KIND KEY".
constexpr absl::string_view kMarker = "--- # mesh-part ";

absl::string_view KindName(PartKind k) {
  switch (k) {
    case PartKind::kDocument:
      return "document";
    case PartKind::kEndpointSet:
      return "endpoints";
    case PartKind::kDns:
      return "dns";
    case PartKind::kInstance:
      return "instance";
  }
  return "?";
}

}  // namespace

bool Composer::SetDocument(const std::string& key, std::string text) {
  auto it = parts_.find(key);
  if (it != parts_.end() && it->second.kind == PartKind::kDocument &&
      it->second.text == text) {
    return false;
  }
  Part p{PartKind::kDocument, std::move(text)};
  p.document = config::ParseConfig(p.text, key);
  Put(key, std::move(p));
  return true;
}

bool Composer::SetEndpointSet(const std::string& key, std::string text) {
  auto it = parts_.find(key);
  if (it != parts_.end() && it->second.kind == PartKind::kEndpointSet &&
      it->second.text == text) {
    return false;
  }
  Part p{PartKind::kEndpointSet, std::move(text)};
  p.set = config::ParseEndpointSet(p.text, key);
  Put(key, std::move(p));
  return true;
}

bool Composer::SetInstance(const std::string& key, std::string text,
                           std::string owner) {
  auto it = parts_.find(key);
  if (it != parts_.end() && it->second.kind == PartKind::kInstance &&
      it->second.text == text && it->second.owner == owner) {
    return false;
  }
  Part p{PartKind::kInstance, std::move(text)};
  p.owner = std::move(owner);
  p.set = config::ParseInstance(p.text, key);
  p.group = GroupOf(p);
  Put(key, std::move(p));
  vanished_.erase(key);  // Back (or never gone).
  return true;
}

void Composer::Put(const std::string& key, Part p) {
  auto it = parts_.find(key);
  if (it != parts_.end() && !it->second.group.empty()) {
    if (--live_[it->second.group] == 0) live_.erase(it->second.group);
  }
  if (!p.group.empty()) ++live_[p.group];
  parts_.insert_or_assign(key, std::move(p));
}

std::string Composer::GroupOf(const Part& part) {
  if (part.kind != PartKind::kInstance || !part.set.ok() ||
      part.set->service != part.owner || part.set->endpoints.size() != 1) {
    return "";
  }
  const config::Endpoint& e = part.set->endpoints[0];
  // An instance that said goodbye (DRAINING, or UNHEALTHY: no traffic)
  // leaves as it announced; the guard is for silent disappearances.
  if (e.health != config::Health::kHealthy) return "";
  return absl::StrCat(part.set->service, " ", e.locality.ToString());
}

std::map<std::string, Composer::Part>::iterator Composer::Erase(
    std::map<std::string, Part>::iterator it) {
  const std::string group = it->second.group;
  if (group.empty()) return parts_.erase(it);
  const std::string key = it->first;
  Part part = std::move(it->second);
  auto next = parts_.erase(it);
  if (--live_[group] == 0) live_.erase(group);
  std::shared_ptr<const config::MeshConfig> doc = Document();
  const config::RemovalGuard g =
      doc != nullptr ? doc->removal_guard : config::RemovalGuard{};
  const absl::Time now = clock_();
  const absl::Time window_start = now - absl::Milliseconds(g.window_ms);
  // Forget what left the window without being held.
  for (auto v = vanished_.begin(); v != vanished_.end();) {
    v = !v->second.held && v->second.at < window_start ? vanished_.erase(v)
                                                       : std::next(v);
  }
  if (g.max_vanish_percent >= 100) return next;
  // Its locality's instances: live ones, and the vanished ones in the
  // window or held; it is one of the vanished.
  auto l = live_.find(group);
  const int live = l == live_.end() ? 0 : l->second;
  int vanished = 1;  // It.
  int counted = 1;
  for (const auto& [k, v] : vanished_) {
    if (v.group != group) continue;
    ++counted;
    if (v.at >= window_start) ++vanished;
  }
  const int total = live + counted;
  Vanished v{std::move(part), group, now};
  if (total >= static_cast<int>(g.min_instances) &&
      vanished * 100 > static_cast<int>(g.max_vanish_percent) * total) {
    v.held = true;
    v.until = now + absl::Milliseconds(g.max_hold_ms);
    v.why = absl::StrCat(vanished, " of ", total, " instances of ", group,
                         " vanished within ",
                         absl::FormatDuration(absl::Milliseconds(g.window_ms)),
                         " (more than ", g.max_vanish_percent,
                         "%); held until it registers again or ",
                         absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", v.until,
                                          absl::UTCTimeZone()));
  }
  vanished_.insert_or_assign(key, std::move(v));
  return next;
}

int Composer::ExpireHeld(absl::Time now) {
  int n = 0;
  for (auto v = vanished_.begin(); v != vanished_.end();) {
    if (v->second.held && v->second.until <= now) {
      v = vanished_.erase(v);
      ++n;
    } else {
      ++v;
    }
  }
  return n;
}

absl::Time Composer::NextExpiry() const {
  absl::Time t = absl::InfiniteFuture();
  for (const auto& [k, v] : vanished_) {
    if (v.held) t = std::min(t, v.until);
  }
  return t;
}

bool Composer::SetDnsAnswer(const std::string& key, config::EndpointSet set) {
  std::string text = config::EndpointSetToYaml(set);
  auto it = parts_.find(key);
  if (it != parts_.end() && it->second.kind == PartKind::kDns &&
      it->second.text == text) {
    return false;
  }
  Part p{PartKind::kDns, std::move(text)};
  p.set = std::move(set);
  Put(key, std::move(p));
  return true;
}

bool Composer::Remove(const std::string& key) {
  auto it = parts_.find(key);
  if (it == parts_.end()) return false;
  Erase(it);
  return true;
}

int Composer::RemovePrefix(absl::string_view prefix) {
  int n = 0;
  for (auto it = parts_.lower_bound(std::string(prefix));
       it != parts_.end() && absl::StartsWith(it->first, prefix);) {
    it = Erase(it);
    ++n;
  }
  return n;
}

int Composer::RemoveIf(const std::function<bool(const std::string&)>& pred) {
  int n = 0;
  for (auto it = parts_.begin(); it != parts_.end();) {
    if (pred(it->first)) {
      it = Erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

void Composer::CopyFrom(const Composer& other,
                        const std::function<bool(const std::string&)>& pred) {
  for (const auto& [key, part] : other.parts_) {
    if (pred(key)) Put(key, part);
  }
}

std::shared_ptr<const config::MeshConfig> Composer::Document() const {
  std::shared_ptr<const config::MeshConfig> doc;
  for (const auto& [key, part] : parts_) {
    if (part.kind != PartKind::kDocument) continue;
    if (doc != nullptr || !part.document.ok()) return nullptr;
    doc = *part.document;
  }
  return doc;
}

std::vector<std::string> Composer::Keys() const {
  std::vector<std::string> keys;
  for (const auto& [k, p] : parts_) keys.push_back(k);
  return keys;
}

absl::StatusOr<Composer::Result> Composer::Compose() const {
  std::vector<std::string> errors;
  const std::pair<const std::string, Part>* doc = nullptr;
  for (const auto& kp : parts_) {
    if (kp.second.kind != PartKind::kDocument) continue;
    if (doc != nullptr) {
      errors.push_back(absl::StrCat(
          "two config documents, ", doc->first, " and ", kp.first,
          ": give the config in one place (the other may hold endpoint sets "
          "only)"));
      continue;
    }
    doc = &kp;
  }
  if (doc == nullptr) {
    errors.push_back(
        "no config document yet (the config file, or the etcd key "
        "PREFIX/config)");
  } else if (!doc->second.document.ok()) {
    errors.push_back(std::string(doc->second.document.status().message()));
  }
  if (!errors.empty() && (doc == nullptr || !doc->second.document.ok())) {
    return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  }
  const config::MeshConfig& base = **doc->second.document;
  // The document alone (the common case of one file) is used as it is.
  bool held = false;
  for (const auto& [k, v] : vanished_) held |= v.held;
  const bool alone = parts_.size() == 1 && !held;
  std::shared_ptr<config::MeshConfig> cfg;
  if (!alone) cfg = std::make_shared<config::MeshConfig>(base);
  std::map<std::string, size_t> by_name;  // "namespace/name" -> index
  if (cfg != nullptr) {
    for (size_t i = 0; i < cfg->services.size(); ++i) {
      const config::Service& s = cfg->services[i];
      by_name.emplace(absl::StrCat(s.namespace_name, "/", s.name), i);
    }
  }
  // Where each address:port of a service came from, for services that get
  // endpoints from more than the document.
  std::map<size_t, std::map<std::string, std::string>> origin;
  auto origin_of = [&](size_t svc) -> std::map<std::string, std::string>& {
    auto [seen, fresh] = origin.try_emplace(svc);
    if (fresh) {
      for (const config::Endpoint& e : base.services[svc].endpoints) {
        seen->second.emplace(absl::StrCat(e.address, ":", e.port), doc->first);
      }
    }
    return seen->second;
  };
  for (const auto& [key, part] : parts_) {
    if (part.kind == PartKind::kDocument || part.kind == PartKind::kInstance) {
      continue;
    }
    if (!part.set.ok()) {
      errors.push_back(std::string(part.set.status().message()));
      continue;
    }
    auto svc = by_name.find(part.set->service);
    if (svc == by_name.end()) {
      errors.push_back(absl::StrCat(
          key, ": service ", part.set->service, " is not in the config (",
          doc->first, "); add it there first"));
      continue;
    }
    config::Service& s = cfg->services[svc->second];
    std::map<std::string, std::string>& seen = origin_of(svc->second);
    for (const config::Endpoint& e : part.set->endpoints) {
      const std::string addr = absl::StrCat(e.address, ":", e.port);
      auto [at, inserted] = seen.emplace(addr, key);
      if (!inserted) {
        errors.push_back(absl::StrCat(key, ": endpoint ", addr, " of ",
                                      part.set->service, " is also given by ",
                                      at->second));
        continue;
      }
      s.endpoints.push_back(e);
    }
  }
  if (!errors.empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  }
  Result out;
  // Registered instances last, so that what the other parts give wins; the
  // instances the guard holds after them. Returns whether it joined.
  auto add_instance = [&](const std::string& key, const Part& part,
                          std::vector<std::string>* report) {
    if (!part.set.ok()) {
      report->push_back(absl::StrCat(
          key, ": ignored: ", absl::StrReplaceAll(part.set.status().message(),
                                                  {{"\n", "; "}})));
      return false;
    }
    const config::EndpointSet& inst = *part.set;
    if (inst.service != part.owner) {
      report->push_back(absl::StrCat(key, ": ignored: an instance of ",
                                     inst.service, " under the key of ",
                                     part.owner));
      return false;
    }
    auto svc = by_name.find(inst.service);
    if (svc == by_name.end()) {
      report->push_back(absl::StrCat(key, ": ignored: service ", inst.service,
                                     " is not in the config (", doc->first,
                                     ")"));
      return false;
    }
    config::Service& s = cfg->services[svc->second];
    const std::string want = s.Identity(base.trust_domain);
    if (inst.identity != want) {
      report->push_back(absl::StrCat(key, ": ignored: it serves as ",
                                     inst.identity, " but ", inst.service,
                                     "'s servers must be ", want));
      return false;
    }
    const config::Endpoint& e = inst.endpoints[0];
    const std::string addr = absl::StrCat(e.address, ":", e.port);
    auto [at, inserted] = origin_of(svc->second).emplace(addr, key);
    if (!inserted) {
      const config::Endpoint* other = nullptr;
      for (const config::Endpoint& x : s.endpoints) {
        if (x.address == e.address && x.port == e.port) other = &x;
      }
      const bool same = other != nullptr && other->locality == e.locality &&
                        other->labels == e.labels && other->weight == e.weight;
      if (!same) {
        report->push_back(absl::StrCat(key, ": ignored: endpoint ", addr,
                                       " of ", inst.service,
                                       " is also given by ", at->second,
                                       ", differently"));
      }
      return false;
    }
    s.endpoints.push_back(e);
    return true;
  };
  for (const auto& [key, part] : parts_) {
    if (part.kind == PartKind::kInstance) add_instance(key, part, &out.ignored);
  }
  for (const auto& [key, v] : vanished_) {
    if (!v.held) continue;
    std::vector<std::string> why;  // (Reported while it was live.)
    if (add_instance(key, v.part, &why)) {
      origin_of(by_name.at(v.part.set->service))[absl::StrCat(
          v.part.set->endpoints[0].address, ":",
          v.part.set->endpoints[0].port)] = absl::StrCat(key, " (held)");
      out.held.push_back(absl::StrCat(key, ": ", v.why));
    }
  }
  // Where each service's endpoints came from.
  for (size_t i = 0; i < base.services.size(); ++i) {
    const config::Service& s = base.services[i];
    const std::string name = absl::StrCat(s.namespace_name, "/", s.name);
    auto o = origin.find(i);
    if (o == origin.end()) {
      if (!s.endpoints.empty()) {
        out.origins[name].declared = static_cast<int>(s.endpoints.size());
      }
      continue;
    }
    Result::Origins& to = out.origins[name];
    for (const auto& [addr, key] : o->second) {
      if (key == doc->first) {
        ++to.declared;
      } else if (absl::EndsWith(key, " (held)")) {
        ++to.held;
      } else {
        auto p = parts_.find(key);
        const PartKind k = p == parts_.end() ? PartKind::kInstance : p->second.kind;
        (k == PartKind::kDns            ? to.dns
         : k == PartKind::kEndpointSet ? to.endpoint_set
                                       : to.registered)++;
      }
    }
    to.from = std::move(o->second);
  }
  if (alone) {
    out.text = doc->second.text;
  } else {
    // The document first, then the other parts in key order.
    out.text = absl::StrCat(kMarker, "document ", doc->first, "\n",
                            doc->second.text);
    for (const auto& [key, part] : parts_) {
      if (part.kind == PartKind::kDocument) continue;
      if (!out.text.empty() && out.text.back() != '\n') out.text += '\n';
      absl::StrAppend(&out.text, kMarker, KindName(part.kind), " ", key, "\n",
                      part.text);
    }
    // Held instances are in force, so in the version; a copy restores them
    // as instances.
    for (const auto& [key, v] : vanished_) {
      if (!v.held) continue;
      if (!out.text.empty() && out.text.back() != '\n') out.text += '\n';
      absl::StrAppend(&out.text, kMarker, "held ", key, "\n", v.part.text);
    }
  }
  auto snap = std::make_shared<config::Snapshot>();
  snap->version = config::ContentVersion(out.text);
  snap->config = alone ? *doc->second.document
                       : std::shared_ptr<const config::MeshConfig>(cfg);
  out.snapshot = std::move(snap);
  return out;
}

absl::StatusOr<Composer> Composer::Restore(absl::string_view text,
                                           const std::string& name) {
  Composer c;
  if (!absl::StartsWith(text, kMarker)) {
    c.SetDocument(name, std::string(text));
    return c;
  }
  // Split at each marker line.
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t eol = text.find('\n', pos);
    if (eol == absl::string_view::npos) break;
    absl::string_view header = text.substr(pos, eol - pos);
    if (!absl::ConsumePrefix(&header, kMarker)) {
      return absl::DataLossError(
          absl::StrCat(name, ": a part does not start with its marker"));
    }
    const size_t sp = header.find(' ');
    if (sp == absl::string_view::npos) {
      return absl::DataLossError(absl::StrCat(name, ": bad part marker"));
    }
    const absl::string_view kind = header.substr(0, sp);
    const std::string key(header.substr(sp + 1));
    size_t next = text.find(absl::StrCat("\n", kMarker), eol);
    next = next == absl::string_view::npos ? text.size() : next + 1;
    std::string body(text.substr(eol + 1, next - eol - 1));
    if (kind == "document") {
      c.SetDocument(key, std::move(body));
    } else if (kind == "endpoints") {
      c.SetEndpointSet(key, std::move(body));
    } else if (kind == "instance" || kind == "held") {
      // Saved only once it was accepted: its owner is the service it names.
      absl::StatusOr<config::EndpointSet> inst = config::ParseInstance(body, key);
      const std::string owner = inst.ok() ? inst->service : "";
      c.SetInstance(key, std::move(body), owner);
    } else if (kind == "dns") {
      absl::StatusOr<config::EndpointSet> set =
          config::ParseEndpointSet(body, key);
      if (!set.ok()) return set.status();
      c.SetDnsAnswer(key, *std::move(set));
    } else {
      return absl::DataLossError(
          absl::StrCat(name, ": unknown part kind \"", kind, "\""));
    }
    pos = next;
  }
  return c;
}

}  // namespace source
}  // namespace mesh
