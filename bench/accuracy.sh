#!/usr/bin/env bash
# SmolLM2-135M-Instruct: BF16 against each MXFP4 preset and scale rule (NVFP4 for comparison) on
# WikiText-2's test split: perplexity ± se, mean KL(BF16 || quantized), top-1 agreement.
# Usage: bench/accuracy.sh [windows]   (default 16 windows of 512 tokens; 0 = the whole text)
# Writes one JSON per row under models/accuracy/ and prints a Markdown table (docs/ACCURACY.md).
set -euo pipefail
cd "$(dirname "$0")/.."
windows=${1:-16}
mxq=build/release/mxq
gguf=$(bash scripts/fetch-model.sh)
bf16=models/smollm2-135m-instruct-bf16
[ -s "$bf16/model.safetensors" ] || $mxq import "$gguf" -o "$bf16" --force >/dev/null
mkdir -p models/accuracy
rows=(
  "BF16|-|-"
  "MXFP4_WEIGHT_ONLY (even)|MXFP4_WEIGHT_ONLY|"
  "MXFP4_WEIGHT_ONLY --scale-rule ceil|MXFP4_WEIGHT_ONLY|ceil"
  "MXFP4_WEIGHT_ONLY --scale-rule ocp_floor|MXFP4_WEIGHT_ONLY|ocp_floor"
  "MXFP4_WEIGHT_ONLY --scale-rule mse|MXFP4_WEIGHT_ONLY|mse"
  "MXFP4_MLP_WEIGHT_ONLY_CFG|MXFP4_MLP_WEIGHT_ONLY_CFG|"
  "W4A8_MXFP4_FP8_CFG|W4A8_MXFP4_FP8_CFG|"
  "MXFP4_DEFAULT_CFG|MXFP4_DEFAULT_CFG|"
  "NVFP4_DEFAULT_CFG --mode W4A16|NVFP4_DEFAULT_CFG||W4A16"
  "NVFP4_DEFAULT_CFG|NVFP4_DEFAULT_CFG|"
)
echo "| model | perplexity ± se | KL(BF16 ‖ q) ± se | top-1 |"
echo "|---|---:|---:|---:|"
for row in "${rows[@]}"; do
  IFS='|' read -r label recipe rule mode <<<"$row"
  slug=$(echo "$label" | tr ' -' '__' | tr -d '()' | tr -s '_')
  json=models/accuracy/$slug.json
  if [ "$recipe" = "-" ]; then
    $mxq eval "$bf16" --max-windows "$windows" --json "$json" >/dev/null 2>&1
  else
    dir=models/accuracy/$slug
    $mxq quantize "$bf16" -o "$dir" --recipe "$recipe" ${rule:+--scale-rule $rule} --force >/dev/null 2>&1
    if ! err=$($mxq eval "$dir" --ref "$bf16" --max-windows "$windows" ${mode:+--mode $mode} --json "$json" 2>&1 >/dev/null); then
      echo "| $label | not run: $(echo "$err" | tail -n 1) | | |"
      continue
    fi
  fi
  python3 - "$json" "$label" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
kl = f"{j['kl']:.4f} ± {j['kl_se']:.4f}" if "kl" in j else "-"
top1 = f"{j['top1']:.4f}" if "top1" in j else "-"
print(f"| {sys.argv[2]} | {j['ppl']:.3f} ± {j['ppl_se']:.3f} | {kl} | {top1} |")
PY
done
