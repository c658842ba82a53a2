"""Build macros for mesh: warning flags in one place, protos via Debian's protoc.

mesh_cc_library / mesh_cc_binary / mesh_cc_test carry the project's warning
flags. mesh_proto_library compiles .proto files with /usr/bin/protoc (and
grpc_cpp_plugin for services) into a cc_library; generated code gets its own
relaxed warnings because we do not own it.
"""

MESH_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",
    "-Wno-missing-field-initializers",
]

def mesh_cc_library(name, copts = [], **kwargs):
    native.cc_library(name = name, copts = MESH_COPTS + copts, **kwargs)

def mesh_cc_binary(name, copts = [], **kwargs):
    native.cc_binary(name = name, copts = MESH_COPTS + copts, **kwargs)

def mesh_cc_test(name, copts = [], deps = [], **kwargs):
    native.cc_test(
        name = name,
        copts = MESH_COPTS + copts,
        # Sanitizer suppressions for the system libraries (see the file).
        deps = deps + [
            "//bazel/system:gtest_main",
            "//mesh/common:sanitizer_suppressions",
        ],
        **kwargs
    )

def mesh_proto_library(name, srcs, grpc_srcs = [], deps = [], visibility = None):
    """Compiles `srcs` (paths relative to this package) with Debian's protoc.

    Args:
      name: the cc_library to create.
      srcs: every .proto of the closure, as labels relative to this package.
      grpc_srcs: the subset of srcs that also need gRPC service stubs.
      deps: cc deps of the generated code.
      visibility: of the cc_library.
    """
    pb_outs = []
    for s in srcs:
        base = s[:-len(".proto")]
        pb_outs += [base + ".pb.cc", base + ".pb.h"]
    grpc_outs = []
    for s in grpc_srcs:
        base = s[:-len(".proto")]
        grpc_outs += [base + ".grpc.pb.cc", base + ".grpc.pb.h"]

    # The import root is this package's directory in the execroot.
    depth = srcs[0].count("/")
    root_cmd = "ROOT=$(location %s); for i in $$(seq %d); do ROOT=$$(dirname $$ROOT); done; ROOT=$$(dirname $$ROOT); " % (srcs[0], depth)
    native.genrule(
        name = name + "_pb",
        srcs = srcs,
        outs = pb_outs,
        cmd = root_cmd + "/usr/bin/protoc -I$$ROOT -I/usr/include --cpp_out=$(RULEDIR) " +
              " ".join(["$$ROOT/" + s for s in srcs]),
    )
    hdrs = [o for o in pb_outs if o.endswith(".h")]
    cc_srcs = [o for o in pb_outs if o.endswith(".cc")]
    if grpc_srcs:
        native.genrule(
            name = name + "_grpc_pb",
            srcs = srcs,
            outs = grpc_outs,
            cmd = root_cmd + "/usr/bin/protoc -I$$ROOT -I/usr/include --grpc_out=$(RULEDIR) " +
                  "--plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin " +
                  " ".join(["$$ROOT/" + s for s in grpc_srcs]),
        )
        hdrs += [o for o in grpc_outs if o.endswith(".h")]
        cc_srcs += [o for o in grpc_outs if o.endswith(".cc")]
    native.cc_library(
        name = name,
        srcs = cc_srcs,
        hdrs = hdrs,
        includes = ["."],
        # Generated code is not ours to fix: no -Werror, and the Envoy API
        # marks many fields deprecated.
        copts = ["-w", "-Wno-deprecated-declarations"],
        deps = deps + [
            "@mesh//bazel/system:protobuf",
            "@mesh//bazel/system:grpcpp",
        ],
        visibility = visibility,
    )
