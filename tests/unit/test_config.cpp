// Config parsing: spec defaults, the shipped configs, path resolution and refusals.
#include <doctest/doctest.h>

#include <filesystem>

#include "mindrec/config.hpp"
#include "mindrec/error.hpp"
#include "mindrec/version.hpp"
#include "test_util.hpp"

using namespace mindrec;
using mindrec::test::TempDir;

#if MINDREC_HAS_YAML
namespace {
std::string config_error(const std::string& yaml) {
  return test::error_of([&] { parse_config(yaml, "/base", "c.yaml"); });
}
}  // namespace

TEST_CASE("defaults are the spec's Amazon Books recipe") {
  const Config c = parse_config("runner: {}\n", "/base", "c.yaml");
  const ModelConfig& m = c.hyper_parameters;
  CHECK(m.item_count == 367983);
  CHECK(m.embedding_dim == 64);
  CHECK(m.hidden_size == 64);
  CHECK(m.maxlen == 20);
  CHECK(m.neg_samples == 1280);
  CHECK(m.pow_p == 1.0);
  CHECK(m.readout == Readout::soft);
  CHECK(m.optimizer.learning_rate == 0.001);
  CHECK_FALSE(m.optimizer.lazy);
  CHECK(m.capsule.iters == 3);
  CHECK(m.capsule.max_k == 4);
  CHECK(m.capsule.init_std == 1.0);
  CHECK(m.capsule.softmax_axis == SoftmaxAxis::interests);
  CHECK(m.capsule.relu_layer);
  CHECK_FALSE(m.capsule.dynamic_k);
  CHECK(m.loss.hard_negative_beta == 0.0);
  CHECK_FALSE(m.loss.in_batch_negatives);
  CHECK(c.runner.train_batch_size == 128);
  CHECK(c.runner.batches_per_epoch == 1000);
}

TEST_CASE("the shipped configs load with their documented values") {
  const Config small = load_config(test::config_dir() + "/amazonbook-sample.yaml");
  CHECK(small.hyper_parameters.neg_samples == 128);
  CHECK(small.hyper_parameters.optimizer.learning_rate == 0.005);
  // Relative paths resolve against the config's folder.
  CHECK(std::filesystem::equivalent(small.runner.train_data_dir,
                                    test::data_dir() + "/amazonbook-sample/train"));
  const Config full = load_config(test::config_dir() + "/amazonbook.yaml");
  CHECK(full.hyper_parameters.neg_samples == 1280);
  CHECK(full.hyper_parameters.optimizer.learning_rate == 0.001);
  CHECK(full.runner.epochs == 50);
  CHECK(full.runner.batches_per_epoch == 1000);
}

TEST_CASE("PaddleRec's own MIND config loads (runtime keys are ignored)") {
  const Config c = parse_config(R"(
runner:
  train_data_dir: "data/train"
  train_reader_path: "mind_reader" # importlib format
  use_gpu: True
  use_auc: False
  train_batch_size: 128
  epochs: 2
  print_interval: 500
  model_save_path: "output_model_mind"
  infer_batch_size: 128
  infer_reader_path: "mind_infer_reader"
  test_data_dir: "data/valid"
  infer_load_path: "output_model_mind"
  infer_start_epoch: 0
  infer_end_epoch: 1
hyper_parameters:
  optimizer:
    class: Adam
    learning_rate: 0.005
  item_count: 367983
  embedding_dim: 64
  hidden_size: 64
  neg_samples: 1280
  maxlen: 20
  pow_p: 1.0
)", "/base", "paddlerec.yaml");
  CHECK(c.runner.train_data_dir == "/base/data/train");
  CHECK(c.runner.test_data_dir == "/base/data/valid");
  CHECK(c.runner.epochs == 2);
  CHECK(c.hyper_parameters.optimizer.learning_rate == 0.005);
}

TEST_CASE("absolute paths stay as written") {
  const Config c = parse_config("runner: {train_data_dir: /data/x}\n", "/base", "c.yaml");
  CHECK(c.runner.train_data_dir == "/data/x");
}

