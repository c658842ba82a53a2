// File: mesh/common/json.h
//
// Writing JSON by hand: a quoted, escaped string. (mesh only ever writes
// JSON; it never parses it.)

#ifndef MESH_COMMON_JSON_H_
#define MESH_COMMON_JSON_H_

#include <string>

#include "absl/strings/string_view.h"

namespace mesh {
namespace internal {

// `s` as a JSON string literal, quotes included. Control characters are
// \u-escaped; bytes >= 0x80 are passed through (callers give UTF-8) except
// that invalid UTF-8 is not checked.
std::string JsonString(absl::string_view s);

}  // namespace internal
}  // namespace mesh

#endif  // MESH_COMMON_JSON_H_
