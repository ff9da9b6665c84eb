#!/usr/bin/env python3
"""Golden logits of tests/fixtures/tiny_llama_bf16 from transformers, for tests/test_runtime_model.cpp.

Loads the fixture in float32 (the BF16 weights widen exactly), runs two fixed prompts (token ids) with
eager attention, and writes every position's logits plus the 8-token greedy continuation of each
prompt to tests/golden/tiny_llama_logits.json.

    python3 tests/golden/make_logits_golden.py [--fixture DIR] [--out FILE]
"""
import argparse
import json
import os
import platform

import torch
import transformers
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
PROMPTS = [
    [1, 17, 42, 200, 5, 99, 128, 255, 3, 64, 31, 7],
    [1, 250, 2, 0, 77, 77, 77, 160],
]
NEW_TOKENS = 8


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", default=os.path.join(HERE, "..", "fixtures", "tiny_llama_bf16"))
    ap.add_argument("--out", default=os.path.join(HERE, "tiny_llama_logits.json"))
    args = ap.parse_args()

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(args.fixture, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    cases = []
    with torch.no_grad():
        for ids in PROMPTS:
            x = torch.tensor([ids], dtype=torch.long)
            logits = model(x).logits[0].float()
            # Greedy continuation by a full forward per step (no cache), argmax of the last row.
            seq = list(ids)
            for _ in range(NEW_TOKENS):
                nxt = int(model(torch.tensor([seq])).logits[0, -1].argmax())
                seq.append(nxt)
            cases.append({"tokens": ids, "logits": logits.tolist(), "greedy": seq[len(ids):]})
    out = {
        "fixture": "tests/fixtures/tiny_llama_bf16",
        "dtype": "float32",
        "attn_implementation": "eager",
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__},
        "cases": cases,
    }
    with open(args.out, "w") as f:
        json.dump(out, f)
        f.write("\n")
    print(f"wrote {args.out}: {len(cases)} prompts, greedy {[c['greedy'] for c in cases]}")


if __name__ == "__main__":
    main()
