#include "mindrec/safetensors.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <ostream>

#include "detail/file_util.hpp"
#include "mindrec/error.hpp"
#include "formats/safetensors_io.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "mindrec's file formats assume a little-endian host"
#endif

namespace mindrec {

const char* to_string(DType d) {
  switch (d) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
  }
  return "?";
}

size_t dtype_size(DType d) { return (d == DType::F32 || d == DType::I32) ? 4 : 8; }

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

namespace {
template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::I64; }

template <class T>
Tensor make(std::vector<int64_t> shape, const std::vector<T>& v) {
  Tensor t;
  t.dtype = dtype_of<T>();
  t.shape = std::move(shape);
  if (t.numel() != static_cast<int64_t>(v.size()))
    throw InvalidArgument("Tensor: shape does not match the number of values");
  t.bytes.resize(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}
}  // namespace

template <class T>
std::vector<T> Tensor::values() const {
  if (dtype != dtype_of<T>())
    throw FormatError(std::string("tensor has dtype ") + to_string(dtype) + ", expected " +
                      to_string(dtype_of<T>()));
  std::vector<T> v(bytes.size() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}
template <class T>
void Tensor::copy_to(T* dst) const {
  if (dtype != dtype_of<T>())
    throw FormatError(std::string("tensor has dtype ") + to_string(dtype) + ", expected " +
                      to_string(dtype_of<T>()));
  if (!bytes.empty()) std::memcpy(dst, bytes.data(), bytes.size());
}
template void Tensor::copy_to<float>(float*) const;
template std::vector<float> Tensor::values<float>() const;
template std::vector<double> Tensor::values<double>() const;
template std::vector<int32_t> Tensor::values<int32_t>() const;
template std::vector<int64_t> Tensor::values<int64_t>() const;

Tensor Tensor::from_f32(std::vector<int64_t> s, const std::vector<float>& v) { return make(std::move(s), v); }
Tensor Tensor::from_f32(std::vector<int64_t> s, const float* data) {
  Tensor t;
  t.dtype = DType::F32;
  t.shape = std::move(s);
  t.bytes.resize(size_t(t.numel()) * sizeof(float));
  if (!t.bytes.empty()) std::memcpy(t.bytes.data(), data, t.bytes.size());
  return t;
}
Tensor Tensor::from_f64(std::vector<int64_t> s, const std::vector<double>& v) { return make(std::move(s), v); }
Tensor Tensor::from_i64(std::vector<int64_t> s, const std::vector<int64_t>& v) { return make(std::move(s), v); }
Tensor Tensor::from_i32(std::vector<int64_t> s, const std::vector<int32_t>& v) { return make(std::move(s), v); }

const Tensor& SafetensorsFile::at(const std::string& name, const std::string& source) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) throw FormatError(source + ": missing tensor '" + name + "'");
  return it->second;
}

