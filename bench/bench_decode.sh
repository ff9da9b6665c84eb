#!/usr/bin/env bash
# SmolLM2-135M-Instruct decode and prefill speed on the CPU (issue 4): BF16, MXFP4 W4A16 with the
# LM head kept BF16 (the default exclusion), MXFP4 W4A16 with every linear layer including the
# tied LM head in MXFP4 (--quantize-lm-head), and W4A8 (MXFP4 weights, per-token FP8 activations),
# side by side in one bench_model_cpu run. The four checkpoints are made once under models/decode/.
# Usage: bench/bench_decode.sh [BUILD_DIR] [bench_model_cpu flags...]   (docs/BENCHMARKS.md)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
shift || true
cmake --build "$build" --target mxq bench_model_cpu >/dev/null
mxq=$build/mxq
bf16=models/smollm2-135m-instruct-bf16
if [ ! -s "$bf16/model.safetensors" ]; then
  gguf=$(bash scripts/fetch-model.sh)
  $mxq import "$gguf" -o "$bf16" --force >/dev/null
fi
out=models/decode
mkdir -p "$out"
quantize() {  # name, mxq quantize flags
  local dir=$out/$1
  shift
  [ -s "$dir/model.safetensors" ] || $mxq quantize "$bf16" -o "$dir" --force "$@" >/dev/null
}
quantize w4a16_head_bf16 --recipe MXFP4_WEIGHT_ONLY
quantize w4a16_head_mxfp4 --recipe MXFP4_WEIGHT_ONLY --quantize-lm-head
quantize w4a8 --recipe W4A8_MXFP4_FP8_CFG
"$build/bench/bench_model_cpu" "$@" BF16="$bf16" "W4A16 head BF16=$out/w4a16_head_bf16" \
  "W4A16 head MXFP4=$out/w4a16_head_mxfp4" "W4A8 head BF16=$out/w4a8"
