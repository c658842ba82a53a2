// policy_bench: the cost of the pure stages for one caller, at 100, 1k and
// 10k endpoints spread over 10 and 100 localities (Google Benchmark):
// parsing and validating the config text, the locality plan, and its
// translation to xDS.
//
//   bazel run -c opt --platform_suffix=opt //bench:policy_bench
//
// ComputePlan is what the control plane runs per caller and service when a
// snapshot changes; Translate adds building the EDS protobuf.

#include <benchmark/benchmark.h>

#include "absl/strings/str_cat.h"
#include "mesh/config/config.h"
#include "mesh/policy/locality.h"
#include "mesh/xds/translate.h"

namespace {

using mesh::config::Endpoint;
using mesh::config::Health;
using mesh::config::Service;

// `n` endpoints over `localities` localities in 5 regions x 4 zones, every
// tenth endpoint unhealthy (so spillover math runs).
Service MakeService(int n, int localities) {
  Service s;
  s.name = "bench";
  s.hostname = "bench.mesh.internal";
  for (int i = 0; i < n; ++i) {
    const int l = i % localities;
    Endpoint e;
    e.address = absl::StrCat("10.", i / 65536, ".", (i / 256) % 256, ".",
                             i % 256);
    e.port = 8080;
    e.locality = {absl::StrCat("region-", l % 5),
                  absl::StrCat("zone-", l % 20), absl::StrCat("cluster-", l)};
    e.health = i % 10 == 0 ? Health::kUnhealthy : Health::kHealthy;
    s.endpoints.push_back(std::move(e));
  }
  return s;
}

// The config file text for MakeService's endpoints.
std::string MakeYaml(int n, int localities) {
  std::string y =
      "apiVersion: mesh/v1\ntrustDomain: bench\nservices:\n"
      "  - name: bench\n    hostname: bench.mesh.internal\n"
      "    endpoints:\n";
  for (const Endpoint& e : MakeService(n, localities).endpoints) {
    absl::StrAppend(&y, "      - {address: ", e.address, ", port: ", e.port,
                    ", locality: {region: ", e.locality.region,
                    ", zone: ", e.locality.zone, ", cluster: ",
                    e.locality.cluster, "}",
                    e.health == Health::kUnhealthy ? ", health: unhealthy"
                                                   : "",
                    "}\n");
  }
  return y;
}

void BM_ParseAndValidate(benchmark::State& state) {
  const std::string yaml = MakeYaml(state.range(0), state.range(1));
  for (auto _ : state) {
    auto c = mesh::config::ParseConfig(yaml, "bench.yaml");
    if (!c.ok()) state.SkipWithError(std::string(c.status().message()).c_str());
    benchmark::DoNotOptimize(c);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_ComputePlan(benchmark::State& state) {
  const Service s = MakeService(state.range(0), state.range(1));
  const mesh::policy::Caller caller{{"region-1", "zone-1", "cluster-1"}};
  for (auto _ : state) {
    benchmark::DoNotOptimize(mesh::policy::ComputePlan(s, caller));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_ComputePlanZoneAware(benchmark::State& state) {
  Service s = MakeService(state.range(0), state.range(1));
  s.locality_policy.zone_aware = true;
  const Service own = MakeService(state.range(0) / 10, state.range(1));
  const mesh::policy::Caller caller{
      {"region-1", "zone-1", "cluster-1"}, {}, &own};
  for (auto _ : state) {
    benchmark::DoNotOptimize(mesh::policy::ComputePlan(s, caller));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_TranslateEds(benchmark::State& state) {
  mesh::config::MeshConfig config;
  config.trust_domain = "bench";
  config.services.push_back(MakeService(state.range(0), state.range(1)));
  mesh::xds::Caller caller;
  caller.locality = {"region-1", "zone-1", "cluster-1"};
  for (auto _ : state) {
    benchmark::DoNotOptimize(mesh::xds::Translate(
        config, caller, mesh::xds::kEndpointType, {"default/bench"}));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

#define MESH_SIZES                                                   \
  ->Args({100, 10})                                                  \
      ->Args({1000, 10})                                             \
      ->Args({1000, 100})                                            \
      ->Args({10000, 10})                                            \
      ->Args({10000, 100})                                           \
      ->ArgNames({"endpoints", "localities"})                        \
      ->Unit(benchmark::kMicrosecond)

BENCHMARK(BM_ParseAndValidate) MESH_SIZES;
BENCHMARK(BM_ComputePlan) MESH_SIZES;
BENCHMARK(BM_ComputePlanZoneAware) MESH_SIZES;
BENCHMARK(BM_TranslateEds) MESH_SIZES;

}  // namespace

BENCHMARK_MAIN();
