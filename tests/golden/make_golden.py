#!/usr/bin/env python3
"""Cross-implementation golden vectors for mxq's numerics (tests/test_golden_crossimpl.cpp).

Builds deterministic float32 inputs (fixed seeds, stored as hex bit patterns so nothing is lost),
runs each real implementation that can be imported on them and writes what it produced:

  ml_dtypes_casts.json  ml_dtypes: float32 -> float4_e2m1fn / float8_e8m0fnu / float8_e4m3fn /
                        float8_e5m2 / bfloat16 / float16 casts, and decodes of the codes
  torch_casts.json      PyTorch's own dtypes (same casts, on CPU and CUDA), float4_e2m1fn_x2 probes
  modelopt_mxfp4.json   ModelOpt MXFP4QTensor.quantize (the exporter), on CPU and CUDA
  modelopt_nvfp4.json   ModelOpt NVFP4QTensor.quantize, on CPU and CUDA
  torchao_mx.json       torchao.prototype.mx_formats.mx_tensor.to_mx with ScaleCalculationMode
                        FLOOR / CEIL / EVEN / RCEIL, E2M1 and E4M3 elements, on CPU and CUDA

A producer that cannot be imported or fails is recorded with the reason (never with made-up output);
its file is written only when it ran. Hex strings concatenate fixed-width big-endian values:
8 characters per float32 bit pattern, 4 per 16-bit code, 2 per byte. Results are kept per device;
a CPU entry that equals the CUDA entry byte for byte is written as {"identical_to": "cuda"}.

Usage: python3 tests/golden/make_golden.py --out DIR
"""
import argparse
import json
import os
import platform
import sys
import traceback

import numpy as np

SEED = 20251125
BLOCK = 32
FLT_MAX_BITS = 0x7F7FFFFF


# ------------------------------------------------------------------------------------------------
# bit helpers
# ------------------------------------------------------------------------------------------------

def f32(bits):
    return np.array(bits, dtype=np.uint32).view(np.float32)


def bits32(x):
    return np.asarray(x, dtype=np.float32).view(np.uint32)


def hex_u32(a):
    return np.asarray(a, dtype=np.uint32).astype(">u4").tobytes().hex()


def hex_u16(a):
    return np.asarray(a, dtype=np.uint16).astype(">u2").tobytes().hex()


def hex_u8(a):
    return np.asarray(a, dtype=np.uint8).tobytes().hex()


def round_to_bf16(x):
    """float32 array -> nearest bf16-representable float32 (RNE), finite inputs only."""
    b = bits32(x).astype(np.uint64)
    r = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16
    return f32(r.astype(np.uint32))


def pow2(k):
    return float(np.ldexp(np.float64(1.0), int(k)))


# ------------------------------------------------------------------------------------------------
# inputs: MX blocks
# ------------------------------------------------------------------------------------------------

MIDPOINTS = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0]


def pattern_block(top, k):
    """A block whose largest magnitude is `top` (float32) and whose other elements sit on the
    quarter grid of 2^k (ties at every scale rule) - deterministic."""
    v = np.zeros(BLOCK, dtype=np.float64)
    for i in range(1, BLOCK):
        v[i] = (((i * 7) % 13) - 6) / 4.0 * pow2(k)
    out = v.astype(np.float32)
    out[0] = top
    # keep |others| <= |top| so that top stays the block maximum
    lim = abs(float(top))
    out[1:] = np.where(np.abs(out[1:]) > lim, np.float32(0.0), out[1:])
    return out


