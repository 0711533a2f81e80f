// Internal: pickle handling for LibTorch 1.13's unpickler, shared by the two loaders that feed it
// untrusted files (calibration archives, and the .pkl records of TorchScript models).
//  - It trusts its input: a corrupt declared length or memo id makes it allocate gigabytes, a broken
//    MARK discipline corrupts its memory. pickle_problem() finds both before it runs.
//  - It lacks the APPEND opcode, which Python emits for a one-element list (`torch.save([x])`), and POP.
//    patch_append_opcodes() rewrites each `<item> APPEND` into `MARK <item> APPENDS`, which it reads.
#pragma once
#include <string>

namespace qreport {

// Empty when the pickle is safe to hand to LibTorch; otherwise the rest of a sentence that starts with
// the record's name, e.g. "is not a well-formed pickle". Checked: every length-prefixed or
// line-terminated argument ends inside the pickle; no pop from too few values or across a MARK, no
// missing MARK, a STOP at the end; memo ids within the pickle's size and read only after being put.
// Opcodes the scanner does not model end the check (the unpickler then rejects or reads them itself).
std::string pickle_problem(const std::string& pickle);

// The pickle with a MARK inserted before each APPEND's item and APPEND turned into APPENDS (the item's
// start is found by tracking the value stack). Unchanged when it holds no APPEND or an opcode the
// scanner does not model.
std::string patch_append_opcodes(const std::string& pickle);

}  // namespace qreport
