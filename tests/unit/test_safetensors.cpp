// safetensors and weights files: layout checked byte by byte against the format's definition,
// refusal of truncated/mismatched files, the spec's initialisation, and .npy output.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "detail/file_util.hpp"
#include "mindrec/error.hpp"
#include "small_model.hpp"
#include "mindrec/model.hpp"
#include "mindrec/npy.hpp"
#include "mindrec/safetensors.hpp"
#include "test_util.hpp"

using namespace mindrec;
using mindrec::test::TempDir;

namespace {
ModelConfig small_config() {  // the shared small model, with fewer items and a shorter history
  ModelConfig m = test::small_config();
  m.item_count = 50;
  m.maxlen = 5;
  return m;
}


void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}
}  // namespace

TEST_CASE("safetensors layout: u64 header length - JSON header - raw little-endian data") {
  TempDir tmp;
  SafetensorsFile f;
  f.metadata["k"] = "v";
  f.tensors["a"] = Tensor::from_f32({2}, {1.5f, -2.0f});
  f.tensors["b"] = Tensor::from_i64({1}, {7});
  write_safetensors(tmp.file("x.st"), f);
  const std::string s = read_file(tmp.file("x.st"));
  uint64_t n = 0;
  std::memcpy(&n, s.data(), 8);
  CHECK(n % 8 == 0);
  REQUIRE(s.size() == 8 + n + 8 + 8);
  const std::string header = s.substr(8, n);
  CHECK(header.find("\"__metadata__\":{\"k\":\"v\"}") != std::string::npos);
  CHECK(header.find("\"a\":{\"data_offsets\":[0,8],\"dtype\":\"F32\",\"shape\":[2]}") != std::string::npos);
  CHECK(header.find("\"b\":{\"data_offsets\":[8,16],\"dtype\":\"I64\",\"shape\":[1]}") != std::string::npos);
  float a[2];
  std::memcpy(a, s.data() + 8 + n, 8);
  CHECK(a[0] == 1.5f);
  CHECK(a[1] == -2.0f);
  const SafetensorsFile back = read_safetensors(tmp.file("x.st"));
  CHECK(back.metadata.at("k") == "v");
  CHECK(back.at("a").values<float>() == std::vector<float>{1.5f, -2.0f});
  CHECK(back.at("b").values<int64_t>() == std::vector<int64_t>{7});
  CHECK_THROWS_AS(back.at("a").values<double>(), FormatError);
}

TEST_CASE("corrupt safetensors files are refused with a reason") {
  TempDir tmp;
  SafetensorsFile f;
  f.tensors["a"] = Tensor::from_f32({4}, {1, 2, 3, 4});
  write_safetensors(tmp.file("ok.st"), f);
  const std::string good = read_file(tmp.file("ok.st"));
  uint64_t n = 0;
  std::memcpy(&n, good.data(), 8);
  CHECK(test::error_of([&] { read_safetensors(tmp.path().string()); }).find("is a directory") != std::string::npos);

  write_bytes(tmp.file("t1.st"), good.substr(0, 5));
  CHECK(test::error_of([&] { read_safetensors(tmp.file("t1.st")); }).find("shorter than") != std::string::npos);
  write_bytes(tmp.file("t2.st"), good.substr(0, 8 + n / 2));
  CHECK(test::error_of([&] { read_safetensors(tmp.file("t2.st")); }).find("exceeds the file size") != std::string::npos);
  write_bytes(tmp.file("t3.st"), good.substr(0, good.size() - 4));
  CHECK(test::error_of([&] { read_safetensors(tmp.file("t3.st")); }).find("tensor 'a': bytes [0, 16) lie outside") != std::string::npos);
  std::string bad = good;
  bad[8] = '[';
  write_bytes(tmp.file("t4.st"), bad);
  CHECK(test::error_of([&] { read_safetensors(tmp.file("t4.st")); }).find("not a valid safetensors file") != std::string::npos);
  auto with_header = [&](std::string h, const std::string& data) {
    h.append((8 - h.size() % 8) % 8, ' ');
    std::string out(8, '\0');
    const uint64_t len = h.size();
    std::memcpy(out.data(), &len, 8);
    return out + h + data;
  };
  write_bytes(tmp.file("t5.st"), with_header(R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})", "abcd"));
  CHECK(test::error_of([&] { read_safetensors(tmp.file("t5.st")); }).find("unsupported dtype BF16") != std::string::npos);
  write_bytes(tmp.file("t6.st"), with_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "abcdefgh"));
  CHECK(test::error_of([&] { read_safetensors(tmp.file("t6.st")); }).find("holds 8 bytes but its shape and dtype need 12") != std::string::npos);
  write_bytes(tmp.file("t7.st"), with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})", "abcdefgh"));
  CHECK(test::error_of([&] { read_safetensors(tmp.file("t7.st")); }).find("overlap") != std::string::npos);
}

