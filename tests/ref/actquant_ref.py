#!/usr/bin/python3
"""actquant_ref.py — independent PyTorch autograd reference for ONE quantized
decoder block's training step WITH ACTIVATION QUANTIZATION (weight-activation
pairs such as W4A4, W8A8, W4A8: common/nn/actquant.h, block.c,
common/engine/recon_step.c), and the writer of tests/data/actquant_golden.bin
that tests/test_actquant.c reads.

Run with Debian's interpreter (python3-torch 1.13):
    /usr/bin/python3 tests/ref/actquant_ref.py [out_path]
Deterministic (numpy PCG64 with fixed seeds). The weight quantizer and the
block's helpers come from teq_golden.py (the weight-only TEQ reference, also
independent of the C code); the block forward, TEQ with placement 0 and the
activation quantizer are written here.

The activation quantizer is QuEPT's ActQuantizer
(xuke225/QuEPT src/llm/quantize/quantizer.py), written as it is there:
    xmax, xmin = x.amax(-1), x.amin(-1)       per token (row)
    abs_max = max(|xmax|, |xmin|)             (gradient to the arg-max of |x|)
    s = clamp_ste(abs_max / qmax, 1e-4, 1e4)  qmax = 2^(b-1) - 1; value clamped,
                                              gradient straight through
    y = clamp(round_ste(x / s), -qmax-1, qmax) * s
with the scale NOT detached. (The reference divides by the unclamped scale and
has no code clamp; the two agree unless the scale hits a bound, which no case
here comes near: see actquant.h.) It sits at the inputs of the linears: on
ln1 (once, for q, k, v), atty (o), ln2 (once, for gate, up) and swi (down),
when the case's width has activation bits (act[bi] != 16).

The weight quantizer (fakequant.h: LWC, cascaded adapters, modes 0 and 1),
TEQ (teq.h: placement 0 off, 1 norm, 2 wide), the block (RMSNorm, RoPE,
grouped-query causal attention, SwiGLU, residuals) and the loss (sum |out -
target| (L1) or (out - target)^2 (L2) over B*C) are as in teq_golden.py.
Autograd gives the gradients of the loss w.r.t. the block input x, the TEQ
scales, every LWC logit and every adapter. Everything is float64 on float32
inputs.

Float32 vs float64 safety. Besides the weight quantizer's margins
(teq_golden.py: round of u and z >= 2e-3 from .5, the step off its 1e-5
floor, top-2 gaps of group max/min >= 1e-5 of the range where the arg-max
carries a gradient: mode 0 with adapters, or TEQ-scaled columns; bad groups
get their logits, their Bd row or a scale nudged), every activation quantizer input is kept
away from its discontinuities: |frac(x/s) - 1/2| >= 1e-3 for every element,
and the gap between the largest |x| of a token and the largest one below it
>= 1e-4 of the largest (the arg-max that gets the scale's gradient). Exact
copies of the abs-max do occur: at t = 0 every query head of a GQA group
outputs its kv head's v row exactly (softmax over one score is 1), so atty
repeats values. torch splits the scale's gradient between the copies, C
gives it to the first; both copies come from the same element of v, so the
gradient reaching v (and everything before it) is the same sum. A token with a
bad element at any of the four sites gets its block input row x[b, t]
redrawn (which moves later tokens' atty too; repeated until none is bad).
|out - target| >= 2e-3 for L1. The whole quantized block is also run in
float32 torch and its activation codes (and weight codes) must equal the
float64 ones.

Binary format (little-endian, arrays row-major float32):
    char[4] "AQBK"; uint32 version (1); uint32 n_cases
    model section: int32[7] C, H, NH, NKV, hd, B, T; float32[2] theta, eps;
        attn_norm[C] wq[QD*C] wk[KVD*C] wv[KVD*C] wo[C*QD] bq[QD] bk[KVD]
        bv[KVD] mlp_norm[C] w_gate[H*C] w_up[H*C] w_down[C*H]
    per case:
      int32[7] rope_halves, has_qkv_bias, loss_l2, adapter_mode, placement
               (0 off, 1 norm, 2 wide), n_bits, bi
      int32[n_bits] bits, group, rank (QuantConfig.group / rank per bit;
               rank_ref_width 0, rank_cap 1), act (QuantConfig.act_bits as
               --act-bits writes them: 16 = none)
      int32[3] n_teq, n_lwc, n_adapter (sizes of the C layouts below)
      inputs:  teq[n_teq]   s_a, s_m (, t, u) concatenated (QBlockParams.teq)
               lwc[n_lwc]   per linear, per bit index: gamma, beta (out x ng)
               adapter[n_adapter]  per linear: Bd (out x R), Bu (R x in)
               x[B*T*C] target[B*T*C]
      outputs: float32 loss; out[B*T*C]; dx[B*T*C]; d teq[n_teq];
               d lwc[n_lwc] (zero except bit bi's); d adapter[n_adapter]
"""
import math
import struct
import sys

