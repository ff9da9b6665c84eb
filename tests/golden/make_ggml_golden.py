#!/usr/bin/env python3
"""Golden vectors for mxq's ggml block decoders, made by running gguf-py's own decoders.

Usage: pip install gguf numpy && python3 tests/golden/make_ggml_golden.py > tests/golden/ggml_blocks.json

For each ggml type mxq reads, random blocks (fixed seed) with finite f16 scale fields are decoded by
gguf.quants.dequantize; the file holds the block bytes and the float32 bits gguf-py produced.
"""
import json
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize

BLOCKS = 6
rng = np.random.default_rng(20261125)


def f16_bytes(n, lo=-4, hi=-1):
    """n random finite f16 values of magnitude 2^lo .. 2^hi, as bytes."""
    v = rng.uniform(1, 2, n) * 2.0 ** rng.integers(lo, hi + 1, n) * rng.choice([-1, 1], n)
    return v.astype(np.float16).tobytes()


def blocks(t):
    """Random bytes for BLOCKS blocks of type t, with the f16 fields made finite."""
    out = bytearray()
    for _ in range(BLOCKS):
        if t == T.F16:
            out += f16_bytes(32, -10, 10)
        elif t == T.BF16:
            v = rng.standard_normal(32).astype(np.float32).view(np.uint32) >> 16
            out += v.astype(np.uint16).tobytes()
        elif t == T.F32:
            out += rng.standard_normal(32).astype(np.float32).tobytes()
        elif t in (T.Q4_0, T.Q8_0):
            out += f16_bytes(1) + rng.integers(0, 256, 16 if t == T.Q4_0 else 32, dtype=np.uint8).tobytes()
        elif t == T.Q4_1:
            out += f16_bytes(2) + rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
        elif t == T.Q5_0:
            out += f16_bytes(1) + rng.integers(0, 256, 20, dtype=np.uint8).tobytes()
        elif t == T.Q5_1:
            out += f16_bytes(2) + rng.integers(0, 256, 20, dtype=np.uint8).tobytes()
        elif t == T.Q4_K:
            out += f16_bytes(2) + rng.integers(0, 256, 140, dtype=np.uint8).tobytes()
        elif t == T.Q6_K:
            out += rng.integers(0, 256, 208, dtype=np.uint8).tobytes() + f16_bytes(1)
        elif t == T.MXFP4:
            # E8M0 bytes 0..254: 0xFF is NaN in the spec and a finite 2^127 multiple in ggml.
            out += bytes([int(rng.integers(0, 255))]) + rng.integers(0, 256, 16, dtype=np.uint8).tobytes()
    return bytes(out)


def main():
    cases = []
    for t in (T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q4_K, T.Q6_K, T.MXFP4):
        raw = blocks(t)
        y = dequantize(np.frombuffer(raw, dtype=np.uint8), t).astype(np.float32).ravel()
        cases.append({"type": t.name, "type_id": int(t), "elements": int(y.size),
                      "bytes": raw.hex(), "f32_bits": y.view(np.uint32).tolist()})
    json.dump({"producer": "gguf-py (llama.cpp) gguf.quants.dequantize",
               "version": getattr(gguf, "__version__", None) or __import__("importlib.metadata").metadata.version("gguf"),
               "cases": cases}, sys.stdout, indent=None)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
