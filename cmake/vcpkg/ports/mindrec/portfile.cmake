# vcpkg overlay port for mindrec, built from this source tree (no download):
#   vcpkg install mindrec --overlay-ports=<mindrec>/cmake/vcpkg/ports
# The options below are the ones CI builds and tests (.ci/run checks that each exists in the
# top-level CMakeLists.txt); the library, headers, mindrecConfig.cmake and mindrec.pc are
# installed, the command-line tools are not.
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../../../.." ABSOLUTE)

vcpkg_check_features(OUT_FEATURE_OPTIONS FEATURE_OPTIONS
  FEATURES
    cuda MINDREC_WITH_CUDA
    faiss MINDREC_WITH_FAISS
    yaml MINDREC_WITH_YAML
    milvus MINDREC_WITH_MILVUS
    hnsw MINDREC_WITH_HNSW
)

vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    ${FEATURE_OPTIONS}
    -DMINDREC_BUILD_TESTS=OFF
    -DMINDREC_BUILD_TOOLS=OFF
    -DMINDREC_BUILD_SERVER=OFF
    -DMINDREC_BUILD_EXAMPLES=OFF
    -DMINDREC_BUILD_BENCHMARKS=OFF
    -DMINDREC_INSTALL=ON
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(PACKAGE_NAME mindrec CONFIG_PATH lib/cmake/mindrec)
vcpkg_fixup_pkgconfig()

file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug/include" "${CURRENT_PACKAGES_DIR}/debug/share")
file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
file(WRITE "${CURRENT_PACKAGES_DIR}/share/${PORT}/copyright"
     "mindrec: see the project's repository for its license terms.\n")
