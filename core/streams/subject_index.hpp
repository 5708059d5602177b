// SPDX-License-Identifier: Apache-2.0
#pragma once
// SubjectIndex<T>: which values (subscriptions) have a pattern that matches a
// key (subject.hpp has the rules), found without looking at the others.
//
// Literal patterns sit in a hash map from the pattern to its values; wildcard
// patterns in a trie of tokens. forEachMatch(key) costs one hash lookup plus a
// walk of the trie along the key's tokens (at each level the key's token and
// '*'; '>' ends the walk), i.e. O(tokens of the key x trie branching + matches),
// never a scan of all values. It allocates nothing: the key is split into
// string_views and the maps are keyed by string_views into strings the index
// owns (C++17 has no heterogeneous lookup in unordered_map).
//
// Entries are (pattern, value) pairs, a multiset: a value added under several
// patterns is reported once per pattern that matches (deduplicating is the
// caller's job), and the same pair added twice is reported twice until removed
// twice. The order of the reports is unspecified.
//
// Not thread safe; a value type. The bus copies an index, changes the copy and
// publishes it (copy-on-write); the publisher then only reads it, and a const
// index may be read by any number of threads. T must be copyable and
// equality-comparable (remove() finds the value with ==).

#include <cassert>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "subject.hpp"

namespace streamrelay {

template <class T>
class SubjectIndex {
 public:
  SubjectIndex() = default;
  SubjectIndex(const SubjectIndex& other) : size_(other.size_) {
    for (const auto& entry : other.literals_) {
      auto bucket = std::make_unique<Bucket>(*entry.second);
      std::string_view name = bucket->pattern;
      literals_.emplace(name, std::move(bucket));
    }
    if (other.root_) root_ = other.root_->clone();
  }
  SubjectIndex& operator=(const SubjectIndex& other) {
    if (this != &other) {
      SubjectIndex copy(other);
      *this = std::move(copy);
    }
    return *this;
  }
  // Moving keeps every map node (and so every string a key views) in place;
  // the moved-from index is empty.
  SubjectIndex(SubjectIndex&& other) noexcept
      : literals_(std::move(other.literals_)), root_(std::move(other.root_)), size_(std::exchange(other.size_, 0)) {
    other.literals_.clear();
  }
  SubjectIndex& operator=(SubjectIndex&& other) noexcept {
    literals_ = std::move(other.literals_);
    other.literals_.clear();
    root_ = std::move(other.root_);
    size_ = std::exchange(other.size_, 0);
    return *this;
  }

  // `pattern` must have passed subject::checkPattern().
  void add(const std::string& pattern, T value) {
    assert(subject::checkPattern(pattern).empty());
    ++size_;
    if (subject::isLiteral(pattern)) {
      auto found = literals_.find(pattern);
      if (found == literals_.end()) {
        auto bucket = std::make_unique<Bucket>();
        bucket->pattern = pattern;
        std::string_view name = bucket->pattern;
        found = literals_.emplace(name, std::move(bucket)).first;
      }
      found->second->values.push_back(std::move(value));
      return;
    }
    if (!root_) root_ = std::make_unique<Node>();
    Node* node = root_.get();
    std::string_view rest = pattern;
    while (!rest.empty()) {
      std::string_view token = subject::popToken(rest);
      if (token == ">") {
        node->tailValues.push_back(std::move(value));
        return;
      }
      node = node->childFor(token);
    }
    node->values.push_back(std::move(value));
  }

  // Removes one (pattern, value) entry; false if there was none. Drops trie
  // nodes and literal buckets left empty, so churn does not grow the index.
  bool remove(const std::string& pattern, T value) {
    bool removed = subject::isLiteral(pattern) ? removeLiteral(pattern, value) : removeWildcard(pattern, value);
    if (removed) --size_;
    return removed;
  }

  // Calls visit(const T&) once per entry whose pattern matches `key`. A key
  // that is not valid (subject::isValidKey) matches nothing. Allocation-free.
  template <class F>
  void forEachMatch(std::string_view key, F&& visit) const {
    if (!subject::isValidKey(key)) return;
    auto found = literals_.find(key);
    if (found != literals_.end()) {
      for (const T& value : found->second->values) visit(value);
    }
    if (root_) visitTrie(*root_, key, visit);
  }

  // The number of (pattern, value) entries.
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // The trie's nodes, root included (0 without wildcard patterns): what the
  // tests see of the pruning. O(nodes).
  std::size_t trieNodeCount() const { return root_ ? root_->count() : 0; }

