# mesh_proto_objects(TARGET ROOT ROOT_DIR PROTOS p... [GRPC p...])
#
# Compiles .proto files (paths relative to ROOT_DIR, the import root) with
# protobuf::protoc into an OBJECT library TARGET, with gRPC stubs from
# gRPC::grpc_cpp_plugin for the GRPC subset. The generated code lands in
# ${CMAKE_BINARY_DIR}/gen/<TARGET>, which is TARGET's public include
# directory (for in-tree users: the installed mesh.h includes none of it).
#
# This is the Bazel macro mesh_proto_library (bazel/mesh.bzl) for CMake. It
# does not use FindProtobuf's protobuf_generate: in CMake 3.16-3.25 that
# function always puts CMAKE_CURRENT_SOURCE_DIR first on protoc's import
# path and names its outputs after the path relative to it, so for protos in
# .deps/xds-protos protoc sees ".deps/xds-protos/envoy/..." and the
# generated includes ("udpa/annotations/status.pb.h") do not resolve; for a
# root outside the source tree the declared outputs are not the files protoc
# writes (both seen with Debian's CMake 3.25, see docs/building.md).
function(mesh_proto_objects target)
  cmake_parse_arguments(P "" "ROOT_DIR" "PROTOS;GRPC" ${ARGN})
  set(out "${CMAKE_BINARY_DIR}/gen/${target}")
  file(MAKE_DIRECTORY "${out}")
  set(srcs)
  foreach(proto IN LISTS P_PROTOS)
    if(NOT EXISTS "${P_ROOT_DIR}/${proto}")
      message(FATAL_ERROR
        "${P_ROOT_DIR}/${proto} is missing: run bazel/setup.sh (it fetches the "
        "xDS protos and extracts the etcd ones into .deps/)")
    endif()
    string(REGEX REPLACE "\\.proto$" "" base "${proto}")
    set(outs "${out}/${base}.pb.cc" "${out}/${base}.pb.h")
    set(args "--cpp_out=${out}")
    set(deps protobuf::protoc)
    if(proto IN_LIST P_GRPC)
      list(APPEND outs "${out}/${base}.grpc.pb.cc" "${out}/${base}.grpc.pb.h")
      list(APPEND args "--grpc_out=${out}"
           "--plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin>")
      list(APPEND deps gRPC::grpc_cpp_plugin)
    endif()
    add_custom_command(
      OUTPUT ${outs}
      COMMAND protobuf::protoc ${args} "-I${P_ROOT_DIR}"
              "-I${Protobuf_INCLUDE_DIR}" "${P_ROOT_DIR}/${proto}"
      DEPENDS "${P_ROOT_DIR}/${proto}" ${deps}
      COMMENT "protoc ${proto}"
      VERBATIM)
    list(APPEND srcs ${outs})
  endforeach()
  add_library(${target} OBJECT ${srcs})
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  # Generated code: not ours, so no warnings.
  target_compile_options(${target} PRIVATE -w)
  target_include_directories(${target} SYSTEM PUBLIC "$<BUILD_INTERFACE:${out}>")
  target_link_libraries(${target} PUBLIC protobuf::libprotobuf gRPC::grpc++)
endfunction()

# mesh_bzl_list(VAR FILE NAME): the quoted strings of the list NAME = [...]
# in a .bzl file, so that both builds compile one list (bazel/xds_protos.bzl).
function(mesh_bzl_list var file name)
  file(READ "${file}" text)
  string(REGEX MATCH "${name} = \\[[^]]*\\]" block "${text}")
  if(NOT block)
    message(FATAL_ERROR "${file}: no list ${name} = [...]")
  endif()
  string(REGEX MATCHALL "\"[^\"]+\"" items "${block}")
  string(REPLACE "\"" "" items "${items}")
  set(${var} ${items} PARENT_SCOPE)
endfunction()
