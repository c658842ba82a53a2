// The locality policy, rule by rule, with worked numbers; then properties
// that must hold for any topology.

#include <algorithm>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "mesh/config/config.h"
#include "mesh/policy/locality.h"

namespace mesh {
namespace policy {
namespace {

using config::Endpoint;
using config::Health;
using config::Locality;
using config::LocalityPattern;
using config::Service;

int g_ip = 0;

Endpoint Ep(Locality loc, Health health = Health::kHealthy,
            uint32_t weight = 1,
            std::map<std::string, std::string> labels = {}) {
  Endpoint e;
  e.address = absl::StrCat("10.0.", g_ip / 250, ".", g_ip % 250 + 1);
  ++g_ip;
  e.port = 80;
  e.locality = std::move(loc);
  e.weight = weight;
  e.health = health;
  e.labels = std::move(labels);
  return e;
}

void Add(Service* s, int n, const Locality& loc,
         Health health = Health::kHealthy) {
  for (int i = 0; i < n; ++i) s->endpoints.push_back(Ep(loc, health));
}

// Locality -> percent of the priority's traffic, rounded to 0.1.
std::map<std::string, double> Shares(const Priority& p) {
  uint64_t total = 0;
  for (const LocalityGroup& g : p.localities) total += g.weight;
  std::map<std::string, double> out;
  for (const LocalityGroup& g : p.localities) {
    out[g.locality.ToString()] =
        std::round(g.weight * 1000.0 / total) / 10.0;
  }
  return out;
}

size_t Endpoints(const Priority& p) {
  size_t n = 0;
  for (const LocalityGroup& g : p.localities) n += g.endpoints.size();
  return n;
}

const Locality kC1{"us-east", "us-east-a", "cluster-1"};
const Locality kC1b{"us-east", "us-east-a", "cluster-1b"};
const Locality kC2{"us-east", "us-east-b", "cluster-2"};
const Locality kC3{"eu-west", "eu-west-a", "cluster-3"};
const Locality kC4{"ap-south", "ap-south-a", "cluster-4"};
const Locality kC5{"sa-east", "sa-east-a", "cluster-5"};

TEST(ProximityTest, RanksClusterZoneRegionElsewhere) {
  EXPECT_EQ(ProximityOf(kC1, kC1), Proximity::kSameCluster);
  EXPECT_EQ(ProximityOf(kC1, kC1b), Proximity::kSameZone);
  EXPECT_EQ(ProximityOf(kC1, kC2), Proximity::kSameRegion);
  EXPECT_EQ(ProximityOf(kC1, kC3), Proximity::kElsewhere);
  EXPECT_EQ(ProximityOf({"us-east", "", ""}, kC1), Proximity::kSameRegion);
  EXPECT_EQ(ProximityOf({}, kC1), Proximity::kElsewhere);
}

// --- Default proximity order --------------------------------------------

TEST(DefaultOrderTest, HealthyLocalClusterTakesEverythingOthersFailOver) {
  Service s;
  Add(&s, 2, kC1);
  Add(&s, 1, kC1b);
  Add(&s, 1, kC2);
  Add(&s, 1, kC3);
  Plan p = ComputePlan(s, {kC1});
  EXPECT_EQ(p.rule, "proximity");
  ASSERT_EQ(p.priorities.size(), 4u);
  EXPECT_EQ(p.priorities[0].why, "same cluster 100%");
  EXPECT_EQ(Shares(p.priorities[0]),
            (std::map<std::string, double>{{kC1.ToString(), 100}}));
  EXPECT_EQ(Endpoints(p.priorities[0]), 2u);
  EXPECT_EQ(p.priorities[1].why, "same zone (failover)");
  EXPECT_EQ(p.priorities[2].why, "same region (failover)");
  EXPECT_EQ(p.priorities[3].why, "elsewhere (failover)");
}

TEST(DefaultOrderTest, SkipsEmptyLevelsSoPrioritiesStayContiguous) {
  Service s;
  Add(&s, 1, kC1);
  Add(&s, 1, kC2);
  Add(&s, 1, kC3);
  Plan p = ComputePlan(s, {kC1});
  ASSERT_EQ(p.priorities.size(), 3u);
  EXPECT_EQ(p.priorities[1].why, "same region (failover)");
  EXPECT_EQ(p.priorities[2].why, "elsewhere (failover)");
}

TEST(DefaultOrderTest, LocalityWeightIsTheSumOfEndpointWeights) {
  // gRPC ignores endpoint weights: 3 endpoints vs 1 -> 75 % / 25 %.
  Service s;
  Add(&s, 3, kC1);
  Add(&s, 1, kC3);
  Plan p = ComputePlan(s, {{"ap-south", "", ""}});
  ASSERT_EQ(p.priorities.size(), 1u);
  EXPECT_EQ(Shares(p.priorities[0]),
            (std::map<std::string, double>{{kC1.ToString(), 75},
                                           {kC3.ToString(), 25}}));
  s.endpoints[0].weight = 5;  // 5 + 1 + 1 vs 1 -> 87.5 % / 12.5 %.
  EXPECT_EQ(Shares(ComputePlan(s, {{"ap-south", "", ""}}).priorities[0]),
            (std::map<std::string, double>{{kC1.ToString(), 87.5},
                                           {kC3.ToString(), 12.5}}));
}

// --- Proportional spillover (Envoy's math) -------------------------------

TEST(SpilloverTest, ThreeOfFiveHealthySpills16PercentToTheNextLevel) {
  // Level 0: 3 of 5 healthy -> health = min(100, 60 x 1.4) = 84.
  // Level 1: 2 of 2 healthy -> health 100; takes the remaining 16.
  Service s;
  Add(&s, 3, kC1);
  Add(&s, 2, kC1, Health::kUnhealthy);
  Add(&s, 2, kC1b);
  Add(&s, 1, kC2);
  Plan p = ComputePlan(s, {kC1});
  ASSERT_EQ(p.priorities.size(), 2u);
  EXPECT_EQ(p.priorities[0].why,
            "spillover: same cluster 84%, same zone 16%");
  EXPECT_EQ(Shares(p.priorities[0]),
            (std::map<std::string, double>{{kC1.ToString(), 84},
                                           {kC1b.ToString(), 16}}));
  EXPECT_EQ(Endpoints(p.priorities[0]), 5u);  // 3 healthy + 2.
  EXPECT_EQ(p.priorities[1].why, "same region (failover)");
  EXPECT_EQ(p.notes[0],
            "level 0 (same cluster): 3 of 5 healthy, health = min(100, 60% "
            "x 1.40) = 84, load 84%");
}

TEST(SpilloverTest, BelowThePanicThresholdALevelUsesAllItsEndpoints) {
  // 2 of 5 healthy = 40 % < 50 %: panic; health = 40 x 1.4 = 56.
  Service s;
  Add(&s, 2, kC1);
  Add(&s, 3, kC1, Health::kUnhealthy);
  Add(&s, 2, kC2);
  Plan p = ComputePlan(s, {kC1});
  ASSERT_EQ(p.priorities.size(), 1u);
  EXPECT_EQ(Shares(p.priorities[0]),
            (std::map<std::string, double>{{kC1.ToString(), 56},
                                           {kC2.ToString(), 44}}));
  EXPECT_EQ(Endpoints(p.priorities[0]), 7u);  // All 5 of level 0 + 2.
  EXPECT_NE(p.notes[0].find("panic"), std::string::npos) << p.notes[0];
}

TEST(SpilloverTest, WhenAllLevelsAreWeakLoadsScaleWithHealth) {
  // Level 0: 1 of 4 -> 35; level 1: 1 of 2 -> 70. Sum 105 >= 100:
  // level 0 gets 35, level 1 the remaining 65.
  Service s;
  Add(&s, 1, kC1);
  Add(&s, 3, kC1, Health::kUnhealthy);
  Add(&s, 1, kC2);
  Add(&s, 1, kC2, Health::kUnhealthy);
  EXPECT_EQ(Shares(ComputePlan(s, {kC1}).priorities[0]),
            (std::map<std::string, double>{{kC1.ToString(), 35},
                                           {kC2.ToString(), 65}}));
  // Level 1 at 1 of 4 too: 35 + 35 = 70 < 100, scaled to 50 / 50.
  s.endpoints.push_back(Ep(kC2, Health::kUnhealthy));
  s.endpoints.push_back(Ep(kC2, Health::kUnhealthy));
  Plan p = ComputePlan(s, {kC1});
  EXPECT_EQ(Shares(p.priorities[0]),
            (std::map<std::string, double>{{kC1.ToString(), 50},
                                           {kC2.ToString(), 50}}));
  EXPECT_EQ(p.notes[0],
            "total health 70 < 100: loads scaled up in proportion to health");
}

TEST(SpilloverTest, OverprovisioningFactorIsConfigurable) {
  Service s;
  Add(&s, 3, kC1);
  Add(&s, 2, kC1, Health::kUnhealthy);
  Add(&s, 1, kC2);
  s.locality_policy.overprovisioning_percent = 100;  // 3/5 -> 60 / 40.
  EXPECT_EQ(Shares(ComputePlan(s, {kC1}).priorities[0]),
            (std::map<std::string, double>{{kC1.ToString(), 60},
                                           {kC2.ToString(), 40}}));
}

TEST(SpilloverTest, FailoverModeMovesOnlyWhenALevelIsFullyDown) {
  Service s;
  Add(&s, 1, kC1);
  Add(&s, 4, kC1, Health::kUnhealthy);
  Add(&s, 1, kC2);
  s.locality_policy.spillover = config::SpilloverMode::kFailover;
  Plan p = ComputePlan(s, {kC1});
  ASSERT_EQ(p.priorities.size(), 2u);
  EXPECT_EQ(Shares(p.priorities[0]),
            (std::map<std::string, double>{{kC1.ToString(), 100}}));
  EXPECT_EQ(Endpoints(p.priorities[0]), 1u);
}

TEST(SpilloverTest, NothingHealthyMeansPanicOverEverything) {
  Service s;
  Add(&s, 2, kC1, Health::kUnhealthy);
  Add(&s, 1, kC3, Health::kDraining);
  Plan p = ComputePlan(s, {kC1});
  ASSERT_EQ(p.priorities.size(), 2u);
  EXPECT_EQ(p.priorities[0].why, "same cluster (panic)");
  EXPECT_EQ(Endpoints(p.priorities[0]), 2u);
  EXPECT_EQ(p.priorities[1].why, "elsewhere (panic)");
}

TEST(SpilloverTest, HealthOverridesComeFromHealthChecks) {
  Service s;
  Add(&s, 2, kC1);
  Add(&s, 1, kC2);
  HealthOverrides h = {{s.endpoints[0].address + ":80", Health::kUnhealthy}};
  Plan p = ComputePlan(s, {kC1}, h);
  // 1 of 2 healthy = 50 % (not below 50: no panic), health 70.
  EXPECT_EQ(Shares(p.priorities[0]),
            (std::map<std::string, double>{{kC1.ToString(), 70},
                                           {kC2.ToString(), 30}}));
  EXPECT_EQ(p.excluded, (std::vector<std::string>{
                            s.endpoints[0].address +
                            ":80 (UNHEALTHY, health check)"}));
}

// --- failoverPriority (Istio) --------------------------------------------

TEST(FailoverPriorityTest, LevelsCountMatchingLeadingLabels) {
  Service s;
  s.locality_policy.failover_priority = {"region", "zone", "version"};
  s.endpoints = {Ep(kC1, Health::kHealthy, 1, {{"version", "v2"}}),
                 Ep(kC1b, Health::kHealthy, 1, {{"version", "v1"}}),
                 Ep(kC2, Health::kHealthy, 1, {{"version", "v2"}}),
                 Ep(kC3, Health::kHealthy, 1, {{"version", "v2"}})};
  Caller caller{kC1, {{"version", "v2"}}};
  Plan p = ComputePlan(s, caller);
  EXPECT_EQ(p.rule, "failoverPriority [region, zone, version]");
  ASSERT_EQ(p.priorities.size(), 4u);
  EXPECT_EQ(p.priorities[0].why, "matches region, zone, version 100%");
  EXPECT_EQ(p.priorities[0].localities[0].locality, kC1);
  EXPECT_EQ(p.priorities[1].why, "matches region, zone (failover)");
  EXPECT_EQ(p.priorities[1].localities[0].locality, kC1b);
  EXPECT_EQ(p.priorities[2].why, "matches region (failover)");
  EXPECT_EQ(p.priorities[2].localities[0].locality, kC2);  // v2, but zone b
  EXPECT_EQ(p.priorities[3].why, "no label matches (failover)");
}

// --- Explicit failover ------------------------------------------------------

TEST(ExplicitFailoverTest, GoesToTheTargetsInOrderThenTheRest) {
  Service s;
  Add(&s, 1, kC2);
  Add(&s, 1, kC3);
  Add(&s, 1, kC4);
  Add(&s, 1, kC5);
  s.locality_policy.failover.push_back(
      {{"us-east", "*", "*"}, {{"ap-south", "*", "*"}, {"eu-west", "*", "*"}},
       7});
  Plan p = ComputePlan(s, {kC1});
  EXPECT_EQ(p.rule, "failover from us-east/* (line 7)");
  ASSERT_EQ(p.priorities.size(), 4u);
  EXPECT_EQ(p.priorities[0].localities[0].locality, kC2);
  EXPECT_EQ(p.priorities[1].why, "failover target ap-south/* (failover)");
  EXPECT_EQ(p.priorities[1].localities[0].locality, kC4);
  EXPECT_EQ(p.priorities[2].localities[0].locality, kC3);
  EXPECT_EQ(p.priorities[3].why,
            "elsewhere (after the failover targets) (failover)");
  // A caller the rule does not name keeps the default order.
  EXPECT_EQ(ComputePlan(s, {kC3}).rule, "proximity (no rule matches this caller)");
}

// --- Distribute ---------------------------------------------------------------

TEST(DistributeTest, SplitsByPatternThenByEndpointWeight) {
  Service s;
  Add(&s, 1, kC1);
  Add(&s, 3, kC1b);
  Add(&s, 2, kC2);
  Add(&s, 1, kC3);
  s.locality_policy.distribute.push_back(
      {{"us-east", "us-east-a", "*"},
       {{{"us-east", "us-east-a", "*"}, 80}, {{"us-east", "us-east-b", "*"}, 20}},
       3});
  Plan p = ComputePlan(s, {kC1});
  EXPECT_EQ(p.rule, "distribute (rule for us-east/us-east-a/*, line 3)");
  ASSERT_EQ(p.priorities.size(), 1u);
  // us-east-a's 80 % split 1:3 between cluster-1 and cluster-1b.
  EXPECT_EQ(Shares(p.priorities[0]),
            (std::map<std::string, double>{{kC1.ToString(), 20},
                                           {kC1b.ToString(), 60},
                                           {kC2.ToString(), 20}}));
  ASSERT_EQ(p.excluded.size(), 1u);
  EXPECT_EQ(p.excluded[0],
            s.endpoints[6].address +
                ":80 (eu-west/eu-west-a/cluster-3 is not in the distribute "
                "rule for us-east/us-east-a/*)");
}

TEST(DistributeTest, APatternWithoutHealthyEndpointsLeavesItsShareToOthers) {
  Service s;
  Add(&s, 1, kC1);
  Add(&s, 1, kC2, Health::kUnhealthy);
  s.locality_policy.distribute.push_back(
      {{"us-east", "*", "*"},
       {{{"us-east", "us-east-a", "*"}, 50}, {{"us-east", "us-east-b", "*"}, 50}},
       3});
  Plan p = ComputePlan(s, {kC1});
  EXPECT_EQ(Shares(p.priorities[0]),
            (std::map<std::string, double>{{kC1.ToString(), 100}}));
  EXPECT_EQ(p.notes[1],
            "us-east/us-east-b/* (50%) has no healthy endpoint: its share "
            "goes to the others");
}

// --- Zone-aware routing (Envoy) ----------------------------------------------

class ZoneAwareTest : public ::testing::Test {
 protected:
  // Callers: `own` endpoints per zone; destination: `dest` per zone; all in
  // us-east, zones a, b, c; plus one endpoint elsewhere.
  Plan Run(const std::string& zone, std::vector<int> own,
           std::vector<int> dest) {
    own_.endpoints.clear();
    dest_.endpoints.clear();
    const char* zones[] = {"a", "b", "c"};
    for (size_t i = 0; i < own.size(); ++i) {
      Add(&own_, own[i], {"us-east", zones[i], "k"});
      Add(&dest_, dest[i], {"us-east", zones[i], "k"});
    }
    Add(&dest_, 1, kC3);
    dest_.locality_policy.zone_aware = true;
    Caller c{{"us-east", zone, "k"}, {}, &own_};
    return ComputePlan(dest_, c);
  }
  Service own_, dest_;
};

TEST_F(ZoneAwareTest, LocalZoneWithEnoughCapacityKeepsEverything) {
  // Zone b: 75 % of the destination, 50 % of callers -> 100 % local.
  Plan p = Run("b", {2, 2}, {2, 6});
  EXPECT_EQ(Shares(p.priorities[0]),
            (std::map<std::string, double>{{"us-east/b/k", 100}}));
  EXPECT_EQ(p.priorities[1].why,
            "same region, zones without surplus (failover)");
  EXPECT_EQ(p.priorities[2].why, "elsewhere (failover)");
}

TEST_F(ZoneAwareTest, ShortLocalZoneSendsItsResidueToSurplusZones) {
  // Zone a: 25 % of the destination for 50 % of callers: 25/50 = 50 % stays
  // local, the other 50 % goes to b (surplus 75 - 50 = 25 points). Check:
  // a's backends get 50 % x 50 % = 25 % of all traffic = their share.
  Plan p = Run("a", {2, 2}, {2, 6});
  EXPECT_EQ(Shares(p.priorities[0]),
            (std::map<std::string, double>{{"us-east/a/k", 50},
                                           {"us-east/b/k", 50}}));
}

TEST_F(ZoneAwareTest, ResidueFollowsSurplusNotCapacity) {
  // Callers 1/3 each; destination a 1, b 3, c 6 (10 %, 30 %, 60 %).
  // a keeps 10/33.3 = 30 %; b has no surplus (30 < 33.3); c has 26.7:
  // c takes all of the 70 % residue.
  Plan p = Run("a", {1, 1, 1}, {1, 3, 6});
  EXPECT_EQ(Shares(p.priorities[0]),
            (std::map<std::string, double>{{"us-east/a/k", 30},
                                           {"us-east/c/k", 70}}));
  EXPECT_EQ(p.priorities[1].localities[0].locality.zone, "b");
}

TEST_F(ZoneAwareTest, FallsBackBelowTheMinimumSize) {
  Plan p = Run("a", {2, 2}, {1, 2});  // 3 < 6 destination endpoints.
  EXPECT_EQ(p.rule, "zone-aware");
  EXPECT_EQ(p.notes[0],
            "zone-aware routing skipped: 3 healthy destination endpoints in "
            "us-east (minimum 6), 4 of the caller's own; using the default "
            "order");
  EXPECT_EQ(p.priorities[0].localities[0].locality.zone, "a");
}

// --- Explanation ----------------------------------------------------------------

TEST(ExplainTest, SaysTheRuleTheNumbersAndEachLocality) {
  Service s;
  s.endpoints = {Ep(kC1), Ep(kC1, Health::kUnhealthy), Ep(kC2)};
  s.endpoints[0].address = "10.9.0.1";
  s.endpoints[1].address = "10.9.0.2";
  s.endpoints[2].address = "10.9.0.3";
  EXPECT_EQ(
      ComputePlan(s, {kC1}).Explain(),
      "rule: proximity\n"
      "  level 0 (same cluster): 1 of 2 healthy, health = min(100, 50% x "
      "1.40) = 70, load 70%\n"
      "  level 1 (same region): 1 of 1 healthy, health = min(100, 100% x "
      "1.40) = 100, load 30%\n"
      "priority 0: spillover: same cluster 70%, same region 30%\n"
      "  us-east/us-east-a/cluster-1 70.0% (weight 70000; same cluster, 70% "
      "of traffic): 10.9.0.1:80\n"
      "  us-east/us-east-b/cluster-2 30.0% (weight 30000; same region, 30% "
      "of traffic): 10.9.0.3:80\n"
      "excluded: 10.9.0.2:80 (UNHEALTHY)\n");
}

// --- Properties over random topologies --------------------------------------

TEST(PolicyPropertyTest, HoldsForRandomTopologies) {
  std::mt19937 rng(20261127);
  const char* regions[] = {"r1", "r2", "r3"};
  const char* zones[] = {"z1", "z2"};
  const char* clusters[] = {"c1", "c2"};
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  for (int iter = 0; iter < 2000; ++iter) {
    Service s;
    const int n = 1 + pick(30);
    for (int i = 0; i < n; ++i) {
      Locality loc{regions[pick(3)], zones[pick(2)], clusters[pick(2)]};
      const Health h = pick(4) == 0 ? Health::kUnhealthy : Health::kHealthy;
      s.endpoints.push_back(Ep(loc, h, 1 + pick(3),
                               {{"v", pick(2) ? "a" : "b"}}));
    }
    config::LocalityPolicy& lp = s.locality_policy;
    switch (pick(5)) {
      case 0:
        lp.failover_priority = {"region", "v", "zone"};
        break;
      case 1:
        lp.failover.push_back({{"r1", "*", "*"}, {{"r3", "*", "*"}}, 1});
        break;
      case 2:
        lp.distribute.push_back(
            {{"r1", "*", "*"},
             {{{"r1", "*", "*"}, 70}, {{"r2", "z1", "*"}, 30}}, 1});
        break;
      case 3:
        lp.zone_aware = true;
        lp.zone_aware_min_endpoints = 1;
        break;
      default:
        break;
    }
    if (pick(3) == 0) lp.spillover = config::SpilloverMode::kFailover;
    Service own;
    for (int i = 0; i < 4; ++i) {
      own.endpoints.push_back(Ep({"r1", zones[pick(2)], "c1"}));
    }
    Caller caller{{regions[pick(3)], zones[pick(2)], clusters[pick(2)]},
                  {{"v", "a"}},
                  &own};
    const Plan plan = ComputePlan(s, caller);
    SCOPED_TRACE(plan.Explain());

    bool any_healthy = false;
    for (const Endpoint& e : s.endpoints) {
      any_healthy = any_healthy || e.health == Health::kHealthy;
    }
    std::multiset<std::string> placed;
    for (const Priority& p : plan.priorities) {
      ASSERT_FALSE(p.localities.empty());  // No empty (gap) priority.
      for (const LocalityGroup& g : p.localities) {
        ASSERT_GT(g.weight, 0u);
        ASSERT_FALSE(g.endpoints.empty());
        for (const EndpointRef& e : g.endpoints) {
          placed.insert(absl::StrCat(e.address, ":", e.port));
        }
      }
    }
    for (const Endpoint& e : s.endpoints) {
      const std::string key = absl::StrCat(e.address, ":", e.port);
      const bool excluded_by_rule = std::any_of(
          plan.excluded.begin(), plan.excluded.end(),
          [&](const std::string& x) {
            return x.rfind(key + " (", 0) == 0 &&
                   x.find("distribute") != std::string::npos;
          });
      if (e.health == Health::kHealthy && !excluded_by_rule) {
        // Every healthy endpoint is reachable, exactly once.
        ASSERT_EQ(placed.count(key), 1u) << key;
      } else if (any_healthy) {
        // Unhealthy ones appear at most once (panic levels).
        ASSERT_LE(placed.count(key), 1u) << key;
      }
    }
    // Deterministic whatever the order of the config's endpoints.
    Service shuffled = s;
    std::shuffle(shuffled.endpoints.begin(), shuffled.endpoints.end(), rng);
    ASSERT_EQ(ComputePlan(shuffled, caller).Explain(), plan.Explain());
  }
}

}  // namespace
}  // namespace policy
}  // namespace mesh
