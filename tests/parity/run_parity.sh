#!/usr/bin/env bash
# Runs qreport on one parity fixture and compares its JSON with PyTorch's ModelReport (oracle.json).
# --threads 1 because the oracle ran with one thread: a conv's rounding depends on how its sums are split.
set -euo pipefail
# Extra arguments go to qreport (the parity suite passes --ch-axis 1 where PyTorch's axis is not auto's).
qreport=$1; dir=$2; name=$3; shift 3
"$qreport" analyze "$dir/$name/model.pt" --calib "$dir/$name/calib.pt" --format json --threads 1 -q \
  -o "$dir/$name/qreport.json" "$@"
# The build's Python (its PyTorch reads the fixture models the oracle side loads); Debian's by default.
exec "${QREPORT_PYTHON:-/usr/bin/python3}" "$(dirname "$0")/compare.py" "$dir/$name/qreport.json" "$dir/$name/oracle.json" "$name"
