#!/usr/bin/env bash
# The README's main command. Until the checkpoint importer and the runtime exist (issues 3 and 4),
# the main job is the format core on its own: quantize a weights-like BF16 tensor of Llama-3-8B's
# MLP shape to MXFP4 under every scale rule (and MXFP8 / NVFP4 for comparison), dequantize it, and
# print the error and conversion speed of each.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh release
for dist in gaussian student-t; do
  build/release/mxq roundtrip --rows 14336 --cols 4096 --dist "$dist"
  echo
done