import numpy as np
import torch

# the parts shared with the weight-only TEQ reference, unchanged
from teq_golden import (bad_groups, eff_group, eff_rank, fakequant, frac_dist, lin_shapes, model_bytes,
                        recon_loss, rmsnorm, ste_round, tens)

MAGIC = b"AQBK"
VERSION = 1
MARGIN_ROUND = 2e-3
MARGIN_GAP = 1e-5
MARGIN_L1 = 2e-3
MARGIN_ACT = 1e-3
MARGIN_ACT_GAP = 1e-4
LIN_NAMES = ("wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")
MODEL = dict(C=48, H=80, NH=4, NKV=2, hd=12, B=2, T=5, theta=10000.0, eps=1e-5)
MODEL_SEED = 27


# ---------------------------------------------------------------- quantizers

def clamp_ste(x, lo, hi):
    return x + (x.clamp(lo, hi) - x).detach()


def act_quant(x, bits, sites=None):
    """QuEPT's ActQuantizer (module docstring); sites collects (x, s, codes)."""
    qmax = float(2 ** (bits - 1) - 1)
    xmax = x.amax(dim=-1, keepdim=True)
    xmin = x.amin(dim=-1, keepdim=True)
    abs_max = torch.max(xmax.abs(), xmin.abs())
    s = clamp_ste(abs_max / qmax, 1e-4, 1e4)
    code = torch.clamp(ste_round(x / s), -qmax - 1.0, qmax)
    if sites is not None:
        sites.append((x.detach(), s.detach(), code.detach()))
    return code * s


def bad_tokens(sites, B, T):
    """(B, T) bools: tokens with an activation quantizer input too close to a
    rounding boundary, or an abs-max whose runner-up is too close."""
    bad = np.zeros((B, T), dtype=bool)
    for (x, s, _) in sites:
        x = x.reshape(B, T, -1)
        s = s.reshape(B, T, 1)
        u = x / s
        near = (frac_dist(u) < MARGIN_ACT).any(dim=-1)
        ax = x.abs()
        top = ax.amax(dim=-1, keepdim=True)
        # exact copies of the abs-max are no risk (see the docstring): the
        # runner-up is the largest |x| below it
        second = torch.where(ax < top, ax, torch.zeros_like(ax)).amax(dim=-1)
        near |= (top[..., 0] - second) < MARGIN_ACT_GAP * top[..., 0]
        bad |= near.numpy()
    return bad


# -------------------------------------------------------------------- block

def rope(x, T, hd, theta, halves):
    half = hd // 2
    i = torch.arange(half, dtype=torch.float64)
    freq = torch.pow(torch.tensor(theta, dtype=torch.float64), -(2.0 * i) / hd)
    ang = (torch.arange(T, dtype=torch.float64)[:, None] * freq[None, :]).to(x.dtype)
    c = torch.cos(ang)[None, :, None, :]
    s = torch.sin(ang)[None, :, None, :]
    if halves:
        a0, a1 = x[..., :half], x[..., half:]
        return torch.cat([a0 * c - a1 * s, a0 * s + a1 * c], dim=-1)
    a0, a1 = x[..., 0::2], x[..., 1::2]
    r0, r1 = a0 * c - a1 * s, a0 * s + a1 * c
    return torch.stack([r0, r1], dim=-1).reshape(x.shape)


def block_forward(m, norms, Wq, x, halves, bias, abits, sites=None):
    """norms: attn_norm, mlp_norm, bq, bk, bv; Wq: 7 weights; abits 16 = no act quant."""
    B, T, NH, NKV, hd = m["B"], m["T"], m["NH"], m["NKV"], m["hd"]
    eps = float(np.float32(m["eps"]))
    theta = float(np.float32(m["theta"]))
    aq = (lambda t: act_quant(t, abits, sites)) if abits < 16 else (lambda t: t)
    ln1 = aq(rmsnorm(x, norms["attn_norm"], eps))
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
    h1 = x + aq(atty) @ Wq[3].T
    ln2 = aq(rmsnorm(h1, norms["mlp_norm"], eps))
    swi = torch.nn.functional.silu(ln2 @ Wq[4].T) * (ln2 @ Wq[5].T)
    return h1 + aq(swi) @ Wq[6].T


# --------------------------------------------------------------------- TEQ

def teq_lens(m, placement):
    C, H, KVD = m["C"], m["H"], m["NKV"] * m["hd"]
    return [C if placement else 0, C if placement else 0] + ([KVD, H] if placement == 2 else [0, 0])


