#!/usr/bin/python3
"""teq_golden.py — independent PyTorch autograd reference for ONE quantized
decoder block's training step WITH TEQ scales (common/engine/teq.h,
recon_step.c: recon_step_bit on the transformed block), and the writer of
tests/data/teq_golden.bin that tests/test_teq.c reads.

Run with Debian's interpreter (python3-torch 1.13):
    /usr/bin/python3 tests/ref/teq_golden.py [out_path]
Deterministic (numpy PCG64 with fixed seeds); self-contained (the block and
the quantizer are written out again here, in the style of qblock_ref.py,
nothing is imported from it).

The transformation (teq.h), scales s_a (attn, dim), s_m (mlp, dim), and with
the wide placement t (o, n_kv_heads*head_dim) and u (down, hidden):
    attn_norm' = attn_norm / s_a      Wq' = Wq diag(s_a)   Wk' = Wk diag(s_a)
    Wv' = diag(1/t) Wv diag(s_a)      bv' = bv / t
    Wo' = Wo diag(t~), t~[h*hd + d] = t[(h // (NH/NKV))*hd + d]
    mlp_norm' = mlp_norm / s_m        Wgate' = Wgate diag(s_m)
    Wup' = diag(1/u) Wup diag(s_m)    Wdown' = Wdown diag(u)
then every linear is fake-quantized from its W' (fakequant.h: LWC, adapters
A = Bd[:, :r] Bu[:r, :], mode 0 grid from W' + A, mode 1 grid from W' with
u = W'/s + A/s; STE round, the max(., 1e-5) on the step passes the gradient,
z without gradient, max/min gradients to the arg-max/arg-min as
torch.amax/amin), the block runs (RMSNorm, RoPE, GQA causal attention,
SwiGLU, residuals) and the loss is sum |out - target| (L1) or (out-target)^2
(L2) over B*C. Autograd gives the gradients of the scales, of every LWC
logit and of every adapter. Everything is float64 on float32 inputs.

Float32 vs float64 safety, as in qblock_ref.py: the generator keeps every
quantizer input >= 2e-3 from a rounding boundary (round of u and of z), the
step away from its 1e-5 floor, the top-2 gap of every group's max and min
>= 1e-5 of the group range (here in EVERY mode: with TEQ the arg-max of W'
carries a gradient to the scales in mode 1 and at rank 0 as well), and
|out - target| >= 2e-3 for L1. Bad groups get their LWC logits nudged, or
(gap) their Bd row in mode 0 with an adapter, else the column scale of the
group's extreme. The quantizer is also run in float32 (transform in the C
order: W*col, then /row) and must give the same codes.

Binary format (little-endian, arrays row-major float32):
    char[4] "TEQG"; uint32 version (1); uint32 n_cases
    model section: int32[7] C, H, NH, NKV, hd, B, T; float32[2] theta, eps;
        attn_norm[C] wq[QD*C] wk[KVD*C] wv[KVD*C] wo[C*QD] bq[QD] bk[KVD]
        bv[KVD] mlp_norm[C] w_gate[H*C] w_up[H*C] w_down[C*H]
    per case:
      int32[8] rope_halves, has_qkv_bias, loss_l2, adapter_mode, placement
               (1 norm, 2 wide), n_bits, bi, lwc (always 1)
      int32[n_bits] bits, group, rank (QuantConfig.group / rank per bit;
               rank_ref_width 0, rank_cap 1)
      int32[3] n_teq, n_lwc, n_adapter (sizes of the C layouts below)
      inputs:  teq[n_teq]   s_a, s_m (, t, u) concatenated (QBlockParams.teq)
               lwc[n_lwc]   per linear, per bit index: gamma, beta (out x ng)
               adapter[n_adapter]  per linear: Bd (out x R), Bu (R x in)
               x[B*T*C] target[B*T*C]
      outputs: float32 loss; out[B*T*C]; d teq[n_teq]; d lwc[n_lwc]
               (zero except bit bi's); d adapter[n_adapter]
"""
import math
import struct
import sys

import numpy as np
import torch