def make_mx_cases():
    rng = np.random.default_rng(SEED)
    cases = []

    # (a) gaussian blocks, per-block magnitudes over many binades, general float32
    n = 192
    e = rng.integers(-60, 61, size=n)
    g = rng.standard_normal((n, BLOCK)) * np.ldexp(1.0, e)[:, None]
    cases.append(dict(name="gauss_fp32", dtype="float32", x=g.astype(np.float32)))

    # (b) bf16-representable: the same kind of data rounded to bf16 (fed to producers as bf16)
    e = rng.integers(-60, 61, size=n)
    g = rng.standard_normal((n, BLOCK)) * np.ldexp(1.0, e)[:, None]
    cases.append(dict(name="gauss_bf16", dtype="bfloat16", x=round_to_bf16(g.astype(np.float32))))

    # (b') bf16 values on a quarter grid of 2^e: E2M1 ties under every scale rule
    e = rng.integers(-100, 101, size=n)
    q = rng.integers(-24, 25, size=(n, BLOCK)).astype(np.float64) * 0.25
    tops = np.array([6.0, 7.0, 5.0, 4.0, 3.5, 7.5, 6.5, 5.5, 3.0, 1.75])
    q[np.arange(n), rng.integers(0, BLOCK, size=n)] = tops[rng.integers(0, len(tops), size=n)] * \
        rng.choice([-1.0, 1.0], size=n)
    grid = (q * np.ldexp(1.0, e)[:, None]).astype(np.float32)
    assert np.array_equal(round_to_bf16(grid), grid)
    cases.append(dict(name="grid_bf16", dtype="bfloat16", x=grid))

    # (c) hand-made blocks, each with a label
    blocks, labels = [], []

    def add(label, vals):
        b = np.zeros(BLOCK, dtype=np.float32)
        vals = np.asarray(vals, dtype=np.float32)
        b[: len(vals)] = vals
        blocks.append(b)
        labels.append(label)

    # numerics.md section 10 vectors (finite ones)
    add("V01 zeros", [])
    add("V02", [1.0])
    add("V03", [6.0, -1.0, 0.5])
    add("V04", [3.0, -1.5, 0.75, 0.1])
    add("V05", [7.0, 1.0])
    add("V06", [4.0, 2.5, -2.5, 3.5])
    add("V07", [6.0] + MIDPOINTS + [-m for m in MIDPOINTS])
    add("V08", [(i - 16) / 4.0 for i in range(32)])
    add("V09", [i / 4.0 for i in range(32)])
    add("V10", [6.0, -0.0, -0.1, 0.1, -0.2])
    add("V13", [1e-40] * 32)
    add("V14", [pow2(-126), pow2(-127)])
    add("V15", [f32(FLT_MAX_BITS), 1.0e38, -2.0e38])
    add("V16", [f32(0x40FFFFFF), 1.0])
    add("V17", [3.0001, 1.0])
    add("V18", [3.5, 1.0])
    add("V19", [-6.0, 1.0, -0.5])
    add("V20", [0.0390625, -0.01171875, 0.0048828125, -0.025390625, 0.0009765625, 0.017578125])

    # all E2M1 midpoints x 2^k with block max 6·2^k, 5·2^k, 7·2^k, 4·2^k
    ks = [-147, -140, -135, -130, -129, -128, -127, -126, -125, -124, -100, -64, -20, -3, -1, 0, 1,
          2, 3, 10, 40, 64, 100, 120, 124, 125]
    for k in ks:
        for top in (6.0, 5.0, 7.0, 4.0):
            if top * pow2(k) >= 2.0 ** 128 or 0.25 * pow2(k) < 2.0 ** -149:
                continue
            vals = [top * pow2(k)] + [m * pow2(k) for m in MIDPOINTS] + \
                [-m * pow2(k) for m in MIDPOINTS] + [m * pow2(k + 1) for m in MIDPOINTS if m * 2 < top] + \
                [-m * pow2(k - 1) for m in MIDPOINTS]
            vals = [v for v in vals if float(np.float32(v)) == v][:32]  # exact float32 only
            add(f"midpoints top={top}*2^{k}", vals)

    # block maxima by significand: <= 1.5, in (1.5, 1.75), >= 1.75 (and 1 ulp around the edges)
    one_ulp = 2.0 ** -23
    sigs = [("1", 1.0), ("1.25", 1.25), ("1.5-ulp", 1.5 - one_ulp), ("1.5", 1.5),
            ("1.5+ulp", 1.5 + one_ulp), ("1.625", 1.625), ("1.75-ulp", 1.75 - one_ulp),
            ("1.75", 1.75), ("1.75+ulp", 1.75 + one_ulp), ("1.875", 1.875), ("1.9375-ulp", 1.9375 - one_ulp),
            ("1.9375", 1.9375), ("2-ulp", 2.0 - one_ulp)]
    for k in (-149, -130, -127, -126, -125, -20, -1, 0, 2, 3, 50, 125, 126, 127):
        for sname, s in sigs:
            v = s * pow2(k)
            if v >= 2.0 ** 128:
                continue
            top = np.float32(v)
            if float(top) != v:  # subnormal: not representable with this significand
                continue
            sign = -1.0 if (len(blocks) % 3 == 0) else 1.0
            add(f"amax sig={sname} 2^{k}", pattern_block(np.float32(sign * v), k - 2))

    # ModelOpt log2f pitfall: amax = next floats above 6·2^k (amax/6 a few ulps above 2^k), and below
    for k in range(-126, 126, 7):
        base = int(bits32(np.float32(6.0 * pow2(k))))
        for j in (1, 2, 3, 6, 16):
            add(f"6*2^{k} +{j}ulp", pattern_block(f32(base + j), k - 1))
        add(f"6*2^{k} -1ulp", pattern_block(f32(base - 1), k - 1))

    # zeros and signs of zero
    add("all +0", [])
    add("all -0", [-0.0] * 32)
    add("mixed +-0", [0.0, -0.0] * 16)
    add("-0 and 1.0", [-0.0, 1.0, -0.0, 0.0])
    add("min subnormal only", [pow2(-149)])
    add("-min subnormal and -0", [-pow2(-149), -0.0])

    # subnormal inputs
    add("subnormals 2^-149..2^-127", [pow2(-149 + i) for i in range(23)] + [-pow2(-140), -0.0])
    add("subnormal amax 0x7FFFFF", [f32(0x007FFFFF), f32(0x00400000), f32(0x00200000),
                                   -f32(0x00300000), f32(0x00000001)])
    add("1e-40 and tiny", [1e-40, -5e-41, 3e-42, 1e-45])
    add("6*2^-127 with midpoints", [6.0 * pow2(-127)] + [m * pow2(-127) for m in MIDPOINTS])
    add("6*2^-128 with midpoints", [6.0 * pow2(-128)] + [m * pow2(-128) for m in MIDPOINTS])
    add("7*2^-127", [7.0 * pow2(-127), 3.5 * pow2(-127), 1.75 * pow2(-127)])
    add("2^-126 amax", [pow2(-126), pow2(-127), pow2(-128), 0.75 * pow2(-127)])

    # near FLT_MAX
    add("FLT_MAX x32", [f32(FLT_MAX_BITS)] * 32)
    add("+-FLT_MAX mixed", [f32(FLT_MAX_BITS), -f32(FLT_MAX_BITS), pow2(127), 1.5 * pow2(127),
                           1.75 * pow2(127), -1.25 * pow2(127), 3.0 * pow2(125), 2.5 * pow2(125)])
    add("1.5*2^127", [1.5 * pow2(127), 1.0 * pow2(126), 0.75 * pow2(126)])
    add("1.75*2^127-ulp", [f32(0x7F5FFFFF), 1.0e38])
    add("6*2^125", [6.0 * pow2(125), 5.0 * pow2(125), 3.5 * pow2(125), -2.5 * pow2(125)])

    hand = np.stack(blocks).astype(np.float32)
    assert np.all(np.isfinite(hand))
    cases.append(dict(name="handmade", dtype="float32", x=hand, labels=labels))

    # (d) non-finite blocks (mxq: NonFinite::nan_scale gives 0xFF and zero codes)
    nf, nfl = [], []

    def addnf(label, vals):
        b = np.zeros(BLOCK, dtype=np.float32)
        b[: len(vals)] = np.asarray(vals, dtype=np.float32)
        nf.append(b)
        nfl.append(label)

    inf, nan = np.float32(np.inf), np.float32(np.nan)
    addnf("V11 +Inf,1", [inf, 1.0])
    addnf("V12 NaN,1", [nan, 1.0])
    addnf("-Inf", [-inf, 2.0, -3.0])
    addnf("+Inf,-Inf", [inf, -inf])
    addnf("NaN x32", [nan] * 32)
    addnf("NaN last", [1.0, 2.0, 3.0] + [0.5] * 28 + [nan])
    addnf("Inf,NaN", [inf, nan, 1.0])
    addnf("Inf, FLT_MAX", [inf, f32(FLT_MAX_BITS)])
    cases.append(dict(name="nonfinite", dtype="float32", x=np.stack(nf), labels=nfl))
    return cases


