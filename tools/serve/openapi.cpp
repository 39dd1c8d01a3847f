// GET /openapi.json and GET /docs: the OpenAPI document (openapi.json beside this file,
// compiled in by CMake: cmake/EmbedText.cmake) with this build's version, and an HTML page
// made from it.
#include <nlohmann/json.hpp>

#include <cctype>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "mindrec/version.hpp"
#include "rec_service.hpp"

namespace mindrec::serve {

extern const char* const kOpenApiJson;  // openapi.json, embedded at build time

namespace {
std::string html_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

// j[k0][k1]... or nullptr where a key is missing (operator[] on a const json with a missing
// key is undefined behaviour: it crashed /docs now and then).
const nlohmann::json* find_path(const nlohmann::json& j, std::initializer_list<const char*> keys) {
  const nlohmann::json* at = &j;
  for (const char* k : keys) {
    if (!at->is_object()) return nullptr;
    const auto it = at->find(k);
    if (it == at->end()) return nullptr;
    at = &*it;
  }
  return at;
}

// A media type's examples: "example" (named ""), then every "examples" entry's "value".
std::vector<std::pair<std::string, const nlohmann::json*>> examples_of(const nlohmann::json* media) {
  std::vector<std::pair<std::string, const nlohmann::json*>> out;
  if (media == nullptr) return out;
  if (const auto* e = find_path(*media, {"example"})) out.emplace_back("", e);
  if (const auto* es = find_path(*media, {"examples"}); es != nullptr && es->is_object())
    for (auto e = es->begin(); e != es->end(); ++e)
      if (const auto* v = find_path(e.value(), {"value"})) out.emplace_back(e.key(), v);
  return out;
}
// "<p>LABEL (name):</p>" before an example, or "<p>LABEL:</p>" for an unnamed one.
std::string example_label(const std::string& label, const std::string& name) {
  return "<p>" + label + (name.empty() ? "" : " (" + html_escape(name) + ")") + ":</p>";
}
}  // namespace

const std::string& RecService::openapi_json() {
  static const std::string doc = [] {
    nlohmann::json j = nlohmann::json::parse(kOpenApiJson);
    j["info"]["version"] = MINDREC_VERSION_STRING;
    return j.dump(2);
  }();
  return doc;
}

const std::string& RecService::docs_html() {
  static const std::string page = [] {
    const nlohmann::json j = nlohmann::json::parse(openapi_json());
    std::string h =
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>mindrec-serve API</title>\n"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
        "code,pre{background:#f4f4f4;padding:2px 4px}pre{padding:8px;overflow-x:auto}"
        "h2{border-top:1px solid #ccc;padding-top:1em}.m{font-weight:bold;color:#06c}</style>"
        "</head><body>\n<h1>mindrec-serve API " +
        html_escape(j["info"]["version"].get<std::string>()) + "</h1>\n<p>" +
        html_escape(j["info"]["description"].get<std::string>()) +
        "</p>\n<p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a>.</p>\n";
    for (auto p = j["paths"].begin(); p != j["paths"].end(); ++p) {
      for (auto m = p.value().begin(); m != p.value().end(); ++m) {
        std::string method = m.key();
        for (auto& ch : method) ch = char(std::toupper(static_cast<unsigned char>(ch)));
        const nlohmann::json& op = m.value();
        h += "<h2><span class=\"m\">" + method + "</span> <code>" + html_escape(p.key()) + "</code></h2>\n<p>" +
             html_escape(op.value("summary", "")) + "</p>\n";
        if (op.contains("description")) h += "<p>" + html_escape(op["description"].get<std::string>()) + "</p>\n";
        for (const auto& [name, e] : examples_of(find_path(op, {"requestBody", "content", "application/json"})))
          h += example_label("Request", name) + "<pre>curl -s -X " + method + " localhost:8000" + html_escape(p.key()) +
               " -H 'Content-Type: application/json' -d '" + html_escape(e->dump()) + "'</pre>\n";
        if (const auto* rs = find_path(op, {"responses"}); rs != nullptr && rs->is_object())
          for (auto r = rs->begin(); r != rs->end(); ++r) {
            h += "<p>" + html_escape(r.key()) + ": " + html_escape(r.value().value("description", "")) + "</p>\n";
            for (const auto& [name, e] : examples_of(find_path(r.value(), {"content", "application/json"})))
              h += (name.empty() ? std::string() : example_label("Example", name)) + "<pre>" + html_escape(e->dump()) +
                   "</pre>\n";
          }
      }
    }
    h += "</body></html>\n";
    return h;
  }();
  return page;
}

}  // namespace mindrec::serve
