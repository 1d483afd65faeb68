# qlab_add_plugin(<target> KIND <model|quantizer|backend|metric> SOURCES ...
#                 [OUTPUT_DIR dir] [NO_INSTALL])
#
# Builds one plugin as a MODULE library that the host loads with Boost.DLL.
# The same function is installed with the qlab package, so an out-of-tree
# plugin is built exactly like an in-tree one.
function(qlab_add_plugin target)
  cmake_parse_arguments(ARG "NO_INSTALL" "KIND;OUTPUT_DIR" "SOURCES" ${ARGN})
  if(NOT ARG_KIND MATCHES "^(model|quantizer|backend|metric)$")
    message(FATAL_ERROR "qlab_add_plugin(${target}): KIND must be model, quantizer, backend or metric")
  endif()
  add_library(${target} MODULE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE qlab::qlab)
  set_target_properties(${target} PROPERTIES
    PREFIX "libqlab_${ARG_KIND}_"
    OUTPUT_NAME ${target}
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(ARG_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIR})
  elseif(DEFINED QLAB_PLUGIN_BUILD_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${QLAB_PLUGIN_BUILD_DIR})
  endif()
  if(DEFINED QLAB_PLUGIN_INSTALL_DIR AND NOT ARG_NO_INSTALL)
    install(TARGETS ${target} LIBRARY DESTINATION ${QLAB_PLUGIN_INSTALL_DIR})
    set_property(GLOBAL APPEND PROPERTY QLAB_SHIPPED_PLUGINS ${target})
  endif()
  if(TARGET qlab_plugin_pch)
    target_precompile_headers(${target} REUSE_FROM qlab_plugin_pch)
  endif()
endfunction()
