#!/usr/bin/python3
"""qblock_ref.py — independent PyTorch autograd reference for ONE WHOLE
quantized decoder block's training step (common/engine/recon_step.c:
recon_step_bit), and the writer of tests/data/qblock_golden.bin that
tests/test_qblock_grad.c reads.

Run with Debian's interpreter (python3-torch 1.13):
    /usr/bin/python3 tests/ref/qblock_ref.py [out_path]
It is deterministic (numpy PCG64 with fixed seeds); re-running rewrites the
same file. It is self-contained: nothing is imported from the other
references.

What is computed (DESIGN.md §1; fakequant.h, block.h, layers.h), all as torch
ops in float64 on float32 inputs, gradients by autograd:

  For each linear l in (q, k, v, o, gate, up, down), W (out, in), at the
  case's bit b = bits[bi] with group g, rank r (R = max rank over the bits):
      A = Bd[:, :r] @ Bu[:r, :]
      mode 0: X = W + A, grid from X;   mode 1: grid from W, u = W/s + A/s
      per group (along in; a partial last group uses its real elements only):
        xmax' = sigmoid(gamma)*max(X_grp), xmin' = sigmoid(beta)*min(X_grp)
        s = max((xmax'-xmin')/qmax, 1e-5)      gradient passes through
        z = -round(xmin'/s)                    no gradient
        q = clamp(round_ste(u) + z, 0, qmax)   torch.clamp, u = X/s in mode 0
        What = (q - z)*s
  The block (x (B,T,C)):
      ln1 = rmsnorm(x) * attn_norm     rmsnorm: x / sqrt(mean(x^2) + eps)
      q,k,v = ln1 @ What_{q,k,v}^T (+ bq, bk, bv)
      RoPE on q, k: pair i (0 <= i < hd/2) at freq theta^(-2i/hd), angle t*freq;
        halves=0 rotates (2i, 2i+1), halves=1 rotates (i, i+hd/2):
        (a0, a1) -> (a0 cos - a1 sin, a0 sin + a1 cos)
      causal softmax(q k^T / sqrt(hd)) v, query head h reads kv head
        h // (n_heads/n_kv_heads)
      h1 = x + atty @ What_o^T
      ln2 = rmsnorm(h1) * mlp_norm
      out = h1 + (silu(ln2 @ What_gate^T) * (ln2 @ What_up^T)) @ What_down^T
  Loss: sum over all elements of |out - target| (L1) or (out - target)^2
  (L2), divided by B*C (summed over tokens, averaged over batch and hidden).
  Gradients of the loss w.r.t. gamma_b, beta_b (of the bit b only) and Bd,
  Bu of every linear (Bd columns / Bu rows >= r get exactly 0).

Float32 vs float64 safety. The golden is the float64 math of float32 inputs;
the C code runs in float32. The only discontinuities are in the quantizer
(round of u, round of z, the 1e-5 floor on s, which element is the group's
max/min in mode 0) and the L1 loss's sign(). The generator moves every case
away from all of them, so the C result cannot take a different branch:
    |frac(u) - 1/2|       >= 2e-3 for every weight element (round of u)
    |frac(xmin'/s) - 1/2| >= 2e-3 (round of z)
    |s_raw - 1e-5|        >= 1e-3 * 1e-5
    top-2 gap of max/min  >= 1e-5 * group range (mode 0)
    |out - target|        >= 2e-3 for every output element
The float32 rounding error of u is below 5e-4 here (a few ulp of |u| <= 1139,
printed per case as max |u|), that of out below 1e-5. Bad groups get their bit's LWC logits nudged (or, for a max/min
gap, their row of Bd); bad output elements get a new target noise. As a
cross-check the quantizer is also run in float32 torch, and its codes must
equal the float64 codes.

Binary format (little-endian; all arrays row-major float32):
    char[4] magic "QBKG"; uint32 version (1); uint32 n_cases
    model section (shared by every case):
      int32[7]   dim C, hidden H, n_heads NH, n_kv_heads NKV, head_dim hd, B, T
      float32[2] rope_theta, norm_eps
      float32    attn_norm[C] wq[QD*C] wk[KVD*C] wv[KVD*C] wo[C*QD]
                 bq[QD] bk[KVD] bv[KVD] mlp_norm[C]
                 w_gate[H*C] w_up[H*C] w_down[C*H]
      (QD = NH*hd, KVD = NKV*hd; the biases are used only by cases with
      has_qkv_bias = 1)
    per case:
      int32[7]   rope_halves, has_qkv_bias, loss_l2, adapter_mode, lwc,
                 n_bits, bi (the bit index the step runs at)
      int32[n_bits] bits (ascending), group (QuantConfig.group[bit];
                 0 = per output channel), rank (QuantConfig.rank[bit])
      inputs:
        per linear l in q, k, v, o, gate, up, down (shape (out, in)):
          Bd[out*R_l] Bu[R_l*in], then for each bit index j < n_bits:
          gamma_j[out*ng_lj] beta_j[out*ng_lj]
        x[B*T*C] target[B*T*C]
      outputs:
        float32 loss; out[B*T*C] (the block output at bit bi)
        per linear l: dgamma[out*ng_l,bi] dbeta[out*ng_l,bi]
                      dBd[out*R_l] dBu[R_l*in]
    with, per linear and bit, group g = in if group <= 0 or group > in;
    ng = ceil(in/g); rank r = min(rank, min(in, out)) (QuantConfig with
    rank_ref_width 0, rank_cap 1); R_l = max r over the bits. The gradients
    are those of the loss with grad_scale 1; the LWC logits of the other bit
    indices get none.
"""
import math
import struct
import sys

