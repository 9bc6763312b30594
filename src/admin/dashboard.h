#pragma once
// The dashboard page (src/admin/dashboard.html), compiled into the binary.
#include <string_view>

namespace usher::admin {

std::string_view dashboard_html();

}  // namespace usher::admin