MAGIC = b"TEQG"
VERSION = 1
MARGIN_ROUND = 2e-3
MARGIN_GAP = 1e-5
MARGIN_L1 = 2e-3
LIN_NAMES = ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")
MODEL = dict(C=48, H=80, NH=4, NKV=2, hd=12, B=2, T=5, theta=10000.0, eps=1e-5)
MODEL_SEED = 17


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


def fakequant(W, Bd, Bu, gamma, beta, bits, group, rank, mode):
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
        xmax_c = torch.sigmoid(gamma[:, k:k + 1]) * xmax
        xmin_c = torch.sigmoid(beta[:, k:k + 1]) * xmin
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
    return (x - torch.floor(x) - 0.5).abs()


def bad_groups(diag):
    rb, gb, arg = [], [], []
    for (u, zr, s_raw, Xg) in diag:
        bad = (frac_dist(u) < MARGIN_ROUND).any(dim=1, keepdim=True)
        bad |= frac_dist(zr) < MARGIN_ROUND
        bad |= (s_raw - 1e-5).abs() < 1e-3 * 1e-5
        gap_bad = torch.zeros_like(bad)
        if Xg.shape[1] > 1:
            srt, _ = Xg.sort(dim=1)
            rng = srt[:, -1:] - srt[:, :1]
            for gap in (srt[:, -1:] - srt[:, -2:-1], srt[:, 1:2] - srt[:, :1]):
                gap_bad |= gap < MARGIN_GAP * rng
        rb.append(bad)
        gb.append(gap_bad)
        arg.append((Xg.argmax(dim=1), Xg.argmin(dim=1)))
    return torch.cat(rb, dim=1).numpy(), torch.cat(gb, dim=1).numpy(), arg


# -------------------------------------------------------------------- block

def rmsnorm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + eps) * w


def rope(x, T, hd, theta, halves):
    half = hd // 2
    i = torch.arange(half, dtype=torch.float64)
    freq = torch.pow(torch.tensor(theta, dtype=torch.float64), -(2.0 * i) / hd)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * freq[None, :]
    c = torch.cos(ang)[None, :, None, :]
    s = torch.sin(ang)[None, :, None, :]
    if halves:
        a0, a1 = x[..., :half], x[..., half:]
        return torch.cat([a0 * c - a1 * s, a0 * s + a1 * c], dim=-1)
    a0, a1 = x[..., 0::2], x[..., 1::2]
    r0, r1 = a0 * c - a1 * s, a0 * s + a1 * c
    return torch.stack([r0, r1], dim=-1).reshape(x.shape)


