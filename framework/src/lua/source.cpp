#include "lua/source.hpp"

#include <lua.hpp>

namespace qlab {

std::string source_name(const lua_Debug& ar) {
  if (ar.source && (ar.source[0] == '@' || ar.source[0] == '=')) return ar.source + 1;
  return ar.short_src;
}

std::string with_full_chunk_name(const std::string& message, const std::string& chunk) {
  if (message.rfind("...", 0) != 0) return message;
  for (auto colon = message.find(':', 3); colon != std::string::npos;
       colon = message.find(':', colon + 1)) {
    const std::string tail = message.substr(3, colon - 3);
    if (chunk.size() > tail.size() &&
        chunk.compare(chunk.size() - tail.size(), tail.size(), tail) == 0)
      return chunk + message.substr(colon);
  }
  return message;
}

SourceLoc caller(lua_State* L) {
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); ++level) {
    lua_getinfo(L, "Sl", &ar);
    if (ar.currentline > 0) return {source_name(ar), ar.currentline, 0};
  }
  return {"(script)", 0, 0};
}

}  // namespace qlab
