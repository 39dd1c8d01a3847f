// Exception hierarchy of mindrec. Every error the library reports on bad input or a failed
// system call is one of these; the library never calls exit/abort on user error.
#pragma once

#include <stdexcept>
#include <string>

#include "mindrec/export.hpp"

namespace mindrec {

/// Root of every exception mindrec throws.
class MINDREC_API Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// A function argument is outside its documented domain (shape, range, null pointer).
class MINDREC_API InvalidArgument : public Error {
 public:
  using Error::Error;
};

/// A configuration file or struct is invalid (message names the key path).
class MINDREC_API ConfigError : public Error {
 public:
  using Error::Error;
};

/// A file could not be opened, read, written or renamed (message names the file).
class MINDREC_API IoError : public Error {
 public:
  using Error::Error;
};

/// A file's content is malformed (message names the file and line, field or offset).
class MINDREC_API FormatError : public Error {
 public:
  using Error::Error;
};

/// The request is valid but this build or backend cannot serve it.
class MINDREC_API Unsupported : public Error {
 public:
  using Error::Error;
};

/// A CUDA runtime or cuBLAS call failed (message names the call, file and line).
class MINDREC_API CudaError : public Error {
 public:
  using Error::Error;
};

/// A remote service (the milvus:// store's server) refused a request or answered with an
/// error: the message names the operation, the endpoint, the service's code and message.
/// A service that cannot be reached, drops the connection or does not answer in time is an
/// IoError instead (after the retries an idempotent call gets).
class MINDREC_API RemoteError : public Error {
 public:
  RemoteError(const std::string& what, int code) : Error(what), code_(code) {}
  /// The service's error code (Milvus: 100 collection not found, 1800 not authenticated,
  /// 1804 bad insert data, 65535 other), or the HTTP status when the body carried none.
  int code() const { return code_; }

 private:
  int code_;
};

/// The remote service refused the credentials (HTTP 401/403, Milvus code 1800).
class MINDREC_API RemoteAuthError : public RemoteError {
 public:
  using RemoteError::RemoteError;
};

/// The remote collection does not exist (Milvus code 100).
class MINDREC_API RemoteNotFound : public RemoteError {
 public:
  using RemoteError::RemoteError;
};

namespace detail {
[[noreturn]] inline void throw_expects(const char* cond, const char* file, int line,
                                       const std::string& msg) {
  throw InvalidArgument(msg + " (expected " + cond + " at " + file + ":" +
                        std::to_string(line) + ")");
}
}  // namespace detail

}  // namespace mindrec

/// Precondition check on public API arguments: throws mindrec::InvalidArgument.
#define MINDREC_EXPECTS(cond, msg)                                            \
  do {                                                                        \
    if (!(cond)) ::mindrec::detail::throw_expects(#cond, __FILE__, __LINE__, (msg)); \
  } while (0)
