#pragma once
// Where a Lua error or a binding's call came from: script file and line, the
// file named in full.
#include <qlab/plugin/options.hpp>

#include <string>

struct lua_State;
struct lua_Debug;

namespace qlab {

/// The file a function was loaded from, in full: Lua's `short_src` cuts
/// names longer than 59 characters to "...tail".
std::string source_name(const lua_Debug& ar);

/// Lua's own messages ("...tail:3: attempt to index") name the chunk the
/// short way; this puts the full `chunk` back.
std::string with_full_chunk_name(const std::string& message, const std::string& chunk);

/// [-0, +0] The script line that called the running binding.
SourceLoc caller(lua_State* L);

}  // namespace qlab
