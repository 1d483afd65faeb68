#include "io/torch_pickle.hpp"

#include <qlab/error.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <optional>
#include <vector>

namespace qlab {
namespace {

enum class Kind { None, Bool, Int, Float, String, Tuple, List, Dict, Global, Storage, Tensor };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None:
      return "None";
    case Kind::Bool:
      return "a bool";
    case Kind::Int:
      return "an int";
    case Kind::Float:
      return "a float";
    case Kind::String:
      return "a string";
    case Kind::Tuple:
      return "a tuple";
    case Kind::List:
      return "a list";
    case Kind::Dict:
      return "a dict";
    case Kind::Global:
      return "a global";
    case Kind::Storage:
      return "a storage";
    case Kind::Tensor:
      return "a tensor";
  }
  return "?";
}

struct Object {
  Kind kind = Kind::None;
  std::int64_t i = 0;                       // Bool, Int; Storage: its element count
  double f = 0;                             // Float
  std::string s;                            // String; Global: "module.name"; Storage: its key
  std::vector<std::size_t> items;           // Tuple, List; Dict: key, value, key, value, ...
  torch::ScalarType dtype = torch::kFloat;  // Storage
  torch::Tensor tensor;                     // Tensor
};

std::optional<torch::ScalarType> storage_dtype(const std::string& global) {
  static const std::map<std::string, torch::ScalarType> types{
      {"torch.FloatStorage", torch::kFloat32}, {"torch.DoubleStorage", torch::kFloat64},
      {"torch.HalfStorage", torch::kFloat16},  {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kInt64},    {"torch.IntStorage", torch::kInt32},
      {"torch.ShortStorage", torch::kInt16},   {"torch.CharStorage", torch::kInt8},
      {"torch.ByteStorage", torch::kUInt8},    {"torch.BoolStorage", torch::kBool}};
  const auto it = types.find(global);
  if (it == types.end()) return std::nullopt;
  return it->second;
}

const std::string kOrderedDict = "collections.OrderedDict";
const std::string kRebuildTensor = "torch._utils._rebuild_tensor_v2";
const std::string kRebuildParameter = "torch._utils._rebuild_parameter";
const std::string kRebuildParameterWithState = "torch._utils._rebuild_parameter_with_state";

// Past these a tensor's shape is corrupt, whatever its storage.
constexpr std::int64_t kMaxDim = 1LL << 31;
constexpr std::size_t kMaxRank = 64;

class Machine {
 public:
  Machine(std::string_view pickle, const StorageBytes& storage, const std::string& where)
      : p_(pickle), storage_(storage), where_(where) {}

