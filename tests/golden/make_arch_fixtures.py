#!/usr/bin/env python3
"""Tiny random checkpoints of the other architectures the runtime runs, and their golden logits.

Writes, with transformers (float32 compute, BF16 weights saved):
  tests/fixtures/tiny_qwen2_bf16/        Qwen2ForCausalLM: q/k/v bias (random, not the zero init)
  tests/fixtures/tiny_qwen3_bf16/        Qwen3ForCausalLM: per-head q/k RMSNorm, tied embeddings
  tests/fixtures/tiny_llama3_rope_bf16/  LlamaForCausalLM with rope_type "llama3" (factor 8,
                                         original_max_position_embeddings 32, so the short prompts
                                         cross the high / interpolated / low frequency bands)
and tests/golden/tiny_arch_logits.json: for each, every position's logits of two prompts and the
8-token greedy continuation, computed from the saved BF16 weights widened to float32.

    python3 tests/golden/make_arch_fixtures.py
"""
import json
import os
import platform

import torch
import transformers
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config, Qwen3Config

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")
PROMPTS = [[1, 5, 99, 17, 64, 3, 120, 42, 7, 88], [2, 100, 100, 31]]
NEW_TOKENS = 8
COMMON = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=64,
              rms_norm_eps=1e-6, initializer_range=0.1)


def configs():
    yield "tiny_qwen2_bf16", Qwen2Config(**COMMON, tie_word_embeddings=False,
                                         rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
    yield "tiny_qwen3_bf16", Qwen3Config(**COMMON, tie_word_embeddings=True,
                                         rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
    yield "tiny_llama3_rope_bf16", LlamaConfig(
        **COMMON, tie_word_embeddings=False,
        rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 32})


def main():
    out = {"versions": {"python": platform.python_version(), "torch": torch.__version__,
                        "transformers": transformers.__version__}, "models": {}}
    for i, (name, cfg) in enumerate(configs()):
        torch.manual_seed(20251126 + i)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if pname.endswith("bias"):
                    p.copy_(0.1 * torch.randn_like(p))
                elif "norm" in pname:
                    p.copy_(1.0 + 0.1 * torch.randn_like(p))
        d = os.path.join(FIXTURES, name)
        model.to(torch.bfloat16).save_pretrained(d)
        gen = os.path.join(d, "generation_config.json")
        if os.path.exists(gen):
            os.remove(gen)
        m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
        cases = []
        with torch.no_grad():
            for ids in PROMPTS:
                logits = m(torch.tensor([ids])).logits[0].float()
                seq = list(ids)
                for _ in range(NEW_TOKENS):
                    seq.append(int(m(torch.tensor([seq])).logits[0, -1].argmax()))
                cases.append({"tokens": ids, "logits": logits.tolist(), "greedy": seq[len(ids):]})
        out["models"][name] = {"architecture": cfg.architectures[0] if cfg.architectures else type(m).__name__,
                               "cases": cases}
        print(name, type(m).__name__, [c["greedy"] for c in cases])
    with open(os.path.join(HERE, "tiny_arch_logits.json"), "w") as f:
        json.dump(out, f)
        f.write("\n")


if __name__ == "__main__":
    main()
