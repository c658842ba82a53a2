// Suppressions for LeakSanitizer (bazel test --config=asan), compiled into
// every program that links mesh. Only leaks whose allocation happens inside
// the uninstrumented system gRPC are listed, each with the reason; nothing
// of ours is suppressed. (Unused in builds without the sanitizer.)

extern "C" const char* __lsan_default_suppressions() {
  return
      // gRPC 1.51.1's xDS client starts a load-report timer/call state for
      // each LRS stream and never frees it when the process exits with the
      // stream open (grpc_core::XdsClient lives until exit). Seen once per
      // process that had load reporting on, i.e. every mesh client.
      "leak:grpc_core::XdsClient::ChannelState::LrsCallState::"
      "MaybeStartReportingLocked\n";
}
