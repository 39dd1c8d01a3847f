// A restricted pickle reader for dicts of NumPy arrays (pickle_arrays.hpp). The opcodes are
// those of Python's pickle protocols 2-5 (Lib/pickle.py); the array state is numpy's
// ndarray.__reduce__: _reconstruct(ndarray, (0,), b'b') then BUILD with
// (version, shape, dtype, is_fortran, raw bytes), the dtype being dtype(str, False, True) then
// BUILD with (version, byte order, ...).
#include "formats/pickle_arrays.hpp"

#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>

#include "mindrec/error.hpp"

namespace mindrec::detail {

namespace {

struct Value;
// Values live in the Machine's arena (a pickle can make a list hold itself: no ownership cycles).
using Ref = Value*;

enum class Kind { none, boolean, integer, text, bytes, tuple, list, dict, global, dtype, array, mark };

struct Value {
  Kind kind = Kind::none;
  int64_t i = 0;                              // integer, boolean
  std::string s;                              // text, bytes, global ("module.name"), dtype ("f4")
  std::vector<Ref> items;                     // tuple, list
  std::vector<std::pair<Ref, Ref>> entries;   // dict
  char byte_order = '=';                      // dtype
  PickledArray array;                         // array (after BUILD)
  bool built = false;                         // array
};

class Machine {
 public:
  Machine(const std::string& bytes, const std::string& source) : b_(bytes), source_(source) {}

  Ref run() {
    while (true) {
      const size_t at = pos_;
      const uint8_t op = u8();
      switch (op) {
        case 0x80: u8(); break;                                    // PROTO
        case 0x95: take(8); break;                                 // FRAME (length: ignored)
        case '}': push(make(Kind::dict)); break;                   // EMPTY_DICT
        case ']': push(make(Kind::list)); break;                   // EMPTY_LIST
        case ')': push(make(Kind::tuple)); break;                  // EMPTY_TUPLE
        case '(': push(make(Kind::mark)); break;                   // MARK
        case 't': push(tuple_of(pop_mark(at))); break;             // TUPLE
        case 0x85: push(tuple_of(pop_n(1, at))); break;            // TUPLE1
        case 0x86: push(tuple_of(pop_n(2, at))); break;            // TUPLE2
        case 0x87: push(tuple_of(pop_n(3, at))); break;            // TUPLE3
        case 'N': push(make(Kind::none)); break;                   // NONE
        case 0x88: push(boolean(true)); break;                     // NEWTRUE
        case 0x89: push(boolean(false)); break;                    // NEWFALSE
        case 'K': push(integer(u8())); break;                      // BININT1
        case 'M': push(integer(le(2))); break;                     // BININT2
        case 'J': push(integer(static_cast<int32_t>(le(4)))); break;  // BININT
        case 0x8a: push(integer(long1(at))); break;                // LONG1
        case 0x8c: push(text(take(u8()))); break;                  // SHORT_BINUNICODE
        case 'X': push(text(take(le(4)))); break;                  // BINUNICODE
        case 0x8d: push(text(take(le(8)))); break;                 // BINUNICODE8
        case 'C': push(bytes(take(u8()))); break;                  // SHORT_BINBYTES
        case 'B': push(bytes(take(le(4)))); break;                 // BINBYTES
        case 0x8e: push(bytes(take(le(8)))); break;                // BINBYTES8
        case 0x94: memo_.push_back(top(at)); break;                // MEMOIZE
        case 'q': put(u8(), at); break;                            // BINPUT
        case 'r': put(le(4), at); break;                           // LONG_BINPUT
        case 'h': push(get(u8(), at)); break;                      // BINGET
        case 'j': push(get(le(4), at)); break;                     // LONG_BINGET
        case 0x93: {                                               // STACK_GLOBAL
          const Ref name = pop(at), module = pop(at);
          if (module->kind != Kind::text || name->kind != Kind::text) fail(at, "STACK_GLOBAL of non-strings");
          push(global(module->s, name->s, at));
          break;
        }
        case 'c': {                                                // GLOBAL (protocol 2)
          const std::string module = line(at), name = line(at);
          push(global(module, name, at));
          break;
        }
        case 'R': {                                                // REDUCE
          const Ref args = pop(at), fn = pop(at);
          push(reduce(fn, args, at));
          break;
        }
        case 'b': {                                                // BUILD
          const Ref state = pop(at);
          build(top(at), state, at);
          break;
        }
        case 's': {                                                // SETITEM
          const Ref v = pop(at), k = pop(at);
          dict_at(top(at), at)->entries.emplace_back(k, v);
          break;
        }
        case 'u': {                                                // SETITEMS
          const std::vector<Ref> kv = pop_mark(at);
          if (kv.size() % 2) fail(at, "SETITEMS with an odd number of items");
          const Ref d = dict_at(top(at), at);
          for (size_t i = 0; i < kv.size(); i += 2) d->entries.emplace_back(kv[i], kv[i + 1]);
          break;
        }
        case 'a': {                                                // APPEND
          const Ref v = pop(at);
          list_at(top(at), at)->items.push_back(v);
          break;
        }
        case 'e': {                                                // APPENDS
          const std::vector<Ref> vs = pop_mark(at);
          const Ref l = list_at(top(at), at);
          l->items.insert(l->items.end(), vs.begin(), vs.end());
          break;
        }
        case '.': {                                                // STOP
          const Ref result = pop(at);
          return result;
        }
        default: {
          char buf[64];
          std::snprintf(buf, sizeof buf, "opcode 0x%02x is not supported (not a dict of arrays?)", op);
          fail(at, buf);
        }
      }
    }
  }

