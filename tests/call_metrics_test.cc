// The client call metrics' plan (telemetry::EndpointPlan, shared by the
// metrics and the admin view) and its use: calls are attributed to the
// locality of the endpoint that answered, and load reports to priorities.

#include "mesh/telemetry/call_metrics.h"

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/match.h"

namespace mesh {
namespace telemetry {
namespace {

TEST(EndpointPlanTest, EachEndpointFindsItsLocalityAlsoWhenInterleaved) {
  EndpointPlan plan;
  plan.Add("10.0.0.1:80", 0, 100, "r1/z1/c1");
  plan.Add("10.0.0.2:80", 1, 60, "r1/z2/c2");
  plan.Add("10.0.0.3:80", 0, 100, "r1/z1/c1");  // Back to the first.
  plan.Add("[::1]:80", 1, 40, "r2/z3/c3");
  plan.Add("10.0.0.4:80", 1, 60, "r1/z2/c2");
  EXPECT_EQ(plan.size(), 5u);
  ASSERT_EQ(plan.localities().size(), 3u);  // Each stored once.
  const std::map<std::string, std::string> want = {
      {"10.0.0.1:80", "r1/z1/c1"}, {"10.0.0.2:80", "r1/z2/c2"},
      {"10.0.0.3:80", "r1/z1/c1"}, {"[::1]:80", "r2/z3/c3"},
      {"10.0.0.4:80", "r1/z2/c2"}};
  for (const auto& [ep, loc] : want) {
    const Placement* p = plan.Find(ep);
    ASSERT_NE(p, nullptr) << ep;
    EXPECT_EQ(p->locality, loc) << ep;
  }
  EXPECT_EQ(plan.Find("10.0.0.2:80")->priority, 1);
  EXPECT_EQ(plan.Find("[::1]:80")->share, 40);
  EXPECT_EQ(plan.Find("10.0.0.9:80"), nullptr);
  std::map<std::string, std::string> seen;
  plan.ForEach([&](const std::string& ep, const Placement& p) {
    seen[ep] = p.locality;
  });
  EXPECT_EQ(seen, want);
}

TEST(CallMetricsTest, LoadReportsMoveTheServingPriorityByThePlan) {
  std::vector<std::string> changes;
  CallMetrics m([&](const std::string& dest, int from, int to,
                    const std::string& locality) {
    changes.push_back(dest + " " + std::to_string(from) + "->" +
                      std::to_string(to) + " " + locality);
  });
  auto plan = std::make_shared<EndpointPlan>();
  plan->Add("10.0.0.1:80", 0, 100, "r1/z1/c1");
  plan->Add("10.0.0.2:80", 1, 100, "r1/z2/c2");
  m.SetPlan("app.mesh.internal", plan);
  m.AddLoad("app.mesh.internal", {{"r1/z1/c1", 10, 0, 10}});
  m.AddLoad("app.mesh.internal", {{"r1/z1/c1", 0, 3, 3}, {"r1/z2/c2", 7, 0, 7}});
  // The first report only sets the serving priority; the second moves it.
  ASSERT_EQ(changes.size(), 1u) << ::testing::PrintToString(changes);
  EXPECT_EQ(changes[0], "app.mesh.internal 0->1 r1/z2/c2");
  const auto totals = m.Snapshot().at("app.mesh.internal");
  EXPECT_EQ(totals.started, 20u);
  EXPECT_EQ(totals.by_locality.at("r1/z1/c1"), std::make_pair(13ul, 10ul));
  EXPECT_TRUE(absl::StrContains(m.Prometheus(), "r1/z2/c2"));
}

}  // namespace
}  // namespace telemetry
}  // namespace mesh
