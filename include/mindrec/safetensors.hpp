// Minimal safetensors reader/writer (https://huggingface.co/docs/safetensors): 8-byte
// little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, and an
// optional "__metadata__" of string values}, then the raw little-endian tensor bytes.
// mindrec stores its weights this way so that NumPy/PyTorch can read them without mindrec.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "mindrec/export.hpp"

namespace mindrec {

enum class DType { F32, F64, I32, I64 };

MINDREC_API const char* to_string(DType dtype);
MINDREC_API size_t dtype_size(DType dtype);

struct MINDREC_API Tensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<unsigned char> bytes;  ///< row-major, little-endian

  int64_t numel() const;
  /// Copies the values out; throws FormatError if the dtype is not `T`'s.
  template <class T>
  std::vector<T> values() const;
  /// Copies the values into `dst` (numel() of them); same dtype check as values().
  template <class T>
  void copy_to(T* dst) const;

  static Tensor from_f32(std::vector<int64_t> shape, const std::vector<float>& v);
  static Tensor from_f32(std::vector<int64_t> shape, const float* data);  ///< prod(shape) values
  static Tensor from_f64(std::vector<int64_t> shape, const std::vector<double>& v);
  static Tensor from_i64(std::vector<int64_t> shape, const std::vector<int64_t>& v);
  static Tensor from_i32(std::vector<int64_t> shape, const std::vector<int32_t>& v);
};

struct MINDREC_API SafetensorsFile {
  std::map<std::string, std::string> metadata;
  std::map<std::string, Tensor> tensors;

  /// The tensor `name`; throws FormatError naming `source` if it is missing.
  const Tensor& at(const std::string& name, const std::string& source = "safetensors") const;
};

/// Reads and validates a whole file: header bounds, JSON, dtypes, shapes, that every tensor's
/// byte range lies inside the file, matches its shape and overlaps no other. Throws IoError
/// or FormatError (naming the file and the tensor); nothing is returned half-read.
MINDREC_API SafetensorsFile read_safetensors(const std::string& path);

/// Writes atomically (temporary file renamed into place); the header is padded to 8 bytes.
MINDREC_API void write_safetensors(const std::string& path, const SafetensorsFile& file);

}  // namespace mindrec
