#pragma once
// The pickle inside a torch.save file, read by a restricted machine of
// qlab's own instead of Python's (which runs whatever a file names). It
// knows the opcodes pickle protocols 2 to 5 use for a state_dict, and the
// globals one names: collections.OrderedDict, torch._utils'
// _rebuild_tensor_v2, _rebuild_parameter and _rebuild_parameter_with_state,
// and the typed storages (torch.FloatStorage, ...). Any other global, opcode or object is refused
// by name; nothing in a file is called. Every object it makes comes from
// bytes it has read, so its memory is linear in the pickle's size.
#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace qlab {

/// A storage's raw little-endian bytes, asked for by the key the pickle
/// gives it ("0", "1", ...); throws qlab::Error when there is none.
using StorageBytes = std::function<std::string_view(const std::string& key)>;

/// The pickled state_dict: its tensors by name, each copied out of its
/// storage. `where` names the pickle in errors ("model.pt: data.pkl").
/// Throws qlab::Error naming `where`, the byte offset, and what is wrong.
std::map<std::string, torch::Tensor> unpickle_state_dict(std::string_view pickle,
                                                         const StorageBytes& storage,
                                                         const std::string& where);

}  // namespace qlab