import numpy as np
import torch

MAGIC = b"QBKG"
VERSION = 1
MARGIN_ROUND = 2e-3
MARGIN_GAP = 1e-5
MARGIN_L1 = 2e-3

LIN_NAMES = ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")

# The model shared by every case: dim 48 (group 32 -> 32 + a partial 16),
# hidden 80 (group 32 -> 32, 32, 16), GQA 4 query heads on 2 kv heads.
MODEL = dict(C=48, H=80, NH=4, NKV=2, hd=12, B=2, T=5, theta=10000.0, eps=1e-5)
MODEL_SEED = 7


def lin_shapes(m):
    C, H, QD, KVD = m["C"], m["H"], m["NH"] * m["hd"], m["NKV"] * m["hd"]
    return [(QD, C), (KVD, C), (KVD, C), (C, QD), (H, C), (H, C), (C, H)]


def eff_group(group, inn):
    return inn if group <= 0 or group > inn else group


def eff_rank(rank, out, inn):
    return min(rank, min(out, inn))


# ---------------------------------------------------------------- quantizer

def ste_round(x):
    return x + (x.round() - x).detach()


def fakequant(W, Bd, Bu, gamma, beta, bits, group, rank, mode, lwc):
    """What = Q_b(W, adapter) and per-group diagnostics for the margin checks."""
    out, inn = W.shape
    ng = (inn + group - 1) // group
    qmax = float(2 ** bits - 1)
    A = Bd[:, :rank] @ Bu[:rank, :] if rank > 0 else torch.zeros_like(W)
    X = W + A if mode == 0 else W
    blocks, codes, diag = [], [], []
    for k in range(ng):
        c0, c1 = k * group, min((k + 1) * group, inn)
        Xg = X[:, c0:c1]
        xmax = Xg.amax(dim=1, keepdim=True)
        xmin = Xg.amin(dim=1, keepdim=True)
        if lwc:
            xmax_c = torch.sigmoid(gamma[:, k:k + 1]) * xmax
            xmin_c = torch.sigmoid(beta[:, k:k + 1]) * xmin
        else:
            xmax_c, xmin_c = xmax, xmin
        s_raw = (xmax_c - xmin_c) / qmax
        s = s_raw + (s_raw.clamp(min=1e-5) - s_raw).detach()
        zr = (xmin_c / s).detach()
        z = -zr.round()
        u = Xg / s if mode == 0 else W[:, c0:c1] / s + A[:, c0:c1] / s
        q = torch.clamp(ste_round(u) + z, 0.0, qmax)
        blocks.append((q - z) * s)
        codes.append(q.detach())
        diag.append((u.detach(), zr, s_raw.detach(), Xg.detach()))
    return torch.cat(blocks, dim=1), torch.cat(codes, dim=1), diag


def frac_dist(x):
    """Distance of x from the nearest half-integer (a rounding boundary)."""
    return (x - torch.floor(x) - 0.5).abs()


