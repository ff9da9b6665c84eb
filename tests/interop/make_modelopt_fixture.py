#!/usr/bin/env python3
"""Interop fixtures for tests/test_interop_modelopt.cpp: a tiny random-weight Llama and what NVIDIA
ModelOpt's unified Hugging Face exporter makes of it under its MXFP4 presets.

  tiny_llama_bf16/                    transformers' save_pretrained of the random model (BF16)
  modelopt_tiny_llama_<cfg>/          mtq.quantize(model, mtq.<CFG>, forward_loop) then
                                      modelopt.torch.export.export_hf_checkpoint(model, export_dir=...)
      <cfg> in mxfp4_default (MXFP4_DEFAULT_CFG), w4a8_mxfp4_fp8 (W4A8_MXFP4_FP8_CFG),
               mxfp4_mlp_weight_only (MXFP4_MLP_WEIGHT_ONLY_CFG)

Each fixture keeps only config.json, hf_quant_config.json (exports) and model.safetensors. Every
export starts from a fresh load of tiny_llama_bf16, so all of them quantize the same BF16 bytes. An
export that fails is recorded in fixture_run.json with its traceback; nothing is made up for it.

Usage (GPU machine, ModelOpt wheels on PYTHONPATH):
  python3 tests/interop/make_modelopt_fixture.py --out DIR [--tar]
--tar also packs each fixture directory into DIR/<name>.tar (the device tool returns files only).
"""
import argparse
import json
import os
import platform
import shutil
import sys
import tarfile
import traceback

SEED = 20251126
CONFIG = dict(vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
              tie_word_embeddings=False, rms_norm_eps=1e-5)
PRESETS = [("mxfp4_default", "MXFP4_DEFAULT_CFG"),
           ("w4a8_mxfp4_fp8", "W4A8_MXFP4_FP8_CFG"),
           ("mxfp4_mlp_weight_only", "MXFP4_MLP_WEIGHT_ONLY_CFG")]
KEEP = {"config.json", "hf_quant_config.json", "model.safetensors"}


def err_text(e):
    return f"{type(e).__name__}: {e}"


def prune(d):
    """Keeps only the fixture files; returns what was dropped."""
    dropped = []
    for name in sorted(os.listdir(d)):
        if name not in KEEP:
            p = os.path.join(d, name)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
            dropped.append(name)
    return dropped


def describe(d):
    """Tensor names, dtypes and shapes of a fixture's model.safetensors (safetensors' own reader)."""
    from safetensors import safe_open
    out = {}
    with safe_open(os.path.join(d, "model.safetensors"), framework="pt") as f:
        for k in sorted(f.keys()):
            s = f.get_slice(k)
            out[k] = [str(s.get_dtype()), list(s.get_shape())]
    return out


def make_bf16(out_dir, device):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(SEED)
    cfg = LlamaConfig(**CONFIG)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    # transformers initialises norms to exactly 1: give them random values so that an exporter
    # which touched them would show.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p, dtype=torch.float32).to(p.dtype))
    model.save_pretrained(out_dir)
    return prune(out_dir)


def load_bf16(bf16_dir, device):
    import torch
    from transformers import LlamaForCausalLM
    try:
        m = LlamaForCausalLM.from_pretrained(bf16_dir, dtype=torch.bfloat16)
    except TypeError:
        m = LlamaForCausalLM.from_pretrained(bf16_dir, torch_dtype=torch.bfloat16)
    return m.to(device).eval()


def export_one(bf16_dir, cfg_name, out_dir, device):
    import torch
    import modelopt.torch.quantization as mtq
    from modelopt.torch.export import export_hf_checkpoint
    model = load_bf16(bf16_dir, device)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(SEED + 1)
    batches = [torch.randint(0, CONFIG["vocab_size"], (4, 32), generator=g) for _ in range(4)]

    def forward_loop(m):
        with torch.no_grad():
            for b in batches:
                m(input_ids=b.to(device))

    model = mtq.quantize(model, getattr(mtq, cfg_name), forward_loop)
    info = {"quantizers": {}}
    for name, mod in model.named_modules():
        if type(mod).__name__ == "TensorQuantizer" and getattr(mod, "is_enabled", False):
            try:
                amax = getattr(mod, "_amax", None)
                info["quantizers"][name] = dict(
                    num_bits=str(mod.num_bits), block_sizes=str(getattr(mod, "block_sizes", None)),
                    amax=None if amax is None else amax.float().reshape(-1)[:4].tolist())
            except Exception as e:  # a description only; never fatal
                info["quantizers"][name] = dict(error=err_text(e))
    after = model.state_dict()
    info["weights_changed_by_quantize"] = sorted(
        k for k, v in before.items() if k in after and not torch.equal(v, after[k]))
    export_hf_checkpoint(model, export_dir=out_dir)
    info["exported_files"] = sorted(os.listdir(out_dir))
    info["dropped"] = prune(out_dir)
    return info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tar", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    import torch
    import transformers
    meta = dict(generator="tests/interop/make_modelopt_fixture.py", seed=SEED, config=CONFIG,
                python=sys.version.split()[0], platform=platform.platform(),
                torch=torch.__version__, transformers=transformers.__version__, fixtures={})
    try:
        import modelopt
        meta["modelopt"] = modelopt.__version__
    except Exception as e:
        meta["modelopt"] = "import failed: " + err_text(e)
    try:
        import safetensors
        meta["safetensors"] = safetensors.__version__
    except Exception:
        pass
    device = "cuda" if torch.cuda.is_available() else "cpu"
    meta["device"] = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"

    dirs = []
    bf16_dir = os.path.join(a.out, "tiny_llama_bf16")
    meta["fixtures"]["tiny_llama_bf16"] = dict(dropped=make_bf16(bf16_dir, device),
                                               tensors=describe(bf16_dir))
    dirs.append(bf16_dir)
    for short, cfg_name in PRESETS:
        name = f"modelopt_tiny_llama_{short}"
        d = os.path.join(a.out, name)
        rec = dict(preset=cfg_name)
        try:
            rec.update(export_one(bf16_dir, cfg_name, d, device))
            rec["tensors"] = describe(d)
            for f in ("hf_quant_config.json", "config.json"):
                with open(os.path.join(d, f)) as fh:
                    j = json.load(fh)
                rec[f] = j if f == "hf_quant_config.json" else j.get("quantization_config")
            rec["ok"] = True
            dirs.append(d)
        except Exception as e:
            rec["ok"] = False
            rec["error"] = err_text(e)
            rec["traceback"] = traceback.format_exc()[-4000:]
            shutil.rmtree(d, ignore_errors=True)
            print(f"{name}: FAILED {err_text(e)}", flush=True)
        meta["fixtures"][name] = rec
        print(name, "ok" if rec["ok"] else "failed", flush=True)

    with open(os.path.join(a.out, "fixture_run.json"), "w") as f:
        json.dump(meta, f, indent=1)
    if a.tar:
        for d in dirs:
            with tarfile.open(d + ".tar", "w") as t:
                t.add(d, arcname=os.path.basename(d))
    for k, v in meta["fixtures"].items():
        print(k, {f: os.path.getsize(os.path.join(a.out, k, f)) for f in sorted(os.listdir(os.path.join(a.out, k)))}
              if os.path.isdir(os.path.join(a.out, k)) else v.get("error"))


if __name__ == "__main__":
    main()