  std::map<std::string, torch::Tensor> run() {
    while (true) {
      at_ = pos_;
      const auto op = static_cast<unsigned char>(take(1)[0]);
      switch (op) {
        case 0x80: {  // PROTO
          const auto v = uint_le(1);
          if (v < 2 || v > 5) fail(fmt::format("pickle protocol {}; torch.save writes 2", v));
          break;
        }
        case 0x95:
          take(8);
          break;  // FRAME: a length hint only
        case '.':
          return state_dict(pop());
        case '(':
          marks_.push_back(stack_.size());
          break;
        case '}':
          push(make(Kind::Dict));
          break;
        case ']':
          push(make(Kind::List));
          break;
        case ')':
          push(make(Kind::Tuple));
          break;
        case 'N':
          push(make(Kind::None));
          break;
        case 0x88:
          push(make_int(Kind::Bool, 1));
          break;
        case 0x89:
          push(make_int(Kind::Bool, 0));
          break;
        case 'K':
          push(make_int(Kind::Int, static_cast<std::int64_t>(uint_le(1))));
          break;
        case 'M':
          push(make_int(Kind::Int, static_cast<std::int64_t>(uint_le(2))));
          break;
        case 'J':
          push(make_int(Kind::Int,
                        static_cast<std::int32_t>(static_cast<std::uint32_t>(uint_le(4)))));
          break;
        case 0x8a:
          push(make_int(Kind::Int, long1()));
          break;
        case 'G':
          push(make_float(binfloat()));
          break;
        case 'X':
          push(make_string(take(uint_le(4))));
          break;
        case 0x8c:
          push(make_string(take(uint_le(1))));
          break;
        case 0x8d:
          push(make_string(take(uint_le(8))));
          break;
        case 'c': {  // GLOBAL "module\nname\n"
          const std::string module(line());
          push(make_global(module, std::string(line())));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          const std::string name = string_of(pop(), "a global's name");
          push(make_global(string_of(pop(), "a global's module"), name));
          break;
        }
        case 'q':
          memo_[uint_le(1)] = top();
          break;
        case 'r':
          memo_[uint_le(4)] = top();
          break;
        case 0x94:
          memo_[memo_.size()] = top();
          break;
        case 'h':
          push(memo(uint_le(1)));
          break;
        case 'j':
          push(memo(uint_le(4)));
          break;
        case 't':
          push(make_tuple(pop_to_mark()));
          break;
        case 0x85:
          push(make_tuple(pop_n(1)));
          break;
        case 0x86:
          push(make_tuple(pop_n(2)));
          break;
        case 0x87:
          push(make_tuple(pop_n(3)));
          break;
        case 'a':
          append(pop_n(1));
          break;
        case 'e':
          append(pop_to_mark());
          break;
        case 's':
          set_items(pop_n(2));
          break;
        case 'u':
          set_items(pop_to_mark());
          break;
        case 'Q':
          push(storage(pop()));
          break;  // BINPERSID
        case 'R': {
          const std::size_t args = pop();
          push(reduce(pop(), args));
          break;
        }
        case 'b': {  // BUILD: an OrderedDict's _metadata, or a parameter's state; unused
          pop();
          const Kind k = objects_[top()].kind;
          if (k != Kind::Dict && k != Kind::Tensor)
            fail(fmt::format("BUILD on {}; a state_dict builds only dicts and tensors",
                             kind_name(k)));
          break;
        }
        default:
          fail(fmt::format("opcode 0x{:02x} is not one a pickled state_dict uses", op));
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw Error(fmt::format("{}: byte {}: {}", where_, at_, why));
  }

  std::string_view take(std::uint64_t n) {
    if (n > p_.size() - pos_)
      fail(fmt::format("needs {} more bytes; the pickle ends {} bytes on (truncated?)", n,
                       p_.size() - pos_));
    const auto out = p_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  std::uint64_t uint_le(int n) {
    const auto b = take(n);
    std::uint64_t v = 0;
    for (int k = n - 1; k >= 0; --k) v = (v << 8) | static_cast<unsigned char>(b[k]);
    return v;
  }
  std::int64_t long1() {
    const auto n = static_cast<int>(uint_le(1));
    if (n > 8) fail(fmt::format("an integer of {} bytes; qlab reads up to 8", n));
    if (n == 0) return 0;
    std::uint64_t v = uint_le(n);
    if (n < 8 && (v >> (8 * n - 1)) & 1) v |= ~std::uint64_t{0} << (8 * n);  // sign-extend
    return static_cast<std::int64_t>(v);
  }
  double binfloat() {
    const auto b = take(8);
    std::uint64_t bits = 0;
    for (int k = 0; k < 8; ++k) bits = (bits << 8) | static_cast<unsigned char>(b[k]);
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
  }
  std::string_view line() {
    const auto end = p_.find('\n', pos_);
    if (end == std::string_view::npos) fail("a GLOBAL without its newline (truncated?)");
    const std::size_t length = end - pos_;
    return take(length + 1).substr(0, length);
  }

  std::size_t make(Kind k) {
    objects_.emplace_back();
    objects_.back().kind = k;
    return objects_.size() - 1;
  }
  std::size_t make_int(Kind k, std::int64_t v) {
    const auto id = make(k);
    objects_[id].i = v;
    return id;
  }
  std::size_t make_float(double v) {
    const auto id = make(Kind::Float);
    objects_[id].f = v;
    return id;
  }
  std::size_t make_string(std::string_view s) {
    const auto id = make(Kind::String);
    objects_[id].s = std::string(s);
    return id;
  }
  std::size_t make_tuple(std::vector<std::size_t> items) {
    const auto id = make(Kind::Tuple);
    objects_[id].items = std::move(items);
    return id;
  }
  std::size_t make_global(const std::string& module, const std::string& name) {
    const std::string full = module + "." + name;
    if (full != kOrderedDict && full != kRebuildTensor && full != kRebuildParameter &&
        full != kRebuildParameterWithState && !storage_dtype(full))
      fail(
          fmt::format("the pickle names the global {}; qlab reads a state_dict's tensors only "
                      "(torch.save(model.state_dict(), FILE)) and never runs what a file names",
                      full));
    const auto id = make(Kind::Global);
    objects_[id].s = full;
    return id;
  }

  void push(std::size_t id) { stack_.push_back(id); }
  std::size_t top() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back()))
      fail("an opcode needs an object and the stack has none");
    return stack_.back();
  }
  std::size_t pop() {
    const auto id = top();
    stack_.pop_back();
    return id;
  }
  std::vector<std::size_t> pop_n(std::size_t n) {
    std::vector<std::size_t> out(n);
    for (std::size_t k = n; k-- > 0;) out[k] = pop();
    return out;
  }
  std::vector<std::size_t> pop_to_mark() {
    if (marks_.empty()) fail("an opcode needs a MARK and there is none");
    const std::size_t from = marks_.back();
    marks_.pop_back();
    std::vector<std::size_t> out(stack_.begin() + static_cast<std::ptrdiff_t>(from), stack_.end());
    stack_.resize(from);
    return out;
  }
  std::size_t memo(std::uint64_t key) {
    const auto it = memo_.find(key);
    if (it == memo_.end()) fail(fmt::format("memo {} was never stored", key));
    return it->second;
  }
  const std::string& string_of(std::size_t id, const char* what) {
    if (objects_[id].kind != Kind::String)
      fail(fmt::format("{} is {}, not a string", what, kind_name(objects_[id].kind)));
    return objects_[id].s;
  }
  std::int64_t int_of(std::size_t id, const char* what) {
    if (objects_[id].kind != Kind::Int && objects_[id].kind != Kind::Bool)
      fail(fmt::format("{} is {}, not an int", what, kind_name(objects_[id].kind)));
    return objects_[id].i;
  }
  std::vector<std::int64_t> ints_of(std::size_t id, const char* what) {
    if (objects_[id].kind != Kind::Tuple)
      fail(fmt::format("{} is {}, not a tuple", what, kind_name(objects_[id].kind)));
    std::vector<std::int64_t> out;
    for (const auto item : objects_[id].items) out.push_back(int_of(item, what));
    return out;
  }