TEST_CASE("weights: init follows the spec's table and round-trips through a file") {
  const ModelConfig m = small_config();
  const MindWeights w = init_weights(m, 42);
  const double a_emb = std::sqrt(6.0 / (50 + 8)), a_relu = std::sqrt(6.0 / 16);
  for (int d = 0; d < 8; ++d) CHECK(w.item_emb[d] == 0.0f);  // padding row
  float mx = 0;
  for (size_t i = 8; i < w.item_emb.size(); ++i) mx = std::max(mx, std::abs(w.item_emb[i]));
  CHECK(mx <= a_emb);
  CHECK(mx > 0.9 * a_emb);  // 392 draws from U(-a, a) reach 0.9a with probability ~1 - 1e-18
  for (float x : w.relu_weight) CHECK(std::abs(x) <= a_relu);
  for (float x : w.relu_bias) CHECK(x == 0.0f);
  CHECK(w.routing_logits.size() == 15);
  CHECK(w.bilinear.size() == 64);

  // Same seed, same weights; another seed, other weights.
  CHECK(init_weights(m, 42).item_emb == w.item_emb);
  CHECK(init_weights(m, 43).item_emb != w.item_emb);

  TempDir tmp;
  save_weights(tmp.file("w.safetensors"), w);
  const MindWeights back = load_weights(tmp.file("w.safetensors"));
  CHECK(back.item_emb == w.item_emb);
  CHECK(back.bilinear == w.bilinear);
  CHECK(back.routing_logits == w.routing_logits);
  CHECK(back.relu_weight == w.relu_weight);
  CHECK(back.config.item_count == 50);
  const SafetensorsFile raw = read_safetensors(tmp.file("w.safetensors"));
  CHECK(raw.at("capsule.routing_logits").shape == std::vector<int64_t>{1, 3, 5});
  CHECK(raw.at("item_emb.weight").shape == std::vector<int64_t>{50, 8});
  CHECK(raw.at("capsule.relu.weight").shape == std::vector<int64_t>{8, 8});
  CHECK(raw.at("capsule.relu.bias").shape == std::vector<int64_t>{8});
}

TEST_CASE("init statistics match the distributions (large draw)") {
  ModelConfig m = small_config();
  m.item_count = 20000;
  m.embedding_dim = m.hidden_size = 16;
  m.maxlen = 50;
  m.capsule.max_k = 40;
  m.capsule.init_std = 0.5;
  const MindWeights w = init_weights(m, 7);
  auto moments = [](const AlignedVector<float>& v, size_t from) {
    double s = 0, s2 = 0;
    for (size_t i = from; i < v.size(); ++i) s += v[i], s2 += double(v[i]) * v[i];
    const double n = double(v.size() - from);
    return std::pair<double, double>(s / n, s2 / n - (s / n) * (s / n));
  };
  // U(-a, a) has variance a^2/3; Normal(0, s) has variance s^2. Tolerances are > 5 sigma.
  const double a = std::sqrt(6.0 / (20000 + 16));
  auto [m1, v1] = moments(w.item_emb, 16);
  CHECK(std::abs(m1) < 5 * a / std::sqrt(3.0 * 320000));
  CHECK(v1 == doctest::Approx(a * a / 3).epsilon(0.01));
  auto [m2, v2] = moments(w.routing_logits, 0);  // 2000 draws
  CHECK(std::abs(m2) < 5 * 0.5 / std::sqrt(2000.0));
  CHECK(v2 == doctest::Approx(0.25).epsilon(0.2));
}

