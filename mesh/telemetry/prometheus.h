// File: mesh/telemetry/prometheus.h
//
// Writing the Prometheus text exposition format (version 0.0.4): metric
// families with HELP and TYPE, samples with escaped label values.

#ifndef MESH_TELEMETRY_PROMETHEUS_H_
#define MESH_TELEMETRY_PROMETHEUS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace mesh {
namespace telemetry {

class PrometheusWriter {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  void Family(const std::string& name, const std::string& type,
              const std::string& help) {
    absl::StrAppend(&out_, "# HELP ", name, " ", Escape(help, false), "\n",
                    "# TYPE ", name, " ", type, "\n");
  }
  void Sample(const std::string& name, const Labels& labels, double value) {
    std::vector<std::string> l;
    for (const auto& [k, v] : labels) {
      l.push_back(absl::StrCat(k, "=\"", Escape(v, true), "\""));
    }
    absl::StrAppend(&out_, name,
                    labels.empty() ? "" : "{" + absl::StrJoin(l, ",") + "}",
                    " ", absl::StrFormat("%.17g", value), "\n");
  }
  const std::string& Text() const { return out_; }

 private:
  // Backslash and newline always; double quotes in label values.
  static std::string Escape(const std::string& s, bool quote) {
    std::string out;
    for (char c : s) {
      if (c == '\\') {
        out += "\\\\";
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '"' && quote) {
        out += "\\\"";
      } else {
        out += c;
      }
    }
    return out;
  }
  std::string out_;
};

}  // namespace telemetry
}  // namespace mesh

#endif  // MESH_TELEMETRY_PROMETHEUS_H_