namespace detail {

SafetensorsReader::SafetensorsReader(const std::string& path)
    : path_(path), in_(path, std::ios::binary) {
  if (!in_) throw IoError("cannot open '" + path + "': " + std::strerror(errno));
  if (std::filesystem::is_directory(path)) throw IoError("'" + path + "' is a directory, not a safetensors file");
  auto fail = [&](const std::string& msg) -> void {
    throw FormatError(path + ": not a valid safetensors file: " + msg);
  };
  in_.seekg(0, std::ios::end);
  const auto end = in_.tellg();
  if (end < 0) throw IoError("cannot read '" + path + "'");
  const uint64_t file_size = static_cast<uint64_t>(end);
  in_.seekg(0);
  if (file_size < 8) fail("shorter than the 8-byte header length (truncated?)");
  uint64_t header_len = 0;
  in_.read(reinterpret_cast<char*>(&header_len), 8);
  if (header_len > file_size - 8)
    fail("header length " + std::to_string(header_len) + " exceeds the file size " +
         std::to_string(file_size) + " (truncated?)");
  std::string text(static_cast<size_t>(header_len), '\0');
  if (!in_.read(text.data(), static_cast<std::streamsize>(header_len)))
    throw IoError("cannot read '" + path + "'");
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_len = file_size - data_start;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("header is not JSON: ") + e.what());
  }
  if (!header.is_object()) fail("header is not a JSON object");

  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail("__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) fail("__metadata__." + m.key() + " is not a string");
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") ||
        !v.contains("data_offsets"))
      fail(where + "needs dtype, shape and data_offsets");
    TensorEntry t;
    const auto& dt = v["dtype"];
    if (!dt.is_string()) fail(where + "dtype is not a string");
    const std::string d = dt.get<std::string>();
    if (d == "F32") t.dtype = DType::F32;
    else if (d == "F64") t.dtype = DType::F64;
    else if (d == "I32") t.dtype = DType::I32;
    else if (d == "I64") t.dtype = DType::I64;
    else fail(where + "unsupported dtype " + d);
    const auto& shape = v["shape"];
    if (!shape.is_array()) fail(where + "shape is not an array");
    uint64_t numel = 1;
    for (const auto& s : shape) {
      if (!s.is_number_unsigned()) fail(where + "shape has a non-integer or negative entry");
      const uint64_t dim = s.get<uint64_t>();
      if (dim != 0 && numel > (uint64_t(1) << 48) / dim) fail(where + "shape is too large");
      numel *= dim;
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      fail(where + "data_offsets must be two non-negative integers");
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e || e > data_len)
      fail(where + "bytes [" + std::to_string(b) + ", " + std::to_string(e) +
           ") lie outside the data section of " + std::to_string(data_len) +
           " bytes (truncated?)");
    if (e - b != numel * dtype_size(t.dtype))
      fail(where + "holds " + std::to_string(e - b) + " bytes but its shape and dtype need " +
           std::to_string(numel * dtype_size(t.dtype)));
    t.offset = data_start + b;
    t.size = e - b;
    ranges.emplace_back(b, e);
    tensors_.emplace(name, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second) fail("two tensors' byte ranges overlap");
}

void SafetensorsReader::read(const std::string& name, void* dst) {
  const TensorEntry& t = tensors_.at(name);
  if (t.size == 0) return;
  in_.clear();
  in_.seekg(static_cast<std::streamoff>(t.offset));
  if (!in_.read(static_cast<char*>(dst), static_cast<std::streamsize>(t.size)))
    throw IoError("cannot read tensor '" + name + "' of '" + path_ + "' (the file shrank?)");
}

void write_safetensors(const std::string& path, const std::map<std::string, std::string>& metadata,
                       const std::map<std::string, TensorRef>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::vector<uint64_t> sizes;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") throw InvalidArgument("a tensor may not be named __metadata__");
    uint64_t n = dtype_size(t.dtype);
    for (const int64_t d : t.shape) {
      if (d < 0) throw InvalidArgument("tensor '" + name + "': negative shape entry");
      n *= static_cast<uint64_t>(d);
    }
    if (n && !t.data) throw InvalidArgument("tensor '" + name + "': no data");
    header[name] = {{"dtype", to_string(t.dtype)},
                    {"shape", t.shape},
                    {"data_offsets", {offset, offset + n}}};
    offset += n;
    sizes.push_back(n);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  write_file_atomic(path, [&](std::ostream& out) {
    const uint64_t len = text.size();
    char len_bytes[8];
    std::memcpy(len_bytes, &len, 8);
    out.write(len_bytes, 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    size_t i = 0;
    for (const auto& [name, t] : tensors)
      out.write(static_cast<const char*>(t.data), static_cast<std::streamsize>(sizes[i++]));
  });
}

}  // namespace detail

SafetensorsFile read_safetensors(const std::string& path) {
  detail::SafetensorsReader r(path);
  SafetensorsFile file;
  file.metadata = r.metadata();
  for (const auto& [name, e] : r.tensors()) {
    Tensor t;
    t.dtype = e.dtype;
    t.shape = e.shape;
    t.bytes.resize(static_cast<size_t>(e.size));
    r.read(name, t.bytes.data());
    file.tensors.emplace(name, std::move(t));
  }
  return file;
}

void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  std::map<std::string, detail::TensorRef> refs;
  for (const auto& [name, t] : file.tensors) {
    if (static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype) != t.bytes.size())
      throw InvalidArgument("tensor '" + name + "': bytes do not match shape and dtype");
    refs[name] = detail::TensorRef{t.dtype, t.shape, t.bytes.data()};
  }
  detail::write_safetensors(path, file.metadata, refs);
}

}  // namespace mindrec
