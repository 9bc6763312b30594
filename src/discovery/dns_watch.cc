#include "discovery/dns_watch.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <random>

namespace usher::discovery {

namespace {

uint64_t now_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
}

std::string address_text(const sockaddr* address, uint16_t port) {
  char ip[INET6_ADDRSTRLEN] = {};
  if (address->sa_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr, ip,
                sizeof ip);
    return "[" + std::string(ip) + "]:" + std::to_string(port);
  }
  ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, ip, sizeof ip);
  return std::string(ip) + ":" + std::to_string(port);
}

// A name's question in flight and what its answer gathers (an SRV answer asks for each
// target's addresses before it is whole).
struct Question {
  size_t name = 0;
  int pending = 0;      // address lookups not yet answered
  int64_t ttl = -1;     // the shortest seen, seconds
  std::string failure;  // the first reason an answer cannot be used
  std::vector<Found> found;
};

}  // namespace

struct DnsWatch::State {
  std::vector<DnsName> names;
  DnsOptions options;
  Changed changed;
  Failed failed;
  ares_channel channel = nullptr;
  int stop = -1;                         // eventfd, written once by the destructor
  std::vector<uint64_t> due_ms;          // by name: when to ask again
  std::vector<bool> asking;              // by name: a question is in flight
  std::vector<std::vector<Found>> last;  // by name: the last answer handed on
  std::vector<std::unique_ptr<Question>> questions;
  std::minstd_rand jitter{std::random_device{}()};

  // What a lookup's callback needs: c-ares hands back one pointer.
  struct Lookup {
    State* state;
    Question* question;
    uint16_t port;
    uint32_t weight;
  };
  static void on_addresses(void* arg, int status, int timeouts, ares_addrinfo* result);
  static void on_srv(void* arg, int status, int timeouts, unsigned char* reply, int length);

  void run();
  void ask(size_t name);
  void lookup(Question& q, const std::string& host, int family, uint16_t port, uint32_t weight);
  void finish(Question& q);
  int poll_timeout_ms(uint64_t now);
};

int64_t shortest_answer_ttl(const unsigned char* reply, size_t length) {
  // RFC 1035 4.1: a 12-byte header, the questions (name, type, class), then the answers
  // (name, type, class, TTL, data length, data).
  if (length < 12) return -1;
  const unsigned questions = reply[4] << 8 | reply[5];
  const unsigned answers = reply[6] << 8 | reply[7];
  size_t at = 12;
  auto skip_name = [&]() {
    while (at < length) {
      const unsigned char label = reply[at];
      if (label == 0) return ++at <= length;
      if ((label & 0xC0) == 0xC0) return (at += 2) <= length;  // a pointer ends the name
      at += 1 + label;
    }
    return false;
  };
  for (unsigned i = 0; i < questions; ++i) {
    if (!skip_name() || (at += 4) > length) return -1;
  }
  int64_t shortest = -1;
  for (unsigned i = 0; i < answers; ++i) {
    if (!skip_name() || at + 10 > length) return -1;
    const int64_t ttl = static_cast<int64_t>(
        static_cast<uint32_t>(reply[at + 4]) << 24 | static_cast<uint32_t>(reply[at + 5]) << 16 |
        static_cast<uint32_t>(reply[at + 6]) << 8 | reply[at + 7]);
    const size_t data = static_cast<size_t>(reply[at + 8] << 8 | reply[at + 9]);
    at += 10 + data;
    if (at > length) return -1;
    shortest = shortest < 0 ? ttl : std::min(shortest, ttl);
  }
  return shortest;
}

DnsWatch::DnsWatch(std::vector<DnsName> names, DnsOptions options, Changed changed, Failed failed)
    : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.names = std::move(names);
  s.options = std::move(options);
  s.changed = std::move(changed);
  s.failed = std::move(failed);
  s.due_ms.assign(s.names.size(), 0);
  s.asking.assign(s.names.size(), false);
  s.last.resize(s.names.size());
}

DnsWatch::~DnsWatch() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(state_->stop, &one, sizeof one);
    thread_.join();
  }
  if (state_->channel) ares_destroy(state_->channel);  // drops what is in flight, callbacks told
  if (state_->stop >= 0) ::close(state_->stop);
}

std::string DnsWatch::start() {
  static std::once_flag library;
  std::call_once(library, [] { ares_library_init(ARES_LIB_INIT_ALL); });
  State& s = *state_;
  ares_options options{};
  options.timeout = static_cast<int>(s.options.timeout_ms);
  options.tries = 2;
  int rc = ares_init_options(&s.channel, &options, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
  if (rc != ARES_SUCCESS) return std::string("resolver: ") + ares_strerror(rc);
  if (!s.options.servers.empty()) {
    std::string csv;
    for (const std::string& server : s.options.servers) csv += (csv.empty() ? "" : ",") + server;
    rc = ares_set_servers_ports_csv(s.channel, csv.c_str());
    if (rc != ARES_SUCCESS) return "resolvers " + csv + ": " + ares_strerror(rc);
  }
  s.stop = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s.stop < 0) return "resolver: no eventfd";
  thread_ = std::thread([&s] { s.run(); });
  return {};
}

