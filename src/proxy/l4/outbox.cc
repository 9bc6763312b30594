#include "proxy/l4/outbox.h"

#include <sys/mman.h>

#include <cerrno>
#include <new>

#include "proxy/l4/udp_sessions.h"

namespace usher::proxy::l4 {

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
  Entry& e = entries_[queued_];
  e = {&session, first_ + i, to_backend, {}};
  e.iov[0] = {const_cast<char*>(prefix.data()), prefix.size()};
  e.iov[1] = {slot(first_ + i), in_[i].msg_len};
  net::Datagram& d = out_[queued_];
  d = {session.socket.fd(), {}, 0};
  d.message.msg_iov = prefix.empty() ? &e.iov[1] : &e.iov[0];
  d.message.msg_iovlen = prefix.empty() ? 1 : 2;
  if (!to_backend) {
    d.fd = session.owner.listener_fd();
    d.message.msg_name = &session.client;
    d.message.msg_namelen = session.client_length;
  }
  ++queued_;
}

void Outbox::forget(const Session& session) {
  for (unsigned i = 0; i < queued_; ++i) {
    if (entries_[i].session == &session) entries_[i].session = nullptr;
  }
}

bool Outbox::flush() {
  if (queued_ == 0) {
    used_ = 0;
    return false;
  }
  // Those of sessions that went meanwhile are left out.
  unsigned kept = 0;
  for (unsigned i = 0; i < queued_; ++i) {
    if (entries_[i].session == nullptr) continue;
    entries_[kept] = entries_[i];
    out_[kept] = out_[i];
    out_[kept].message.msg_iov =
        out_[i].message.msg_iovlen == 2 ? &entries_[kept].iov[0] : &entries_[kept].iov[1];
    ++kept;
  }
  const unsigned count = kept;
  queued_ = 0;
  used_ = 0;
  reactor_.send_datagrams({out_.data(), count});
  for (unsigned i = 0; i < count; ++i) {
    Session& s = *entries_[i].session;
    const long result = out_[i].result;
    metrics::UdpCounters& counters = *s.counters;
    const uint64_t payload = entries_[i].iov[1].iov_len;
    if (entries_[i].to_backend) {
      if (result >= 0) {
        counters.datagrams_from_clients.add();
        counters.bytes_from_clients.add(payload);
        continue;
      }
      counters.dropped[static_cast<size_t>(metrics::UdpDrop::kSendFailed)].add();
      if (result == -ECONNREFUSED) s.owner.backend_failed(s);
    } else if (result >= 0) {
      counters.datagrams_to_clients.add();
      counters.bytes_to_clients.add(payload);
    }
  }
  return true;
}

}  // namespace usher::proxy::l4
