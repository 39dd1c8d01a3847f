#include "mindrec/npy.hpp"

#include <cstring>
#include <ostream>

#include "detail/file_util.hpp"
#include "mindrec/error.hpp"

namespace mindrec {

void write_npy(const std::string& path, const std::vector<int64_t>& shape, const float* data) {
  size_t n = 1;
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i) {
    MINDREC_EXPECTS(shape[i] >= 0, "write_npy: negative dimension");
    n *= size_t(shape[i]);
    dims += std::to_string(shape[i]) + (shape.size() == 1 ? "," : (i + 1 < shape.size() ? ", " : ""));
  }
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  // magic(6) + version(2) + header_len(2) + header + '\n' is a multiple of 64.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  write_file_atomic(path, [&](std::ostream& out) {
    out.write("\x93NUMPY\x01\x00", 8);
    const uint16_t len = static_cast<uint16_t>(header.size());
    char lb[2] = {char(len & 0xff), char(len >> 8)};
    out.write(lb, 2);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n * sizeof(float)));
  });
}

std::vector<float> read_npy(const std::string& path, std::vector<int64_t>* shape) {
  const std::string s = read_file(path);
  auto fail = [&](const std::string& m) { throw FormatError(path + ": " + m); };
  if (s.size() < 10 || s.compare(0, 6, "\x93NUMPY") != 0) fail("not a .npy file");
  if (s[6] != 1) fail("only .npy format version 1.0 is supported");
  const size_t hlen = uint8_t(s[8]) | (size_t(uint8_t(s[9])) << 8);
  if (10 + hlen > s.size()) fail("truncated header");
  const std::string h = s.substr(10, hlen);
  if (h.find("'descr': '<f4'") == std::string::npos) fail("dtype is not '<f4'");
  if (h.find("'fortran_order': False") == std::string::npos) fail("not C order");
  const size_t a = h.find("'shape': ("), b = h.find(')', a);
  if (a == std::string::npos || b == std::string::npos) fail("no shape in header");
  std::vector<int64_t> dims;
  size_t n = 1;
  for (size_t p = a + 10; p < b;) {
    while (p < b && (h[p] == ' ' || h[p] == ',')) ++p;
    if (p >= b) break;
    size_t q = p;
    while (q < b && h[q] >= '0' && h[q] <= '9') ++q;
    if (q == p) fail("bad shape in header");
    if (q - p > 12) fail("dimension " + h.substr(p, q - p) + " in the shape is too large");
    dims.push_back(std::stoll(h.substr(p, q - p)));  // at most 12 digits: no overflow
    // The data must hold the shape: bounding the product by the file size keeps it from
    // overflowing whatever the header says.
    if (dims.back() != 0 && n > (s.size() / sizeof(float)) / size_t(dims.back()))
      fail("data size does not match the shape");
    n *= size_t(dims.back());
    p = q;
  }
  if (s.size() - 10 - hlen != n * sizeof(float)) fail("data size does not match the shape");
  std::vector<float> v(n);
  if (n) std::memcpy(v.data(), s.data() + 10 + hlen, n * sizeof(float));
  if (shape) *shape = dims;
  return v;
}

}  // namespace mindrec