TEST_CASE("unknown keys and wrong types are refused with the key path") {
  CHECK(config_error("runner: {batch: 3}") == "c.yaml: unknown key 'runner.batch'");
  CHECK(config_error("hyper_parameters: {capsule: {iter: 3}}") ==
        "c.yaml: unknown key 'hyper_parameters.capsule.iter'");
  CHECK(config_error("runner: {epochs: many}") ==
        "c.yaml: key 'runner.epochs': expected an integer, got 'many'");
  CHECK(config_error("runner: {epochs: 2.5}") ==
        "c.yaml: key 'runner.epochs': expected an integer, got '2.5'");
  CHECK(config_error("hyper_parameters: {capsule: {relu_layer: maybe}}") ==
        "c.yaml: key 'hyper_parameters.capsule.relu_layer': expected true or false, got 'maybe'");
  CHECK(config_error("hyper_parameters: {optimizer: {learning_rate: fast}}") ==
        "c.yaml: key 'hyper_parameters.optimizer.learning_rate': expected a number, got 'fast'");
  CHECK(config_error("hyper_parameters: {capsule: [1, 2]}") ==
        "c.yaml: key 'hyper_parameters.capsule': expected a mapping");
  CHECK(config_error("hyper_parameters: {capsule: {softmax_axis: rows}}")
            .find("expected one of interests, behaviors, hybrid") != std::string::npos);
  CHECK(config_error("hyper_parameters: {loss: {beta: 1}}") ==
        "c.yaml: unknown key 'hyper_parameters.loss.beta'");
  CHECK(config_error("hyper_parameters: {loss: {in_batch_negatives: 2}}") ==
        "c.yaml: key 'hyper_parameters.loss.in_batch_negatives': expected true or false, got '2'");
  CHECK(config_error("just text") == "c.yaml: top level: expected a mapping");
  CHECK(config_error("runner: {epochs: [1").find("c.yaml: invalid YAML at line 1") == 0);
}

TEST_CASE("invalid values are refused with the key path") {
  CHECK(config_error("hyper_parameters: {loss: {hard_negative_beta: -1}}").find("key 'hyper_parameters.loss.hard_negative_beta'") !=
        std::string::npos);
  CHECK(config_error("hyper_parameters: {capsule: {init_std: 0}}").find("unless capsule.per_interest_transform") !=
        std::string::npos);
  const Config dr = parse_config("hyper_parameters: {capsule: {per_interest_transform: true, init_std: 0}}\n", "/base", "c.yaml");
  CHECK(dr.hyper_parameters.capsule.per_interest_transform);
  CHECK(dr.hyper_parameters.bilinear_columns() == 4 * 64);
  const Config sa = parse_config("hyper_parameters: {extractor: self_attention, self_attention: {hidden: 32}}\n", "/base", "c.yaml");
  CHECK(sa.hyper_parameters.extractor == Extractor::self_attention);
  CHECK(sa.hyper_parameters.attention_hidden() == 32);
  CHECK(parse_config("hyper_parameters: {extractor: self_attention}\n", "/base", "c.yaml").hyper_parameters.attention_hidden() ==
        4 * 64);
  CHECK(config_error("hyper_parameters: {extractor: transformer}").find("key 'hyper_parameters.extractor': expected capsule or self_attention") !=
        std::string::npos);
  CHECK(config_error("hyper_parameters: {self_attention: {heads: 2}}").find("hyper_parameters.self_attention.heads") !=
        std::string::npos);
  CHECK(config_error("hyper_parameters: {extractor: self_attention, capsule: {per_interest_transform: true}}")
            .find("key 'hyper_parameters.capsule.per_interest_transform'") != std::string::npos);
  CHECK(config_error("hyper_parameters: {loss: {routing_regularization: 1}}").find("key 'hyper_parameters.loss.routing_regularization'") !=
        std::string::npos);  // MIND's routing weights carry no gradient
  CHECK(parse_config("hyper_parameters: {extractor: self_attention, loss: {routing_regularization: 100}}\n", "/base", "c.yaml")
            .hyper_parameters.loss.routing_regularization == 100.0);
  {
    ModelConfig r;
    r.extractor = Extractor::self_attention;
    r.loss.routing_regularization = 25;
    CHECK(model_config_from_json(model_config_to_json(r), "w").loss.routing_regularization == 25.0);
  }
  CHECK(parse_config("hyper_parameters: {cosine_temperature: 0.05}\n", "/base", "c.yaml").hyper_parameters.cosine());
  CHECK(config_error("hyper_parameters: {cosine_temperature: -1}").find("key 'hyper_parameters.cosine_temperature'") !=
        std::string::npos);
  {
    ModelConfig c;
    c.cosine_temperature = 0.07;
    CHECK(model_config_from_json(model_config_to_json(c), "w").cosine_temperature == 0.07);
    std::string j = model_config_to_json(c);
    const std::string key = "\"cosine_temperature\":0.07,";
    REQUIRE(j.find(key) != std::string::npos);
    j.erase(j.find(key), key.size());
    CHECK_FALSE(model_config_from_json(j, "w").cosine());  // written before the option: dot products
  }
  // Routing's init_std 0 guard does not apply without routing.
  CHECK_NOTHROW(parse_config("hyper_parameters: {extractor: self_attention, capsule: {init_std: 0}}\n", "/base", "c.yaml"));
  const Config remi = parse_config("hyper_parameters: {loss: {hard_negative_beta: 0.5, in_batch_negatives: true}}\n", "/base", "c.yaml");
  CHECK(remi.hyper_parameters.loss.hard_negative_beta == 0.5);
  CHECK(remi.hyper_parameters.loss.in_batch_negatives);
  CHECK(config_error("hyper_parameters: {pow_p: 1.5}").find("key 'hyper_parameters.pow_p'") !=
        std::string::npos);
  CHECK(config_error("hyper_parameters: {hidden_size: 32}")
            .find("key 'hyper_parameters.hidden_size': must equal embedding_dim (64)") !=
        std::string::npos);
  CHECK(config_error("hyper_parameters: {item_count: 100}")
            .find("key 'hyper_parameters.neg_samples'") != std::string::npos);
  CHECK(config_error("hyper_parameters: {optimizer: {class: SGD}}")
            .find("only Adam") != std::string::npos);
  CHECK(config_error("runner: {threads: -1}").find("key 'runner.threads'") != std::string::npos);
  CHECK(config_error("hyper_parameters: {capsule: {max_k: 0}}")
            .find("hyper_parameters.capsule.max_k") != std::string::npos);
}

