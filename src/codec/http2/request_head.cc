#include "codec/http2/request_head.h"

namespace usher::http2 {

namespace {

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

}  // namespace

void RequestFields::add(std::string_view name, std::string_view value) {
  if (!name.empty() && name[0] == ':') {
    if (name == ":method") {
      method_ = value;
    } else if (name == ":scheme") {
      scheme_ = value;
    } else if (name == ":authority") {
      authority_ = value;
    } else if (name == ":path") {
      path_ = value;
    } else if (name == ":protocol") {
      extended_connect_ = true;
    }
    return;
  }
  if (name == "cookie") {
    if (!cookie_.empty()) cookie_.append("; ");
    cookie_.append(value);
    return;
  }
  if (name == "host") {
    host_ = value;
    return;
  }
  if (name == "content-length") content_length_ = true;
  if (name == "content-type") content_type_ = value;
  if (name == "grpc-timeout") grpc_timeout_ = value;
  append_field(fields_, name, value);
}

bool grpc_content_type(std::string_view value) {
  constexpr std::string_view kGrpc = "application/grpc";
  return value.starts_with(kGrpc) &&
         (value.size() == kGrpc.size() || value[kGrpc.size()] == '+' || value[kGrpc.size()] == ';');
}

bool RequestFields::grpc() const {
  return grpc_content_type(content_type_);
}

bool RequestFields::write_head(bool body_follows, std::string& out, const char*& error) const {
  if (extended_connect_) {
    error = "extended CONNECT (:protocol) is not offered";
    return false;
  }
  const bool connect = method_ == "CONNECT";
  const std::string_view target = connect ? std::string_view(authority_) : path_;
  const std::string_view host = authority_.empty() ? std::string_view(host_) : authority_;
  if (method_.empty() || target.empty()) {
    error = "request without :method or :path";
    return false;
  }
  out.reserve(method_.size() + target.size() + host.size() + cookie_.size() + fields_.size() + 80);
  out.append(method_).append(" ").append(target).append(" HTTP/1.1\r\n");
  if (!host.empty()) append_field(out, "host", host);
  if (!cookie_.empty()) append_field(out, "cookie", cookie_);
  out.append(fields_);
  if (body_follows && !content_length_) out.append("transfer-encoding: chunked\r\n");
  out.append("\r\n");
  return true;
}

int64_t grpc_timeout_ms(std::string_view value) {
  if (value.size() < 2 || value.size() > 9) return -1;
  int64_t amount = 0;
  for (char c : value.substr(0, value.size() - 1)) {
    if (c < '0' || c > '9') return -1;
    amount = amount * 10 + (c - '0');
  }
  auto up = [](int64_t n, int64_t per_ms) { return (n + per_ms - 1) / per_ms; };
  switch (value.back()) {
    case 'H':
      return amount * 3'600'000;
    case 'M':
      return amount * 60'000;
    case 'S':
      return amount * 1000;
    case 'm':
      return amount;
    case 'u':
      return up(amount, 1000);
    case 'n':
      return up(amount, 1'000'000);
    default:
      return -1;
  }
}

}  // namespace usher::http2
