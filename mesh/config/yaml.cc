// libyaml events to a Document (see yaml.h for why not yaml_parser_load).

#include "mesh/config/yaml.h"

#include <yaml.h>

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"

namespace mesh {
namespace config {
namespace yaml {

struct Node::Data {
  NodeType type = NodeType::kUndefined;
  bool plain = false;
  int line = 0;
  int column = 0;
  // Children in Document::Impl::children: items of a list, or key and
  // value of each map entry in turn. `count` is items or entries.
  uint32_t begin = 0;
  uint32_t count = 0;
  std::string value;
};

struct Document::Impl {
  std::vector<Node::Data> nodes;
  std::vector<uint32_t> children;
  int64_t root = -1;
};

namespace {

const std::string& EmptyString() {
  static const std::string* empty = new std::string();
  return *empty;
}

bool IsNullText(absl::string_view s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

// What the innermost open collection is, for messages about a flow that
// never ends.
enum class OpenFlow { kNone, kSequence, kMap };

// libyaml's wording of a few common mistakes, said the way a config
// writer thinks of them (the words of the reader this one replaced, which
// the bad-config corpus pins). `offset` is the problem's byte offset; `at`
// may be moved to where the mistake starts.
std::string Problem(const yaml_parser_t& p, absl::string_view text,
                    size_t offset, OpenFlow flow, Mark* at) {
  const absl::string_view problem = p.problem == nullptr ? "" : p.problem;
  const absl::string_view context = p.context == nullptr ? "" : p.context;
  if (problem == "found unknown escape character" &&
      offset + 1 < text.size()) {
    // The mark is at the backslash; name the character after it and, as
    // before, point just past it.
    at->column += 2;
    const unsigned char c = static_cast<unsigned char>(text[offset + 1]);
    return (c >= 0x20 && c < 0x7f)
               ? absl::StrCat("unknown escape character: ",
                              std::string(1, static_cast<char>(c)))
               : absl::StrCat("unknown escape character: \\x",
                              absl::Hex(c, absl::kZeroPad2));
  }
  if (problem == "found a tab character that violates indentation" ||
      (problem == "found character that cannot start any token" &&
       offset < text.size() && text[offset] == '\t')) {
    return "illegal tab when looking for indentation";
  }
  const bool at_end = offset >= text.size();
  if (at_end && flow == OpenFlow::kSequence) {
    return "end of sequence flow not found";
  }
  if (at_end && flow == OpenFlow::kMap) return "end of map flow not found";
  if (context == "while scanning a quoted scalar" && at_end) {
    at->line = static_cast<int>(p.context_mark.line);
    at->column = static_cast<int>(p.context_mark.column);
    return "this quoted string is never closed";
  }
  if (p.error == YAML_READER_ERROR) {
    // Invalid UTF-8 and the like: say which byte.
    return p.problem_value >= 0
               ? absl::StrCat("byte 0x",
                              absl::Hex(p.problem_value, absl::kZeroPad2),
                              " is not UTF-8 (", problem,
                              "): a config must be UTF-8 text")
               : absl::StrCat(problem, ": a config must be UTF-8 text");
  }
  return context.empty() ? std::string(problem)
                         : absl::StrCat(problem, " (", context, ")");
}

// Line and column (0-based) of byte `offset`.
Mark MarkAt(absl::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  Mark m;
  m.line = static_cast<int>(std::count(text.begin(), text.begin() + offset,
                                       '\n'));
  const size_t nl = text.rfind('\n', offset == 0 ? 0 : offset - 1);
  m.column = static_cast<int>(
      nl == absl::string_view::npos || offset == 0 ? offset : offset - nl - 1);
  return m;
}

absl::Status SyntaxError(absl::string_view filename, Mark m,
                         absl::string_view what) {
  return absl::InvalidArgumentError(
      m.is_null()
          ? absl::StrCat(filename, ": YAML syntax error: ", what)
          : absl::StrCat(filename, ":", m.line + 1, ":", m.column + 1,
                         ": YAML syntax error: ", what));
}

// Owns one libyaml event.
class Event {
 public:
  Event() = default;
  ~Event() {
    if (held_) yaml_event_delete(&e_);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  // The next event, or false on a parse error.
  bool Next(yaml_parser_t* p) {
    if (held_) yaml_event_delete(&e_);
    held_ = yaml_parser_parse(p, &e_) != 0;
    return held_;
  }
  const yaml_event_t& operator*() const { return e_; }
  const yaml_event_t* operator->() const { return &e_; }

 private:
  yaml_event_t e_;
  bool held_ = false;
};

// Owns the parser.
struct Parser {
  yaml_parser_t p;
  Parser() { yaml_parser_initialize(&p); }
  ~Parser() { yaml_parser_delete(&p); }
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;
};

}  // namespace

NodeType Node::Type() const {
  return doc_ == nullptr ? NodeType::kUndefined : data().type;
}

bool Node::IsPlain() const { return doc_ != nullptr && data().plain; }

const std::string& Node::Scalar() const {
  return IsScalar() ? data().value : EmptyString();
}

Mark Node::Mark() const {
  if (doc_ == nullptr) return yaml::Mark();
  return yaml::Mark{data().line, data().column};
}

size_t Node::size() const {
  const NodeType t = Type();
  return t == NodeType::kSequence || t == NodeType::kMap ? data().count : 0;
}

Node Node::operator[](size_t i) const {
  if (!IsSequence() || i >= data().count) return Node();
  return Node(doc_, doc_->impl_->children[data().begin + i]);
}

Node Node::operator[](absl::string_view key) const {
  if (!IsMap()) return Node();
  const Data& d = data();
  const std::vector<uint32_t>& kids = doc_->impl_->children;
  for (uint32_t i = 0; i < d.count; ++i) {
    const Data& k = doc_->impl_->nodes[kids[d.begin + 2 * i]];
    if (k.type == NodeType::kScalar && k.value == key) {
      return Node(doc_, kids[d.begin + 2 * i + 1]);
    }
  }
  return Node();
}

Node Node::Key(size_t i) const {
  if (!IsMap() || i >= data().count) return Node();
  return Node(doc_, doc_->impl_->children[data().begin + 2 * i]);
}

Node Node::Value(size_t i) const {
  if (!IsMap() || i >= data().count) return Node();
  return Node(doc_, doc_->impl_->children[data().begin + 2 * i + 1]);
}

const Node::Data& Node::data() const { return doc_->impl_->nodes[index_]; }

Document::Document() : impl_(std::make_unique<Impl>()) {}
Document::Document(Document&&) noexcept = default;
Document& Document::operator=(Document&&) noexcept = default;
Document::~Document() = default;

Node Document::root() const {
  return impl_->root < 0 ? Node()
                         : Node(this, static_cast<uint32_t>(impl_->root));
}

absl::StatusOr<Document> Document::Parse(absl::string_view text,
                                         absl::string_view filename,
                                         int max_depth) {
  Parser parser;
  yaml_parser_set_input_string(
      &parser.p, reinterpret_cast<const unsigned char*>(text.data()),
      text.size());
  Document doc;
  Impl& impl = *doc.impl_;
  impl.nodes.reserve(text.size() / 8 + 16);
  impl.children.reserve(text.size() / 8 + 16);

  // Collections being read, innermost last; their children so far.
  // Reused across siblings, so a long file allocates them once per depth.
  struct Open {
    uint32_t node = 0;
    OpenFlow flow = OpenFlow::kNone;
    std::vector<uint32_t> kids;
  };
  std::vector<Open> open;
  size_t depth = 0;
  std::map<std::string, uint32_t> anchors;

  auto add_child = [&](uint32_t index) {
    if (depth == 0) {
      impl.root = index;
    } else {
      open[depth - 1].kids.push_back(index);
    }
  };
  auto new_node = [&](NodeType type, const yaml_mark_t& mark) {
    impl.nodes.emplace_back();
    Node::Data& d = impl.nodes.back();
    d.type = type;
    d.line = static_cast<int>(mark.line);
    d.column = static_cast<int>(mark.column);
    return static_cast<uint32_t>(impl.nodes.size() - 1);
  };
  auto anchor = [&](const yaml_char_t* name, uint32_t index) {
    if (name != nullptr) {
      anchors[reinterpret_cast<const char*>(name)] = index;
    }
  };

  Event e;
  for (bool done = false; !done;) {
    if (!e.Next(&parser.p)) {
      const yaml_parser_t& p = parser.p;
      const bool has_mark = p.error == YAML_SCANNER_ERROR ||
                            p.error == YAML_PARSER_ERROR;
      const size_t offset =
          has_mark ? p.problem_mark.index : p.problem_offset;
      Mark m;
      if (p.error == YAML_MEMORY_ERROR) {
        return SyntaxError(filename, Mark(), "out of memory");
      }
      if (has_mark) {
        m.line = static_cast<int>(p.problem_mark.line);
        m.column = static_cast<int>(p.problem_mark.column);
      } else {
        m = MarkAt(text, offset);
      }
      const std::string what = Problem(
          p, text, offset, depth == 0 ? OpenFlow::kNone : open[depth - 1].flow,
          &m);
      return SyntaxError(filename, m, what);
    }
    switch (e->type) {
      case YAML_STREAM_END_EVENT:
      case YAML_DOCUMENT_END_EVENT:
        // Only the first document is read; the config readers refuse a
        // second one before parsing (with its line).
        done = true;
        break;
      case YAML_SCALAR_EVENT: {
        const auto& s = e->data.scalar;
        const bool plain =
            s.style == YAML_PLAIN_SCALAR_STYLE && s.tag == nullptr;
        const absl::string_view value(reinterpret_cast<const char*>(s.value),
                                      s.length);
        const bool null_tag =
            s.tag != nullptr &&
            absl::string_view(reinterpret_cast<const char*>(s.tag)) ==
                YAML_NULL_TAG;
        const uint32_t n =
            new_node((plain && IsNullText(value)) || null_tag
                         ? NodeType::kNull
                         : NodeType::kScalar,
                     e->start_mark);
        Node::Data& d = impl.nodes[n];
        d.plain = plain;
        d.value.assign(value.data(), value.size());
        anchor(s.anchor, n);
        add_child(n);
        break;
      }
      case YAML_ALIAS_EVENT: {
        auto it = anchors.find(
            reinterpret_cast<const char*>(e->data.alias.anchor));
        if (it == anchors.end()) {
          return SyntaxError(
              filename,
              Mark{static_cast<int>(e->start_mark.line),
                   static_cast<int>(e->start_mark.column)},
              "the referenced anchor is not defined");
        }
        add_child(it->second);
        break;
      }
      case YAML_SEQUENCE_START_EVENT:
      case YAML_MAPPING_START_EVENT: {
        if (static_cast<int>(depth) >= max_depth) {
          return SyntaxError(
              filename,
              Mark{static_cast<int>(e->start_mark.line),
                   static_cast<int>(e->start_mark.column)},
              absl::StrCat("nested deeper than ", max_depth, " levels"));
        }
        const bool seq = e->type == YAML_SEQUENCE_START_EVENT;
        const uint32_t n = new_node(
            seq ? NodeType::kSequence : NodeType::kMap, e->start_mark);
        anchor(seq ? e->data.sequence_start.anchor
                   : e->data.mapping_start.anchor,
               n);
        add_child(n);
        if (open.size() <= depth) open.emplace_back();
        open[depth].node = n;
        open[depth].flow =
            seq ? (e->data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE
                       ? OpenFlow::kSequence
                       : OpenFlow::kNone)
                : (e->data.mapping_start.style == YAML_FLOW_MAPPING_STYLE
                       ? OpenFlow::kMap
                       : OpenFlow::kNone);
        open[depth].kids.clear();
        ++depth;
        break;
      }
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT: {
        Open& o = open[--depth];
        Node::Data& d = impl.nodes[o.node];
        d.begin = static_cast<uint32_t>(impl.children.size());
        d.count = static_cast<uint32_t>(
            d.type == NodeType::kMap ? o.kids.size() / 2 : o.kids.size());
        impl.children.insert(impl.children.end(), o.kids.begin(),
                             o.kids.end());
        break;
      }
      default:  // stream and document start
        break;
    }
  }
  return doc;
}

}  // namespace yaml
}  // namespace config
}  // namespace mesh
