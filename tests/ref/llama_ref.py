#!/usr/bin/python3
"""Independent float64 PyTorch reference for a llama2.c legacy-format Llama.

Usage (system interpreter, which has torch):
  /usr/bin/python3 tests/ref/llama_ref.py --model ../shared/models/stories260K.bin \
      --out tests/data/stories260K_logits.bin
  /usr/bin/python3 tests/ref/llama_ref.py --model ../shared/models/stories260K.bin --sample-check

Model file (llama2.c legacy): 7 x int32 header dim, hidden_dim, n_layers,
n_heads, n_kv_heads, vocab_size (negative => separate classifier, |.| is the
vocab), seq_len; then fp32 arrays, weights stored (out, in):
  token_embedding (V,D), rms_att (L,D), wq (L,H*hd,D), wk (L,KV*hd,D),
  wv (L,KV*hd,D), wo (L,D,H*hd), rms_ffn (L,D), w1 (L,F,D), w2 (L,D,F),
  w3 (L,F,D), rms_final (D), freq_cis_real (S,hd/2), freq_cis_imag (S,hd/2)
  [legacy, not used], wcls (V,D) only if vocab_size < 0 (else wcls = emb).

Forward (all math in float64): x = emb[tok]; per layer
  h = x + Wo . Attn(RoPE(Wq.n(x)), RoPE(Wk.n(x)), Wv.n(x))
  x = h + W2 . (silu(W1.n(h)) * (W3.n(h)))
logits = Wcls . n(x), with n(x) = x / sqrt(mean(x^2) + 1e-5) * w.
RoPE: within each head rotate interleaved pairs (2i, 2i+1) by angle
pos * 10000^(-2i/hd).  GQA: query head h uses kv head h // (H/KV).
Causal softmax with scale 1/sqrt(hd).

Token sequences (deterministic, no RNG library): N_SEQ=2 sequences of
SEQ_LEN=64 tokens.  Sequence s uses a 32-bit LCG (Numerical Recipes)
  state_0 = 12345 + s;  state_{k+1} = (1664525*state_k + 1013904223) mod 2^32
  token_k = (state_{k+1} >> 8) % vocab            for k = 0..SEQ_LEN-1
(i.e. the state is advanced before each token is drawn).

Golden file (all little-endian):
  "QLOG" (4 bytes), u32 version = 1, u32 n_seq, u32 seq_len, u32 vocab,
  int32 tokens[n_seq][seq_len],
  float32 logits[n_seq][seq_len][vocab]   (float64 result rounded to fp32)
"""
import argparse
import math
import struct
import sys

import numpy as np
import torch

N_SEQ, SEQ_LEN, EPS, ROPE_BASE = 2, 64, 1e-5, 10000.0


def load_model(path):
    """Read a llama2.c legacy checkpoint into a dict of float64 tensors."""
    with open(path, "rb") as f:
        raw = f.read()
    dim, hid, L, H, KV, V, S = struct.unpack("<7i", raw[:28])
    shared = V > 0
    V = abs(V)
    hd = dim // H
    data = np.frombuffer(raw, dtype="<f4", offset=28)
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        t = torch.from_numpy(data[off:off + n].astype(np.float64)).reshape(shape)
        off += n
        return t

    w = {"emb": take(V, dim), "rms_att": take(L, dim),
         "wq": take(L, H * hd, dim), "wk": take(L, KV * hd, dim),
         "wv": take(L, KV * hd, dim), "wo": take(L, dim, H * hd),
         "rms_ffn": take(L, dim), "w1": take(L, hid, dim),
         "w2": take(L, dim, hid), "w3": take(L, hid, dim),
         "rms_final": take(dim)}
    w["freq_real"], w["freq_imag"] = take(S, hd // 2), take(S, hd // 2)
    w["wcls"] = w["emb"] if shared else take(V, dim)
    if off != data.size:
        sys.exit(f"size mismatch: used {off} floats, file has {data.size}")
    cfg = dict(dim=dim, hidden=hid, n_layers=L, n_heads=H, n_kv=KV,
               vocab=V, seq_len=S, hd=hd)
    return cfg, w


def rmsnorm(x, weight):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + EPS) * weight


