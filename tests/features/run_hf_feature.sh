#!/usr/bin/env bash
# A Hugging Face feature test (run_parity.sh), or exit 77 (CTest: skipped) with one line when the build's
# Python has no transformers to build the model from (Debian's python3 with python3-torch 1.13).
set -euo pipefail
py=${QREPORT_PYTHON:-/usr/bin/python3}
if ! "$py" -c "import transformers" 2>/dev/null; then
  echo "skipped: $py has no transformers, which builds the $3 fixture (the default build's venv has it)"
  exit 77
fi
exec "$(dirname "$0")/../parity/run_parity.sh" "$@"