# ------------------------------------------------------------------------------------------------
# inputs: element casts sweep
# ------------------------------------------------------------------------------------------------

def minifloat_values(ebits, mbits, bias, top_code):
    """All non-negative finite values of a small float type with magnitude codes 0..top_code."""
    vals = []
    for c in range(top_code + 1):
        field, man = c >> mbits, c & ((1 << mbits) - 1)
        if field == 0:
            vals.append(man * pow2(1 - bias - mbits))
        else:
            vals.append((1.0 + man / (1 << mbits)) * pow2(field - bias))
    return vals


def neighbours(v):
    """v as float32 (if exact or not: its float32 rounding) and the floats 1 ulp either side."""
    b = int(bits32(np.float32(v)))
    out = [b]
    if b > 0:
        out.append(b - 1)
    if b < 0x7F800000:
        out.append(b + 1)
    return out


def sweep_for(vals, above_max):
    """Representable values, midpoints between consecutive ones, each +-1 float32 ulp."""
    out = set()
    vals = sorted(set(vals))
    for v in vals:
        out.update(neighbours(v))
    for a, b in zip(vals, vals[1:]):
        out.update(neighbours((a + b) / 2.0))
    for v in above_max:
        if v < 2.0 ** 128:
            out.update(neighbours(v))
    return out


