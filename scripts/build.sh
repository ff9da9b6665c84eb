#!/usr/bin/env bash
# Installs the Debian packages and builds mxq (Release; CUDA kernels too when nvcc is on PATH or in
# /usr/local/cuda). Usage: scripts/build.sh [preset]   (presets: release, cpu, debug)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
preset=${1:-release}
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$(nproc)"