 private:
  struct Bucket {
    std::string pattern;
    std::vector<T> values;
  };

  // A trie node: the wildcard patterns whose tokens so far lead here.
  struct Node {
    std::string token;                // this node's token in its parent; the key of the parent's map
    std::vector<T> values;            // patterns that end here
    std::vector<T> tailValues;        // patterns that go on with '>' here
    std::unordered_map<std::string_view, std::unique_ptr<Node>> literalChildren;
    std::unique_ptr<Node> starChild;  // the token '*'

    bool isEmpty() const { return values.empty() && tailValues.empty() && literalChildren.empty() && !starChild; }

    Node* childFor(std::string_view token) {
      if (token == "*") {
        if (!starChild) starChild = std::make_unique<Node>();
        return starChild.get();
      }
      auto found = literalChildren.find(token);
      if (found != literalChildren.end()) return found->second.get();
      auto child = std::make_unique<Node>();
      child->token = std::string(token);
      std::string_view name = child->token;
      return literalChildren.emplace(name, std::move(child)).first->second.get();
    }

    Node* findChild(std::string_view token) const {
      if (token == "*") return starChild.get();
      auto found = literalChildren.find(token);
      return found == literalChildren.end() ? nullptr : found->second.get();
    }

    std::size_t count() const {
      std::size_t nodes = 1 + (starChild ? starChild->count() : 0);
      for (const auto& entry : literalChildren) nodes += entry.second->count();
      return nodes;
    }

    // A deep copy whose map keys view the copy's own tokens.
    std::unique_ptr<Node> clone() const {
      auto copy = std::make_unique<Node>();
      copy->token = token;
      copy->values = values;
      copy->tailValues = tailValues;
      for (const auto& entry : literalChildren) {
        auto child = entry.second->clone();
        std::string_view name = child->token;
        copy->literalChildren.emplace(name, std::move(child));
      }
      if (starChild) copy->starChild = starChild->clone();
      return copy;
    }
  };

  // `rest` is what is left of a valid key (non-empty: every call has a token to match).
  template <class F>
  static void visitTrie(const Node& node, std::string_view rest, F& visit) {
    for (const T& value : node.tailValues) visit(value);
    std::string_view token = subject::popToken(rest);
    auto found = node.literalChildren.find(token);
    if (found != node.literalChildren.end()) visitChild(*found->second, rest, visit);
    if (node.starChild) visitChild(*node.starChild, rest, visit);
  }

  template <class F>
  static void visitChild(const Node& child, std::string_view rest, F& visit) {
    if (rest.empty()) {
      for (const T& value : child.values) visit(value);
    } else {
      visitTrie(child, rest, visit);
    }
  }

  static bool eraseOne(std::vector<T>& values, const T& value) {
    for (auto it = values.begin(); it != values.end(); ++it) {
      if (*it == value) {
        values.erase(it);
        return true;
      }
    }
    return false;
  }

  bool removeLiteral(const std::string& pattern, const T& value) {
    auto found = literals_.find(pattern);
    if (found == literals_.end() || !eraseOne(found->second->values, value)) return false;
    if (found->second->values.empty()) literals_.erase(found);
    return true;
  }

  bool removeWildcard(const std::string& pattern, const T& value) {
    if (!root_) return false;
    std::vector<Node*> path{root_.get()};
    std::string_view rest = pattern;
    bool tail = false;
    while (!rest.empty()) {
      std::string_view token = subject::popToken(rest);
      if (token == ">") {
        tail = true;
        break;
      }
      Node* child = path.back()->findChild(token);
      if (!child) return false;
      path.push_back(child);
    }
    if (!eraseOne(tail ? path.back()->tailValues : path.back()->values, value)) return false;
    prune(path);
    return true;
  }

  // Drops the empty nodes at the end of `path` (root first), deepest first.
  void prune(const std::vector<Node*>& path) {
    for (std::size_t i = path.size() - 1; i > 0 && path[i]->isEmpty(); --i) {
      Node* parent = path[i - 1];
      if (parent->starChild.get() == path[i]) {
        parent->starChild.reset();
      } else {
        // Erased by iterator: the map's key views the token the erase destroys.
        parent->literalChildren.erase(parent->literalChildren.find(path[i]->token));
      }
    }
    if (root_->isEmpty()) root_.reset();
  }

  std::unordered_map<std::string_view, std::unique_ptr<Bucket>> literals_;
  std::unique_ptr<Node> root_;  // null while there is no wildcard pattern
  std::size_t size_ = 0;
};

}  // namespace streamrelay
