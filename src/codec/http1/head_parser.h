#pragma once
// Strict RFC 9112 parser of request and response heads: bytes in, a parsed head or an error out.
// No sockets, no allocation: header views go into the caller's scratch span.
#include "codec/http1/message.h"

namespace usher::http1 {

// `scanned` carries how far earlier calls searched for the end of the head: the start of the
// line not yet complete, so complete lines are not searched again when more bytes come (the
// unfinished line is, from its start; the head's limit bounds that). Start it at 0 per message.
ParseStatus parse_request(std::string_view data, const HeadLimits& limits,
                          std::span<Header> scratch, size_t& scanned, RequestHead& out,
                          ParseError& error);

// `request_method` decides whether the response has a body (HEAD, CONNECT).
ParseStatus parse_response(std::string_view data, const HeadLimits& limits,
                           std::span<Header> scratch, Method request_method, size_t& scanned,
                           ResponseHead& out, ParseError& error);

bool iequals(std::string_view a, std::string_view b);
// Without leading and trailing optional whitespace (spaces and tabs, RFC 9110 §5.6.3).
std::string_view trim_ows(std::string_view s);

}  // namespace usher::http1