def block_forward(m, norms, Wq, x, halves, bias):
    """norms: attn_norm, mlp_norm, bq, bk, bv (float64 tensors); Wq: 7 weights."""
    B, T, NH, NKV, hd = m["B"], m["T"], m["NH"], m["NKV"], m["hd"]
    eps = float(np.float32(m["eps"]))
    theta = float(np.float32(m["theta"]))
    ln1 = rmsnorm(x, norms["attn_norm"], eps)
    q, k, v = ln1 @ Wq[0].T, ln1 @ Wq[1].T, ln1 @ Wq[2].T
    if bias:
        q, k, v = q + norms["bq"], k + norms["bk"], v + norms["bv"]
    q = rope(q.view(B, T, NH, hd), T, hd, theta, halves)
    k = rope(k.view(B, T, NKV, hd), T, hd, theta, halves)
    v = v.view(B, T, NKV, hd)
    rep = NH // NKV
    k = k.repeat_interleave(rep, dim=2)
    v = v.repeat_interleave(rep, dim=2)
    q, k, v = (t.permute(0, 2, 1, 3) for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    att = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
    atty = (att @ v).permute(0, 2, 1, 3).reshape(B, T, NH * hd)
    h1 = x + atty @ Wq[3].T
    ln2 = rmsnorm(h1, norms["mlp_norm"], eps)
    return h1 + (torch.nn.functional.silu(ln2 @ Wq[4].T) * (ln2 @ Wq[5].T)) @ Wq[6].T


def recon_loss(out, target, l2, B, C):
    d = out - target
    return ((d * d).sum() if l2 else d.abs().sum()) / (B * C)


# --------------------------------------------------------------------- TEQ

def teq_lens(m, placement):
    C, H, KVD = m["C"], m["H"], m["NKV"] * m["hd"]
    return [C, C] + ([KVD, H] if placement == 2 else [0, 0])


def split_scales(s, m, placement):
    """The flat scale vector -> (s_a, s_m, t or None, u or None)."""
    lens = teq_lens(m, placement)
    parts, o = [], 0
    for n in lens:
        parts.append(s[o:o + n] if n else None)
        o += n
    return parts


def teq_transform(w, s, m, placement):
    """w: dict of tensors (float64 or float32); s: flat scale tensor.
    Returns (norms dict, list of 7 transformed weights). C's order: W*col, then /row."""
    sa, sm, t, u = split_scales(s, m, placement)
    NH, NKV, hd = m["NH"], m["NKV"], m["hd"]
    norms = {"attn_norm": w["attn_norm"] / sa, "mlp_norm": w["mlp_norm"] / sm,
             "bq": w["bq"], "bk": w["bk"], "bv": w["bv"] / t if t is not None else w["bv"]}
    Wv = w["wv"] * sa[None, :]
    Wo = w["wo"]
    Wup = w["w_up"] * sm[None, :]
    Wdown = w["w_down"]
    if t is not None:
        Wv = Wv / t[:, None]
        texp = t.view(NKV, hd).repeat_interleave(NH // NKV, dim=0).reshape(-1)
        Wo = Wo * texp[None, :]
    if u is not None:
        Wup = Wup / u[:, None]
        Wdown = Wdown * u[None, :]
    W = [w["wq"] * sa[None, :], w["wk"] * sa[None, :], Wv, Wo, w["w_gate"] * sm[None, :], Wup, Wdown]
    return norms, W


def col_group_index(l, i, m, placement):
    """(flat offset into the scales) of column i of linear l, or None."""
    lens = teq_lens(m, placement)
    offs = np.cumsum([0] + lens[:-1])
    NH, NKV, hd = m["NH"], m["NKV"], m["hd"]
    if l in (0, 1, 2):
        return offs[0] + i
    if l in (4, 5):
        return offs[1] + i
    if placement != 2:
        return None
    if l == 3:
        return offs[2] + (i // hd // (NH // NKV)) * hd + i % hd
    return offs[3] + i


# ------------------------------------------------------------------- inputs

def make_model():
    rng = np.random.default_rng(MODEL_SEED)
    m = MODEL
    C, QD, KVD = m["C"], m["NH"] * m["hd"], m["NKV"] * m["hd"]
    w = {"attn_norm": 1.0 + 0.1 * rng.standard_normal(C),
         "mlp_norm": 1.0 + 0.1 * rng.standard_normal(C),
         "bq": 0.1 * rng.standard_normal(QD), "bk": 0.1 * rng.standard_normal(KVD),
         "bv": 0.1 * rng.standard_normal(KVD)}
    for name, (out, inn) in zip(LIN_NAMES, lin_shapes(m)):
        W = rng.standard_normal((out, inn)) / math.sqrt(inn)
        W[rng.random((out, inn)) < 0.02] *= 4.0
        w[name] = W
    return {k: v.astype(np.float32) for k, v in w.items()}


def model_bytes(w):
    m = MODEL
    hdr = struct.pack("<7i", m["C"], m["H"], m["NH"], m["NKV"], m["hd"], m["B"], m["T"])
    hdr += struct.pack("<2f", m["theta"], m["eps"])
    order = ("attn_norm", "wq", "wk", "wv", "wo", "bq", "bk", "bv", "mlp_norm",
             "w_gate", "w_up", "w_down")
    return hdr + b"".join(np.ascontiguousarray(w[n], dtype="<f4").tobytes() for n in order)


def tens(a, dtype=torch.float64, grad=False):
    t = torch.from_numpy(np.asarray(a)).to(dtype)
    return t.requires_grad_(True) if grad else t


def quantize_all(w, s, P, spec, mode, placement, dtype):
    wt = {k: tens(v, dtype) for k, v in w.items()}
    norms, W = teq_transform(wt, tens(s, dtype), MODEL, placement)
    res = []
    for l in range(7):
        bits, g, r = spec[l]
        p = P[l]
        args = [tens(p[n], dtype) for n in ("Bd", "Bu", "gamma", "beta")]
        res.append(fakequant(W[l], *args, bits, g, r, mode))
    return res, W


def make_case(w, seed, placement, bits, group, rank, bi, mode, halves, bias, l2):
    rng = np.random.default_rng(seed)
    m = MODEL
    B, T, C = m["B"], m["T"], m["C"]
    f32 = np.float32
    n_bits = len(bits)
    shapes = lin_shapes(m)
    n_teq = sum(teq_lens(m, placement))
    s = np.exp(0.3 * rng.standard_normal(n_teq)).astype(f32)

    P = []
    for (out, inn) in shapes:
        R = max(eff_rank(rk, out, inn) for rk in rank)
        a = math.sqrt(6.0 / (R + inn)) if R > 0 else 0.0
        p = {"R": R, "Bd": (0.05 * rng.standard_normal((out, R))).astype(f32),
             "Bu": rng.uniform(-a, a, (R, inn)).astype(f32), "lwc": []}
        for j in range(n_bits):
            ng = -(-inn // eff_group(group[j], inn))
            gb = []
            for _ in range(2):
                near = rng.random((out, ng)) < 0.65
                gb.append(np.where(near, 4.0 + 0.3 * rng.standard_normal((out, ng)),
                                   0.8 * rng.standard_normal((out, ng))).astype(f32))
            p["lwc"].append(gb)
        p["gamma"], p["beta"] = p["lwc"][bi]
        P.append(p)
    spec = [(bits[bi], eff_group(group[bi], inn), eff_rank(rank[bi], out, inn))
            for (out, inn) in shapes]

    for it in range(3000):
        with torch.no_grad():
            res, _ = quantize_all(w, s, P, spec, mode, placement, torch.float64)
        n_bad = 0
        for l, (_, _, diag) in enumerate(res):
            rb, gb, arg = bad_groups(diag)
            n_bad += int(rb.sum() + gb.sum())
            p = P[l]
            for o, k in zip(*np.nonzero(rb)):
                p["gamma"][o, k] += f32(0.05 * rng.standard_normal())
                p["beta"][o, k] += f32(0.05 * rng.standard_normal())
            for o, k in zip(*np.nonzero(gb)):
                if mode == 0 and spec[l][2] > 0:
                    p["Bd"][o, :] += (0.002 * rng.standard_normal(p["R"])).astype(f32)
                    continue
                g = spec[l][1]
                for col in (int(arg[k][0][o]), int(arg[k][1][o])):
                    ci = col_group_index(l, k * g + col, m, placement)
                    if ci is None:
                        raise RuntimeError("case seed %d: near tie in an untransformed linear" % seed)
                    s[ci] *= f32(1.0 + 0.01 * rng.standard_normal())
        if n_bad == 0:
            break
    else:
        raise RuntimeError("case seed %d: could not move off the rounding boundaries" % seed)

    with torch.no_grad():
        res32, _ = quantize_all(w, s, P, spec, mode, placement, torch.float32)
    for l in range(7):
        if not torch.equal(res[l][1], res32[l][1].double()):
            raise RuntimeError("case seed %d %s: float32 codes differ" % (seed, LIN_NAMES[l]))

    x = rng.standard_normal((B, T, C)).astype(f32)
    wt = {k: tens(v) for k, v in w.items()}
    with torch.no_grad():
        norms_fp = {k: wt[k] for k in ("attn_norm", "mlp_norm", "bq", "bk", "bv")}
        out_fp = block_forward(m, norms_fp, [wt[n] for n in LIN_NAMES], tens(x), halves, bias).numpy()
        norms_t, _ = teq_transform(wt, tens(s), m, placement)
        out_q = block_forward(m, norms_t, [r[0] for r in res], tens(x), halves, bias).numpy()
    noise = 0.05 * rng.standard_normal((B, T, C))
    for _ in range(100):
        target = (out_fp + noise).astype(f32)
        small = np.abs(out_q - target.astype(np.float64)) < MARGIN_L1
        if l2 or not small.any():
            break
        noise[small] = 0.05 * rng.standard_normal(int(small.sum()))
    else:
        raise RuntimeError("case seed %d: |out - target| too small" % seed)

    # the step, by autograd
    st = tens(s, grad=True)
    norms, Wt = teq_transform(wt, st, m, placement)
    leaves, Wq = [], []
    for l in range(7):
        p = P[l]
        d = {n: tens(p[n], grad=True) for n in ("Bd", "Bu", "gamma", "beta")}
        b_, g_, r_ = spec[l]
        What, _, _ = fakequant(Wt[l], d["Bd"], d["Bu"], d["gamma"], d["beta"], b_, g_, r_, mode)
        leaves.append(d)
        Wq.append(What)
    out = block_forward(m, norms, Wq, tens(x), halves, bias)
    loss = recon_loss(out, tens(target), l2, B, C)
    loss.backward()

    # the C layouts
    lwc_in, lwc_g, ad_in, ad_g = [], [], [], []
    for l, p in enumerate(P):
        for j in range(n_bits):
            for n, arr in (("gamma", p["lwc"][j][0]), ("beta", p["lwc"][j][1])):
                lwc_in.append(arr.ravel())
                gr = leaves[l][n].grad
                g = gr.numpy().ravel() if j == bi and gr is not None else np.zeros(arr.size)
                lwc_g.append(g)
        for n in ("Bd", "Bu"):
            ad_in.append(p[n].ravel())
            gr = leaves[l][n].grad
            ad_g.append(gr.numpy().ravel() if gr is not None else np.zeros(p[n].size))
    lwc_in, lwc_g = np.concatenate(lwc_in), np.concatenate(lwc_g)
    ad_in, ad_g = np.concatenate(ad_in), np.concatenate(ad_g)

    hdr = struct.pack("<8i", halves, bias, l2, mode, placement, n_bits, bi, 1)
    hdr += struct.pack("<%di" % (3 * n_bits), *bits, *group, *rank)
    hdr += struct.pack("<3i", n_teq, lwc_in.size, ad_in.size)
    arrays = [s, lwc_in, ad_in, x, target, np.array([loss.item()]), out.detach().numpy(),
              st.grad.numpy(), lwc_g, ad_g]
    body = b"".join(np.ascontiguousarray(a, dtype="<f4").tobytes() for a in arrays)
    print("case seed %d: placement %s bits %s bi %d mode %d halves %d bias %d %s: loss %.6f, "
          "%d nudge rounds, |d teq| max %.3g, %d bytes"
          % (seed, "wide" if placement == 2 else "norm", bits, bi, mode, halves, bias,
             "L2" if l2 else "L1", loss.item(), it, float(st.grad.abs().max()), len(hdr) + len(body)))
    return hdr + body


# (seed, placement, bits, group per bit, rank per bit, bi, adapter_mode, rope_halves, qkv_bias, loss_l2)
CASES = [
    (21, 1, [2, 8], [32, 0], [6, 4], 0, 0, 0, 0, 0),          # norm placement, 2 bits, mode 0
    (22, 2, [3, 4, 8], [16, 20, 0], [6, 5, 4], 1, 1, 1, 1, 1),  # wide, mode 1, biases, L2
    (23, 2, [4], [32], [0], 0, 0, 0, 1, 0),                    # wide, no adapter (the rtn/gptq path's grid)
    (24, 2, [2, 8], [32, 0], [6, 4], 1, 0, 1, 0, 0),          # wide, 8 bits per channel, r < R
]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "tests/data/teq_golden.bin"
    w = make_model()
    blobs = [make_case(w, *c) for c in CASES]
    data = MAGIC + struct.pack("<II", VERSION, len(blobs)) + model_bytes(w) + b"".join(blobs)
    with open(path, "wb") as f:
        f.write(data)
    print("wrote %s: %d cases, %d bytes" % (path, len(blobs), len(data)))


if __name__ == "__main__":
    main()