TEST_CASE("weights files that do not match are refused - naming the tensor") {
  TempDir tmp;
  const ModelConfig m = small_config();
  const MindWeights w = init_weights(m, 1);
  save_weights(tmp.file("w.safetensors"), w);
  SafetensorsFile f = read_safetensors(tmp.file("w.safetensors"));

  SafetensorsFile wrong_shape = f;
  wrong_shape.tensors["capsule.bilinear"] = Tensor::from_f32({4, 16}, w.bilinear.data());
  write_safetensors(tmp.file("a.st"), wrong_shape);
  CHECK(test::error_of([&] { load_weights(tmp.file("a.st")); })
            .find("tensor 'capsule.bilinear' has shape [4, 16], the model config in the file needs [8, 8]") != std::string::npos);

  SafetensorsFile wrong_dtype = f;
  std::vector<double> d(w.bilinear.begin(), w.bilinear.end());
  wrong_dtype.tensors["capsule.bilinear"] = Tensor::from_f64({8, 8}, d);
  write_safetensors(tmp.file("b.st"), wrong_dtype);
  CHECK(test::error_of([&] { load_weights(tmp.file("b.st")); }).find("has dtype F64, expected F32") != std::string::npos);

  SafetensorsFile missing = f;
  missing.tensors.erase("capsule.relu.bias");
  write_safetensors(tmp.file("c.st"), missing);
  CHECK(test::error_of([&] { load_weights(tmp.file("c.st")); }).find("missing tensor 'capsule.relu.bias'") != std::string::npos);

  SafetensorsFile extra = f;
  extra.tensors["junk"] = Tensor::from_f32({1}, {1});
  write_safetensors(tmp.file("d.st"), extra);
  CHECK(test::error_of([&] { load_weights(tmp.file("d.st")); }).find("unexpected tensor(s) 'junk'") != std::string::npos);

  SafetensorsFile no_meta = f;
  no_meta.metadata.clear();
  write_safetensors(tmp.file("e.st"), no_meta);
  CHECK(test::error_of([&] { load_weights(tmp.file("e.st")); }).find("not a mindrec weights file") != std::string::npos);

  ModelConfig other = m;
  other.capsule.max_k = 4;
  CHECK(test::error_of([&] { load_weights(tmp.file("w.safetensors"), other); })
            .find("capsule.max_k 4 vs 3") != std::string::npos);

  // A truncated weights file is refused, not half-loaded.
  const std::string bytes = read_file(tmp.file("w.safetensors"));
  write_bytes(tmp.file("t.st"), bytes.substr(0, bytes.size() - 1));
  CHECK(test::error_of([&] { load_weights(tmp.file("t.st")); }).find("truncated") != std::string::npos);
}

