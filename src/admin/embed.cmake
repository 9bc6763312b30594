# Turns the dashboard page into a C++ source: the binary carries it, nothing is read at run time.
file(READ "${IN}" content)
string(FIND "${content}" ")usher_html\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw string delimiter")
endif()
file(WRITE "${OUT}" "// Generated from dashboard.html by embed.cmake.\n#include \"admin/dashboard.h\"\n\nnamespace usher::admin {\n\nstd::string_view dashboard_html() {\n  static constexpr std::string_view kPage = R\"usher_html(${content})usher_html\";\n  return kPage;\n}\n\n}  // namespace usher::admin\n")