def make_cast_sweep():
    """float32 bit patterns: every value, midpoint and +-1 ulp that decides a cast of each type."""
    rng = np.random.default_rng(SEED + 1)
    s = set()   # magnitudes that are also swept negated
    s1 = set()  # magnitudes swept positive only (the bulk of E8M0 and the random patterns)
    # E2M1
    e2m1 = minifloat_values(2, 1, 1, 7)
    s |= sweep_for(e2m1, [7.0, 8.0, 12.0])
    # E4M3FN (max 448; 464 is the midpoint to the NaN slot; 480 the next)
    e4m3 = minifloat_values(4, 3, 7, 0x7E)
    s |= sweep_for(e4m3, [464.0, 480.0, 496.0, 512.0, 1e4])
    # E5M2 (max 57344; 61440 midpoint to Inf)
    e5m2 = minifloat_values(5, 2, 15, 0x7B)
    s |= sweep_for(e5m2, [61440.0, 65536.0, 1e6])
    # FP16 / BF16: a few mantissas in the bottom, middle and top binades, and some random codes
    fp16_codes = [c for c in range(0x7C00)
                  if (c >> 10) in (0, 1, 15, 30) and (c & 0x3FF) in (0, 1, 2, 0x200, 0x3FE, 0x3FF)]
    fp16_codes += list(rng.integers(0, 0x7C00, size=48))
    fp16 = sorted(set(float(np.uint16(c).view(np.float16)) for c in fp16_codes))
    s |= sweep_for(fp16, [65504.0 + 8.0, 65520.0, 65536.0, 1e5])
    bf16_codes = [c for c in range(0x7F80)
                  if (c >> 7) in (0, 1, 127, 254) and (c & 0x7F) in (0, 1, 2, 0x40, 0x7E, 0x7F)]
    bf16_codes += list(rng.integers(0, 0x7F80, size=48))
    bf16 = sorted(set(float(f32(np.uint32(c) << 16)) for c in bf16_codes))
    s |= sweep_for(bf16, [])
    s.update(neighbours(float(f32(0x7F7F8000))))  # midpoint between bf16 max and 2^128
    # E8M0: powers of two, 1.5·2^k (its rounding midpoint), +-1 ulp, every exponent
    for k in range(-149, 128):
        s1.update(neighbours(pow2(k)))
        v = 1.5 * pow2(k)
        if 2.0 ** -149 <= v < 2.0 ** 128:
            s1.update(neighbours(v))
    s.update([int(bits32(np.float32(1.5 * pow2(k)))) for k in (-128, -127, -126, -1, 0, 126, 127)])
    s.update([FLT_MAX_BITS, 0, 1, 2, 3, 0x00400000, 0x00600000, 0x007FFFFF, 0x00800000,
              int(bits32(np.float32(1e-40)))])
    # random finite float32 patterns
    s1.update(int(v) for v in rng.integers(0, 0x7F800000, size=256, dtype=np.uint64))
    mags = sorted(b for b in s | s1 if b < 0x7F800000)
    neg = sorted(b | 0x80000000 for b in s if b < 0x7F800000)
    bits = mags + neg
    # Inf and NaNs (quiet, signalling, with payloads, negative)
    bits += [0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FA00000,
             0x7FFFFFFF, 0xFFFFFFFF, 0x7FC00001, 0xFF800001]
    return np.array(bits, dtype=np.uint32)


