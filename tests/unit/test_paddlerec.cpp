// PaddleRec interop: a checkpoint written by PaddleRec itself (tests/fixtures/paddlerec, made by
// tools/reference/paddlerec_fixture.py with PaddlePaddle 2.6.2) imported, and mindrec's
// interests on it against PaddleRec's own forward pass (golden.safetensors); the pickle
// reader's refusals on inputs worked out by hand.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <string>

#include "formats/pickle_arrays.hpp"
#include "mindrec/config.hpp"
#include "mindrec/error.hpp"
#include "mindrec/model.hpp"
#include "mindrec/paddlerec.hpp"
#include "mindrec/safetensors.hpp"
#include "mindrec/version.hpp"
#include "test_util.hpp"

using namespace mindrec;

// A byte string literal with its embedded NULs.
#define BYTES(lit) std::string(lit, sizeof(lit) - 1)

namespace {
const std::string kDir = std::string(MINDREC_FIXTURE_DIR) + "/paddlerec";

// The fixture's PaddleRec config (config.yaml) as mindrec reads it; built by hand so that the
// build without YAML runs these tests too (the YAML reading is checked where it is built).
ModelConfig fixture_config() {
  ModelConfig m;
  m.item_count = 60;
  m.embedding_dim = m.hidden_size = 8;
  m.maxlen = 7;
  m.neg_samples = 5;
  m.capsule.max_k = 3;
  m.capsule.iters = 3;
  return m;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
}  // namespace

TEST_CASE("import-paddlerec: mindrec's interests on PaddleRec's checkpoint equal PaddleRec's own") {
#if MINDREC_HAS_YAML
  {  // PaddleRec's own config, its `capsual` spelling included, reads as the same model
    const Config cfg = load_config(kDir + "/config.yaml");
    CHECK(model_config_to_json(cfg.hyper_parameters) ==
          model_config_to_json([] {
            ModelConfig m = fixture_config();
            m.optimizer.learning_rate = 0.05;
            return m;
          }()));
  }
#endif
  const MindWeights w = import_paddlerec(kDir + "/mind.pdparams", fixture_config());
  const SafetensorsFile golden = read_safetensors(kDir + "/golden.safetensors");
  const auto hist = golden.at("input.hist").values<int64_t>();
  const auto lens = golden.at("input.lengths").values<int32_t>();
  const auto want = golden.at("paddlerec.interests").values<float>();
  const int64_t B = static_cast<int64_t>(lens.size());
  const MindModel model(w);
  const auto& c = model.config();
  REQUIRE(want.size() == size_t(B) * c.capsule.max_k * c.hidden_size);
  std::vector<float> got(want.size());
  model.extract_interests(hist.data(), lens.data(), B, got.data());
  double worst = 0, scale = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    worst = std::max(worst, double(std::abs(got[i] - want[i])));
    scale = std::max(scale, double(std::abs(want[i])));
  }
  CHECK(scale > 0.1);  // the golden interests are not all zero
  CHECK(worst <= 1e-4 * scale);
}

TEST_CASE("import-paddlerec: a config of another model is refused naming the key and both values") {
  ModelConfig cfg = fixture_config();
  cfg.maxlen = 20;
  CHECK_THROWS_WITH_AS(import_paddlerec(kDir + "/mind.pdparams", cfg),
                       doctest::Contains("hyper_parameters.maxlen is 20 but"), ConfigError);
  cfg = fixture_config();
  cfg.item_count = 61;
  CHECK_THROWS_WITH_AS(import_paddlerec(kDir + "/mind.pdparams", cfg),
                       doctest::Contains("item_emb.weight's rows = 60"), ConfigError);
  cfg = fixture_config();
  cfg.capsule.relu_layer = false;
  CHECK_THROWS_WITH_AS(import_paddlerec(kDir + "/mind.pdparams", cfg), doctest::Contains("relu_layer: false"),
                       ConfigError);
  CHECK_THROWS_AS(import_paddlerec(kDir + "/missing.pdparams", fixture_config()), IoError);
  // not a pickle at all: FormatError naming the file and the offset
  CHECK_THROWS_WITH_AS(import_paddlerec(kDir + "/config.yaml", fixture_config()),
                       doctest::Contains("config.yaml: pickle offset 0"), FormatError);
}

