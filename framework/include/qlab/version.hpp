#pragma once
namespace qlab {
/// qlab's own version (the project version in CMakeLists.txt).
const char* version();
}  // namespace qlab
