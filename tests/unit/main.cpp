#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

int main(int argc, char** argv) {
#if defined(__GLIBC__)
  // Blocks of 1 MiB and more always from mappings of their own, returned when freed: glibc
  // otherwise raises its mmap threshold after a large free (up to 32 MiB), and later large
  // blocks then come from heap memory an earlier test's store had advised for huge pages,
  // which the huge-page test (test_vector_store.cpp) would count as advised already.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
  return doctest::Context(argc, argv).run();
}