TEST_CASE("pickle reader: dicts of arrays read - code and damage refused") {
  const std::string good = slurp(kDir + "/mind.pdparams");
  const auto arrays = detail::parse_pickled_arrays(good, "ckpt");
  REQUIRE(arrays.count("item_emb.weight"));
  CHECK(arrays.at("item_emb.weight").shape == std::vector<int64_t>{60, 8});
  CHECK(arrays.at("capsual_layer.routing_logits").shape == std::vector<int64_t>{1, 3, 7});
  CHECK(arrays.count("StructuredToParameterName@@") == 0);  // a dict of names, not an array
  // every truncation is refused cleanly
  for (size_t cut : {size_t(0), size_t(1), size_t(11), size_t(100), good.size() / 2, good.size() - 1})
    CHECK_THROWS_AS(detail::parse_pickled_arrays(good.substr(0, cut), "cut"), FormatError);
  // a global that would run code: refused by name (protocol 4: "os" "system" STACK_GLOBAL)
  const std::string evil = BYTES("\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R.");
  CHECK_THROWS_WITH_AS(detail::parse_pickled_arrays(evil, "evil"),
                       doctest::Contains("refuses global 'os.system'"), FormatError);
  // protocol 2 text GLOBAL, same refusal
  CHECK_THROWS_WITH_AS(detail::parse_pickled_arrays(BYTES("\x80\x02" "cposix\nsystem\n."), "evil2"),
                       doctest::Contains("refuses global 'posix.system'"), FormatError);
  // a length running past the end is refused before allocating
  CHECK_THROWS_WITH_AS(detail::parse_pickled_arrays(BYTES("\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7f"), "huge"),
                       doctest::Contains("runs past the end"), FormatError);
  // an empty dict is a valid pickle with no arrays; a list is not a state_dict
  CHECK(detail::parse_pickled_arrays(BYTES("\x80\x04}."), "empty").empty());
  CHECK_THROWS_WITH_AS(detail::parse_pickled_arrays(BYTES("\x80\x04]."), "list"), doctest::Contains("no dict"), FormatError);
  // {'k': a list that holds itself}: read (no array in it), no leak, no recursion
  CHECK(detail::parse_pickled_arrays(BYTES("\x80\x04}\x8c\x01k]\x94h\x00" "as."), "cycle").empty());
}

TEST_CASE("pickle reader: float64 and big-endian arrays as NumPy pickles them - hand-made bytes") {
  // {'a': array([1.5, -2.0], dtype='>f8')} with protocol 4's opcodes, as numpy's __reduce__ writes it
  std::string p = BYTES("\x80\x04}(\x8c\x01" "a");
  p += BYTES("\x8c\x15numpy.core.multiarray\x8c\x0c_reconstruct\x93");
  p += BYTES("\x8c\x05numpy\x8c\x07ndarray\x93K\x00\x85" "C\x01" "b\x87R");
  p += BYTES("(K\x01K\x02\x85\x8c\x05numpy\x8c\x05" "dtype\x93\x8c\x02" "f8\x89\x88\x87R"
             "(K\x03\x8c\x01>NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb");
  p += BYTES("\x89" "C\x10");
  p += BYTES("\x3f\xf8\x00\x00\x00\x00\x00\x00") + BYTES("\xc0\x00\x00\x00\x00\x00\x00\x00");  // 1.5, -2.0
  p += BYTES("tbu.");
  const auto arrays = detail::parse_pickled_arrays(p, "hand");
  REQUIRE(arrays.count("a"));
  CHECK(arrays.at("a").dtype == ">f8");
  CHECK(arrays.at("a").shape == std::vector<int64_t>{2});
  CHECK(arrays.at("a").values == std::vector<float>{1.5f, -2.0f});
}
