// Internal: LibTorch 1.13's unpickler lacks the APPEND opcode, which Python emits for a one-element list
// (`torch.save([x])`), and POP. This rewrites each `<item> APPEND` into `MARK <item> APPENDS`, which it
// does understand.
#pragma once
#include <string>

namespace qreport::calibration {

// Checks that every length-prefixed or line-terminated argument in the pickle ends inside it; returns the
// offset of the first opcode whose argument runs past the end, or npos. LibTorch's unpickler allocates a
// declared length before reading it, so a corrupt length would otherwise ask for gigabytes. Stops (npos)
// at an opcode it does not know, which the unpickler then rejects or reads itself.
size_t first_overlong_argument(const std::string& pickle);

// False when the opcodes are structurally impossible: a pop from too few values or across a MARK, a
// missing MARK, no STOP. LibTorch 1.13's unpickler does not check these and corrupts memory on them.
bool pickle_structure_ok(const std::string& pickle);

// Returns the pickle with a MARK inserted before each APPEND's item and APPEND turned into APPENDS. To
// find where the item starts, it tracks the unpickler's value stack by opcode. Returns the input
// unchanged when it holds no APPEND or an opcode this scanner does not know.
std::string patch_append_opcodes(const std::string& pickle);

}  // namespace qreport::calibration
