// Private: safetensors without whole-file copies. The layout (metadata, each tensor's dtype,
// shape and byte range) is read and validated first; tensors are then read straight from the
// file into the caller's memory, and written from the caller's memory, so a 5 GB embedding
// table is held once, not three times (file text, Tensor bytes, destination).
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "mindrec/safetensors.hpp"

namespace mindrec::detail {

struct TensorEntry {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t offset = 0;  ///< absolute position of the first byte in the file
  uint64_t size = 0;    ///< bytes
};

/// An open safetensors file whose header has been read and validated (the same checks as
/// read_safetensors: bounds, JSON, dtypes, shapes, sizes, no overlaps).
class SafetensorsReader {
 public:
  explicit SafetensorsReader(const std::string& path);
  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::map<std::string, TensorEntry>& tensors() const { return tensors_; }
  /// Reads tensor `name`'s bytes into `dst` (entry.size bytes). IoError if the read fails.
  void read(const std::string& name, void* dst);

 private:
  std::string path_;
  std::ifstream in_;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, TensorEntry> tensors_;
};

/// A tensor to write, viewing the caller's memory (numel(shape) values of dtype).
struct TensorRef {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
};

/// Writes atomically (temporary file renamed into place), tensors in name order, the header
/// padded to 8 bytes: the same bytes write_safetensors writes for the same tensors.
void write_safetensors(const std::string& path, const std::map<std::string, std::string>& metadata,
                       const std::map<std::string, TensorRef>& tensors);

}  // namespace mindrec::detail