# ------------------------------------------------------------------------------------------------
# producers
# ------------------------------------------------------------------------------------------------

def err_text(e):
    return f"{type(e).__name__}: {e}"


def cases_json(cases):
    out = []
    for c in cases:
        d = dict(name=c["name"], dtype=c["dtype"], n_blocks=int(c["x"].shape[0]),
                 inputs_hex=hex_u32(bits32(c["x"]).reshape(-1)))
        if "labels" in c:
            d["labels"] = c["labels"]
        out.append(d)
    return out


def run_ml_dtypes(sweep):
    import ml_dtypes
    x = f32(sweep)
    types = [("e2m1", "float4_e2m1fn", 16), ("e8m0", "float8_e8m0fnu", 256),
             ("e4m3fn", "float8_e4m3fn", 256), ("e5m2", "float8_e5m2", 256),
             ("bf16", "bfloat16", 65536), ("fp16", None, 65536)]
    res = dict(producer="ml_dtypes", version=ml_dtypes.__version__, numpy=np.__version__,
               inputs_hex=hex_u32(sweep), n=int(len(sweep)), casts={}, decodes={})
    for key, name, ncodes in types:
        t = np.float16 if name is None else getattr(ml_dtypes, name)
        label = "numpy.float16" if name is None else "ml_dtypes." + name
        with np.errstate(all="ignore"):
            y = x.astype(t)
        if ncodes == 65536:
            res["casts"][key] = dict(type=label, hex=hex_u16(y.view(np.uint16)))
            codes = decode_codes_16()
            dec = np.asarray(codes, dtype=np.uint16).view(t).astype(np.float32)
            res["decodes"][key] = dict(type=label, codes_hex=hex_u16(codes), hex=hex_u32(bits32(dec)))
        else:
            y8 = y.view(np.uint8)
            if key == "e2m1":
                y8 = y8 & 0xF  # 4-bit type stored in a byte
            res["casts"][key] = dict(type=label, hex=hex_u8(y8))
            codes = np.arange(ncodes, dtype=np.uint8)
            dec = codes.view(t).astype(np.float32)
            res["decodes"][key] = dict(type=label, codes_hex=hex_u8(codes), hex=hex_u32(bits32(dec)))
    return res


def decode_codes_16():
    """A subset of the 16-bit codes for decode checks (all exponents, a few mantissas each)."""
    c = np.arange(65536, dtype=np.uint32)
    keep = np.isin(c & 0x7F, [0, 1, 0x2A, 0x7F])
    return c[keep].astype(np.uint16)


def torch_devices(torch):
    devs = ["cpu"]
    if torch.cuda.is_available():
        devs.append("cuda")
    return devs


