// Private: Faiss exceptions become mindrec errors with context, in both Faiss backends.
#pragma once

#include <faiss/impl/FaissException.h>

#include <string>

#include "mindrec/error.hpp"

namespace mindrec::store {

/// Runs `fn`; a faiss::FaissException becomes Error("<who> <what> failed: <faiss message>").
template <class Fn>
auto faiss_guarded(const std::string& who, const char* what, Fn&& fn) {
  try {
    return fn();
  } catch (const faiss::FaissException& e) {
    throw Error(who + " " + what + " failed: " + e.what());
  }
}

}  // namespace mindrec::store
