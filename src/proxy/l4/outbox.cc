#include "proxy/l4/outbox.h"

#include <netinet/udp.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "proxy/l4/udp_sessions.h"

namespace usher::proxy::l4 {

namespace {

// A GSO send is one UDP datagram until the kernel cuts it: at most 64 segments (the kernel's
// UDP_MAX_SEGMENTS before 6.9) and well under 64 KiB in all.
constexpr unsigned kMaxSegments = 64;
constexpr size_t kMaxGsoBytes = 60'000;

}  // namespace

Outbox::Outbox(net::Reactor& reactor) : reactor_(reactor) {
  // mmap rather than the allocator: a heap block may come back with every page touched, and the
  // slots would then cost all of their 8 MiB at rest.
  void* slots = ::mmap(nullptr, kSlots * kSlotBytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (slots == MAP_FAILED) throw std::bad_alloc();
  slots_ = static_cast<char*>(slots);
  for (unsigned i = 0; i < kSlots; ++i) {
    in_[i].msg_hdr.msg_iov = &in_iov_[i];
    in_[i].msg_hdr.msg_iovlen = 1;
    in_[i].msg_hdr.msg_name = &from_[i];
  }
}

Outbox::~Outbox() {
  ::munmap(slots_, kSlots * kSlotBytes);
}

mmsghdr* Outbox::receiving(unsigned count) {
  if (kSlots - used_ < count) flush();
  first_ = used_;
  used_ += count;
  for (unsigned i = 0; i < count; ++i) {
    in_iov_[i] = {slot(first_ + i), kSlotBytes};
    in_[i].msg_hdr.msg_namelen = sizeof from_[i];
    in_[i].msg_hdr.msg_flags = 0;
  }
  return in_.data();
}

void Outbox::to_backend(unsigned i, Session& session, std::string_view prefix) {
  queue(i, session, true, prefix);
}

void Outbox::to_client(unsigned i, Session& session) {
  queue(i, session, false, {});
}

void Outbox::queue(unsigned i, Session& session, bool to_backend, std::string_view prefix) {
  entries_[queued_++] = {&session,
                         to_backend,
                         {const_cast<char*>(prefix.data()), prefix.size()},
                         {slot(first_ + i), in_[i].msg_len}};
}

void Outbox::forget(const Session& session) {
  for (unsigned i = 0; i < queued_; ++i) {
    if (entries_[i].session == &session) entries_[i].session = nullptr;
  }
}

// Splits the queued entries into sends; with `gso`, runs that one GSO send can carry go together.
unsigned Outbox::group_entries(bool gso) {
  unsigned groups = 0;
  for (unsigned i = 0; i < queued_;) {
    const Entry& first = entries_[i];
    unsigned end = i + 1;
    size_t bytes = first.size();
    // (Empty datagrams never go together: a segment size of 0 means no GSO at all.)
    while (gso && first.size() > 0 && end < queued_ && end - i < kMaxSegments) {
      const Entry& next = entries_[end];
      if (next.session != first.session || next.to_backend != first.to_backend ||
          next.size() > first.size() || bytes + next.size() > kMaxGsoBytes) {
        break;
      }
      bytes += next.size();
      ++end;
      if (next.size() < first.size()) break;  // only the last segment may be shorter
    }
    groups_[groups++] = {i, end - i};
    i = end;
  }
  return groups;
}

void Outbox::prepare(const Group& group, net::Datagram& d, unsigned& iov_used) {
  const Entry& first = entries_[group.first];
  Session& session = *first.session;
  d = {first.to_backend ? session.socket.fd() : session.owner.listener_fd(), {}, 0};
  d.message.msg_iov = &out_iov_[iov_used];
  for (unsigned i = group.first; i < group.first + group.count; ++i) {
    if (entries_[i].prefix.iov_len > 0) out_iov_[iov_used++] = entries_[i].prefix;
    out_iov_[iov_used++] = entries_[i].payload;
  }
  d.message.msg_iovlen = static_cast<size_t>(&out_iov_[iov_used] - d.message.msg_iov);
  if (!first.to_backend) {
    d.message.msg_name = &session.client;
    d.message.msg_namelen = session.client_length;
  }
  if (group.count > 1) {
    Control& control = control_[&d - out_.data()];
    d.message.msg_control = control.bytes;
    d.message.msg_controllen = sizeof control.bytes;
    cmsghdr* header = CMSG_FIRSTHDR(&d.message);
    header->cmsg_level = SOL_UDP;
    header->cmsg_type = UDP_SEGMENT;
    header->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    const auto segment = static_cast<uint16_t>(first.size());
    std::memcpy(CMSG_DATA(header), &segment, sizeof segment);
  }
}

bool Outbox::flush() {
  used_ = 0;
  if (queued_ == 0) return false;
  // Those of sessions that went meanwhile are left out.
  unsigned kept = 0;
  for (unsigned i = 0; i < queued_; ++i) {
    if (entries_[i].session != nullptr) entries_[kept++] = entries_[i];
  }
  queued_ = kept;
  // A GSO send the kernel refuses (a segment over the path's MTU: EINVAL; a device without
  // checksum offload: EIO) goes again a datagram at a time.
  for (bool gso : {true, false}) {
    const unsigned groups = group_entries(gso);
    unsigned iov_used = 0;
    for (unsigned g = 0; g < groups; ++g) prepare(groups_[g], out_[g], iov_used);
    reactor_.send_datagrams({out_.data(), groups});
    unsigned refused = 0;
    for (unsigned g = 0; g < groups; ++g) {
      const long result = out_[g].result;
      const Group& group = groups_[g];
      for (unsigned i = group.first; i < group.first + group.count; ++i) {
        if (gso && group.count > 1 && (result == -EINVAL || result == -EIO)) {
          entries_[refused++] = entries_[i];
        } else {
          account(entries_[i], result);
        }
      }
    }
    queued_ = refused;
    if (refused == 0) break;
  }
  queued_ = 0;
  return true;
}

void Outbox::account(const Entry& entry, long result) {
  Session& s = *entry.session;
  metrics::UdpCounters& counters = *s.counters;
  if (!entry.to_backend) {
    if (result < 0) return;
    counters.datagrams_to_clients.add();
    counters.bytes_to_clients.add(entry.payload.iov_len);
  } else if (result >= 0) {
    counters.datagrams_from_clients.add();
    counters.bytes_from_clients.add(entry.payload.iov_len);
  } else {
    counters.dropped[static_cast<size_t>(metrics::UdpDrop::kSendFailed)].add();
    if (result == -ECONNREFUSED) s.owner.backend_failed(s);
  }
}

}  // namespace usher::proxy::l4