def run_torch_casts(sweep):
    import torch
    res = dict(producer="torch", version=torch.__version__, inputs_hex=hex_u32(sweep),
               n=int(len(sweep)), devices={}, fp4_x2={})
    if torch.cuda.is_available():
        res["cuda_device"] = torch.cuda.get_device_name(0)
    xs = torch.from_numpy(f32(sweep).copy())
    dtypes = [("e8m0", "float8_e8m0fnu", 8), ("e4m3fn", "float8_e4m3fn", 8),
              ("e5m2", "float8_e5m2", 8), ("bf16", "bfloat16", 16), ("fp16", "float16", 16)]
    for dev in torch_devices(torch):
        dres = dict(casts={}, decodes={}, errors={})
        x = xs.to(dev)
        for key, name, nbits in dtypes:
            t = getattr(torch, name, None)
            if t is None:
                dres["errors"][key] = f"torch.{name} does not exist"
                continue
            try:
                y = x.to(t)
                if nbits == 8:
                    h = hex_u8(y.view(torch.uint8).cpu().numpy())
                else:
                    h = hex_u16(y.view(torch.int16).cpu().numpy().view(np.uint16))
                dres["casts"][key] = dict(type="torch." + name, hex=h)
            except Exception as e:  # recorded, not fatal
                dres["errors"]["cast_" + key] = err_text(e)
            try:
                if nbits == 8:
                    codes = np.arange(256, dtype=np.uint8)
                    ct = torch.from_numpy(codes.copy()).to(dev)
                    ch = hex_u8(codes)
                else:
                    codes = decode_codes_16()
                    ct = torch.from_numpy(codes.view(np.int16).copy()).to(dev)
                    ch = hex_u16(codes)
                dec = ct.view(t).to(torch.float32).cpu().numpy()
                dres["decodes"][key] = dict(type="torch." + name, codes_hex=ch,
                                            hex=hex_u32(bits32(dec)))
            except Exception as e:
                dres["errors"]["decode_" + key] = err_text(e)
        res["devices"][dev] = dres
    if "cuda" in res["devices"]:
        for part in ("casts", "decodes"):
            dedup_devices({d: res["devices"][d][part] for d in res["devices"]})

    # float4_e2m1fn_x2: what this PyTorch supports. Each device is probed in a child process: an
    # unsupported CUDA cast ends in a device-side assert, which would poison this process's CUDA
    # context for every producer after it.
    import subprocess
    fp4 = res["fp4_x2"]
    fp4["exists"] = hasattr(torch, "float4_e2m1fn_x2")
    if fp4["exists"]:
        for dev in torch_devices(torch):
            fp4[dev] = {}
            for step in ("view", "decode_to_float32", "cast_from_float32"):
                p = subprocess.run([sys.executable, os.path.abspath(__file__), "--fp4-probe", dev,
                                    step], capture_output=True, text=True, timeout=300)
                try:
                    fp4[dev][step] = json.loads(p.stdout.strip().splitlines()[-1])
                except Exception as e:
                    fp4[dev][step] = dict(error=f"probe rc={p.returncode}: {err_text(e)}",
                                          stderr=p.stderr[-600:])
    return res


def fp4_probe(dev, step):
    """--fp4-probe DEV STEP: one use of torch.float4_e2m1fn_x2 on DEV; prints one JSON line."""
    import torch
    t = torch.float4_e2m1fn_x2
    packed = torch.arange(256, dtype=torch.uint8)
    try:
        if step == "view":
            v = packed.to(dev).view(t)
            same = np.array_equal(v.view(torch.uint8).cpu().numpy(), packed.numpy())
            r = dict(result="ok", roundtrip_bytes_equal=bool(same), dtype=str(v.dtype))
        elif step == "decode_to_float32":
            out = packed.to(dev).view(t).to(torch.float32)
            r = dict(result="ok", shape=list(out.shape), hex=hex_u32(bits32(out.cpu().numpy())))
        else:
            x = torch.tensor([0.0, 0.5, 1.0, 6.0, -1.5, 2.5, 7.0, -0.0], device=dev)
            out = x.to(t)
            r = dict(result="ok", hex=hex_u8(out.view(torch.uint8).cpu().numpy()))
    except Exception as e:
        r = dict(result="unsupported", error=err_text(e).splitlines()[0])
    print(json.dumps(r))


def dedup_devices(results):
    """results[dev][key]... -> a CPU entry becomes {"identical_to": "cuda"} wherever it equals the
    CUDA entry byte for byte, at the outermost level where it does (keeps the files small; entries
    that differ stay in full)."""
    def walk(cpu, cuda):
        for key, val in cpu.items():
            other = cuda.get(key)
            if other == val:
                cpu[key] = {"identical_to": "cuda"}
            elif isinstance(val, dict) and isinstance(other, dict) and "scales_hex" not in val:
                walk(val, other)
    if "cpu" in results and "cuda" in results:
        walk(results["cpu"], results["cuda"])
    return results


def torch_input(torch, case, dev):
    t = torch.from_numpy(case["x"].copy()).to(dev)
    if case["dtype"] == "bfloat16":
        t = t.to(torch.bfloat16)
        assert torch.equal(t.float().cpu(), torch.from_numpy(case["x"]))
    return t


