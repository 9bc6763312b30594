#pragma once
// Internal to src/codec/http1: the parts of the head parser (head_parser.h), declared for the
// files that implement them, one job each. head_parser.cc finds the head and decides its framing
// from what these parts return.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "codec/http1/message.h"

namespace usher::http1 {

constexpr size_t kMaxConnectionTokens = 16;

struct Failure {
  int status;
  const char* reason;
  size_t offset;
};

// The start lines (start_line.cc).
bool parse_request_line(std::string_view line, size_t offset, RequestHead& out, Failure& failure);
bool parse_status_line(std::string_view line, size_t offset, ResponseHead& out, Failure& failure);

// The header fields (head_fields.cc).

// Framing facts gathered from all fields of a head before the framing decision.
struct FieldFacts {
  size_t host_count = 0;
  size_t content_length_fields = 0;
  bool content_length_set = false;
  uint64_t content_length = 0;
  size_t transfer_encoding_fields = 0;
  std::string_view transfer_encoding;
  bool te_chunked_last = false;
  size_t chunked_count = 0;
  bool conn_close = false;
  bool conn_keep_alive = false;
  bool conn_upgrade = false;
  std::string_view upgrade;
  bool expect_continue = false;
  std::string_view connection_tokens[kMaxConnectionTokens];
  size_t connection_token_count = 0;
};

bool parse_fields(std::string_view data, size_t pos, size_t end, const HeadLimits& limits,
                  int too_many_status, std::span<Header> scratch, size_t& count, Failure& failure);
bool gather_facts(std::string_view data, std::span<Header> headers, FieldFacts& facts,
                  Failure& failure);

}  // namespace usher::http1
