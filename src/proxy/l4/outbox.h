#pragma once
// A worker's udp datagrams on their way: received with recvmmsg(2) into slots, and sent on from
// the same slots when the loop's turn ends, every listener's and session's together in one
// Reactor::send_datagrams. Sending as they come (a sendmmsg per batch) let the receiver each
// datagram woke take the core after every datagram where peers share one: the worker was
// preempted 0.37 times a datagram (docs/architecture.md, "The reactor"). Consecutive datagrams of
// one session in one direction and of one size (the last may be shorter) leave as one UDP GSO send
// (UDP_SEGMENT): the kernel takes them through its stack once and cuts them apart at the end,
// where a send each costs the stack's whole path per datagram. Worker thread only.
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "net/reactor.h"

namespace usher::proxy::l4 {

struct Session;

class Outbox {
 public:
  static constexpr unsigned kSlots = 128;
  // A slot holds the largest UDP payload, so no datagram is ever cut short. The slots are mapped
  // memory, and the kernel backs only the pages datagrams reach: small datagrams cost about a
  // page a slot.
  static constexpr size_t kSlotBytes = 64 * 1024;

  explicit Outbox(net::Reactor& reactor);
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;
  ~Outbox();

  // Messages for a receive of up to `count` datagrams (Socket::receive_batch) into free slots;
  // what is queued goes out first when fewer are free. The received ones are numbered from 0
  // until the next receive.
  mmsghdr* receiving(unsigned count);
  std::string_view payload(unsigned i) const {
    return {slot(first_ + i), static_cast<size_t>(in_[i].msg_len)};
  }
  const sockaddr* sender(unsigned i) const { return reinterpret_cast<const sockaddr*>(&from_[i]); }

  // Queues received datagram i of `session` for the end of the turn: to its backend (its socket
  // is connected), after `prefix` (a PROXY header, or empty); or to its client.
  void to_backend(unsigned i, Session& session, std::string_view prefix);
  void to_client(unsigned i, Session& session);
  // A session about to go: its queued datagrams stay unsent.
  void forget(const Session& session);
  // Sends what is queued and counts it to its sessions' listeners; a backend port found closed
  // (ICMP port unreachable) ends its session. False when nothing was queued.
  bool flush();

 private:
  struct Entry {
    Session* session;
    bool to_backend;
    iovec prefix;  // a PROXY header, or empty
    iovec payload;
    size_t size() const { return prefix.iov_len + payload.iov_len; }
  };
  // A send of entries [first, first + count): one datagram, or a GSO send of several.
  struct Group {
    unsigned first;
    unsigned count;
  };

  char* slot(unsigned i) const { return slots_ + static_cast<size_t>(i) * kSlotBytes; }
  void queue(unsigned i, Session& session, bool to_backend, std::string_view prefix);
  unsigned group_entries(bool gso);
  void prepare(const Group& group, net::Datagram& datagram, unsigned& iov_used);
  void account(const Entry& entry, long result);

  net::Reactor& reactor_;
  char* slots_;
  unsigned used_ = 0;   // slots taken since the last flush
  unsigned first_ = 0;  // the first slot of the last receive
  std::array<mmsghdr, kSlots> in_{};
  std::array<iovec, kSlots> in_iov_{};
  std::array<sockaddr_storage, kSlots> from_{};
  std::array<Entry, kSlots> entries_{};
  unsigned queued_ = 0;
  std::array<Group, kSlots> groups_{};
  std::array<net::Datagram, kSlots> out_{};
  std::array<iovec, 2 * kSlots> out_iov_{};
  struct Control {
    alignas(cmsghdr) char bytes[CMSG_SPACE(sizeof(uint16_t))];
  };
  std::array<Control, kSlots> control_{};  // each GSO send's UDP_SEGMENT
};

}  // namespace usher::proxy::l4