 private:
  Ref make(Kind k) {
    if (arena_.size() > (size_t(1) << 22)) fail(pos_, "more than 2^22 objects");
    arena_.push_back(std::make_unique<Value>());
    arena_.back()->kind = k;
    return arena_.back().get();
  }

  [[noreturn]] void fail(size_t at, const std::string& what) const {
    throw FormatError(source_ + ": pickle offset " + std::to_string(at) + ": " + what);
  }
  uint8_t u8() {
    if (pos_ >= b_.size()) fail(pos_, "unexpected end of file (no STOP)");
    return static_cast<uint8_t>(b_[pos_++]);
  }
  uint64_t le(int n) {
    if (b_.size() - pos_ < size_t(n)) fail(pos_, "unexpected end of file");
    uint64_t v = 0;
    for (int k = 0; k < n; ++k) v |= uint64_t(static_cast<uint8_t>(b_[pos_ + k])) << (8 * k);
    pos_ += size_t(n);
    return v;
  }
  std::string take(uint64_t n) {
    if (n > b_.size() - pos_)
      fail(pos_, "a length of " + std::to_string(n) + " bytes runs past the end of the file");
    std::string s = b_.substr(pos_, size_t(n));
    pos_ += size_t(n);
    return s;
  }
  std::string line(size_t at) {
    const size_t end = b_.find('\n', pos_);
    if (end == std::string::npos || end - pos_ > 256) fail(at, "GLOBAL without a line end");
    std::string s = b_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }
  int64_t long1(size_t at) {
    const uint8_t n = u8();
    if (n > 8) fail(at, "LONG1 integer wider than 64 bits");
    const std::string raw = take(n);
    uint64_t v = 0;
    for (size_t k = 0; k < raw.size(); ++k) v |= uint64_t(static_cast<uint8_t>(raw[k])) << (8 * k);
    if (n > 0 && n < 8 && (static_cast<uint8_t>(raw[n - 1]) & 0x80)) v |= ~uint64_t(0) << (8 * n);  // sign
    return static_cast<int64_t>(v);
  }

