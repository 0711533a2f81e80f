// Internal: pickle handling for LibTorch 1.13's unpickler, shared by the two loaders that feed it
// untrusted files (calibration archives, and the .pkl records of TorchScript models).
//  - It trusts its input: a corrupt declared length or memo id makes it allocate gigabytes, a broken
//    MARK discipline corrupts its memory. pickle_problem() finds both before it runs.
//  - It lacks opcodes Python's pickler emits at protocol 2 for documented layouts: APPEND (a one-element
//    list, `torch.save([x])`), SETITEM (a one-key dict, `torch.save({"x": [...]})`), and it reads
//    OrderedDict's reduction as something that is not a dict. patch_for_libtorch() rewrites them.
#pragma once
#include <string>

namespace qreport {

// Empty when the pickle is safe to hand to LibTorch; otherwise the rest of a sentence that starts with
// the record's name, e.g. "is not a well-formed pickle". Checked: every length-prefixed or
// line-terminated argument ends inside the pickle; no pop from too few values or across a MARK, no
// missing MARK, a STOP at the end; memo ids within the pickle's size and read only after being put.
// Opcodes the scanner does not model end the check (the unpickler then rejects or reads them itself).
std::string pickle_problem(const std::string& pickle);

// The pickle as LibTorch 1.13 reads it: `item APPEND` becomes `MARK item APPENDS`, `key value SETITEM`
// becomes `MARK key value SETITEMS` (the item's or key's start is found by tracking the value stack),
// and `OrderedDict () REDUCE` becomes EMPTY_DICT. Unchanged when there is nothing to rewrite or it holds
// an opcode the scanner does not model.
std::string patch_for_libtorch(const std::string& pickle);

// The protocol of a pickle (its PROTO opcode), 0 without one. LibTorch reads protocol 2 only.
int pickle_protocol(const std::string& pickle);

}  // namespace qreport
