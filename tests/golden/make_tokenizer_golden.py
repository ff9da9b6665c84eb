#!/usr/bin/env python3
"""Golden token ids from Hugging Face `tokenizers` for tests/test_tokenizer.cpp.

Inputs: the SmolLM2 tokenizer.json that `mxq import` writes (tests/fixtures/smollm2_tokenizer/) and
the WikiText-2 test text (../shared/data/wikitext-2-raw/wiki.test.raw), read as bytes: its CRLF line
ends are part of what is tokenized.

Variants: the same vocabulary and merges under the pre-tokenizers of other byte-level BPE families.
Only their differing blocks are written (variants.json); the test splices each into the SmolLM2
tokenizer.json, so that one 2 MB vocabulary serves all four.

Outputs (--out, default tests/golden/tokenizer/):
  variants.json             name -> {"pre_tokenizer": ..., "ignore_merges": ...}
  <name>_wiki.u32           little-endian uint32 ids: the whole text for smollm2, its first
                            200 KB (cut back to a line end) for the other variants
  cases.json                hand-picked strings and each variant's ids for them; "flagged":
                            added tokens with single_word/lstrip/rstrip/normalized, and ids
  run.json                  versions, the text's sha256 and the byte lengths tokenized

    python3 tests/golden/make_tokenizer_golden.py
"""
import argparse
import copy
import hashlib
import json
import os
import platform
import struct

import tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "smollm2_tokenizer", "tokenizer.json")
WIKI = os.path.join(ROOT, "..", "shared", "data", "wikitext-2-raw", "wiki.test.raw")
SUBSET_BYTES = 200 * 1024

# The regexes as Meta's Llama-3 and Alibaba's Qwen2 tokenizer.json files carry them: they differ
# only in how many digits one pre-token may hold.
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def byte_level(use_regex):
    return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": use_regex}


def split_then_bytes(pattern):
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
        byte_level(False)]}


VARIANTS = {
    "gpt2": {"pre_tokenizer": byte_level(True), "ignore_merges": False},
    # Llama-3's tokenizer.json also sets ignore_merges: a word found whole in the vocabulary is one token.
    "llama3": {"pre_tokenizer": split_then_bytes(LLAMA3_PATTERN), "ignore_merges": True},
    "qwen2": {"pre_tokenizer": split_then_bytes(QWEN2_PATTERN), "ignore_merges": False},
}

CASES = [
    "",
    "Hello world",
    " Hello  world ",
    "   leading spaces and trailing   ",
    "line one\nline two\r\nline three\n\n\n",
    "\t tabs\t\tand \u00a0non-breaking\u3000spaces",
    "I'm sure they'll say it's what we've done; YOU'RE, I'D, WE'LL, SHE'S",
    "Numbers: 1 12 123 1234 12345 3.14159 1,000,000 2024-11-25 007",
    "Unicode digits: \u0661\u0662\u0663 \u00b2\u00b3 \u2163 \u0967\u0968",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m Stra\u00dfe \u0141\u00f3d\u017a",
    "\u4e2d\u6587\u5206\u8bcd\u6d4b\u8bd5\uff0c\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3002\ud55c\uad6d\uc5b4",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 123",
    "Emoji: \U0001f600\U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467 \u2764\ufe0f!",
    "Combining: e\u0301 a\u0308 \u1e9b\u0323",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>",
    "<|endoftext|><|endoftext|>text<|im_end|> <|im_start|>",
    "not special: <|im_start |> <im_end> <|unknown|>",
    " @-@ = = Gameplay = = \r\n",
    "mixed123abc456 x2 2x 3D CO2 H2O",
    "punctuation!!! ??? ... --- ((brackets)) [x] {y} \"quoted\" 'single'",
    "code: def f(x):\n    return x**2  # comment\n",
    "URL https://example.com/path?q=1&r=two#frag user@example.org",
    "\u017fs \u212a K ' s 'S",
    "it'\u017f IT'S it'S It's",
    "white\u0085space\u180ekinds\u200bzero\ufeffwidth\u2028line\u2029para\u202fnarrow\u205fmath",
    "control \x04\x06\x13 bytes without tokens \x7f\x00 end",
    "x\n\n  y   \n  z\r\n\r\n w",
    "(brackets) [a.b,c;d] \u00c0B's",
    "a" * 300,
    " " * 50 + "x" + "\n" * 20,
]


