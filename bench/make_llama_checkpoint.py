#!/usr/bin/env python3
"""Writes a random BF16 checkpoint with Llama-3-8B's tensor shapes (hidden 4096, MLP 14336, 32 query /
8 key-value heads, vocab 128256) and a chosen number of layers, for quantizer benchmarks.

Usage: make_llama_checkpoint.py OUT_DIR [--layers N]     (needs numpy; writes about 0.44 GB a layer
plus 2.1 GB of embeddings and LM head). Weights are N(0, 0.02) rounded to BF16; norms are 1.
"""
import argparse
import json
import os
import struct

import numpy as np

H, I, V, HEADS, KV, HD = 4096, 14336, 128256, 32, 8, 128


def shapes(layers):
    yield "model.embed_tokens.weight", (V, H)
    for i in range(layers):
        p = f"model.layers.{i}."
        yield p + "input_layernorm.weight", (H,)
        yield p + "self_attn.q_proj.weight", (HEADS * HD, H)
        yield p + "self_attn.k_proj.weight", (KV * HD, H)
        yield p + "self_attn.v_proj.weight", (KV * HD, H)
        yield p + "self_attn.o_proj.weight", (H, HEADS * HD)
        yield p + "post_attention_layernorm.weight", (H,)
        yield p + "mlp.gate_proj.weight", (I, H)
        yield p + "mlp.up_proj.weight", (I, H)
        yield p + "mlp.down_proj.weight", (H, I)
    yield "model.norm.weight", (H,)
    yield "lm_head.weight", (V, H)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=4)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    specs = list(shapes(a.layers))
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in specs:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    rng = np.random.default_rng(0)
    with open(os.path.join(a.out, "model.safetensors.tmp"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name, shape in specs:
            n = int(np.prod(shape))
            for start in range(0, n, 1 << 24):  # 16 M elements at a time: bounded memory
                m = min(1 << 24, n - start)
                x = np.ones(m, np.float32) if len(shape) == 1 else rng.standard_normal(m, np.float32) * 0.02
                f.write((x.view(np.uint32) >> 16).astype(np.uint16).tobytes())
    os.replace(os.path.join(a.out, "model.safetensors.tmp"), os.path.join(a.out, "model.safetensors"))
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H, "intermediate_size": I,
           "num_hidden_layers": a.layers, "num_attention_heads": HEADS, "num_key_value_heads": KV, "vocab_size": V,
           "torch_dtype": "bfloat16"}
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    print(f"{a.out}: {a.layers} layers, {off / 1e9:.2f} GB BF16")


if __name__ == "__main__":
    main()