TEST_CASE("weights holding NaN or Inf are refused - naming the tensor and the element") {
  TempDir tmp;
  const MindWeights good = init_weights(small_config(), 1);
  // In memory: MindModel refuses them before any comparator sees a NaN.
  MindWeights w = good;
  w.bilinear[10] = std::nanf("");
  CHECK(test::error_of([&] { MindModel m(w); })
            .find("'capsule.bilinear' holds NaN or Inf at element 10 (row 1)") != std::string::npos);
  CHECK_THROWS_AS(MindModel{w}, InvalidArgument);
  w = good;
  w.relu_bias[3] = -INFINITY;
  CHECK(test::error_of([&] { MindModel m(w); }).find("'capsule.relu.bias' holds NaN or Inf") != std::string::npos);
  // In a file: FormatError naming the file and the tensor (the file's other tensors are fine).
  save_weights(tmp.file("w.safetensors"), good);
  SafetensorsFile f = read_safetensors(tmp.file("w.safetensors"));
  std::vector<float> logits(good.routing_logits.begin(), good.routing_logits.end());
  logits[7] = INFINITY;
  f.tensors["capsule.routing_logits"] = Tensor::from_f32(f.tensors["capsule.routing_logits"].shape, logits);
  write_safetensors(tmp.file("inf.st"), f);
  CHECK_THROWS_AS(load_weights(tmp.file("inf.st")), FormatError);
  CHECK(test::error_of([&] { load_weights(tmp.file("inf.st")); })
            .find("inf.st: 'capsule.routing_logits' holds NaN or Inf at element 7") != std::string::npos);
}

TEST_CASE(".npy headers with absurd shapes are refused with FormatError - not an escaping std:: exception") {
  TempDir tmp;
  auto npy = [&](const std::string& shape, size_t data_bytes) {
    std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + shape + "), }";
    h += std::string(64 - (10 + h.size() + 1) % 64, ' ') + "\n";
    std::string s = std::string("\x93NUMPY\x01\x00", 8) + char(h.size() & 0xff) + char(h.size() >> 8) + h;
    write_bytes(tmp.file("x.npy"), s + std::string(data_bytes, '\0'));
    return test::error_of([&] { read_npy(tmp.file("x.npy"), nullptr); });
  };
  CHECK(npy("018446744073709551617,", 8).find("too large") != std::string::npos);  // found by fuzz_npy
  CHECK(npy("4294967296, 4294967296", 8).find("does not match the shape") != std::string::npos);
  CHECK(npy("2, 1", 8).find("(no error)") != std::string::npos);
}

TEST_CASE("saving over an existing file is atomic: a failed save leaves the old file") {
  TempDir tmp;
  const MindWeights w = init_weights(small_config(), 1);
  save_weights(tmp.file("w.safetensors"), w);
  const std::string before = read_file(tmp.file("w.safetensors"));
  MindWeights broken = w;
  broken.bilinear.pop_back();
  CHECK_THROWS_AS(save_weights(tmp.file("w.safetensors"), broken), InvalidArgument);
  CHECK(read_file(tmp.file("w.safetensors")) == before);
  CHECK_THROWS_AS(save_weights(tmp.file("no/such/dir/w.safetensors"), w), IoError);
  size_t files = 0;
  for (auto& e : std::filesystem::directory_iterator(tmp.path())) files += e.is_regular_file();
  CHECK(files == 1);  // no temporary left behind
}

TEST_CASE(".npy output has NumPy's v1.0 header and C-order float32 data") {
  TempDir tmp;
  const std::vector<float> v = {1, 2, 3, 4, 5, 6};
  write_npy(tmp.file("u.npy"), {1, 2, 3}, v.data());
  const std::string s = read_file(tmp.file("u.npy"));
  CHECK(s.substr(0, 8) == std::string("\x93NUMPY\x01\x00", 8));
  const size_t hlen = uint8_t(s[8]) | (uint8_t(s[9]) << 8);
  CHECK((10 + hlen) % 64 == 0);
  CHECK(s.substr(10, hlen).find("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }") == 0);
  CHECK(s[10 + hlen - 1] == '\n');
  std::vector<int64_t> shape;
  CHECK(read_npy(tmp.file("u.npy"), &shape) == v);
  CHECK(shape == std::vector<int64_t>{1, 2, 3});
  write_npy(tmp.file("w.npy"), {6}, v.data());
  CHECK(read_file(tmp.file("w.npy")).find("'shape': (6,)") != std::string::npos);
}
