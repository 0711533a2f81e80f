#!/usr/bin/env bash
# CI's smoke run of the benchmark: tiny inputs (2 batches of 2x3x32x32), one repetition, ModelReport
# included, and the cost split of --subset. It checks that the benchmark works end to end, not how fast anything is.
#   bench/smoke.sh QREPORT BASELINE OUTDIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
qreport="$1" baseline="$2" out="$3"
/usr/bin/python3 "$here/make_inputs.py" "$out" --batches-resnet 2 --batches-mobilenet 2 --batch 2 --size 32 >/dev/null
table="$(/usr/bin/python3 "$here/run.py" --inputs "$out" --qreport "$qreport" --baseline "$baseline" --reps 1 \
         --threads 2 --modelreport --subset per_channel,dynamic_static,equalization,outlier)"
echo "$table"
for model in resnet18 mobilenet_v2; do
  grep -Eq "^\| $model \| [0-9.]+ \| [0-9.]+ \| [0-9.]+x \| [0-9.]+-[0-9.]+ \| [0-9.]+ \| \*\*[0-9.]+x\*\* \|" <<<"$table" || { echo "no row for $model"; exit 1; }
  # the cost split of --subset: the subset's and all's times and their difference
  grep -Eq "^\| $model \| [0-9.]+ \| [0-9.]+ \| [0-9.]+x \| [0-9.]+ \| [0-9.]+x \| [-+][0-9.]+ \|$" <<<"$table" || { echo "no cost split for $model"; exit 1; }
done