def teq_transform(w, s, m, placement):
    """(norms, 7 weights) of the transformed block (teq.h); C's order: W*col, then /row."""
    lens = teq_lens(m, placement)
    parts, o = [], 0
    for n in lens:
        parts.append(s[o:o + n] if n else None)
        o += n
    sa, sm, t, u = parts
    NH, NKV, hd = m["NH"], m["NKV"], m["hd"]
    norms = {"attn_norm": w["attn_norm"], "mlp_norm": w["mlp_norm"],
             "bq": w["bq"], "bk": w["bk"], "bv": w["bv"]}
    W = [w[n] for n in LIN_NAMES]
    if sa is not None:
        norms["attn_norm"] = w["attn_norm"] / sa
        norms["mlp_norm"] = w["mlp_norm"] / sm
        for l in (0, 1, 2):
            W[l] = W[l] * sa[None, :]
        for l in (4, 5):
            W[l] = W[l] * sm[None, :]
    if t is not None:
        W[2] = W[2] / t[:, None]
        norms["bv"] = w["bv"] / t
        texp = t.view(NKV, hd).repeat_interleave(NH // NKV, dim=0).reshape(-1)
        W[3] = W[3] * texp[None, :]
    if u is not None:
        W[5] = W[5] / u[:, None]
        W[6] = W[6] * u[None, :]
    return norms, W


def col_group_index(l, i, m, placement):
    lens = teq_lens(m, placement)
    offs = np.cumsum([0] + lens[:-1])
    NH, NKV, hd = m["NH"], m["NKV"], m["hd"]
    if placement == 0:
        return None
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


def quantize_all(w, s, P, spec, mode, placement, dtype):
    wt = {k: tens(v, dtype) for k, v in w.items()}
    norms, W = teq_transform(wt, tens(s, dtype), MODEL, placement)
    res = []
    for l in range(7):
        bits, g, r = spec[l]
        p = P[l]
        args = [tens(p[n], dtype) for n in ("Bd", "Bu", "gamma", "beta")]
        res.append(fakequant(W[l], *args, bits, g, r, mode))
    return res, norms


def make_case(w, seed, placement, bits, group, rank, act, bi, mode, halves, bias, l2):
    rng = np.random.default_rng(seed)
    m = MODEL
    B, T, C = m["B"], m["T"], m["C"]
    f32 = np.float32
    n_bits = len(bits)
    abits = act[bi]
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

    # the weight quantizer off its discontinuities
    for it in range(3000):
        with torch.no_grad():
            res, _ = quantize_all(w, s, P, spec, mode, placement, torch.float64)
        n_bad = 0
        for l, (_, _, diag) in enumerate(res):
            rb, gb, arg = bad_groups(diag)
            # a max/min tie matters only where the arg-max carries a gradient
            # of its own: to the adapters (mode 0) or to a column's TEQ scale
            if not ((mode == 0 and spec[l][2] > 0) or col_group_index(l, 0, m, placement) is not None):
                gb[:] = False
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
        raise RuntimeError("case seed %d: could not move the weights off the rounding boundaries" % seed)

    # the activation quantizers off theirs: redraw the input rows of bad tokens
    x = rng.standard_normal((B, T, C)).astype(f32)
    Wq64 = [r[0] for r in res]
    wt = {k: tens(v) for k, v in w.items()}
    norms_t = teq_transform(wt, tens(s), m, placement)[0]
    for ait in range(2000):
        sites = []
        with torch.no_grad():
            out_q = block_forward(m, norms_t, Wq64, tens(x), halves, bias, abits, sites).numpy()
        bad = bad_tokens(sites, B, T) if abits < 16 else np.zeros((B, T), dtype=bool)
        if not bad.any():
            break
        for b_, t_ in zip(*np.nonzero(bad)):
            x[b_, t_] = rng.standard_normal(C).astype(f32)
    else:
        raise RuntimeError("case seed %d: could not move the activations off the rounding boundaries" % seed)

    # float32 cross-check: the same weight and activation codes in float32
    with torch.no_grad():
        res32, norms32 = quantize_all(w, s, P, spec, mode, placement, torch.float32)
        sites32 = []
        block_forward(m, norms32, [r[0] for r in res32], tens(x, torch.float32), halves, bias, abits, sites32)
    for l in range(7):
        if not torch.equal(res[l][1], res32[l][1].double()):
            raise RuntimeError("case seed %d %s: float32 weight codes differ" % (seed, LIN_NAMES[l]))
    for k_, (a64, a32) in enumerate(zip(sites, sites32)):
        if not torch.equal(a64[2], a32[2].double()):
            raise RuntimeError("case seed %d: float32 activation codes differ at site %d" % (seed, k_))

    with torch.no_grad():
        norms_fp = {k: wt[k] for k in ("attn_norm", "mlp_norm", "bq", "bk", "bv")}
        out_fp = block_forward(m, norms_fp, [wt[n] for n in LIN_NAMES], tens(x), halves, bias, 16).numpy()
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
    xt = tens(x, grad=True)
    norms, Wt = teq_transform(wt, st, m, placement)
    leaves, Wq = [], []
    for l in range(7):
        p = P[l]
        d = {n: tens(p[n], grad=True) for n in ("Bd", "Bu", "gamma", "beta")}
        b_, g_, r_ = spec[l]
        What, _, _ = fakequant(Wt[l], d["Bd"], d["Bu"], d["gamma"], d["beta"], b_, g_, r_, mode)
        leaves.append(d)
        Wq.append(What)
    out = block_forward(m, norms, Wq, xt, halves, bias, abits)
    loss = recon_loss(out, tens(target), l2, B, C)
    loss.backward()

    # the C layouts
    lwc_in, lwc_g, ad_in, ad_g = [], [], [], []
    for l, p in enumerate(P):
        for j in range(n_bits):
            for n, arr in (("gamma", p["lwc"][j][0]), ("beta", p["lwc"][j][1])):
                lwc_in.append(arr.ravel())
                gr = leaves[l][n].grad
                lwc_g.append(gr.numpy().ravel() if j == bi and gr is not None else np.zeros(arr.size))
        for n in ("Bd", "Bu"):
            ad_in.append(p[n].ravel())
            gr = leaves[l][n].grad
            ad_g.append(gr.numpy().ravel() if gr is not None else np.zeros(p[n].size))
    lwc_in, lwc_g = np.concatenate(lwc_in), np.concatenate(lwc_g)
    ad_in, ad_g = np.concatenate(ad_in), np.concatenate(ad_g)
    teq_g = st.grad.numpy() if n_teq else np.zeros(0)

    hdr = struct.pack("<7i", halves, bias, l2, mode, placement, n_bits, bi)
    hdr += struct.pack("<%di" % (4 * n_bits), *bits, *group, *rank, *act)
    hdr += struct.pack("<3i", n_teq, lwc_in.size, ad_in.size)
    arrays = [s, lwc_in, ad_in, x, target, np.array([loss.item()]), out.detach().numpy(),
              xt.grad.numpy(), teq_g, lwc_g, ad_g]
    body = b"".join(np.ascontiguousarray(a, dtype="<f4").tobytes() for a in arrays)
    umax = max(float((a[0] / a[1]).abs().max()) for a in sites) if sites else 0.0
    print("case seed %d: W%dA%s teq %s bits %s act %s mode %d halves %d bias %d %s: loss %.6f, "
          "%d + %d nudge rounds, max |x/s| %.0f, |dx| max %.3g, %d bytes"
          % (seed, bits[bi], abits if abits < 16 else "16", ("off", "norm", "wide")[placement], bits, act,
             mode, halves, bias, "L2" if l2 else "L1", loss.item(), it, ait, umax,
             float(xt.grad.abs().max()), len(hdr) + len(body)))
    return hdr + body


# (seed, placement, bits, group, rank, act (16 = none), bi, adapter_mode, rope_halves, qkv_bias, loss_l2)
CASES = [
    (31, 0, [4, 8], [16, 0], [6, 4], [4, 8], 0, 0, 0, 0, 0),    # W4A4, groups of 16, L1
    (32, 0, [4, 8], [16, 0], [6, 4], [4, 8], 1, 0, 1, 1, 0),    # W8A8 per channel, r < R, biases
    (33, 0, [4, 6, 8], [16, 32, 0], [6, 5, 4], [8, 16, 8], 0, 1, 0, 1, 1),  # W4A8, mode 1, L2
    (34, 1, [4, 8], [16, 0], [6, 4], [4, 8], 0, 0, 1, 0, 0),    # W4A4 with TEQ on q/k/v, gate/up
    (35, 2, [5, 6], [0, 20], [4, 4], [6, 6], 1, 0, 0, 1, 0),    # W6A6, TEQ wide (o, down too)
]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "tests/data/actquant_golden.bin"
    w = make_model()
    blobs = [make_case(w, *c) for c in CASES]
    data = MAGIC + struct.pack("<II", VERSION, len(blobs)) + model_bytes(w) + b"".join(blobs)
    with open(path, "wb") as f:
        f.write(data)
    print("wrote %s: %d cases, %d bytes" % (path, len(blobs), len(data)))


if __name__ == "__main__":
    main()
