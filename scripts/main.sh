#!/usr/bin/env bash
# The README's main command. Until the checkpoint writer and the runtime exist (issues 3 and 4), the
# main job is the format core on real weights: every weight matrix of the default model,
# SmolLM2-135M-Instruct (shipped as a mostly-Q4_1 GGUF, so this measures "its weights -> MXFP4"),
# quantized to MXFP4 under each scale rule (MXFP8 and NVFP4 for comparison) and dequantized, with the
# error per kind of layer; then the same on a BF16 tensor of Llama-3-8B's MLP shape, with speed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh release
model=$(bash scripts/fetch-model.sh)
build/release/mxq roundtrip --gguf "$model"
echo
build/release/mxq roundtrip --rows 14336 --cols 4096 --dist gaussian
