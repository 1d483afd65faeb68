#pragma once
// A state_dict saved by PyTorch's torch.save: a zip (read with libzip) whose
// <dir>/data.pkl is a pickle (read by torch_pickle.hpp's restricted
// machine) and whose <dir>/data/<key> records are the storages' raw bytes.
// Records are checked before they are read: a deflated one may expand at
// most 100 times (torch.save stores them uncompressed), so a zip bomb is
// refused, not unpacked.
#include <torch/torch.h>

#include <map>
#include <string>

namespace qlab {

/// The tensors of a torch.save file already in memory; `path` names it in
/// errors. Throws qlab::Error naming the file and the record at fault.
std::map<std::string, torch::Tensor> parse_torch_save(const std::string& bytes,
                                                      const std::string& path);

}  // namespace qlab