  void push(Ref v) {
    if (stack_.size() > (1u << 20)) fail(pos_, "stack deeper than 2^20");
    stack_.push_back(v);
  }
  Ref pop(size_t at) {
    if (stack_.empty() || stack_.back()->kind == Kind::mark) fail(at, "stack underflow");
    Ref v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Ref top(size_t at) const {
    if (stack_.empty() || stack_.back()->kind == Kind::mark) fail(at, "stack underflow");
    return stack_.back();
  }
  std::vector<Ref> pop_n(size_t n, size_t at) {
    std::vector<Ref> out(n);
    for (size_t k = n; k-- > 0;) out[k] = pop(at);
    return out;
  }
  std::vector<Ref> pop_mark(size_t at) {
    std::vector<Ref> out;
    while (true) {
      if (stack_.empty()) fail(at, "no MARK on the stack");
      Ref v = stack_.back();
      stack_.pop_back();
      if (v->kind == Kind::mark) break;
      out.push_back(v);
    }
    return {out.rbegin(), out.rend()};
  }
  void put(uint64_t index, size_t at) {
    if (index > (1u << 20)) fail(at, "memo index larger than 2^20");
    if (memo_.size() <= index) memo_.resize(size_t(index) + 1);
    memo_[size_t(index)] = top(at);
  }
  Ref get(uint64_t index, size_t at) const {
    if (index >= memo_.size() || !memo_[size_t(index)]) fail(at, "memo entry " + std::to_string(index) + " is not set");
    return memo_[size_t(index)];
  }
  Ref dict_at(const Ref& v, size_t at) const {
    if (v->kind != Kind::dict) fail(at, "SETITEM(S) on a non-dict");
    return v;
  }
  Ref list_at(const Ref& v, size_t at) const {
    if (v->kind != Kind::list) fail(at, "APPEND(S) on a non-list");
    return v;
  }

  Ref tuple_of(std::vector<Ref> items) {
    Ref t = make(Kind::tuple);
    t->items = std::move(items);
    return t;
  }
  Ref boolean(bool b) {
    Ref v = make(Kind::boolean);
    v->i = b;
    return v;
  }
  Ref integer(int64_t i) {
    Ref v = make(Kind::integer);
    v->i = i;
    return v;
  }
  Ref text(std::string s) {
    Ref v = make(Kind::text);
    v->s = std::move(s);
    return v;
  }
  Ref bytes(std::string s) {
    Ref v = make(Kind::bytes);
    v->s = std::move(s);
    return v;
  }
  Ref global(const std::string& module, const std::string& name, size_t at) {
    const std::string full = module + "." + name;
    static const char* allowed[] = {"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
                                    "numpy.ndarray", "numpy.dtype", "collections.OrderedDict"};
    for (const char* a : allowed)
      if (full == a) {
        Ref g = make(Kind::global);
        g->s = name == "_reconstruct" ? "_reconstruct" : full;
        return g;
      }
    fail(at, "refuses global '" + full + "' (only numpy arrays and dicts are read; no code runs)");
  }

  Ref reduce(const Ref& fn, const Ref& args, size_t at) {
    if (fn->kind != Kind::global || args->kind != Kind::tuple) fail(at, "REDUCE of a non-callable");
    if (fn->s == "_reconstruct") {  // _reconstruct(ndarray, (0,), b'b'): an empty array, filled by BUILD
      if (args->items.size() != 3 || args->items[0]->kind != Kind::global || args->items[0]->s != "numpy.ndarray")
        fail(at, "unexpected numpy _reconstruct arguments");
      return make(Kind::array);
    }
    if (fn->s == "numpy.dtype") {  // dtype('f4', False, True)
      if (args->items.empty() || args->items[0]->kind != Kind::text) fail(at, "unexpected numpy dtype arguments");
      Ref d = make(Kind::dtype);
      d->s = args->items[0]->s;
      return d;
    }
    if (fn->s == "collections.OrderedDict") {
      if (!args->items.empty()) fail(at, "OrderedDict with arguments");
      return make(Kind::dict);
    }
    fail(at, "REDUCE of '" + fn->s + "'");
  }

  void build(const Ref& obj, const Ref& state, size_t at) {
    if (obj->kind == Kind::dtype) {  // (3, '<', None, None, None, -1, -1, 0)
      if (state->kind != Kind::tuple || state->items.size() < 2 || state->items[1]->kind != Kind::text ||
          state->items[1]->s.size() != 1)
        fail(at, "unexpected dtype state");
      obj->byte_order = state->items[1]->s[0];
      return;
    }
    if (obj->kind != Kind::array || obj->built) fail(at, "BUILD of an unsupported object");
    // (version, shape, dtype, is_fortran, data)
    const auto& it = state->items;
    if (state->kind != Kind::tuple || it.size() != 5 || it[1]->kind != Kind::tuple || it[2]->kind != Kind::dtype ||
        it[3]->kind != Kind::boolean || (it[4]->kind != Kind::bytes && it[4]->kind != Kind::text))
      fail(at, "unexpected ndarray state (an object array, or a numpy version this reader does not know)");
    if (it[3]->i) fail(at, "a Fortran-order array (save it C-contiguous)");
    PickledArray& a = obj->array;
    uint64_t count = 1;
    for (const Ref& d : it[1]->items) {
      if (d->kind != Kind::integer || d->i < 0) fail(at, "a bad array dimension");
      if (d->i > 0 && count > (uint64_t(1) << 40) / uint64_t(d->i)) fail(at, "an array larger than 2^40 values");
      count *= uint64_t(d->i);
      a.shape.push_back(d->i);
    }
    const Ref& dt = it[2];
    char order = dt->byte_order;
    if (order == '=' || order == '|') order = '<';  // native on the little-endian hosts this runs on
    a.dtype = std::string(1, order) + dt->s;
    const bool f4 = dt->s == "f4", f8 = dt->s == "f8";
    if (!f4 && !f8) fail(at, "array dtype '" + a.dtype + "' (float32 or float64 expected)");
    const std::string& raw = it[4]->s;
    const size_t width = f4 ? 4 : 8;
    if (raw.size() != count * width)
      fail(at, "array of " + std::to_string(count) + " values has " + std::to_string(raw.size()) + " data bytes");
    a.values.resize(size_t(count));
    for (size_t k = 0; k < count; ++k) {
      unsigned char w[8];
      std::memcpy(w, raw.data() + k * width, width);
      if (order == '>')
        for (size_t x = 0; x < width / 2; ++x) std::swap(w[x], w[width - 1 - x]);
      if (f4) {
        std::memcpy(&a.values[k], w, 4);
      } else {
        double v;
        std::memcpy(&v, w, 8);
        a.values[k] = static_cast<float>(v);
      }
    }
    obj->built = true;
  }

  std::vector<std::unique_ptr<Value>> arena_;
  const std::string& b_;
  std::string source_;
  size_t pos_ = 0;
  std::vector<Ref> stack_, memo_;
};

}  // namespace

std::map<std::string, PickledArray> parse_pickled_arrays(const std::string& bytes, const std::string& source) {
  Machine m(bytes, source);
  const Ref root = m.run();  // owned by m, alive until the copies below are made
  if (root->kind != Kind::dict) throw FormatError(source + ": the pickle holds no dict (not a state_dict)");
  std::map<std::string, PickledArray> out;
  for (const auto& [k, v] : root->entries) {
    if (k->kind != Kind::text || v->kind != Kind::array) continue;
    if (!v->built) throw FormatError(source + ": array '" + k->s + "' has no data");
    if (!out.emplace(k->s, v->array).second) throw FormatError(source + ": array '" + k->s + "' appears twice");
  }
  return out;
}

std::map<std::string, PickledArray> read_pickled_arrays(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path + ": cannot open for reading");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw IoError(path + ": read failed");
  return parse_pickled_arrays(bytes, path);
}

}  // namespace mindrec::detail
