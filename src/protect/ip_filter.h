#pragma once
// Client address allow/deny lists, checked at accept for listeners and per route. A list is
// compiled once (at config load) into sorted, merged intervals of the address space and then only
// read: any worker thread may look up concurrently, with no lock and no allocation.
//
// Why intervals and not a trie: a binary trie keeps a node per bit below the levels prefixes
// share, ~28M nodes (hundreds of MiB) for a million random IPv6 /48s and ~110M (GiB) for /128s.
// The merged table holds 8 bytes per IPv4 interval and 32 per IPv6 one, plus an index of at most
// a byte per interval; overlapping, nested and adjacent prefixes merge, so a list never costs
// more than its prefix count. Measured in bench/protect_bench.cc and ip_filter.cc.
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "base/ip_range.h"

namespace usher::protect {

// An immutable, compiled set of IPv4 and IPv6 prefixes: is an address in any of them?
// IPv4 and IPv6 never match each other; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) looks up as
// its IPv4 address, even when handed in with family AF_INET6.
class PrefixSet {
 public:
  PrefixSet() = default;  // empty: contains nothing
  static PrefixSet build(std::span<const IpRange> ranges);

  // Any thread, no allocation. An address that is not IP (family 0) is in no set.
  bool contains(const IpBytes& ip) const;
  bool empty() const { return v4_.bounds.empty() && v6_.bounds.empty(); }
  size_t intervals() const { return v4_.intervals() + v6_.intervals(); }  // after merging
  size_t memory_bytes() const { return v4_.bytes() + v6_.bytes(); }       // heap held

 private:
  using V6 = unsigned __int128;

  // One family's merged intervals as the addresses where membership flips: starts and ends + 1
  // alternately, strictly increasing. An address is in the set when an odd number of bounds are
  // at or below it. One array, so a lookup waits on one memory access, not a start and an end.
  template <typename Key>
  struct Table {
    std::vector<Key> bounds;
    // Narrows the search to a bucket of ~8 bounds before it starts: bucket b holds the bounds
    // with (bound - base) >> shift == b, from bounds[index[b]] to bounds[index[b + 1]]. It covers
    // only the span the list covers (all of a list inside 2001:db8::/32 spreads over the buckets).
    // Empty for small tables, where scanning all is as quick.
    std::vector<uint32_t> index;
    Key base{};
    unsigned shift = 0;

    void assign(std::vector<std::pair<Key, Key>>& intervals);  // sorts and merges them first
    void build_index();
    bool contains(Key key) const;
    size_t intervals() const { return (bounds.size() + 1) / 2; }  // the last may run to the top
    size_t bytes() const { return bounds.capacity() * sizeof(Key) + index.capacity() * 4; }
  };

  Table<uint32_t> v4_;
  Table<V6> v6_;
};

// A listener's or route's allow/deny lists: deny wins; an empty allow list admits everyone.
// Built at config load, read by any worker thread.
class IpFilter {
 public:
  IpFilter() = default;  // admits everyone
  IpFilter(std::span<const IpRange> allow, std::span<const IpRange> deny);

  // An address that is not IP (a Unix socket peer) is in no list: with an allow list, it is out.
  bool admits(const IpBytes& ip) const {
    if (deny_.contains(ip)) return false;
    return !restricted_ || allow_.contains(ip);
  }
  bool empty() const { return !restricted_ && deny_.empty(); }  // callers skip the check
  const PrefixSet& allow() const { return allow_; }
  const PrefixSet& deny() const { return deny_; }

 private:
  PrefixSet allow_;
  PrefixSet deny_;
  bool restricted_ = false;  // an allow list was given, even one that compiles to nothing
};

}  // namespace usher::protect