def bad_groups(diag, mode):
    """(out, ng) bools (round-bad, gap-bad): groups too close to a
    float32/float64 discontinuity."""
    rb, gb = [], []
    for (u, zr, s_raw, Xg) in diag:
        bad = (frac_dist(u) < MARGIN_ROUND).any(dim=1, keepdim=True)
        bad |= frac_dist(zr) < MARGIN_ROUND
        bad |= (s_raw - 1e-5).abs() < 1e-3 * 1e-5
        gap_bad = torch.zeros_like(bad)
        if mode == 0 and Xg.shape[1] > 1:
            srt, _ = Xg.sort(dim=1)
            rng = srt[:, -1:] - srt[:, :1]
            for gap in (srt[:, -1:] - srt[:, -2:-1], srt[:, 1:2] - srt[:, :1]):
                gap_bad |= gap < MARGIN_GAP * rng
        rb.append(bad)
        gb.append(gap_bad)
    return torch.cat(rb, dim=1).numpy(), torch.cat(gb, dim=1).numpy()


# -------------------------------------------------------------------- block

def rmsnorm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + eps) * w


def rope(x, T, hd, theta, halves):
    """x (B, T, nh, hd) -> rotated copy."""
    half = hd // 2
    i = torch.arange(half, dtype=torch.float64)
    freq = torch.pow(torch.tensor(theta, dtype=torch.float64), -(2.0 * i) / hd)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * freq[None, :]  # (T, half)
    c = torch.cos(ang)[None, :, None, :]
    s = torch.sin(ang)[None, :, None, :]
    if halves:
        a0, a1 = x[..., :half], x[..., half:]
        return torch.cat([a0 * c - a1 * s, a0 * s + a1 * c], dim=-1)
    a0, a1 = x[..., 0::2], x[..., 1::2]
    r0, r1 = a0 * c - a1 * s, a0 * s + a1 * c
    return torch.stack([r0, r1], dim=-1).reshape(x.shape)


def block_forward(m, w, Wq, x, halves, bias):
    """w: dict of float64 tensors (norms, biases); Wq: the 7 quantized weights."""
    B, T, C, NH, NKV, hd = m["B"], m["T"], m["C"], m["NH"], m["NKV"], m["hd"]
    eps = float(np.float32(m["eps"]))
    theta = float(np.float32(m["theta"]))
    ln1 = rmsnorm(x, w["attn_norm"], eps)
    q = ln1 @ Wq[0].T
    k = ln1 @ Wq[1].T
    v = ln1 @ Wq[2].T
    if bias:
        q, k, v = q + w["bq"], k + w["bk"], v + w["bv"]
    q = rope(q.view(B, T, NH, hd), T, hd, theta, halves)
    k = rope(k.view(B, T, NKV, hd), T, hd, theta, halves)
    v = v.view(B, T, NKV, hd)
    rep = NH // NKV
    k = k.repeat_interleave(rep, dim=2)  # query head h uses kv head h // rep
    v = v.repeat_interleave(rep, dim=2)
    q, k, v = (t.permute(0, 2, 1, 3) for t in (q, k, v))  # (B, NH, T, hd)
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    scores = scores.masked_fill(mask, float("-inf"))
    att = torch.softmax(scores, dim=-1)
    atty = (att @ v).permute(0, 2, 1, 3).reshape(B, T, NH * hd)
    h1 = x + atty @ Wq[3].T
    ln2 = rmsnorm(h1, w["mlp_norm"], eps)
    gate = ln2 @ Wq[4].T
    up = ln2 @ Wq[5].T
    return h1 + (torch.nn.functional.silu(gate) * up) @ Wq[6].T


def recon_loss(out, target, l2, B, C):
    d = out - target
    return ((d * d).sum() if l2 else d.abs().sum()) / (B * C)


# ------------------------------------------------------------------- inputs

