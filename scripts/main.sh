#!/usr/bin/env bash
# The README's main command: the default model, SmolLM2-135M-Instruct (shipped as a mostly-Q4_1
# GGUF, so every figure measures "its weights -> MXFP4"), imported to a BF16 Hugging Face
# checkpoint, quantized to MXFP4 (every linear layer, W4A16) in ModelOpt's export layout, inspected,
# and the error of each MXFP4 scale rule (MXFP8 and NVFP4 for comparison) per kind of layer.
# Evaluation (perplexity, KL) and generation come with the runtime (issue 4).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh release
mxq=build/release/mxq
gguf=$(bash scripts/fetch-model.sh)
bf16=models/smollm2-135m-instruct-bf16
mxfp4=models/smollm2-135m-instruct-mxfp4

echo "== import =="
$mxq import "$gguf" -o "$bf16" --force
echo
echo "== quantize (recipe MXFP4_WEIGHT_ONLY; the per-tensor plan and SQNR lines are in models/quantize.log) =="
$mxq quantize "$bf16" -o "$mxfp4" --recipe MXFP4_WEIGHT_ONLY --force > models/quantize.log
tail -n 3 models/quantize.log
echo
echo "== inspect =="
$mxq inspect "$mxfp4"
echo
echo "== error of each format and scale rule on the model's weights =="
$mxq roundtrip --gguf "$gguf"
echo
echo "== conversion speed on a Llama-3-8B MLP-shaped BF16 tensor =="
$mxq roundtrip --rows 14336 --cols 4096 --dist gaussian
