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
# LibTorch's at::parallel_for is OpenMP inline code (qlab/parallel.hpp).
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(SQLite3 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(LUA REQUIRED IMPORTED_TARGET lua5.4)
# torch.save files are zips. By pkg-config: Debian's libzip-config.cmake
# insists on the zipcmp tools, a package of their own.
pkg_check_modules(LIBZIP REQUIRED IMPORTED_TARGET libzip)
# ONNX export (libonnx-dev: the protobuf classes and the checker).
find_package(Protobuf REQUIRED)
find_package(ONNX REQUIRED)
# oneDNN (libdnnl-dev) runs the fp32 baseline on prepacked primitives; without
# it the baseline runs on LibTorch's CPU kernels, and says so.
# Found by hand: Debian's dnnl-config.cmake insists on OpenCL, which the CPU
# engine does not use.
option(QLAB_WITH_ONEDNN "Run the fp32 baseline on oneDNN (libdnnl-dev) where it is found" ON)
if(QLAB_WITH_ONEDNN)
  find_path(DNNL_INCLUDE_DIR dnnl.hpp)
  find_library(DNNL_LIBRARY NAMES dnnl)
endif()
if(QLAB_WITH_ONEDNN AND DNNL_INCLUDE_DIR AND DNNL_LIBRARY)
  add_library(qlab_dnnl INTERFACE)
  target_include_directories(qlab_dnnl INTERFACE ${DNNL_INCLUDE_DIR})
  target_link_libraries(qlab_dnnl INTERFACE ${DNNL_LIBRARY})
  message(STATUS "oneDNN for the fp32 baseline: ${DNNL_LIBRARY}")
else()
  message(STATUS "oneDNN not found (libdnnl-dev) or QLAB_WITH_ONEDNN off: the fp32 baseline runs on LibTorch's kernels")
endif()

# A pip-installed LibTorch carries its own fmt and protobuf headers, newer
# than the libraries qlab links (fmt 9 and protobuf 3.21 on Debian 12), and
# its include folder would shadow theirs. Their folders go first, with the
# multiarch folder beside them that Debian's headers also include from
# (Lua's luaconf.h: lua5.4-deb-multiarch.h). /usr/include cannot go first
# (the compiler searches it last, whatever it is told), so this helps where
# the dependencies sit in a prefix, as tools/gpu's kit puts them.
get_target_property(qlab_fmt_includes fmt::fmt INTERFACE_INCLUDE_DIRECTORIES)
set(qlab_first_includes)
foreach(dir IN LISTS qlab_fmt_includes Protobuf_INCLUDE_DIRS)
  if(dir AND NOT dir MATCHES "^/usr/include/?$")
    list(APPEND qlab_first_includes ${dir})
    if(CMAKE_LIBRARY_ARCHITECTURE AND IS_DIRECTORY ${dir}/${CMAKE_LIBRARY_ARCHITECTURE})
      list(APPEND qlab_first_includes ${dir}/${CMAKE_LIBRARY_ARCHITECTURE})
    endif()
  endif()
endforeach()
list(REMOVE_DUPLICATES qlab_first_includes)
if(qlab_first_includes)
  message(STATUS "Searched before LibTorch's headers: ${qlab_first_includes}")
  include_directories(BEFORE SYSTEM ${qlab_first_includes})
endif()
