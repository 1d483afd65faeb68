# Everything qlab links against; all of it comes from Debian packages, or an
# official LibTorch found through CMAKE_PREFIX_PATH / Torch_DIR.
find_package(Torch REQUIRED)
find_package(Boost 1.70 REQUIRED COMPONENTS filesystem)
find_package(tomlplusplus REQUIRED)
find_package(fmt REQUIRED)
find_package(nlohmann_json 3.9 REQUIRED)
find_package(ZLIB REQUIRED)
find_path(CLI11_INCLUDE_DIR CLI/CLI.hpp REQUIRED)
find_package(Threads REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(LUA REQUIRED IMPORTED_TARGET lua5.4)
