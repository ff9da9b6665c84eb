#!/usr/bin/env python3
"""Interop check of `mxq import` against transformers (run where PyTorch and transformers exist).

1. Builds a tiny random Llama in transformers' layout (weights rounded to BF16, GQA, untied head)
   and saves it as a Hugging Face checkpoint: the reference.
2. Writes the same weights as a GGUF the way llama.cpp's converter does (gguf-py's writer; q_proj and
   k_proj rows permuted per head from rotate-half to interleaved pairs; a tiny byte-level BPE vocab).
3. Runs `mxq import` on that GGUF and loads the result with transformers.
4. The two models must produce identical logits (the BF16 weights survive GGUF F32 exactly), and the
   imported tokenizer must load and round-trip text.

Usage: check_gguf_import.py MXQ_BINARY WORKDIR
"""
import json
import os
import subprocess
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
import gguf

mxq, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
torch.manual_seed(0)

rope_theta = 10000.0
cfg = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                  rms_norm_eps=1e-5, rope_theta=rope_theta, tie_word_embeddings=False,
                  bos_token_id=1, eos_token_id=2)
ref = LlamaForCausalLM(cfg).eval()
with torch.no_grad():
    for p in ref.parameters():  # random, BF16-representable, norms away from 1
        p.copy_((torch.randn_like(p) * 0.2 + (1.0 if p.dim() == 1 else 0.0)).to(torch.bfloat16).float())
ref_dir = os.path.join(work, "ref")
ref.save_pretrained(ref_dir)

# --- GGUF, as llama.cpp's convert_hf_to_gguf writes a llama model -------------------------------
def permute(w, n_head):
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
         "lm_head.weight": "output.weight"}
layer = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
         "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
         "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
         "mlp.down_proj": "ffn_down"}
w = gguf.GGUFWriter(os.path.join(work, "tiny.gguf"), "llama")
w.add_name("tiny-llama")
w.add_context_length(cfg.max_position_embeddings)
w.add_embedding_length(cfg.hidden_size)
w.add_feed_forward_length(cfg.intermediate_size)
w.add_block_count(cfg.num_hidden_layers)
w.add_head_count(cfg.num_attention_heads)
w.add_head_count_kv(cfg.num_key_value_heads)
w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
w.add_rope_freq_base(rope_theta)
# A byte-level BPE vocabulary: 3 control tokens, the 256 byte symbols, a few merges.
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
byte_sym = [chr(c) for _, c in sorted(zip(bs, cs))]
merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "o n", "Ġ s", "r e", "a t"]
tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + byte_sym
for m in merges:
    tokens.append(m.replace(" ", ""))
tokens += [f"<unused{i}>" for i in range(cfg.vocab_size - len(tokens))]
w.add_tokenizer_model("gpt2")
w.add_tokenizer_pre("gpt-2")
w.add_token_list(tokens)
w.add_token_types([3, 3, 3] + [1] * (len(tokens) - 3))
w.add_token_merges(merges)
w.add_bos_token_id(1)
w.add_eos_token_id(2)
w.add_unk_token_id(0)
for name, t in ref.state_dict().items():
    a = t.float().numpy()
    if name in names:
        g = names[name]
    else:
        i = name.split(".")[2]
        key = ".".join(name.split(".")[3:-1])
        g = f"blk.{i}.{layer[key]}.weight"
        if key == "self_attn.q_proj":
            a = permute(a, cfg.num_attention_heads)
        if key == "self_attn.k_proj":
            a = permute(a, cfg.num_key_value_heads)
    w.add_tensor(g, np.ascontiguousarray(a, dtype=np.float32))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()

# --- mxq import, then transformers on both ----------------------------------------------------
out = os.path.join(work, "imported")
subprocess.run([mxq, "import", os.path.join(work, "tiny.gguf"), "-o", out, "--force"], check=True)
imp = AutoModelForCausalLM.from_pretrained(out, torch_dtype=torch.float32).eval()
ids = torch.randint(3, cfg.vocab_size, (2, 33))
with torch.no_grad():
    a = ref(ids).logits
    b = imp(ids).logits
diff = (a - b).abs().max().item()
print(f"logits: max |ref - imported| = {diff:.3e} over {a.numel()} values (max |ref| {a.abs().max().item():.3f})")
sd_ref, sd_imp = ref.state_dict(), imp.state_dict()
mismatch = [k for k in sd_ref if not torch.equal(sd_ref[k], sd_imp[k].to(sd_ref[k].dtype))]
print("tensors differing:", mismatch or "none")
tok = AutoTokenizer.from_pretrained(out)
text = "the cat sat on the mat"
enc = tok(text)["input_ids"]
print("tokenizer:", type(tok).__name__, enc[:12], "round trip:", tok.decode(enc) == text)
ok = diff == 0.0 and not mismatch and tok.decode(enc) == text
print("RESULT", "PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
