#!/usr/bin/env bash
# Quantizer throughput and peak memory on a generated checkpoint with Llama-3-8B's tensor shapes.
# Usage: bench/bench_quantize.sh [layers] [output parent dir]   (defaults: 4 layers = 3.85 GB, /tmp)
# Prints one row per scale rule: median wall seconds of 3 runs (and the range), GB/s of BF16 read at
# the median, peak resident memory.
set -euo pipefail
cd "$(dirname "$0")/.."
layers=${1:-4}
parent=${2:-/tmp}
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
src=$parent/mxq_bench_llama8b_${layers}l
out=$parent/mxq_bench_llama8b_${layers}l_mxfp4
[ -s "$src/model.safetensors" ] || python3 bench/make_llama_checkpoint.py "$src" --layers "$layers"
bytes=$(stat -c %s "$src/model.safetensors")
echo "input: $src ($(awk "BEGIN{printf \"%.2f\", $bytes/1e9}") GB BF16), output under $parent, $(nproc) cores"
printf "| rule | median s (min-max of 3) | GB/s read | peak RSS MB |\n|---|---:|---:|---:|\n"
for rule in ocp_floor ceil even mse; do
  runs=()
  for rep in 1 2 3; do
    /usr/bin/time -f "%e %M" -o /tmp/mxq_bench_time build/release/mxq quantize "$src" -o "$out" \
      --recipe MXFP4_WEIGHT_ONLY --scale-rule "$rule" --force > /dev/null 2>&1
    runs+=("$(cat /tmp/mxq_bench_time)")
  done
  printf "%s\n" "${runs[@]}" | sort -n | awk -v rule="$rule" -v bytes="$bytes" '
    { s[NR] = $1; if ($2 > kb) kb = $2 }
    END { printf "| %s | %.2f (%.2f-%.2f) | %.2f | %.0f |\n", rule, s[2], s[1], s[3], bytes / 1e9 / s[2], kb / 1024 }'
done
rm -rf "$out"
