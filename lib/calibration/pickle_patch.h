// Internal: LibTorch 1.13's unpickler lacks the APPEND opcode, which Python emits for a one-element list
// (`torch.save([x])`), and POP. This rewrites each `<item> APPEND` into `MARK <item> APPENDS`, which it
// does understand.
#pragma once
#include <string>

namespace qreport::calibration {

// Returns the pickle with a MARK inserted before each APPEND's item and APPEND turned into APPENDS. To
// find where the item starts, it tracks the unpickler's value stack by opcode. Returns the input
// unchanged when it holds no APPEND or an opcode this scanner does not know.
std::string patch_append_opcodes(const std::string& pickle);

}  // namespace qreport::calibration