#else
TEST_CASE("a build without YAML refuses YAML configs - naming the option") {
  CHECK_THROWS_AS(load_config(test::config_dir() + "/amazonbook-sample.yaml"), Unsupported);
  CHECK(test::error_of([] { parse_config("runner: {}\n", "/base", "c.yaml"); }).find("MINDREC_WITH_YAML") != std::string::npos);
}
#endif

TEST_CASE("the model config's JSON round-trips and mismatches are named") {
  ModelConfig m;
  m.item_count = 1000;
  m.neg_samples = 10;
  m.capsule.softmax_axis = SoftmaxAxis::hybrid;
  m.capsule.dynamic_k = true;
  m.readout = Readout::hard;
  m.pow_p = 2;
  m.capsule.per_interest_transform = true;
  m.loss.hard_negative_beta = 0.75;
  m.loss.in_batch_negatives = true;
  const ModelConfig back = model_config_from_json(model_config_to_json(m), "w");
  CHECK(back.capsule.per_interest_transform);
  CHECK(back.loss.hard_negative_beta == 0.75);
  CHECK(back.loss.in_batch_negatives);
  {  // a file written before the loss options: the defaults
    std::string j = model_config_to_json(m);
    const size_t at = j.find("\"loss\":{"), end = j.find("},", at);
    REQUIRE(at != std::string::npos);
    REQUIRE(end != std::string::npos);
    j.erase(at, end + 2 - at);
    REQUIRE(j.find("loss") == std::string::npos);
    const std::string key = ",\"per_interest_transform\":true";
    REQUIRE(j.find(key) != std::string::npos);
    j.erase(j.find(key), key.size());
    for (const std::string key : {"\"extractor\":\"capsule\",", ",\"self_attention\":{\"hidden\":0}"}) {
      REQUIRE(j.find(key) != std::string::npos);
      j.erase(j.find(key), key.size());
    }
    REQUIRE(j.find("extractor") == std::string::npos);
    const ModelConfig old = model_config_from_json(j, "w");
    CHECK(old.extractor == Extractor::capsule);
    CHECK(old.loss.hard_negative_beta == 0.0);
    CHECK_FALSE(old.loss.in_batch_negatives);
    CHECK_FALSE(old.capsule.per_interest_transform);
  }
  {  // ComiRec-SA's extractor and its width
    ModelConfig sa = m;
    sa.capsule.per_interest_transform = false;
    sa.extractor = Extractor::self_attention;
    sa.self_attention.hidden = 24;
    const ModelConfig sb = model_config_from_json(model_config_to_json(sa), "w");
    CHECK(sb.extractor == Extractor::self_attention);
    CHECK(sb.attention_hidden() == 24);
    CHECK_NOTHROW(check_same_model(sa, sb, "w"));
    ModelConfig wider = sa;
    wider.self_attention.hidden = 0;  // 4 D = 256
    CHECK_THROWS_WITH_AS(check_same_model(wider, sb, "w"), doctest::Contains("self_attention.hidden 256 vs 24"), ConfigError);
  }
  CHECK(back.item_count == 1000);
  CHECK(back.capsule.softmax_axis == SoftmaxAxis::hybrid);
  CHECK(back.capsule.dynamic_k);
  CHECK(back.readout == Readout::hard);
  CHECK(back.pow_p == 2);
  CHECK_NOTHROW(check_same_model(m, back, "w"));
  ModelConfig other = m;
  other.maxlen = 30;
  other.capsule.relu_layer = false;
  try {
    check_same_model(other, m, "w.safetensors");
    FAIL("no error");
  } catch (const ConfigError& e) {
    const std::string s = e.what();
    CHECK(s.find("maxlen 30 vs 20") != std::string::npos);
    CHECK(s.find("capsule.relu_layer 0 vs 1") != std::string::npos);
  }
  CHECK_THROWS_AS(model_config_from_json("{\"item_count\": 5}", "w"), FormatError);
}

