#pragma once
// Descriptors handed to another process over a unix socket (SCM_RIGHTS), each message a short text
// with the descriptors it names. Blocking calls, for a control thread: the caller bounds them with
// the socket's SO_RCVTIMEO/SO_SNDTIMEO.
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.h"

namespace usher::net {

// Below the kernel's SCM_MAX_FD (253): more travel in several messages.
constexpr size_t kMaxFdsPerMessage = 200;
constexpr size_t kMaxFdMessageText = 16 * 1024;

struct FdMessage {
  std::string text;
  std::vector<int> fds;  // the receiver's own descriptors (close-on-exec), to close or keep
};

// Sends `text` (at most kMaxFdMessageText bytes) with `fds` (at most kMaxFdsPerMessage) as one
// message of a SOCK_SEQPACKET socket; the problem, or empty.
std::string send_fds(int socket, std::string_view text, std::span<const int> fds);

// Receives one message; a closed peer, a timeout or a cut message is an error (any descriptors
// that came with a cut message are closed).
Expected<FdMessage> receive_fds(int socket);

// A connected pair, for a test or two threads.
Expected<std::pair<int, int>> fd_passing_pair();

}  // namespace usher::net
