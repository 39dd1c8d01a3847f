// Private to mindrec-serve: reading request bodies (JSON) strictly, every mistake a 400 that
// names the field's JSON path, and writing replies.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "rec_service.hpp"

namespace mindrec::serve {

using json = nlohmann::json;

/// A request the client got wrong: answered with 400 and the JSON path of the field.
struct BadRequest {
  std::string field, message;
};

[[noreturn]] void bad(std::string field, std::string message);

/// Replies may echo client bytes (an unknown key, a parse error's context) that are not valid
/// UTF-8, which dump() would throw on: such bytes become U+FFFD instead.
std::string to_text(const json& j);
Reply ok(const json& j);

/// The body as a JSON object (400 otherwise).
json parse_object(std::string_view body);
/// Only the listed keys may appear: a misspelt field is an error, not silently ignored.
void check_keys(const json& j, std::initializer_list<const char*> allowed);
int64_t as_int(const json& v, const std::string& field);
bool as_bool(const json& v, const std::string& field);
std::string as_string(const json& v, const std::string& field);
/// j[name], an array of [min_size, max_size] entries.
const json& array_field(const json& j, const char* name, size_t min_size, size_t max_size);
/// "ids": distinct integers >= min_id, at most max_items.
std::vector<int64_t> id_list(const json& j, int64_t max_items, int64_t min_id);

}  // namespace mindrec::serve