#if MINDREC_HAS_YAML
TEST_CASE("load_model_config reads only hyper_parameters - checked as load_config checks them") {
  test::TempDir tmp;
  tmp.write("p.yaml", "runner:\n  my_own_key: 1\n  use_gpu: False\nother_section: [1, 2]\n"
                      "hyper_parameters:\n  item_count: 60\n  embedding_dim: 8\n  hidden_size: 8\n  neg_samples: 5\n  capsual:\n    max_k: 3\n");
  const ModelConfig mc = load_model_config(tmp.file("p.yaml"));
  CHECK(mc.item_count == 60);
  CHECK(mc.capsule.max_k == 3);
  CHECK_THROWS_AS(load_config(tmp.file("p.yaml")), ConfigError);  // the whole config: strict
  tmp.write("q.yaml", "runner:\n  x: 1\nhyper_parameters:\n  item_count: 60\n  embedding_dims: 8\n");
  CHECK(test::error_of([&] { load_model_config(tmp.file("q.yaml")); }).find("hyper_parameters.embedding_dims") != std::string::npos);
  tmp.write("r.yaml", "runner:\n  x: 1\n");
  CHECK(test::error_of([&] { load_model_config(tmp.file("r.yaml")); }).find("no hyper_parameters") != std::string::npos);
}
#endif

#if MINDREC_HAS_YAML
TEST_CASE("item_count: auto reads dataset.json beside the training data (mindrec prepare's layout) - or says what is missing") {
  test::TempDir tmp;
  std::filesystem::create_directories(tmp.file("data/train"));
  tmp.write("data/dataset.json", "{\"items\": 4200, \"item_count\": 4201}\n");
  tmp.write("data/train/data.txt", "1,5,0\n");
  const auto path = tmp.write("c.yaml", "runner:\n  train_data_dir: data/train\nhyper_parameters:\n  item_count: auto\n");
  CHECK(load_config(path).hyper_parameters.item_count == 4201);
  // the training data named as a file inside train/: the same dataset.json
  const auto file = tmp.write("f.yaml", "runner:\n  train_data_dir: data/train/data.txt\nhyper_parameters:\n  item_count: auto\n");
  CHECK(load_config(file).hyper_parameters.item_count == 4201);
  const auto none = tmp.write("n.yaml", "runner:\n  train_data_dir: elsewhere/train\nhyper_parameters:\n  item_count: auto\n");
  CHECK(test::error_of([&] { load_config(none); }).find("item_count: auto needs") != std::string::npos);
  const auto no_runner = tmp.write("r.yaml", "hyper_parameters:\n  item_count: auto\n");
  CHECK(test::error_of([&] { load_config(no_runner); }).find("runner.train_data_dir, which is not set") != std::string::npos);
  CHECK_THROWS_AS(load_config(tmp.write("x.yaml", "hyper_parameters:\n  item_count: lots\n")), ConfigError);
}
#endif