def import_modelopt():
    """Returns (MXFP4QTensor, NVFP4QTensor or None, how, version, notes)."""
    notes = []
    try:
        import modelopt
        from modelopt.torch.quantization.qtensor import MXFP4QTensor, NVFP4QTensor
        return MXFP4QTensor, NVFP4QTensor, "import modelopt.torch.quantization.qtensor", \
            modelopt.__version__, notes
    except Exception as e:
        notes.append("full import failed: " + err_text(e))
        notes.append(traceback.format_exc()[-2000:])
    # Fallback for the self-contained exporter only: execute the installed mxfp4_tensor.py with its
    # one relative import (the BaseQuantizedTensor container) replaced by a minimal container.
    import importlib.util
    from importlib.metadata import version
    spec = importlib.util.find_spec("modelopt")
    root = os.path.dirname(spec.origin)
    path = os.path.join(root, "torch", "quantization", "qtensor", "mxfp4_tensor.py")
    src = open(path).read()
    line = "from ..qtensor.base_qtensor import BaseQuantizedTensor"
    assert line in src
    stub = ("class BaseQuantizedTensor:\n"
            "    def __init__(self, original_shape, original_dtype, quantized_data):\n"
            "        self._quantized_data = quantized_data\n")
    ns = {"__name__": "modelopt_mxfp4_tensor_standalone"}
    exec(compile(src.replace(line, stub), path, "exec"), ns)
    return ns["MXFP4QTensor"], None, "exec of installed mxfp4_tensor.py with stub base class", \
        version("nvidia-modelopt"), notes


def run_modelopt(cases):
    import torch
    MX, NV, how, ver, notes = import_modelopt()
    common = dict(producer="nvidia-modelopt", version=ver, torch=torch.__version__, how=how,
                  notes=notes)
    if torch.cuda.is_available():
        common["cuda_device"] = torch.cuda.get_device_name(0)
    mx = dict(common, function="MXFP4QTensor.quantize(x, block_size=32) -> "
              "(qtensor._quantized_data, e8m0 scale)", cases=cases_json(cases), results={})
    for dev in torch_devices(torch):
        per = {}
        for c in cases:
            try:
                x = torch_input(torch, c, dev)
                qt, sc = MX.quantize(x, 32)
                per[c["name"]] = dict(
                    scales_hex=hex_u8(sc.reshape(-1).cpu().numpy()),
                    codes_hex=hex_u8(qt._quantized_data.reshape(-1).cpu().numpy()))
            except Exception as e:
                per[c["name"]] = dict(error=err_text(e))
        mx["results"][dev] = per
    dedup_devices(mx["results"])

    nv = None
    if NV is not None:
        nv = dict(common, function="NVFP4QTensor.quantize(x, block_size=16) -> (qtensor, "
                  "per-block E4M3 scale, per-tensor fp32 scale)",
                  modes={"per_row": "each 32-element row is its own tensor (own global amax)",
                         "whole": "the case's [n_blocks, 32] array is one tensor"},
                  cases=cases_json([c for c in cases if c["name"] != "nonfinite"]), results={})
        for dev in torch_devices(torch):
            per = {}
            for c in cases:
                if c["name"] == "nonfinite":
                    continue
                r = {}
                try:
                    x = torch_input(torch, c, dev)
                    sc_all, cd_all, s2_all = [], [], []
                    for i in range(x.shape[0]):
                        qt, sb, s2 = NV.quantize(x[i:i + 1], 16)
                        cd_all.append(qt._quantized_data.reshape(-1).cpu())
                        sc_all.append(sb.reshape(-1).view(torch.uint8).cpu())
                        s2_all.append(s2.reshape(-1).float().cpu())
                    r["per_row"] = dict(
                        scales_hex=hex_u8(torch.cat(sc_all).numpy()),
                        codes_hex=hex_u8(torch.cat(cd_all).numpy()),
                        tensor_scales_hex=hex_u32(bits32(torch.cat(s2_all).numpy())))
                    if c["name"] in ("gauss_fp32", "gauss_bf16", "grid_bf16"):
                        qt, sb, s2 = NV.quantize(x, 16)
                        r["whole"] = dict(
                            scales_hex=hex_u8(sb.reshape(-1).view(torch.uint8).cpu().numpy()),
                            codes_hex=hex_u8(qt._quantized_data.reshape(-1).cpu().numpy()),
                            tensor_scales_hex=hex_u32(bits32(s2.reshape(-1).float().cpu().numpy())))
                except Exception as e:
                    r["error"] = err_text(e) + " | " + traceback.format_exc()[-800:]
                per[c["name"]] = r
            nv["results"][dev] = per
        dedup_devices(nv["results"])
    return mx, nv


