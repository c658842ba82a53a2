// yaml_readers: candidate YAML readers for the config file, on the same
// text bench/policy_bench parses (100, 1k and 10k endpoints), Google
// Benchmark. For the scale issue's "faster config reader": measure before
// choosing (docs/benchmarks.md "Config readers").
//
//   bazel run -c opt --platform_suffix=opt //bench:yaml_readers
//
// Each reader builds what a validating reader needs, with line and column
// for every node:
//   yaml-cpp  YAML::Load, the tree the config reader walks today;
//   libyaml   yaml_parser_load, a document of nodes with marks;
//   libyaml events  yaml_parser_parse to the end: the event stream alone,
//             the floor for a reader that validates as it goes;
//   libfyaml  fy_document_build_from_string, a tree with marks.
// Then mesh's own tree on libyaml's events (mesh/config/yaml.h, the one
// chosen) and mesh::config::ParseConfig (that tree plus validation).

#include <libfyaml.h>
#include <yaml.h>

#include <benchmark/benchmark.h>
#include <yaml-cpp/yaml.h>

#include "bench/config_gen.h"
#include "mesh/config/config.h"
#include "mesh/config/yaml.h"

namespace {

using mesh::bench::MakeYaml;

std::string Text(const benchmark::State& state) {
  return MakeYaml(state.range(0), 10);
}

void BM_YamlCppLoad(benchmark::State& state) {
  const std::string yaml = Text(state);
  for (auto _ : state) {
    YAML::Node n = YAML::Load(yaml);
    benchmark::DoNotOptimize(n);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_LibyamlLoad(benchmark::State& state) {
  const std::string yaml = Text(state);
  for (auto _ : state) {
    yaml_parser_t p;
    yaml_document_t doc;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(
        &p, reinterpret_cast<const unsigned char*>(yaml.data()), yaml.size());
    if (!yaml_parser_load(&p, &doc)) state.SkipWithError("libyaml: load");
    benchmark::DoNotOptimize(doc.nodes.top);
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_LibyamlEvents(benchmark::State& state) {
  const std::string yaml = Text(state);
  for (auto _ : state) {
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(
        &p, reinterpret_cast<const unsigned char*>(yaml.data()), yaml.size());
    size_t events = 0;
    for (bool done = false; !done;) {
      yaml_event_t e;
      if (!yaml_parser_parse(&p, &e)) {
        state.SkipWithError("libyaml: parse");
        break;
      }
      done = e.type == YAML_STREAM_END_EVENT;
      events += e.start_mark.line > 0;
      yaml_event_delete(&e);
    }
    benchmark::DoNotOptimize(events);
    yaml_parser_delete(&p);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_LibfyamlBuild(benchmark::State& state) {
  const std::string yaml = Text(state);
  fy_parse_cfg cfg = {};
  cfg.flags = FYPCF_QUIET;
  for (auto _ : state) {
    fy_document* d = fy_document_build_from_string(&cfg, yaml.data(),
                                                   yaml.size());
    if (d == nullptr) state.SkipWithError("libfyaml: build");
    benchmark::DoNotOptimize(d);
    fy_document_destroy(d);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

// The tree mesh's config readers walk (mesh/config/yaml.h, on libyaml's
// events): the reader chosen from the candidates above.
void BM_MeshYamlDocument(benchmark::State& state) {
  const std::string yaml = Text(state);
  for (auto _ : state) {
    auto d = mesh::config::yaml::Document::Parse(yaml, "bench.yaml");
    if (!d.ok()) state.SkipWithError(std::string(d.status().message()).c_str());
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_ParseConfig(benchmark::State& state) {
  const std::string yaml = Text(state);
  for (auto _ : state) {
    auto c = mesh::config::ParseConfig(yaml, "bench.yaml");
    if (!c.ok()) state.SkipWithError(std::string(c.status().message()).c_str());
    benchmark::DoNotOptimize(c);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

#define MESH_SIZES                                                  \
  ->Arg(100)->Arg(1000)->Arg(10000)->ArgName("endpoints")           \
      ->Unit(benchmark::kMillisecond)

BENCHMARK(BM_YamlCppLoad) MESH_SIZES;
BENCHMARK(BM_LibyamlLoad) MESH_SIZES;
BENCHMARK(BM_LibyamlEvents) MESH_SIZES;
BENCHMARK(BM_LibfyamlBuild) MESH_SIZES;
BENCHMARK(BM_MeshYamlDocument) MESH_SIZES;
BENCHMARK(BM_ParseConfig) MESH_SIZES;

}  // namespace

BENCHMARK_MAIN();
