#include "common/pickle.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

namespace qreport {
namespace {

uint64_t read_le(const std::string& s, size_t pos, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n && pos + i < s.size(); ++i) v |= uint64_t(static_cast<unsigned char>(s[pos + i])) << (8 * i);
  return v;
}

struct Entry {
  size_t start;  // offset of the opcode that began this value
  bool mark;
};

// Offset of the first opcode whose argument runs past the end of the pickle, or npos.
size_t first_overlong_argument(const std::string& p) {
  size_t i = 0;
  while (i < p.size()) {
    unsigned char op = static_cast<unsigned char>(p[i]);
    uint64_t arg = 0;
    auto lines = [&](int n) -> bool {  // arguments ended by n newlines
      size_t pos = i;
      for (int k = 0; k < n; ++k) {
        pos = p.find('\n', pos + 1);
        if (pos == std::string::npos) return false;
      }
      arg = pos - i;
      return true;
    };
    switch (op) {
      case 0x80: case 'q': case 'h': case 'K': arg = 1; break;
      case 'M': arg = 2; break;
      case 'r': case 'j': case 'J': arg = 4; break;
      case 0x95: case 'G': arg = 8; break;
      case 0x8a: case 0x8c: case 'C': case 'U': arg = 1 + read_le(p, i + 1, 1); break;
      case 'X': case 'B': case 'T': case 0x8b: arg = 4 + read_le(p, i + 1, 4); break;
      case 0x8d: case 0x8e: case 0x96: {
        uint64_t n = read_le(p, i + 1, 8);
        if (n > p.size()) return i;
        arg = 8 + n;
        break;
      }
      case 'c': if (!lines(2)) return i; break;
      case 'F': case 'I': case 'L': case 'V': case 'S': case 'P': case 'g': case 'p':
        if (!lines(1)) return i;
        break;
      case 0x94: case 'N': case 0x88: case 0x89: case ']': case '}': case ')': case 0x8f: case '(': case 0x85:
      case 0x86: case 0x87: case 't': case 'l': case 'd': case 0x91: case 'a': case 'e': case 'u': case 0x90:
      case 's': case 'b': case '0': case 'R': case 0x81: case 'Q': case '2': case 0x93:
        break;
      case '.': return std::string::npos;
      default: return std::string::npos;
    }
    if (arg > p.size() - i - 1) return i;
    i += 1 + arg;
  }
  return std::string::npos;
}

enum class Scan { Ok, Unknown, Invalid };

// Rewrites that make a pickle readable by LibTorch 1.13's unpickler, as byte edits of the original.
struct Edits {
  std::vector<size_t> mark_at;                      // a MARK goes before this offset
  std::vector<std::pair<size_t, char>> opcode;      // this opcode byte becomes another
  std::vector<size_t> drop;                         // this opcode byte goes
};

const std::string kOrderedDict = "ccollections\nOrderedDict\n";  // GLOBAL collections.OrderedDict

// Walks the opcodes, tracking the unpickler's value stack with MARKs as entries. Invalid: an opcode
// pops more values than there are, pops across a MARK, or needs a MARK that is not there; LibTorch
// 1.13's unpickler does not check these and corrupts its own memory. Unknown: an opcode this scanner
// does not model (the unpickler then decides). Records the edits for the opcodes LibTorch lacks.
Scan scan(const std::string& p, Edits& edits) {
  std::vector<Entry> stack;
  std::vector<uint64_t> ordered_dict_ids;  // memo ids holding the OrderedDict class
  std::vector<bool> memo;  // memo ids put so far
  auto pop = [&](size_t n) -> std::optional<Entry> {
    if (stack.size() < n) return std::nullopt;
    for (size_t k = stack.size() - n; k < stack.size(); ++k)
      if (stack[k].mark) return std::nullopt;
    Entry first = stack[stack.size() - n];
    stack.resize(stack.size() - n);
    return first;
  };
  auto pop_mark = [&]() -> std::optional<Entry> {
    while (!stack.empty()) {
      Entry e = stack.back();
      stack.pop_back();
      if (e.mark) return e;
    }
    return std::nullopt;
  };
  size_t i = 0;
  while (i < p.size()) {
    unsigned char op = static_cast<unsigned char>(p[i]);
    size_t arg = 0;
    bool ok = true;
    switch (op) {
      case 0x80: arg = 1; break;  // PROTO
      case 0x95: arg = 8; break;  // FRAME
      // BINPUT / LONG_BINPUT / MEMOIZE memoize the top value. The unpickler sizes its memo table by the
      // largest id, so an id beyond anything a pickler of this size could have assigned is corrupt.
      case 'q': case 'r': case 0x94: {
        arg = op == 'q' ? 1 : op == 'r' ? 4 : 0;
        uint64_t id = op == 0x94 ? memo.size() : read_le(p, i + 1, arg);
        ok = !stack.empty() && !stack.back().mark && id <= p.size();
        if (ok) {
          if (id >= memo.size()) memo.resize(id + 1, false);
          memo[id] = true;
          if (p.compare(stack.back().start, kOrderedDict.size(), kOrderedDict) == 0) ordered_dict_ids.push_back(id);
        }
        break;
      }
      case 'J': arg = 4; stack.push_back({i, false}); break;
      case 'K': arg = 1; stack.push_back({i, false}); break;
      case 'M': arg = 2; stack.push_back({i, false}); break;
      case 'G': arg = 8; stack.push_back({i, false}); break;
      case 'h': case 'j': {  // BINGET / LONG_BINGET: only ids put before
        arg = op == 'h' ? 1 : 4;
        uint64_t id = read_le(p, i + 1, arg);
        ok = id < memo.size() && memo[id];
        stack.push_back({i, false});
        break;
      }
      case 0x8a: arg = 1 + read_le(p, i + 1, 1); stack.push_back({i, false}); break;
      case 'X': case 'B': arg = 4 + read_le(p, i + 1, 4); stack.push_back({i, false}); break;
      case 0x8c: case 'C': arg = 1 + read_le(p, i + 1, 1); stack.push_back({i, false}); break;
      case 0x8d: case 0x8e: arg = 8 + read_le(p, i + 1, 8); stack.push_back({i, false}); break;
      case 'N': case 0x88: case 0x89: case ']': case '}': case ')': case 0x8f: stack.push_back({i, false}); break;
      case 'c': {
        size_t a = p.find('\n', i + 1);
        size_t b = a == std::string::npos ? a : p.find('\n', a + 1);
        if (b == std::string::npos) return Scan::Invalid;
        arg = b - i;
        stack.push_back({i, false});
        break;
      }
      case '(': stack.push_back({i, true}); break;
      case 0x85: case 0x86: case 0x87: {
        auto first = pop(op - 0x84);
        ok = first.has_value();
        if (ok) stack.push_back({first->start, false});
        break;
      }
      case 't': case 'l': case 'd': case 0x91: {
        auto m = pop_mark();
        ok = m.has_value();
        if (ok) stack.push_back({m->start, false});
        break;
      }
      case 'a': {  // APPEND: `MARK item APPENDS`
        auto item = pop(1);
        ok = item.has_value() && !stack.empty() && !stack.back().mark;
        if (ok) {
          edits.mark_at.push_back(item->start);
          edits.opcode.push_back({i, 'e'});
        }
        break;
      }
      case 's': {  // SETITEM, which Python writes for a one-key dict: `MARK key value SETITEMS`
        auto key = pop(2);
        ok = key.has_value() && !stack.empty() && !stack.back().mark;
        if (ok) {
          edits.mark_at.push_back(key->start);
          edits.opcode.push_back({i, 'u'});
        }
        break;
      }
      case 'e': case 'u': case 0x90: ok = pop_mark().has_value() && !stack.empty() && !stack.back().mark; break;
      case 'b': ok = pop(1).has_value() && !stack.empty() && !stack.back().mark; break;
      case '0': ok = pop(1).has_value(); break;
      case 'R': case 0x81: {
        const bool reduce = op == 'R' && stack.size() >= 2;
        const size_t args = reduce ? stack.back().start : 0;
        auto first = pop(2);
        ok = first.has_value();
        if (!ok) break;
        stack.push_back({first->start, false});
        // OrderedDict() (the class, from GLOBAL or a memo get, applied to an empty tuple) is read as a
        // dict: EMPTY_DICT in place of the class, the empty tuple and REDUCE dropped. The class's memo
        // put then holds that first dict, which nothing reads as a class again (later uses are rewritten).
        if (!reduce || p[args] != ')' || args + 1 != i) break;
        const size_t c = first->start;
        bool ordered = p.compare(c, kOrderedDict.size(), kOrderedDict) == 0;
        if (!ordered && (p[c] == 'h' || p[c] == 'j')) {
          uint64_t id = read_le(p, c + 1, p[c] == 'h' ? 1 : 4);
          ordered = std::find(ordered_dict_ids.begin(), ordered_dict_ids.end(), id) != ordered_dict_ids.end();
        }
        if (ordered) {
          edits.opcode.push_back({c, '}'});
          edits.drop.push_back(args);
          edits.drop.push_back(i);
        }
        break;
      }
      case 'Q': {
        auto v = pop(1);
        ok = v.has_value();
        if (ok) stack.push_back({v->start, false});
        break;
      }
      case '2': ok = !stack.empty() && !stack.back().mark; if (ok) stack.push_back(stack.back()); break;
      case '.': return stack.size() == 1 && !stack.back().mark ? Scan::Ok : Scan::Invalid;  // STOP
      default: return Scan::Unknown;
    }
    if (!ok) return Scan::Invalid;
    if (arg > p.size() - i - 1) return Scan::Invalid;
    i += 1 + arg;
  }
  return Scan::Invalid;  // no STOP
}

}  // namespace