def rope_tables(T, hd):
    """cos/sin of pos * 10000^(-2i/hd) for pair i, shape (T, hd/2)."""
    i = torch.arange(hd // 2, dtype=torch.float64)
    freq = ROPE_BASE ** (-(2.0 * i) / hd)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * freq[None, :]
    return torch.cos(ang), torch.sin(ang)


def rope(x, cos, sin):
    """x: (B, T, nh, hd); rotate interleaved pairs (2i, 2i+1)."""
    a, b = x[..., 0::2], x[..., 1::2]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    out = torch.empty_like(x)
    out[..., 0::2] = a * c - b * s
    out[..., 1::2] = a * s + b * c
    return out


def forward(cfg, w, tokens):
    """tokens: (B, T) int64 -> logits (B, T, V) float64."""
    B, T = tokens.shape
    H, KV, hd = cfg["n_heads"], cfg["n_kv"], cfg["hd"]
    cos, sin = rope_tables(T, hd)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    x = w["emb"][tokens]                                   # (B, T, D)
    for l in range(cfg["n_layers"]):
        xn = rmsnorm(x, w["rms_att"][l])
        q = rope((xn @ w["wq"][l].T).view(B, T, H, hd), cos, sin)
        k = rope((xn @ w["wk"][l].T).view(B, T, KV, hd), cos, sin)
        v = (xn @ w["wv"][l].T).view(B, T, KV, hd)
        rep = H // KV                                      # GQA: h -> h // rep
        k = k.repeat_interleave(rep, dim=2)
        v = v.repeat_interleave(rep, dim=2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))   # (B, H, T, hd)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        o = (att @ v).transpose(1, 2).reshape(B, T, H * hd)
        h = x + o @ w["wo"][l].T
        hn = rmsnorm(h, w["rms_ffn"][l])
        g = torch.nn.functional.silu(hn @ w["w1"][l].T) * (hn @ w["w3"][l].T)
        x = h + g @ w["w2"][l].T
    return rmsnorm(x, w["rms_final"]) @ w["wcls"].T


def make_tokens(vocab):
    """Deterministic LCG token sequences, see module docstring."""
    toks = np.zeros((N_SEQ, SEQ_LEN), dtype=np.int64)
    for s in range(N_SEQ):
        state = 12345 + s
        for k in range(SEQ_LEN):
            state = (1664525 * state + 1013904223) & 0xFFFFFFFF
            toks[s, k] = (state >> 8) % vocab
    return torch.from_numpy(toks)


def check_freq_cis(cfg, w):
    """The legacy freq_cis tables must match our RoPE angles (sanity only)."""
    cos, sin = rope_tables(cfg["seq_len"], cfg["hd"])
    err = max((cos - w["freq_real"]).abs().max().item(),
              (sin - w["freq_imag"]).abs().max().item())
    if err > 1e-4:
        sys.exit(f"RoPE convention disagrees with file freq_cis (max err {err})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", help="golden logits file to write")
    ap.add_argument("--sample-check", action="store_true",
                    help="print top-5 logits of sequence 0, positions 0..3")
    args = ap.parse_args()
    cfg, w = load_model(args.model)
    check_freq_cis(cfg, w)
    tokens = make_tokens(cfg["vocab"])
    with torch.no_grad():
        logits = forward(cfg, w, tokens)
    if args.sample_check:
        for p in range(4):
            vals, ids = logits[0, p].topk(5)
            pairs = ", ".join(f"{i}:{v:.4f}" for i, v in zip(ids.tolist(), vals.tolist()))
            print(f"seq 0 pos {p} tok {tokens[0, p].item()}: top5 {pairs}")
        return
    if not args.out:
        ap.error("--out or --sample-check required")
    with open(args.out, "wb") as f:
        f.write(b"QLOG")
        f.write(struct.pack("<4I", 1, N_SEQ, SEQ_LEN, cfg["vocab"]))
        f.write(tokens.numpy().astype("<i4").tobytes())
        f.write(logits.numpy().astype("<f4").tobytes())
    print(f"wrote {args.out}: {N_SEQ} x {SEQ_LEN} x {cfg['vocab']} logits")


if __name__ == "__main__":
    main()