  void append(const std::vector<std::size_t>& items) {
    Object& list = objects_[top()];
    if (list.kind != Kind::List) fail(fmt::format("APPEND to {}", kind_name(list.kind)));
    list.items.insert(list.items.end(), items.begin(), items.end());
  }
  void set_items(const std::vector<std::size_t>& items) {
    Object& dict = objects_[top()];
    if (dict.kind != Kind::Dict) fail(fmt::format("SETITEM on {}", kind_name(dict.kind)));
    if (items.size() % 2) fail("SETITEMS with a key and no value");
    dict.items.insert(dict.items.end(), items.begin(), items.end());
  }

  // The persistent id torch.save gives each storage:
  // ("storage", torch.FloatStorage, key, location, element count).
  std::size_t storage(std::size_t pid) {
    const Object& t = objects_[pid];
    if (t.kind != Kind::Tuple || t.items.size() != 5 || objects_[t.items[0]].kind != Kind::String ||
        objects_[t.items[0]].s != "storage" || objects_[t.items[1]].kind != Kind::Global)
      fail("a persistent id that is not a storage's (\"storage\", type, key, location, size)");
    const auto dtype = storage_dtype(objects_[t.items[1]].s);
    if (!dtype) fail(fmt::format("{} is not a storage type", objects_[t.items[1]].s));
    const auto id = make(Kind::Storage);
    objects_[id].dtype = *dtype;
    objects_[id].s = string_of(t.items[2], "a storage's key");
    objects_[id].i = int_of(t.items[4], "a storage's size");
    if (objects_[id].i < 0) fail(fmt::format("a storage of {} elements", objects_[id].i));
    return id;
  }

  std::size_t reduce(std::size_t callable, std::size_t args_id) {
    if (objects_[callable].kind != Kind::Global)
      fail(fmt::format("REDUCE calls {}", kind_name(objects_[callable].kind)));
    if (objects_[args_id].kind != Kind::Tuple)
      fail(fmt::format("REDUCE's arguments are {}", kind_name(objects_[args_id].kind)));
    const std::string& f = objects_[callable].s;
    const std::vector<std::size_t> args = objects_[args_id].items;
    if (f == kOrderedDict) {
      if (!args.empty()) fail("OrderedDict called with arguments");
      return make(Kind::Dict);
    }
    const auto id = make(Kind::Tensor);
    if (f == kRebuildTensor) {
      if (args.size() != 6 && args.size() != 7)
        fail(fmt::format("{} with {} arguments; it takes 6 or 7", f, args.size()));
      objects_[id].tensor = rebuild_tensor(args);
    } else if (f == kRebuildParameter || f == kRebuildParameterWithState) {
      if (args.empty() || objects_[args[0]].kind != Kind::Tensor)
        fail(fmt::format("{} without a tensor", f));
      objects_[id].tensor = objects_[args[0]].tensor;
    } else {
      fail(fmt::format("{} cannot be called", f));
    }
    return id;
  }

  // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]):
  // a view of the storage, checked to lie inside it, copied out.
  torch::Tensor rebuild_tensor(const std::vector<std::size_t>& args) {
    const Object& st = objects_[args[0]];
    if (st.kind != Kind::Storage) fail(fmt::format("a tensor's storage is {}", kind_name(st.kind)));
    const std::int64_t offset = int_of(args[1], "a tensor's storage offset");
    const auto sizes = ints_of(args[2], "a tensor's size");
    const auto strides = ints_of(args[3], "a tensor's stride");
    if (sizes.size() != strides.size() || sizes.size() > kMaxRank)
      fail(fmt::format("a tensor of {} sizes and {} strides", sizes.size(), strides.size()));
    const torch::Tensor data = storage_tensor(st);  // its size now checked against its bytes
    const std::int64_t numel = st.i;
    std::int64_t elements = 1, last = offset;
    bool empty = false;
    for (std::size_t d = 0; d < sizes.size(); ++d) {
      if (sizes[d] < 0 || sizes[d] > kMaxDim || strides[d] < 0 || strides[d] > kMaxDim)
        fail(fmt::format("a tensor of size [{}] and stride [{}]", fmt::join(sizes, ", "),
                         fmt::join(strides, ", ")));
      empty = empty || sizes[d] == 0;
    }
    if (offset < 0 || offset > numel)
      fail(fmt::format("storage offset {} in a storage of {} elements", offset, numel));
    if (!empty) {
      // Broadcast views (stride 0) may hold more elements than their storage,
      // but not without bound.
      const std::int64_t max_elements = numel + (1 << 20);
      for (std::size_t d = 0; d < sizes.size(); ++d) {
        last += (sizes[d] - 1) * strides[d];
        if (last >= numel || sizes[d] > max_elements / elements)
          fail(
              fmt::format("a tensor of size [{}], stride [{}] and offset {} reaches past its "
                          "storage '{}' of {} elements",
                          fmt::join(sizes, ", "), fmt::join(strides, ", "), offset, st.s, numel));
        elements *= sizes[d];
      }
      if (last >= numel)
        fail(fmt::format("a scalar at offset {} past its storage '{}' of {} elements", offset, st.s,
                         numel));
    }
    return data.as_strided(sizes, strides, offset).clone(at::MemoryFormat::Contiguous);
  }

  torch::Tensor storage_tensor(const Object& st) {
    const auto it = storages_.find(st.s);
    if (it != storages_.end()) {
      if (it->second.scalar_type() != st.dtype || it->second.numel() != st.i)
        fail(fmt::format("storage '{}' is named twice with different types or sizes", st.s));
      return it->second;
    }
    const std::string_view bytes = storage_(st.s);
    const auto element = static_cast<std::uint64_t>(c10::elementSize(st.dtype));
    if (bytes.size() % element || bytes.size() / element != static_cast<std::uint64_t>(st.i))
      fail(fmt::format("storage '{}' holds {} bytes; {} elements of {} need {}", st.s, bytes.size(),
                       st.i, c10::toString(st.dtype), st.i * element));
    if (st.dtype == torch::kBool &&
        std::any_of(bytes.begin(), bytes.end(), [](char c) { return c != 0 && c != 1; }))
      fail(fmt::format("bool storage '{}' holds a byte other than 0 or 1", st.s));
    torch::Tensor t = torch::empty({st.i}, torch::TensorOptions().dtype(st.dtype));
    if (!bytes.empty()) std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
    storages_.emplace(st.s, t);
    return t;
  }

  std::map<std::string, torch::Tensor> state_dict(std::size_t id) {
    const Object& dict = objects_[id];
    if (dict.kind != Kind::Dict)
      fail(fmt::format("the file holds {}, not a state_dict; save model.state_dict()",
                       kind_name(dict.kind)));
    std::map<std::string, torch::Tensor> out;
    for (std::size_t k = 0; k + 1 < dict.items.size(); k += 2) {
      const std::string& key = string_of(dict.items[k], "a state_dict's key");
      const Object& value = objects_[dict.items[k + 1]];
      if (value.kind != Kind::Tensor)
        fail(fmt::format("'{}' is {}, not a tensor; a state_dict holds tensors only{}", key,
                         kind_name(value.kind),
                         value.kind == Kind::Dict
                             ? fmt::format(" (save the state_dict inside: torch.save(obj['{}'], "
                                           "FILE))",
                                           key)
                             : ""));
      out[key] = value.tensor;
    }
    return out;
  }

  std::string_view p_;
  std::size_t pos_ = 0, at_ = 0;
  const StorageBytes& storage_;
  const std::string& where_;
  std::deque<Object> objects_;
  std::vector<std::size_t> stack_, marks_;
  std::map<std::uint64_t, std::size_t> memo_;
  std::map<std::string, torch::Tensor> storages_;
};

}  // namespace

std::map<std::string, torch::Tensor> unpickle_state_dict(std::string_view pickle,
                                                         const StorageBytes& storage,
                                                         const std::string& where) {
  return Machine(pickle, storage, where).run();
}

}  // namespace qlab