std::string pickle_problem(const std::string& p) {
  if (size_t at = first_overlong_argument(p); at != std::string::npos)
    return "has a value at byte " + std::to_string(at) + " that claims more bytes than the file holds";
  Edits edits;
  if (scan(p, edits) == Scan::Invalid) return "is not a well-formed pickle";
  return {};
}

int pickle_protocol(const std::string& p) {
  return p.size() >= 2 && static_cast<unsigned char>(p[0]) == 0x80 ? static_cast<unsigned char>(p[1]) : 0;
}

std::string patch_for_libtorch(const std::string& p) {
  Edits edits;
  if (scan(p, edits) != Scan::Ok) return p;
  if (edits.mark_at.empty() && edits.opcode.empty() && edits.drop.empty()) return p;
  std::vector<int> marks(p.size() + 1, 0);
  for (size_t m : edits.mark_at) ++marks[m];
  std::vector<int> replace(p.size(), -1);
  for (const auto& [at, op] : edits.opcode) replace[at] = static_cast<unsigned char>(op);
  std::vector<bool> dropped(p.size(), false);
  for (size_t d : edits.drop) dropped[d] = true;
  std::string out;
  out.reserve(p.size() + edits.mark_at.size());
  // Opcode offsets are where an opcode begins; its argument bytes follow and are copied as they are,
  // except for a GLOBAL turned into EMPTY_DICT, whose two text lines go with it.
  for (size_t k = 0; k < p.size(); ++k) {
    out.append(marks[k], '(');
    if (replace[k] == '}' && p[k] == 'c') {
      out.push_back('}');
      k += kOrderedDict.size() - 1;
    } else if (replace[k] == '}') {  // a memo get of the class: BINGET id / LONG_BINGET id
      out.push_back('}');
      k += p[k] == 'h' ? 1 : 4;
    } else if (replace[k] >= 0) {
      out.push_back(static_cast<char>(replace[k]));
    } else if (!dropped[k]) {
      out.push_back(p[k]);
    }
  }
  return out;
}

}  // namespace qreport
