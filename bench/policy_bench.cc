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

#include "bench/config_gen.h"
#include "mesh/config/config.h"
#include "mesh/policy/locality.h"
#include "mesh/xds/translate.h"

namespace {

using mesh::bench::MakeService;
using mesh::bench::MakeYaml;
using mesh::config::Service;

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
