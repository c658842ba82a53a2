// The default locality policy: proximity levels, renumbering, weights,
// exclusion of unhealthy endpoints, determinism.

#include <gtest/gtest.h>

#include "mesh/config/config.h"
#include "mesh/policy/locality.h"

namespace mesh {
namespace policy {
namespace {

using config::Endpoint;
using config::Health;
using config::Locality;
using config::Service;

Endpoint Ep(const char* addr, Locality loc, uint32_t weight = 1,
            Health health = Health::kHealthy) {
  Endpoint e;
  e.address = addr;
  e.port = 80;
  e.locality = std::move(loc);
  e.weight = weight;
  e.health = health;
  return e;
}

const Locality kC1{"us-east", "us-east-a", "cluster-1"};
const Locality kC1b{"us-east", "us-east-a", "cluster-1b"};
const Locality kC2{"us-east", "us-east-b", "cluster-2"};
const Locality kC3{"eu-west", "eu-west-a", "cluster-3"};

TEST(ProximityTest, RanksClusterZoneRegionElsewhere) {
  EXPECT_EQ(ProximityOf(kC1, kC1), Proximity::kSameCluster);
  EXPECT_EQ(ProximityOf(kC1, kC1b), Proximity::kSameZone);
  EXPECT_EQ(ProximityOf(kC1, kC2), Proximity::kSameRegion);
  EXPECT_EQ(ProximityOf(kC1, kC3), Proximity::kElsewhere);
  // Unknown parts of the caller match nothing finer than what is known.
  EXPECT_EQ(ProximityOf({"us-east", "", ""}, kC1), Proximity::kSameRegion);
  EXPECT_EQ(ProximityOf({}, kC1), Proximity::kElsewhere);
}

TEST(PlanTest, OrdersLocalitiesClosestFirst) {
  Service s;
  s.endpoints = {Ep("10.0.3.1", kC3), Ep("10.0.2.1", kC2),
                 Ep("10.0.1.1", kC1), Ep("10.0.1.2", kC1),
                 Ep("10.0.1.9", kC1b)};
  Plan p = ComputePlan(s, kC1);
  ASSERT_EQ(p.priorities.size(), 4u);
  EXPECT_EQ(p.priorities[0].proximity, Proximity::kSameCluster);
  ASSERT_EQ(p.priorities[0].localities.size(), 1u);
  EXPECT_EQ(p.priorities[0].localities[0].locality, kC1);
  EXPECT_EQ(p.priorities[0].localities[0].endpoints.size(), 2u);
  EXPECT_EQ(p.priorities[0].localities[0].weight, 2u);
  EXPECT_EQ(p.priorities[1].localities[0].locality, kC1b);
  EXPECT_EQ(p.priorities[2].localities[0].locality, kC2);
  EXPECT_EQ(p.priorities[3].localities[0].locality, kC3);
}

TEST(PlanTest, SkipsEmptyLevelsSoPrioritiesStayContiguous) {
  // No same-zone endpoint: the region level becomes priority 1, not 2.
  Service s;
  s.endpoints = {Ep("10.0.1.1", kC1), Ep("10.0.2.1", kC2),
                 Ep("10.0.3.1", kC3)};
  Plan p = ComputePlan(s, kC1);
  ASSERT_EQ(p.priorities.size(), 3u);
  EXPECT_EQ(p.priorities[1].proximity, Proximity::kSameRegion);
  EXPECT_EQ(p.priorities[2].proximity, Proximity::kElsewhere);
}

TEST(PlanTest, CallerElsewhereGetsOnePriorityWeightedByEndpoints) {
  // gRPC ignores endpoint weights, so a locality's weight is the sum of its
  // endpoints' weights: 3 endpoints vs 1 -> 75 % / 25 %, even per endpoint.
  Service s;
  s.endpoints = {Ep("10.0.1.1", kC1), Ep("10.0.1.2", kC1),
                 Ep("10.0.1.3", kC1), Ep("10.0.3.1", kC3)};
  Plan p = ComputePlan(s, {"ap-south", "", ""});
  ASSERT_EQ(p.priorities.size(), 1u);
  ASSERT_EQ(p.priorities[0].localities.size(), 2u);
  EXPECT_EQ(p.priorities[0].localities[0].locality, kC3);  // Sorted.
  EXPECT_EQ(p.priorities[0].localities[0].weight, 1u);
  EXPECT_EQ(p.priorities[0].localities[1].weight, 3u);
}

TEST(PlanTest, HonoursEndpointWeightsInLocalityWeight) {
  Service s;
  s.endpoints = {Ep("10.0.1.1", kC1, 5), Ep("10.0.1.2", kC1, 2)};
  EXPECT_EQ(ComputePlan(s, kC1).priorities[0].localities[0].weight, 7u);
}

TEST(PlanTest, ExcludesUnhealthyAndDrainingEndpoints) {
  Service s;
  s.endpoints = {Ep("10.0.1.1", kC1, 1, Health::kUnhealthy),
                 Ep("10.0.1.2", kC1, 1, Health::kDraining),
                 Ep("10.0.2.1", kC2)};
  Plan p = ComputePlan(s, kC1);
  // The whole local cluster is out: the same-region level is priority 0.
  ASSERT_EQ(p.priorities.size(), 1u);
  EXPECT_EQ(p.priorities[0].proximity, Proximity::kSameRegion);
  EXPECT_EQ(p.excluded, (std::vector<std::string>{"10.0.1.1:80 (UNHEALTHY)",
                                                  "10.0.1.2:80 (DRAINING)"}));
}

TEST(PlanTest, ExplainsEachPriority) {
  Service s;
  s.endpoints = {Ep("10.0.1.1", kC1), Ep("10.0.2.1", kC2),
                 Ep("10.0.2.2", kC2, 1, Health::kUnhealthy)};
  EXPECT_EQ(ComputePlan(s, kC1).Explain(),
            "priority 0 (same cluster):\n"
            "  us-east/us-east-a/cluster-1 weight 1 (100% of P0), 1 "
            "endpoint(s): 10.0.1.1:80\n"
            "priority 1 (same region):\n"
            "  us-east/us-east-b/cluster-2 weight 1 (100% of P1), 1 "
            "endpoint(s): 10.0.2.1:80\n"
            "excluded: 10.0.2.2:80 (UNHEALTHY)\n");
  EXPECT_EQ(ComputePlan(Service(), kC1).Explain(), "no healthy endpoints\n");
}

TEST(PlanTest, IsDeterministicWhateverTheInputOrder) {
  Service a, b;
  a.endpoints = {Ep("10.0.1.1", kC1), Ep("10.0.2.1", kC2), Ep("10.0.3.1", kC3),
                 Ep("10.0.1.9", kC1b)};
  b.endpoints = {a.endpoints[3], a.endpoints[2], a.endpoints[1],
                 a.endpoints[0]};
  EXPECT_EQ(ComputePlan(a, kC2).Explain(), ComputePlan(b, kC2).Explain());
}

}  // namespace
}  // namespace policy
}  // namespace mesh