void DnsWatch::State::run() {
  while (true) {
    const uint64_t now = now_ms();
    for (size_t i = 0; i < names.size(); ++i) {
      if (!asking[i] && due_ms[i] <= now) ask(i);
    }
    ares_socket_t sockets[ARES_GETSOCK_MAXNUM];
    const int mask = ares_getsock(channel, sockets, ARES_GETSOCK_MAXNUM);
    std::vector<pollfd> fds{{stop, POLLIN, 0}};
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      short events = 0;
      if (ARES_GETSOCK_READABLE(mask, i)) events |= POLLIN;
      if (ARES_GETSOCK_WRITABLE(mask, i)) events |= POLLOUT;
      if (events) fds.push_back({sockets[i], events, 0});
    }
    if (::poll(fds.data(), fds.size(), poll_timeout_ms(now)) < 0 && errno != EINTR) return;
    if (fds[0].revents & POLLIN) return;
    bool any = false;
    for (size_t i = 1; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      any = true;
      ares_process_fd(channel,
                      fds[i].revents & (POLLIN | POLLERR | POLLHUP) ? fds[i].fd : ARES_SOCKET_BAD,
                      fds[i].revents & POLLOUT ? fds[i].fd : ARES_SOCKET_BAD);
    }
    if (!any) ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // c-ares's timeouts
  }
}

int DnsWatch::State::poll_timeout_ms(uint64_t now) {
  uint64_t wait = 60'000;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!asking[i]) wait = std::min(wait, due_ms[i] > now ? due_ms[i] - now : 0);
  }
  timeval most{static_cast<time_t>(wait / 1000), static_cast<suseconds_t>(wait % 1000 * 1000)};
  timeval left{};
  if (const timeval* t = ares_timeout(channel, &most, &left)) {
    wait = static_cast<uint64_t>(t->tv_sec) * 1000 + static_cast<uint64_t>(t->tv_usec) / 1000;
  }
  return static_cast<int>(wait);
}

void DnsWatch::State::on_addresses(void* arg, int status, int, ares_addrinfo* result) {
  std::unique_ptr<Lookup> lookup(static_cast<Lookup*>(arg));
  if (status != ARES_EDESTRUCTION) {  // else the watch is going: nobody to tell
    Question& q = *lookup->question;
    if (status != ARES_SUCCESS && q.failure.empty()) q.failure = ares_strerror(status);
    for (ares_addrinfo_node* node = result ? result->nodes : nullptr; node; node = node->ai_next) {
      q.found.push_back({address_text(node->ai_addr, lookup->port), lookup->weight});
      q.ttl = q.ttl < 0 ? node->ai_ttl : std::min<int64_t>(q.ttl, node->ai_ttl);
    }
    if (--q.pending == 0) lookup->state->finish(q);
  }
  if (result) ares_freeaddrinfo(result);
}

void DnsWatch::State::on_srv(void* arg, int status, int, unsigned char* reply, int length) {
  std::unique_ptr<Lookup> lookup(static_cast<Lookup*>(arg));
  if (status == ARES_EDESTRUCTION) return;
  State& s = *lookup->state;
  Question& q = *lookup->question;
  ares_srv_reply* records = nullptr;
  if (status == ARES_SUCCESS) status = ares_parse_srv_reply(reply, length, &records);
  if (status != ARES_SUCCESS) {
    q.failure = ares_strerror(status);
    return s.finish(q);
  }
  q.ttl = shortest_answer_ttl(reply, static_cast<size_t>(length));
  // RFC 2782: the lowest priority that has records serves; the others are its fall-backs.
  unsigned short best = 0xFFFF;
  for (ares_srv_reply* r = records; r; r = r->next) best = std::min(best, r->priority);
  ++q.pending;  // held while the lookups start: one may be answered at once
  for (ares_srv_reply* r = records; r; r = r->next) {
    if (r->priority == best)
      s.lookup(q, r->host, AF_UNSPEC, r->port, std::max<uint32_t>(r->weight, 1));
  }
  ares_free_data(records);
  if (--q.pending == 0) s.finish(q);
}

void DnsWatch::State::ask(size_t name) {
  asking[name] = true;
  questions.push_back(std::make_unique<Question>());
  Question& q = *questions.back();
  q.name = name;
  const DnsName& n = names[name];
  if (n.type == RecordType::kSrv) {
    ares_query(channel, n.name.c_str(), ns_c_in, ns_t_srv, on_srv, new Lookup{this, &q, 0, 0});
  } else {
    lookup(q, n.name, n.type == RecordType::kAaaa ? AF_INET6 : AF_INET, n.port, 1);
  }
}

void DnsWatch::State::lookup(Question& q, const std::string& host, int family, uint16_t port,
                             uint32_t weight) {
  ++q.pending;
  ares_addrinfo_hints hints{};
  hints.ai_family = family;
  hints.ai_flags = ARES_AI_NOSORT;
  ares_getaddrinfo(channel, host.c_str(), nullptr, &hints, on_addresses,
                   new Lookup{this, &q, port, weight});
}

void DnsWatch::State::finish(Question& q) {
  const size_t name = q.name;
  asking[name] = false;
  const uint64_t now = now_ms();
  if (q.failure.empty() && q.found.empty()) q.failure = "the answer holds no address";
  if (!q.failure.empty()) {
    due_ms[name] = now + options.retry_ms;
    failed(name, q.failure);
  } else {
    std::sort(q.found.begin(), q.found.end());
    q.found.erase(std::unique(q.found.begin(), q.found.end()), q.found.end());
    const uint64_t ttl_ms = q.ttl < 0 ? 0 : static_cast<uint64_t>(q.ttl) * 1000;
    const uint64_t wait = std::max(ttl_ms, names[name].floor_ms);
    due_ms[name] = now + wait + jitter() % (wait / 10 + 1);
    if (q.found != last[name]) {
      last[name] = q.found;
      changed(name, q.found);
    }
  }
  std::erase_if(questions, [&](const std::unique_ptr<Question>& p) { return p.get() == &q; });
}

}  // namespace usher::discovery
