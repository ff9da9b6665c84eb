#!/usr/bin/env bash
# The README's main command: the default model, SmolLM2-135M-Instruct (shipped as a mostly-Q4_1
# GGUF, so every figure measures "its weights -> MXFP4"), imported to a BF16 Hugging Face
# checkpoint, quantized to MXFP4 (every linear layer, W4A16) in ModelOpt's export layout, inspected,
# evaluated against the BF16 model on WikiText-2 (perplexity, KL, top-1; the first 8 windows of 512
# tokens, to keep the job short on 2 cores: `mxq eval` without --max-windows scores the whole text),
# asked a question in both precisions, and the error of each MXFP4 scale rule per kind of layer.
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
echo "== evaluate: BF16, then MXFP4 against BF16 (WikiText-2 test, ctx 512, first 8 windows) =="
$mxq eval "$bf16" --max-windows 8 2>/dev/null
$mxq eval "$mxfp4" --ref "$bf16" --max-windows 8 2>/dev/null
echo
echo "== generate (greedy, chat template) =="
for m in "$bf16" "$mxfp4"; do
  echo "-- $m"
  $mxq generate "$m" --chat -n 48 -p "What is the capital of France, and what is it known for?"
done
echo
echo "== error of each format and scale rule on the model's weights =="
$mxq roundtrip --gguf "$gguf"
echo
echo "== conversion speed on a Llama-3-8B MLP-shaped BF16 tensor =="
$mxq roundtrip --rows 14336 --cols 4096 --dist gaussian
