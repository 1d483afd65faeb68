# Installs the library, the CLI, the in-tree plugins, the public headers and a
# CMake package so that `find_package(qlab)` works for out-of-tree plugins.
include(CMakePackageConfigHelpers)

install(TARGETS qlab qlab_cli EXPORT qlabTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY framework/include/qlab DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# The conformance suites, for out-of-tree plugins (built with the tests).
if(TARGET qlab_conformance)
  install(TARGETS qlab_conformance RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
install(EXPORT qlabTargets NAMESPACE qlab:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/qlab)

configure_package_config_file(cmake/qlabConfig.cmake.in
  ${CMAKE_BINARY_DIR}/qlabConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/qlab)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/qlabConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${CMAKE_BINARY_DIR}/qlabConfig.cmake
  ${CMAKE_BINARY_DIR}/qlabConfigVersion.cmake
  cmake/QlabPlugin.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/qlab)
