// File: mesh/config/yaml.h
//
// A read-only YAML document for the config readers: libyaml's event parser
// builds a compact tree of nodes, each with its line and column, and the
// readers walk it (mesh/config/config.cc, the admin page, meshctl).
//
// Why our own tree and not libyaml's yaml_parser_load: the loader has no
// depth limit in Debian's 0.2.5 and its time grows with the square of the
// nesting (100,000 levels of '[' took 21 s, 200,000 did not finish in 60 s);
// this tree refuses more than kMaxDepth levels as soon as it sees them. The
// readers also want a lookup by key and a null test with YAML 1.1's
// plain-scalar rules, which the tree gives directly.

// Semantics kept from the yaml-cpp reader this replaced (the bad-config
// corpus pins them): a plain `~`, `null`, `Null`, `NULL` or empty scalar is
// null; an alias is the anchored node itself (shared, so `&a [*a]` is a
// list holding itself); a map lookup finds the first of duplicate keys
// (duplicates are the readers' to report); only the first document is read.

#ifndef MESH_CONFIG_YAML_H_
#define MESH_CONFIG_YAML_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mesh {
namespace config {
namespace yaml {

// A position in the text, 0-based (messages add 1). line < 0: none.
struct Mark {
  int line = -1;
  int column = -1;
  bool is_null() const { return line < 0; }
};

enum class NodeType { kUndefined, kNull, kScalar, kSequence, kMap };

class Document;
class MapIterator;

// A handle to a node of a Document (or to nothing: IsDefined() is false).
// Cheap to copy; valid while its Document lives.
class Node {
 public:
  Node() = default;

  NodeType Type() const;
  bool IsDefined() const { return doc_ != nullptr; }
  bool IsNull() const { return Type() == NodeType::kNull; }
  bool IsScalar() const { return Type() == NodeType::kScalar; }
  bool IsSequence() const { return Type() == NodeType::kSequence; }
  bool IsMap() const { return Type() == NodeType::kMap; }
  // A plain scalar without a tag: how YAML writes numbers and booleans
  // (a quoted "5" is a string).
  bool IsPlain() const;
  // The text of a scalar; empty for any other node.
  const std::string& Scalar() const;
  // Where the node starts (its anchor or tag if it has one); none if
  // undefined.
  yaml::Mark Mark() const;

  // Items of a sequence or entries of a map; 0 for anything else.
  size_t size() const;
  // The i-th item of a sequence; undefined if out of range or not a list.
  Node operator[](size_t i) const;
  Node operator[](int i) const { return (*this)[static_cast<size_t>(i)]; }
  // The value of the first entry whose key is the scalar `key`; undefined
  // if there is none or this is not a map.
  Node operator[](absl::string_view key) const;
  Node operator[](const char* key) const {
    return (*this)[absl::string_view(key)];
  }
  Node operator[](const std::string& key) const {
    return (*this)[absl::string_view(key)];
  }
  // The i-th entry of a map, in file order.
  Node Key(size_t i) const;
  Node Value(size_t i) const;

  // Range-for over a map's entries (first: key, second: value); nothing
  // for any other node.
  MapIterator begin() const;
  MapIterator end() const;

 private:
  friend class Document;
  struct Data;
  Node(const Document* doc, uint32_t index) : doc_(doc), index_(index) {}
  const Data& data() const;
  const Document* doc_ = nullptr;
  uint32_t index_ = 0;
};

// A map entry, as a range-for over a map gives it.
struct Entry {
  Node first;
  Node second;
};

class MapIterator {
 public:
  MapIterator(Node map, size_t i) : map_(map), i_(i) {}
  Entry operator*() const { return {map_.Key(i_), map_.Value(i_)}; }
  MapIterator& operator++() {
    ++i_;
    return *this;
  }
  bool operator!=(const MapIterator& o) const { return i_ != o.i_; }

 private:
  Node map_;
  size_t i_;
};

inline MapIterator Node::begin() const { return MapIterator(*this, 0); }
inline MapIterator Node::end() const {
  return MapIterator(*this, IsMap() ? size() : 0);
}

class Document {
 public:
  Document(Document&&) noexcept;
  Document& operator=(Document&&) noexcept;
  ~Document();

  // The document's root; undefined for a text with no document (empty, or
  // only comments).
  Node root() const;

  // Parses the first document of `text`. A syntax error, an undefined
  // alias or nesting deeper than `max_depth` is an InvalidArgument status
  // "FILENAME:LINE:COLUMN: YAML syntax error: WHAT". Never throws.
  static absl::StatusOr<Document> Parse(absl::string_view text,
                                        absl::string_view filename,
                                        int max_depth = kMaxDepth);

  // Deeper than any mesh config (about 10 levels) by far.
  static constexpr int kMaxDepth = 100;

 private:
  friend class Node;
  struct Impl;
  Document();
  std::unique_ptr<Impl> impl_;
};

}  // namespace yaml
}  // namespace config
}  // namespace mesh

#endif  // MESH_CONFIG_YAML_H_
