#include "mesh/policy/locality.h"

#include <algorithm>
#include <functional>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "mesh/common/json.h"

namespace mesh {
namespace policy {

namespace {

using config::Endpoint;
using config::Health;
using config::Locality;

// Locality weights are integers; proportions are scaled by this so that a
// 0.1 % share still has a weight of 100.
constexpr double kWeightScale = 100000;

// The endpoints of one locality (in a level), sorted by address and port.
struct Bucket {
  const Locality* locality = nullptr;
  std::vector<const Endpoint*> eps;
  std::vector<bool> healthy;  // Parallel to eps.
};

struct Level {
  std::string name;
  std::vector<Bucket> buckets;  // Sorted by locality.
  int total = 0;
  int healthy = 0;
};

std::string Key(const Endpoint& e) {
  return absl::StrCat(e.address, ":", e.port);
}

// The locality group of a bucket: its healthy endpoints (all of them if
// `all`), weighted by the sum of their weights. Empty if none qualify.
LocalityGroup ToGroup(const Bucket& b, bool all) {
  LocalityGroup g;
  g.locality = *b.locality;
  for (size_t i = 0; i < b.eps.size(); ++i) {
    if (!all && !b.healthy[i]) continue;
    g.weight += b.eps[i]->weight;
    g.endpoints.push_back({b.eps[i]->address, b.eps[i]->port});
  }
  return g;
}

std::vector<LocalityGroup> Group(const std::vector<Bucket>& buckets,
                                 bool all) {
  std::vector<LocalityGroup> out;
  for (const Bucket& b : buckets) {
    LocalityGroup g = ToGroup(b, all);
    if (!g.endpoints.empty()) out.push_back(std::move(g));
  }
  return out;
}

uint64_t TotalWeight(const std::vector<LocalityGroup>& groups) {
  uint64_t w = 0;
  for (const LocalityGroup& g : groups) w += g.weight;
  return w;
}

// Scales each group's weight so that the groups together weigh `share`
// (0..1) of kWeightScale, each in proportion to its own weight; at least 1.
void Scale(std::vector<LocalityGroup>* groups, double share) {
  const uint64_t total = TotalWeight(*groups);
  for (LocalityGroup& g : *groups) {
    g.weight = std::max<uint32_t>(
        1, static_cast<uint32_t>(share * kWeightScale * g.weight / total + 0.5));
  }
}

void AddPriority(Plan* plan, std::vector<LocalityGroup> groups,
                 std::string why) {
  if (groups.empty()) return;
  Priority p;
  p.localities = std::move(groups);
  p.why = std::move(why);
  plan->priorities.push_back(std::move(p));
}

void SortByLocality(std::vector<LocalityGroup>* groups) {
  std::sort(groups->begin(), groups->end(),
            [](const LocalityGroup& a, const LocalityGroup& b) {
              return a.locality < b.locality;
            });
}

std::string LabelValue(const std::string& key, const Locality& loc,
                       const std::map<std::string, std::string>& labels) {
  if (key == "region") return loc.region;
  if (key == "zone") return loc.zone;
  if (key == "cluster") return loc.cluster;
  auto it = labels.find(key);
  return it == labels.end() ? "" : it->second;
}

// Puts each whole bucket in the level `level_of` returns for its locality.
std::vector<Level> ByLocality(
    const std::vector<Bucket>& buckets, std::vector<std::string> names,
    const std::function<size_t(const Locality&)>& level_of) {
  std::vector<Level> levels(names.size());
  for (size_t i = 0; i < names.size(); ++i) levels[i].name = names[i];
  for (const Bucket& b : buckets) {
    levels[level_of(*b.locality)].buckets.push_back(b);
  }
  return levels;
}

// "same cluster", "same zone", ... for the first `n` proximity levels.
std::vector<std::string> ProximityNames(int n) {
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) {
    names.push_back(ProximityName(static_cast<Proximity>(i)));
  }
  return names;
}

std::vector<Level> ProximityLevels(const std::vector<Bucket>& buckets,
                                   const Locality& caller) {
  return ByLocality(buckets, ProximityNames(4), [&caller](const Locality& l) {
    return static_cast<size_t>(ProximityOf(caller, l));
  });
}

std::vector<Level> FailoverPriorityLevels(const std::vector<Bucket>& buckets,
                                          const Caller& caller,
                                          const std::vector<std::string>& keys) {
  const size_t n = keys.size();
  std::vector<Level> levels(n + 1);
  for (size_t k = 0; k <= n; ++k) {
    levels[n - k].name =
        k == 0 ? "no label matches"
               : absl::StrCat("matches ", absl::StrJoin(keys.begin(),
                                                        keys.begin() + k, ", "));
  }
  std::vector<std::string> mine;
  for (const std::string& key : keys) {
    mine.push_back(LabelValue(key, caller.locality, caller.labels));
  }
  // Labels are per endpoint: a locality's endpoints may land in different
  // levels, so buckets are split here.
  for (const Bucket& b : buckets) {
    std::vector<Bucket> split(n + 1);
    for (size_t i = 0; i < b.eps.size(); ++i) {
      size_t k = 0;
      while (k < n && !mine[k].empty() &&
             mine[k] == LabelValue(keys[k], *b.locality, b.eps[i]->labels)) {
        ++k;
      }
      split[n - k].locality = b.locality;
      split[n - k].eps.push_back(b.eps[i]);
      split[n - k].healthy.push_back(b.healthy[i]);
    }
    for (size_t l = 0; l <= n; ++l) {
      if (!split[l].eps.empty()) levels[l].buckets.push_back(split[l]);
    }
  }
  return levels;
}

std::vector<Level> ExplicitFailoverLevels(const std::vector<Bucket>& buckets,
                                          const Caller& caller,
                                          const config::FailoverRule& rule) {
  std::vector<std::string> names = ProximityNames(3);
  for (const config::LocalityPattern& t : rule.to) {
    names.push_back(absl::StrCat("failover target ", t.ToString()));
  }
  names.push_back("elsewhere (after the failover targets)");
  return ByLocality(buckets, names, [&](const Locality& l) {
    const Proximity p = ProximityOf(caller.locality, l);
    if (p != Proximity::kElsewhere) return static_cast<size_t>(p);
    size_t i = 0;
    while (i < rule.to.size() && !rule.to[i].Matches(l)) ++i;
    return 3 + i;
  });
}

// Turns ordered levels into priorities (see the spillover contract in the
// header).
void Spill(std::vector<Level> all_levels, const config::LocalityPolicy& lp,
           Plan* plan) {
  std::vector<Level> levels;
  for (Level& l : all_levels) {
    for (const Bucket& b : l.buckets) {
      l.total += static_cast<int>(b.eps.size());
      for (bool h : b.healthy) l.healthy += h;
    }
    if (l.total > 0) levels.push_back(std::move(l));
  }
  int any_healthy = 0;
  for (const Level& l : levels) any_healthy += l.healthy;
  if (any_healthy == 0) {
    // Nothing is healthy: panic, as Envoy does. Use every endpoint, closest
    // level first; gRPC skips those it cannot reach.
    plan->notes.push_back(
        "no healthy endpoint: panic, every endpoint is used, closest first");
    for (const Level& l : levels) {
      AddPriority(plan, Group(l.buckets, true), l.name + " (panic)");
    }
    return;
  }
  if (lp.spillover == config::SpilloverMode::kFailover) {
    plan->notes.push_back(
        "spillover mode failover: a level takes all traffic while it has a "
        "healthy endpoint");
    for (const Level& l : levels) {
      if (l.healthy > 0) AddPriority(plan, Group(l.buckets, false), l.name);
    }
    return;
  }
  // Proportional spillover (Envoy): health, then load, per level.
  const double factor = lp.overprovisioning_percent / 100.0;
  std::vector<uint32_t> health(levels.size()), load(levels.size(), 0);
  std::vector<bool> panic(levels.size(), false);
  uint32_t health_sum = 0;
  for (size_t i = 0; i < levels.size(); ++i) {
    const Level& l = levels[i];
    health[i] = std::min<uint32_t>(
        100, l.healthy * lp.overprovisioning_percent / l.total);
    panic[i] = l.healthy > 0 &&
               l.healthy * 100 <
                   static_cast<int>(lp.panic_threshold_percent) * l.total;
    health_sum += health[i];
  }
  if (health_sum >= 100) {
    uint32_t rest = 100;
    for (size_t i = 0; i < levels.size(); ++i) {
      load[i] = std::min(rest, health[i]);
      rest -= load[i];
    }
  } else {
    // Not enough healthy capacity anywhere: scale loads up in proportion to
    // health (Envoy's normalisation), rounding remainder to the first.
    uint32_t given = 0;
    for (size_t i = 0; i < levels.size(); ++i) {
      load[i] = health[i] * 100 / health_sum;
      given += load[i];
    }
    for (size_t i = 0; i < levels.size() && given < 100; ++i) {
      if (health[i] > 0) {
        load[i] += 100 - given;
        given = 100;
      }
    }
    plan->notes.push_back(absl::StrCat(
        "total health ", health_sum,
        " < 100: loads scaled up in proportion to health"));
  }
  std::vector<LocalityGroup> p0;
  std::vector<std::string> p0_why;
  for (size_t i = 0; i < levels.size(); ++i) {
    const Level& l = levels[i];
    plan->notes.push_back(absl::StrFormat(
        "level %d (%s): %d of %d healthy, health = min(100, %d%% x %.2f) = "
        "%d, load %d%%%s",
        i, l.name, l.healthy, l.total, l.healthy * 100 / l.total, factor,
        health[i], load[i],
        panic[i] ? absl::StrCat(" (panic: below ", lp.panic_threshold_percent,
                                "% healthy, all its endpoints are used)")
                 : ""));
    if (load[i] == 0) continue;
    std::vector<LocalityGroup> groups = Group(l.buckets, panic[i]);
    Scale(&groups, load[i] / 100.0);
    for (LocalityGroup& g : groups) {
      g.why = absl::StrCat(l.name, ", ", load[i], "% of traffic");
      p0.push_back(std::move(g));
    }
    p0_why.push_back(absl::StrCat(l.name, " ", load[i], "%"));
  }
  SortByLocality(&p0);
  AddPriority(plan, std::move(p0),
              p0_why.size() == 1
                  ? p0_why[0]
                  : absl::StrCat("spillover: ", absl::StrJoin(p0_why, ", ")));
  for (size_t i = 0; i < levels.size(); ++i) {
    if (load[i] == 0 && levels[i].healthy > 0) {
      AddPriority(plan, Group(levels[i].buckets, false),
                  levels[i].name + " (failover)");
    }
  }
}

void Distribute(const std::vector<Bucket>& buckets,
                const config::DistributeRule& rule, Plan* plan) {
  // Each locality goes to the first pattern that matches it.
  std::vector<std::vector<Bucket>> per_pattern(rule.to.size());
  for (const Bucket& b : buckets) {
    size_t i = 0;
    while (i < rule.to.size() && !rule.to[i].first.Matches(*b.locality)) ++i;
    if (i < rule.to.size()) {
      per_pattern[i].push_back(b);
      continue;
    }
    for (size_t e = 0; e < b.eps.size(); ++e) {
      if (!b.healthy[e]) continue;  // Already listed as unhealthy.
      plan->excluded.push_back(absl::StrCat(
          Key(*b.eps[e]), " (", b.locality->ToString(),
          " is not in the distribute rule for ", rule.from.ToString(), ")"));
    }
  }
  std::vector<LocalityGroup> p0;
  for (size_t i = 0; i < rule.to.size(); ++i) {
    const auto& [pattern, weight] = rule.to[i];
    std::vector<LocalityGroup> groups = Group(per_pattern[i], false);
    if (groups.empty()) {
      plan->notes.push_back(absl::StrCat(
          pattern.ToString(), " (", weight,
          "%) has no healthy endpoint: its share goes to the others"));
      continue;
    }
    plan->notes.push_back(absl::StrCat(pattern.ToString(), ": ", weight,
                                       "% over ", groups.size(),
                                       " locality(ies) by endpoint weight"));
    Scale(&groups, weight / 100.0);
    for (LocalityGroup& g : groups) {
      g.why = absl::StrCat("distribute ", pattern.ToString(), " ", weight, "%");
      p0.push_back(std::move(g));
    }
  }
  SortByLocality(&p0);
  AddPriority(plan, std::move(p0),
              absl::StrCat("distribute for ", rule.from.ToString()));
}

// Envoy's zone-aware routing inside the caller's region. Returns false (and
// says why) when it does not apply; the caller then uses the default order.
bool ZoneAware(const std::vector<Bucket>& buckets, const Caller& caller,
               const config::LocalityPolicy& lp, Plan* plan,
               const HealthOverrides& health) {
  const Locality& me = caller.locality;
  if (caller.own_service == nullptr || me.zone.empty()) {
    plan->notes.push_back(
        "zone-aware routing needs the caller's zone and its own service in "
        "the config; using the default order");
    return false;
  }
  std::map<std::string, double> dest, own;  // zone -> healthy endpoints
  double dest_total = 0, own_total = 0;
  for (const Bucket& b : buckets) {
    if (b.locality->region != me.region) continue;
    for (bool h : b.healthy) {
      dest[b.locality->zone] += h;
      dest_total += h;
    }
  }
  for (const Endpoint& e : caller.own_service->endpoints) {
    auto it = health.find(Key(e));
    const Health h = it == health.end() ? e.health : it->second;
    if (h == Health::kHealthy && e.locality.region == me.region) {
      own[e.locality.zone] += 1;
      own_total += 1;
    }
  }
  if (dest_total < lp.zone_aware_min_endpoints || own_total == 0) {
    plan->notes.push_back(absl::StrFormat(
        "zone-aware routing skipped: %d healthy destination endpoints in "
        "%s (minimum %d), %d of the caller's own; using the default order",
        static_cast<int>(dest_total), me.region, lp.zone_aware_min_endpoints,
        static_cast<int>(own_total)));
    return false;
  }
  std::map<std::string, double> share;
  const double up_local = dest[me.zone] / dest_total;
  const double lo_local = own[me.zone] / own_total;
  if (up_local >= lo_local) {
    share[me.zone] = 1.0;
    plan->notes.push_back(absl::StrFormat(
        "zone %s holds %.1f%% of the destination and %.1f%% of the callers: "
        "all traffic stays local",
        me.zone, up_local * 100, lo_local * 100));
  } else {
    share[me.zone] = up_local / lo_local;
    const double residual = 1.0 - share[me.zone];
    double surplus_total = 0;
    std::map<std::string, double> surplus;
    for (const auto& [zone, n] : dest) {
      if (zone == me.zone) continue;
      surplus[zone] = std::max(0.0, n / dest_total - own[zone] / own_total);
      surplus_total += surplus[zone];
    }
    plan->notes.push_back(absl::StrFormat(
        "zone %s holds %.1f%% of the destination for %.1f%% of the callers: "
        "%.1f%% stays local, %.1f%% goes to zones with surplus capacity",
        me.zone, up_local * 100, lo_local * 100, share[me.zone] * 100,
        residual * 100));
    for (const auto& [zone, s] : surplus) {
      // No zone has a surplus (rounding): spread by capacity instead.
      const double part = surplus_total > 0
                              ? s / surplus_total
                              : dest[zone] / (dest_total - dest[me.zone]);
      share[zone] = residual * part;
      plan->notes.push_back(absl::StrFormat(
          "zone %s: %.1f%% of destination, %.1f%% of callers, surplus "
          "%.1f%%: gets %.1f%%",
          zone, dest[zone] / dest_total * 100, own[zone] / own_total * 100,
          s * 100, share[zone] * 100));
    }
  }
  std::map<std::string, std::vector<Bucket>> by_zone;
  std::vector<Bucket> region_rest, elsewhere;
  for (const Bucket& b : buckets) {
    auto it = share.find(b.locality->zone);
    if (b.locality->region != me.region) {
      elsewhere.push_back(b);
    } else if (it != share.end() && it->second > 0) {
      by_zone[b.locality->zone].push_back(b);
    } else {
      region_rest.push_back(b);
    }
  }
  std::vector<LocalityGroup> p0;
  for (const auto& [zone, zb] : by_zone) {
    std::vector<LocalityGroup> groups = Group(zb, false);
    if (groups.empty()) continue;
    Scale(&groups, share[zone]);
    for (LocalityGroup& g : groups) {
      g.why = absl::StrFormat("zone-aware, zone %s %.1f%%", zone,
                              share[zone] * 100);
      p0.push_back(std::move(g));
    }
  }
  SortByLocality(&p0);
  AddPriority(plan, std::move(p0),
              absl::StrCat("zone-aware inside ", me.region));
  AddPriority(plan, Group(region_rest, false),
              "same region, zones without surplus (failover)");
  AddPriority(plan, Group(elsewhere, false), "elsewhere (failover)");
  return true;
}

}  // namespace

const char* ProximityName(Proximity p) {
  switch (p) {
    case Proximity::kSameCluster:
      return "same cluster";
    case Proximity::kSameZone:
      return "same zone";
    case Proximity::kSameRegion:
      return "same region";
    case Proximity::kElsewhere:
      return "elsewhere";
  }
  return "?";
}

Proximity ProximityOf(const Locality& caller, const Locality& ep) {
  if (caller.region.empty() || caller.region != ep.region) {
    return Proximity::kElsewhere;
  }
  if (caller.zone.empty() || caller.zone != ep.zone) {
    return Proximity::kSameRegion;
  }
  if (caller.cluster.empty() || caller.cluster != ep.cluster) {
    return Proximity::kSameZone;
  }
  return Proximity::kSameCluster;
}

Plan ComputePlan(const config::Service& service, const Caller& caller,
                 const HealthOverrides& health) {
  Plan plan;
  const config::LocalityPolicy& lp = service.locality_policy;
  // Bucket the endpoints by locality (n log L), then sort each bucket by
  // address: the result does not depend on the config's order.
  std::map<Locality, std::vector<const Endpoint*>> by_locality;
  for (const Endpoint& e : service.endpoints) {
    by_locality[e.locality].push_back(&e);
  }
  std::vector<Bucket> buckets;
  buckets.reserve(by_locality.size());
  for (auto& [loc, eps] : by_locality) {
    std::sort(eps.begin(), eps.end(), [](const Endpoint* a, const Endpoint* b) {
      return std::tie(a->address, a->port) < std::tie(b->address, b->port);
    });
    Bucket b;
    b.locality = &loc;
    b.eps = std::move(eps);
    b.healthy.reserve(b.eps.size());
    for (const Endpoint* e : b.eps) {
      Health h = e->health;
      if (!health.empty()) {
        auto it = health.find(Key(*e));
        if (it != health.end()) h = it->second;
        if (it != health.end() && h != Health::kHealthy) {
          plan.excluded.push_back(
              absl::StrCat(Key(*e), " (UNHEALTHY, health check)"));
        }
      }
      if (h != Health::kHealthy && h == e->health) {
        plan.excluded.push_back(absl::StrCat(
            Key(*e), " (",
            h == Health::kUnhealthy ? "UNHEALTHY" : "DRAINING", ")"));
      }
      b.healthy.push_back(h == Health::kHealthy);
    }
    buckets.push_back(std::move(b));
  }

  for (const config::DistributeRule& rule : lp.distribute) {
    if (rule.from.Matches(caller.locality)) {
      plan.rule = absl::StrCat("distribute (rule for ", rule.from.ToString(),
                               ", line ", rule.line, ")");
      Distribute(buckets, rule, &plan);
      return plan;
    }
  }
  if (lp.zone_aware) {
    plan.rule = "zone-aware";
    if (ZoneAware(buckets, caller, lp, &plan, health)) return plan;
  }
  const config::FailoverRule* failover = nullptr;
  for (const config::FailoverRule& rule : lp.failover) {
    if (rule.from.Matches(caller.locality)) {
      failover = &rule;
      break;
    }
  }
  std::vector<Level> levels;
  if (!lp.failover_priority.empty()) {
    plan.rule = absl::StrCat("failoverPriority [",
                             absl::StrJoin(lp.failover_priority, ", "), "]");
    levels = FailoverPriorityLevels(buckets, caller, lp.failover_priority);
  } else if (failover != nullptr) {
    plan.rule = absl::StrCat("failover from ", failover->from.ToString(),
                             " (line ", failover->line, ")");
    levels = ExplicitFailoverLevels(buckets, caller, *failover);
  } else {
    if (plan.rule.empty()) {
      plan.rule = !lp.distribute.empty() || !lp.failover.empty()
                      ? "proximity (no rule matches this caller)"
                      : "proximity";
    }
    levels = ProximityLevels(buckets, caller.locality);
  }
  Spill(std::move(levels), lp, &plan);
  return plan;
}

std::string Plan::ToJson() const {
  using internal::JsonString;
  auto strings = [](const std::vector<std::string>& v) {
    std::vector<std::string> q;
    for (const std::string& x : v) q.push_back(JsonString(x));
    return absl::StrCat("[", absl::StrJoin(q, ","), "]");
  };
  std::vector<std::string> prios;
  for (const Priority& p : priorities) {
    const uint64_t total = TotalWeight(p.localities);
    std::vector<std::string> locs;
    for (const LocalityGroup& g : p.localities) {
      std::vector<std::string> eps;
      for (const EndpointRef& e : g.endpoints) {
        eps.push_back(JsonString(absl::StrCat(
            absl::StrContains(e.address, ':') ? "[" + e.address + "]"
                                              : e.address,
            ":", e.port)));
      }
      locs.push_back(absl::StrCat(
          "{\"locality\":", JsonString(g.locality.ToString()),
          ",\"weight\":", g.weight, ",\"share\":",
          absl::StrFormat("%.1f", total == 0 ? 0.0 : 100.0 * g.weight / total),
          ",\"why\":", JsonString(g.why), ",\"endpoints\":[",
          absl::StrJoin(eps, ","), "]}"));
    }
    prios.push_back(absl::StrCat("{\"why\":", JsonString(p.why),
                                 ",\"localities\":[", absl::StrJoin(locs, ","),
                                 "]}"));
  }
  return absl::StrCat("{\"rule\":", JsonString(rule), ",\"notes\":",
                      strings(notes), ",\"priorities\":[",
                      absl::StrJoin(prios, ","), "],\"excluded\":",
                      strings(excluded), "}");
}

std::string Plan::Explain() const {
  std::string out = absl::StrCat("rule: ", rule, "\n");
  for (const std::string& n : notes) absl::StrAppend(&out, "  ", n, "\n");
  for (size_t i = 0; i < priorities.size(); ++i) {
    const Priority& p = priorities[i];
    const uint64_t total = TotalWeight(p.localities);
    absl::StrAppend(&out, "priority ", i, ": ", p.why, "\n");
    for (const LocalityGroup& g : p.localities) {
      absl::StrAppend(
          &out, "  ", g.locality.ToString(),
          absl::StrFormat(" %.1f%%", total ? g.weight * 100.0 / total : 0.0),
          " (weight ", g.weight, g.why.empty() ? "" : "; " + g.why, "):");
      for (const EndpointRef& e : g.endpoints) {
        absl::StrAppend(&out, " ", e.address, ":", e.port);
      }
      absl::StrAppend(&out, "\n");
    }
  }
  if (priorities.empty()) absl::StrAppend(&out, "no endpoints to use\n");
  for (const std::string& e : excluded) {
    absl::StrAppend(&out, "excluded: ", e, "\n");
  }
  return out;
}

}  // namespace policy
}  // namespace mesh