def run_torchao(cases):
    os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")
    import torch
    import torchao
    from torchao.prototype.mx_formats.config import ScaleCalculationMode
    from torchao.prototype.mx_formats.mx_tensor import to_mx
    res = dict(producer="torchao", version=getattr(torchao, "__version__", "?"),
               torch=torch.__version__,
               function="torchao.prototype.mx_formats.mx_tensor.to_mx(x, elem_dtype, 32, "
               "scaling_mode) -> (e8m0 scales, packed fp4 bytes | float8_e4m3fn codes)",
               cases=cases_json(cases), results={})
    if torch.cuda.is_available():
        res["cuda_device"] = torch.cuda.get_device_name(0)
    elems = [("fp4", torch.float4_e2m1fn_x2), ("e4m3", torch.float8_e4m3fn)]
    for dev in torch_devices(torch):
        per = {}
        for mode in ("FLOOR", "CEIL", "EVEN", "RCEIL"):
            m = getattr(ScaleCalculationMode, mode, None)
            for ename, et in elems:
                key = f"{mode}/{ename}"
                if m is None:
                    per[key] = dict(error=f"ScaleCalculationMode.{mode} does not exist")
                    continue
                pc = {}
                for c in cases:
                    try:
                        x = torch_input(torch, c, dev)
                        sc, data = to_mx(x, et, 32, scaling_mode=m)
                        pc[c["name"]] = dict(
                            scales_hex=hex_u8(sc.view(torch.uint8).reshape(-1).cpu().numpy()),
                            codes_hex=hex_u8(data.view(torch.uint8).reshape(-1).cpu().numpy()))
                    except Exception as e:
                        pc[c["name"]] = dict(error=err_text(e))
                per[key] = pc
        res["results"][dev] = per
    dedup_devices(res["results"])
    return res


# ------------------------------------------------------------------------------------------------

def write(out, name, obj):
    path = os.path.join(out, name)
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"), sort_keys=False)
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="", help="comma list of producers to run (default: all)")
    ap.add_argument("--fp4-probe", default="", help=argparse.SUPPRESS)
    if "--fp4-probe" in sys.argv:
        i = sys.argv.index("--fp4-probe")
        fp4_probe(sys.argv[i + 1], sys.argv[i + 2])
        return
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    only = set(filter(None, a.only.split(",")))

    cases = make_mx_cases()
    sweep = make_cast_sweep()
    print("mx cases:", [(c["name"], c["x"].shape[0]) for c in cases], "sweep:", len(sweep))
    meta = dict(generator="tests/golden/make_golden.py", seed=SEED, python=sys.version.split()[0],
                platform=platform.platform(), numpy=np.__version__, producers={})

    producers = [
        ("ml_dtypes", lambda: [("ml_dtypes_casts.json", run_ml_dtypes(sweep))]),
        ("torch", lambda: [("torch_casts.json", run_torch_casts(sweep))]),
        ("modelopt", lambda: (lambda r: [("modelopt_mxfp4.json", r[0])] +
                              ([("modelopt_nvfp4.json", r[1])] if r[1] else []))(run_modelopt(cases))),
        ("torchao", lambda: [("torchao_mx.json", run_torchao(cases))]),
    ]
    for name, fn in producers:
        if only and name not in only:
            continue
        try:
            outs = fn()
            for fname, obj in outs:
                obj["generator"] = meta["generator"]
                obj["seed"] = SEED
                write(a.out, fname, obj)
            meta["producers"][name] = dict(ran=True, files=[f for f, _ in outs],
                                           version=outs[0][1].get("version"))
        except Exception as e:
            meta["producers"][name] = dict(ran=False, reason=err_text(e),
                                           traceback=traceback.format_exc()[-3000:])
            print(f"producer {name} did not run: {err_text(e)}")
    write(a.out, "golden_run.json", meta)
    for k, v in meta["producers"].items():
        print(k, "ran" if v["ran"] else "NOT RUN: " + v["reason"])


if __name__ == "__main__":
    main()