# Added tokens with HF's flags, appended to SmolLM2's: single_word (not inside a word), lstrip and
# rstrip (the whitespace around goes into the token), normalized (matched in a second pass).
FLAGGED_TOKENS = [
    {"id": 49152, "content": "XQZ", "single_word": True, "lstrip": False, "rstrip": False, "normalized": False, "special": False},
    {"id": 49153, "content": "<L>", "single_word": False, "lstrip": True, "rstrip": True, "normalized": False, "special": False},
    {"id": 4254, "content": "norm", "single_word": False, "lstrip": False, "rstrip": False, "normalized": True, "special": False},
    {"id": 49154, "content": "<|im_start|>us", "single_word": False, "lstrip": False, "rstrip": False, "normalized": True, "special": False},
]
FLAGGED_CASES = ["a XQZ b", "aXQZ b", "_XQZ", "XQZ_", "\u00e9XQZ", "XQZ1", " XQZ.", "XQZXQZ", "x  <L>  y",
                 "x\u3000<L>\u00a0y", "a<L><L> b", "normal <|im_start|>user"]


def make(tok_json, variant):
    t = copy.deepcopy(tok_json)
    if variant is not None:
        t["pre_tokenizer"] = variant["pre_tokenizer"]
        t["model"]["ignore_merges"] = variant["ignore_merges"]
    return tokenizers.Tokenizer.from_str(json.dumps(t))


def write_u32(path, ids):
    with open(path, "wb") as f:
        f.write(struct.pack(f"<{len(ids)}I", *ids))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "golden", "tokenizer"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    with open(FIXTURE, encoding="utf-8") as f:
        tok_json = json.load(f)
    with open(WIKI, "rb") as f:
        raw = f.read()
    text = raw.decode("utf-8")
    subset_end = raw.rindex(b"\n", 0, SUBSET_BYTES) + 1
    subset = raw[:subset_end].decode("utf-8")

    names = {"smollm2": None, **VARIANTS}
    cases = {"strings": CASES, "ids": {}}
    for name, variant in names.items():
        tok = make(tok_json, variant)
        body = text if name == "smollm2" else subset
        ids = tok.encode(body, add_special_tokens=False).ids
        write_u32(os.path.join(args.out, f"{name}_wiki.u32"), ids)
        cases["ids"][name] = [tok.encode(s, add_special_tokens=False).ids for s in CASES]
        print(f"{name}: {len(ids)} ids for {len(body.encode())} bytes")

    flagged = copy.deepcopy(tok_json)
    flagged["added_tokens"] += FLAGGED_TOKENS
    tok = tokenizers.Tokenizer.from_str(json.dumps(flagged))
    cases["flagged"] = {"added_tokens": FLAGGED_TOKENS, "strings": FLAGGED_CASES,
                        "ids": [tok.encode(s, add_special_tokens=False).ids for s in FLAGGED_CASES]}

    with open(os.path.join(args.out, "variants.json"), "w", encoding="utf-8") as f:
        json.dump(VARIANTS, f, indent=1, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(args.out, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    run = {"tokenizers": tokenizers.__version__, "python": platform.python_version(),
           "text": "wikitext-2-raw/wiki.test.raw", "text_sha256": hashlib.sha256(raw).hexdigest(),
           "text_bytes": len(raw), "subset_bytes": subset_end}
    with open(os.path.join(args.out, "run.json"), "w", encoding="utf-8") as f:
        json.dump(run, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
