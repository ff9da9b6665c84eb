#!/usr/bin/env bash
# Builds the libFuzzer target for the safetensors and GGUF readers (clang, ASan + UBSan) and runs it
# for a bounded time from the committed corpus. Usage: scripts/fuzz.sh [seconds]   (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
out=build/fuzz
mkdir -p "$out" "$out/corpus"
clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iinclude \
  tests/fuzz/fuzz_readers.cpp src/io/safetensors.cpp src/io/gguf.cpp src/io/ggml_dequant.cpp src/io/mapped_file.cpp \
  -lfmt -o "$out/fuzz_readers"
cp tests/fuzz/corpus/*/* "$out/corpus/"
# New inputs go to the scratch corpus under build/, never into the committed one.
"$out/fuzz_readers" -max_total_time="$seconds" -max_len=4096 -timeout=10 -print_final_stats=1 \
  "$out/corpus" 2>&1 | tail -n 12
echo "fuzz: ${seconds}s without a crash or sanitizer report"
