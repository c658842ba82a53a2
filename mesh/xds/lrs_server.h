// File: mesh/xds/lrs_server.h
//
// A load reporting server (envoy.service.load_stats.v3.LoadReportingService)
// for the application's own gRPC: every cluster we send names this control
// plane as its LRS server (`lrs_server: {self: {}}`), so gRPC counts calls
// per locality inside its load balancer, at the cost of a few atomic
// increments per call, and reports them every second. The agent turns the
// reports into per-destination, per-locality call counts for the
// application's metrics (cheaper than a client interceptor; see
// docs/observability.md).
//
// Thread-safety: the callback runs on stream threads, one call per report.

#ifndef MESH_XDS_LRS_SERVER_H_
#define MESH_XDS_LRS_SERVER_H_

#include <functional>

#include "envoy/service/load_stats/v3/lrs.grpc.pb.h"
#include "mesh/xds/translate.h"

namespace mesh {
namespace xds {

class LrsServer final
    : public envoy::service::load_stats::v3::LoadReportingService::Service {
 public:
  using OnReport = std::function<void(
      const Caller&, const envoy::config::endpoint::v3::ClusterStats&)>;
  explicit LrsServer(OnReport on_report) : on_report_(std::move(on_report)) {}

  grpc::Status StreamLoadStats(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<envoy::service::load_stats::v3::LoadStatsResponse,
                               envoy::service::load_stats::v3::LoadStatsRequest>*
          stream) override;

 private:
  const OnReport on_report_;
};

}  // namespace xds
}  // namespace mesh

#endif  // MESH_XDS_LRS_SERVER_H_
