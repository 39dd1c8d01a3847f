# Per-target compile options for mindrec's own targets (warnings, -march, sanitizers), so that
# nothing leaks into a parent project's global flags.
function(mindrec_target_options target)
  get_target_property(_type ${target} TYPE)
  if(_type STREQUAL "INTERFACE_LIBRARY")
    return()
  endif()
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANG_AND_ID:CXX,GNU,Clang>:-Wall -Wextra -Wpedantic -Wno-unused-parameter>
    # GCC 12 reports false positives inside Eigen's AVX-512 intrinsics.
    $<$<COMPILE_LANG_AND_ID:CXX,GNU>:-Wno-maybe-uninitialized>
    # mindrec never reads errno after math calls; without this, GCC keeps std::sqrt scalar
    # (a branch to set errno on negative input) and Adam's update loop does not vectorise.
    $<$<COMPILE_LANG_AND_ID:CXX,GNU,Clang>:-fno-math-errno>)
  if(MINDREC_NATIVE)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
  endif()
  if(MINDREC_SANITIZE)
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${MINDREC_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all>)
    target_link_options(${target} PRIVATE -fsanitize=${MINDREC_SANITIZE})
  endif()
endfunction()