def make_model():
    rng = np.random.default_rng(MODEL_SEED)
    m = MODEL
    C, QD, KVD = m["C"], m["NH"] * m["hd"], m["NKV"] * m["hd"]
    w = {"attn_norm": 1.0 + 0.1 * rng.standard_normal(C),
         "mlp_norm": 1.0 + 0.1 * rng.standard_normal(C),
         "bq": 0.1 * rng.standard_normal(QD),
         "bk": 0.1 * rng.standard_normal(KVD),
         "bv": 0.1 * rng.standard_normal(KVD)}
    for name, (out, inn) in zip(LIN_NAMES, lin_shapes(m)):
        W = rng.standard_normal((out, inn)) / math.sqrt(inn)
        outl = rng.random((out, inn)) < 0.02  # a few outliers widen some groups
        W[outl] *= 4.0
        w[name] = W
    return {k: v.astype(np.float32) for k, v in w.items()}


def model_bytes(w):
    m = MODEL
    hdr = struct.pack("<7i", m["C"], m["H"], m["NH"], m["NKV"], m["hd"], m["B"], m["T"])
    hdr += struct.pack("<2f", m["theta"], m["eps"])
    order = ("attn_norm", "wq", "wk", "wv", "wo", "bq", "bk", "bv", "mlp_norm",
             "w_gate", "w_up", "w_down")
    return hdr + b"".join(np.ascontiguousarray(w[n], dtype="<f4").tobytes() for n in order)


def t64(a, grad=False):
    t = torch.from_numpy(np.asarray(a)).double()
    return t.requires_grad_(True) if grad else t


def quantize_all(w, P, spec, mode, dtype=torch.float64):
    """Quantized weights, codes and diagnostics of every linear at bit bi."""
    res = []
    for l, name in enumerate(LIN_NAMES):
        bits, g, r = spec[l]
        p = P[l]
        args = [torch.from_numpy(a).to(dtype) for a in (w[name], p["Bd"], p["Bu"], p["gamma"], p["beta"])]
        res.append(fakequant(*args, bits, g, r, mode, 1))
    return res


