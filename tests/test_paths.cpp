// The only test source compiled with this build's absolute paths (see
// tests/CMakeLists.txt): the rest stay cacheable across checkouts.
#include "test_support.hpp"

namespace qlab::test {

std::string build_plugin_dir() { return QLAB_BUILD_PLUGIN_DIR; }
std::string test_plugin_dir() { return QLAB_TEST_PLUGIN_DIR; }
std::string golden_dir() { return QLAB_GOLDEN_DIR; }

}  // namespace qlab::test
