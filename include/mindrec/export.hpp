// MINDREC_API marks what the compiled library exports. mindrec builds with
// -fvisibility=hidden, so only the declarations carrying it (and header-only code) are part
// of the ABI of libmindrec.so; internals stay private to the library. On ELF the same
// attribute serves the library and its users.
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define MINDREC_API __attribute__((visibility("default")))
#else
#define MINDREC_API
#endif
