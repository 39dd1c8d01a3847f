#include "request_json.hpp"

#include <unordered_set>
#include <utility>

namespace mindrec::serve {

void bad(std::string field, std::string message) { throw BadRequest{std::move(field), std::move(message)}; }

std::string to_text(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

Reply ok(const json& j) { return Reply{200, to_text(j), "application/json"}; }

Reply error_reply(int status, const std::string& field, const std::string& message) {
  json j = {{"error", {{"status", status}, {"field", field}, {"message", message}}}};
  return Reply{status, to_text(j), "application/json"};
}

json parse_object(std::string_view body) {
  json j;
  try {
    j = json::parse(body.begin(), body.end());
  } catch (const json::exception& e) {  // parse errors, and numbers too large for a double
    bad("", std::string("malformed JSON: ") + e.what());
  }
  if (!j.is_object()) bad("", "the request body must be a JSON object");
  return j;
}

void check_keys(const json& j, std::initializer_list<const char*> allowed) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const char* a : allowed) known = known || it.key() == a;
    if (!known) bad(it.key(), "unknown field");
  }
}

int64_t as_int(const json& v, const std::string& field) {
  if (!v.is_number_integer()) bad(field, "must be an integer, got " + std::string(v.type_name()));
  return v.get<int64_t>();
}

bool as_bool(const json& v, const std::string& field) {
  if (!v.is_boolean()) bad(field, "must be true or false");
  return v.get<bool>();
}

std::string as_string(const json& v, const std::string& field) {
  if (!v.is_string()) bad(field, "must be a string, got " + std::string(v.type_name()));
  return v.get<std::string>();
}

const json& array_field(const json& j, const char* name, size_t min_size, size_t max_size) {
  if (!j.contains(name)) bad(name, "is required");
  const json& a = j.at(name);
  if (!a.is_array()) bad(name, std::string("must be an array, got ") + a.type_name());
  if (a.size() < min_size) bad(name, "must not be empty");
  if (a.size() > max_size)
    bad(name, "holds " + std::to_string(a.size()) + " entries; at most " + std::to_string(max_size) +
                  " are accepted per request");
  return a;
}

std::vector<int64_t> id_list(const json& j, int64_t max_items, int64_t min_id) {
  const json& a = array_field(j, "ids", 1, size_t(max_items));
  std::vector<int64_t> ids;
  ids.reserve(a.size());
  std::unordered_set<int64_t> seen;
  for (size_t i = 0; i < a.size(); ++i) {
    const std::string field = "ids[" + std::to_string(i) + "]";
    const int64_t id = as_int(a[i], field);
    if (id < min_id) bad(field, "item id " + std::to_string(id) + " is below " + std::to_string(min_id) +
                                    (min_id == 1 ? " (0 is the padding id)" : ""));
    if (!seen.insert(id).second) bad(field, "item id " + std::to_string(id) + " appears twice");
    ids.push_back(id);
  }
  return ids;
}

}  // namespace mindrec::serve
