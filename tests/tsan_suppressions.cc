// ThreadSanitizer suppressions, linked into every test (the runtime reads
// __tsan_default_suppressions from the executable; a shared library's copy
// is not seen, hence --dynamic_mode=off in the tsan config).
//
// Only reports inside the system gRPC, abseil and protobuf libraries, which
// are not instrumented (TSan cannot see their synchronisation, so it reports
// races on memory they protect correctly), are suppressed. Our own code is
// instrumented and never suppressed.

extern "C" const char* __tsan_default_suppressions() {
  return
      // gRPC core and its C++ layer (libgrpc.so, libgrpc++.so, libgpr.so):
      // their mutexes and atomics are invisible to TSan.
      "race:libgrpc.so\n"
      "race:libgrpc++.so\n"
      "race:libgpr.so\n"
      "deadlock:libgrpc.so\n"
      // abseil's Mutex/CondVar and hash tables, uninstrumented.
      "race:libabsl_\n"
      // protobuf's lazily initialised descriptors and arenas.
      "race:libprotobuf.so\n"
      // upb (gRPC's internal protobuf) and c-ares, used from gRPC threads.
      "race:libupb.so\n"
      "race:libcares.so\n";
}