def make_case(w, seed, bits, group, rank, bi, mode, halves, bias, l2):
    rng = np.random.default_rng(seed)
    m = MODEL
    B, T, C = m["B"], m["T"], m["C"]
    f32 = np.float32
    n_bits = len(bits)
    shapes = lin_shapes(m)

    # parameters of every linear, for every bit (only bit bi's are used)
    P = []
    for (out, inn) in shapes:
        R = max(eff_rank(rk, out, inn) for rk in rank)
        a = math.sqrt(6.0 / (R + inn))  # Xavier-uniform Bu, as qblock_params_init
        p = {"R": R, "Bd": (0.05 * rng.standard_normal((out, R))).astype(f32),
             "Bu": rng.uniform(-a, a, (R, inn)).astype(f32), "lwc": []}
        for j in range(n_bits):
            ng = -(-inn // eff_group(group[j], inn))
            gb = []
            for _ in range(2):  # gamma, beta: ~65% near the 4.0 init, the rest near 0
                near = rng.random((out, ng)) < 0.65
                gb.append(np.where(near, 4.0 + 0.3 * rng.standard_normal((out, ng)),
                                   0.8 * rng.standard_normal((out, ng))).astype(f32))
            p["lwc"].append(gb)
        p["gamma"], p["beta"] = p["lwc"][bi]  # views: nudges land in p["lwc"]
        P.append(p)
    spec = [(bits[bi], eff_group(group[bi], inn), eff_rank(rank[bi], out, inn))
            for (out, inn) in shapes]

    # move every linear off the quantizer's discontinuities
    for it in range(2000):
        with torch.no_grad():
            res = quantize_all(w, P, spec, mode)
        n_bad = 0
        for l, (_, _, diag) in enumerate(res):
            rb, gb = bad_groups(diag, mode)
            n_bad += int(rb.sum() + gb.sum())
            p = P[l]
            for o, k in zip(*np.nonzero(rb)):
                p["gamma"][o, k] += f32(0.05 * rng.standard_normal())
                p["beta"][o, k] += f32(0.05 * rng.standard_normal())
            for o in np.unique(np.nonzero(gb)[0]):
                p["Bd"][o, :] += (0.002 * rng.standard_normal(p["R"])).astype(f32)
        if n_bad == 0:
            break
    else:
        raise RuntimeError("case seed %d: could not move off the rounding boundaries" % seed)

    # float32 cross-check: the same codes in float32 arithmetic
    with torch.no_grad():
        res32 = quantize_all(w, P, spec, mode, torch.float32)
    for l in range(7):
        if not torch.equal(res[l][1], res32[l][1].double()):
            raise RuntimeError("case seed %d %s: float32 codes differ" % (seed, LIN_NAMES[l]))

    wt = {n: t64(w[n]) for n in ("attn_norm", "mlp_norm", "bq", "bk", "bv")}
    x = rng.standard_normal((B, T, C)).astype(f32)

    # target = full-precision block output + noise, no |out_q - target| tiny
    with torch.no_grad():
        out_fp = block_forward(m, wt, [t64(w[n]) for n in LIN_NAMES], t64(x), halves, bias).numpy()
        out_q = block_forward(m, wt, [r[0] for r in res], t64(x), halves, bias).numpy()
    noise = 0.05 * rng.standard_normal((B, T, C))
    for _ in range(100):
        target = (out_fp + noise).astype(f32)
        small = np.abs(out_q - target.astype(np.float64)) < MARGIN_L1
        if not small.any():
            break
        noise[small] = 0.05 * rng.standard_normal(int(small.sum()))
    else:
        raise RuntimeError("case seed %d: |out - target| too small" % seed)

    # the step, by autograd
    lt = []
    Wq = []
    for l, name in enumerate(LIN_NAMES):
        p = P[l]
        d = {"Bd": t64(p["Bd"], True), "Bu": t64(p["Bu"], True),
             "gamma": t64(p["gamma"], True), "beta": t64(p["beta"], True)}
        b_, g_, r_ = spec[l]
        What, _, _ = fakequant(t64(w[name]), d["Bd"], d["Bu"], d["gamma"], d["beta"],
                               b_, g_, r_, mode, 1)
        lt.append(d)
        Wq.append(What)
    out = block_forward(m, wt, Wq, t64(x), halves, bias)
    loss = recon_loss(out, t64(target), l2, B, C)
    loss.backward()

    hdr = struct.pack("<7i", halves, bias, l2, mode, 1, n_bits, bi)
    hdr += struct.pack("<%di" % (3 * n_bits), *bits, *group, *rank)
    arrays = []
    for p in P:
        arrays += [p["Bd"], p["Bu"]]
        for gb in p["lwc"]:
            arrays += gb
    arrays += [x, target]
    arrays += [np.array([loss.item()]), out.detach().numpy()]
    for d in lt:
        arrays += [d[n].grad.numpy() for n in ("gamma", "beta", "Bd", "Bu")]
    body = b"".join(np.ascontiguousarray(a, dtype="<f4").tobytes() for a in arrays)
    gmax = max(float(d[n].grad.abs().max()) for d in lt for n in ("gamma", "beta", "Bd", "Bu"))
    umax = max(float(dg[0].abs().max()) for r in res for dg in r[2])
    print("case seed %d: bits %s bi %d mode %d halves %d bias %d %s: loss %.6f, %d nudge rounds, "
          "max |u| %.0f, max |grad| %.3g, %d bytes"
          % (seed, bits, bi, mode, halves, bias, "L2" if l2 else "L1", loss.item(), it, umax, gmax,
             len(hdr) + len(body)))
    return hdr + body


# (seed, bits, group per bit, rank per bit, bi, adapter_mode, rope_halves, qkv_bias, loss_l2)
CASES = [
    (11, [2, 8], [32, 0], [6, 4], 0, 0, 0, 0, 0),   # 2 bits, groups 32 (+16), r = R
    (12, [2, 8], [32, 0], [6, 4], 1, 0, 1, 1, 0),   # 8 bits per channel, r < R, biases
    (13, [2, 8], [32, 32], [6, 4], 0, 1, 1, 0, 1),  # mode 1, L2
    (14, [2, 8], [32, 32], [6, 4], 1, 1, 0, 1, 0),  # mode 1, 8 bits with groups of 32
    (15, [3, 4, 8], [16, 20, 0], [6, 5, 4], 1, 0, 1, 1, 1),  # 4 bits, groups 20 (+8), L2
]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "tests/data/qblock_golden.bin"
    w = make_model()
    blobs = [make_case(w, *c) for c in CASES]
    data = MAGIC + struct.pack("<II", VERSION, len(blobs)) + model_bytes(w) + b"".join(blobs)
    with open(path, "wb") as f:
        f.write(data)
    print("wrote %s: %d cases, %d bytes" % (path, len(blobs), len(data)))


if __name__ == "__main__":
    main()
