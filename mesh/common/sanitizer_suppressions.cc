// Suppressions for LeakSanitizer (bazel test --config=asan) and
// ThreadSanitizer (--config=tsan), compiled into every program that links
// mesh. Only reports inside the uninstrumented system libraries are listed,
// each with the reason; nothing of ours is suppressed. (Unused in builds
// without the sanitizers.)

extern "C" const char* __lsan_default_suppressions() {
  return
      // gRPC 1.51.1's xDS client starts a load-report timer/call state for
      // each LRS stream and never frees it when the process exits with the
      // stream open (grpc_core::XdsClient lives until exit). Seen once per
      // process that had load reporting on, i.e. every mesh client.
      "leak:grpc_core::XdsClient::ChannelState::LrsCallState::"
      "MaybeStartReportingLocked\n";
}

extern "C" const char* __tsan_default_suppressions() {
  return
      // absl::Mutex's deadlock detector (uninstrumented libabsl) keeps a
      // global graph that TSan sees touched from several threads without
      // the (equally uninstrumented) lock that guards it.
      "race:synchronization_internal::GraphCycles\n"
      "called_from_lib:libabsl_graphcycles_internal.so\n"
      // gRPC++'s header-only call-operation templates are compiled into our
      // objects, but the thread that fills a batch (FillOps) hands it to the
      // thread that completes it (FinalizeResult) through libgrpc's
      // completion queue, whose synchronisation TSan cannot see.
      "race:grpc::internal::CallOpSet\n"
      // Likewise its interceptor batch and callback-request templates: built
      // on one thread, run and destroyed on the thread libgrpc hands the
      // completed batch to.
      "race:grpc::internal::InterceptorBatchMethodsImpl\n"
      "race:grpc::Server::CallbackRequest\n"
      // Memory and string functions that TSan intercepts, called from inside
      // the uninstrumented system libraries on their own data, whose
      // locking TSan cannot see.
      "called_from_lib:libgrpc.so\n"
      "called_from_lib:libgpr.so\n"
      "called_from_lib:libgrpc++.so\n"
      "called_from_lib:libprotobuf.so\n"
      "called_from_lib:libabsl_strings.so\n"
      "called_from_lib:libabsl_str_format_internal.so\n"
      "called_from_lib:libabsl_synchronization.so\n"
      "called_from_lib:libabsl_status.so\n"
      "called_from_lib:libabsl_cord.so\n"
      "called_from_lib:libabsl_cord_internal.so\n"
      "called_from_lib:libabsl_time.so\n"
      // OpenSSL under gRPC's TLS (etcd over TLS): its record buffers are
      // filled on one gRPC thread and reused on another.
      "called_from_lib:libcrypto.so\n"
      "called_from_lib:libssl.so\n"
      // c-ares (the DNS source): its own buffers, on the calling thread.
      "called_from_lib:libcares.so\n";
}
