// LibTorch's own warnings (TORCH_WARN: deprecations, "quantized tensor creation is deprecated", ...) go to
// qreport's log at debug level instead of raw to stderr, where they would break the contract that an error
// is one line and that a clean run prints nothing unasked. They speak of LibTorch's internals, not of the
// user's model: what matters to the user, qreport says itself. `-v` shows them.
#pragma once

namespace qreport {

// Installs the handler for the calling thread's warnings (LibTorch's handler is per thread in 2.x).
void route_libtorch_warnings_to_log();

}  // namespace qreport
