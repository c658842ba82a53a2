#include "mesh/xds/lrs_server.h"

namespace mesh {
namespace xds {

grpc::Status LrsServer::StreamLoadStats(
    grpc::ServerContext*,
    grpc::ServerReaderWriter<envoy::service::load_stats::v3::LoadStatsResponse,
                             envoy::service::load_stats::v3::LoadStatsRequest>*
        stream) {
  envoy::service::load_stats::v3::LoadStatsRequest req;
  if (!stream->Read(&req)) return grpc::Status::OK;
  const Caller caller = CallerFromNode(req.node());
  // Every cluster, every second.
  envoy::service::load_stats::v3::LoadStatsResponse resp;
  resp.set_send_all_clusters(true);
  resp.mutable_load_reporting_interval()->set_seconds(1);
  if (!stream->Write(resp)) return grpc::Status::OK;
  while (stream->Read(&req)) {
    for (const auto& cs : req.cluster_stats()) on_report_(caller, cs);
  }
  return grpc::Status::OK;
}

}  // namespace xds
}  // namespace mesh
