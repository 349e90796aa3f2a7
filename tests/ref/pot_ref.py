#!/usr/bin/python3
"""pot_ref.py — independent PyTorch autograd reference for the power-of-two
(PoT) quantizer (common/quant/pot.c, fakequant.c's FQ_FORMAT_POT path) and
for a whole quantized block's training step with PoT weights
(recon_step_bit), and the writer of tests/data/pot_golden.bin that
tests/test_pot.c reads.

Run with Debian's interpreter (python3-torch 1.13):
    /usr/bin/python3 tests/ref/pot_ref.py [out_path]
Deterministic (numpy PCG64, fixed seeds). The block part reuses the block
forward, the model and its byte layout of tests/ref/qblock_ref.py (imported,
so both references compute the same block); the quantizer is written here.

The math (DESIGN.md §2, pot.h, fakequant.h), torch ops in float64 on float32
inputs, gradients by autograd:
    A = Bd[:, :r] @ Bu[:r, :],  X = W + A
    per group (along in; a partial last group uses its real elements):
      f  = 1 + gamma  (1 when lwc == 0),  fc = max(f, 0.01) (gradient passes)
      s  = s0 * fc                        s0 ("beta") is an input, no gradient
      u  = X / s
      E_raw = floor(log2|u|) + [|u| / 2^floor(log2|u|) >= 1.5]
              (exponent of the NEAREST power of two, ties up)
      in = 0 <= E_raw <= Emax,  E = clamp(E_raw, 0, Emax),  Emax = 2^(b-1)-1
      q  = (signbit(u) ? -1 : 1) * 2^E
      v  = (in ? u + (q - u).detach() : q.detach()) * s      (STE)
    codes = signbit << (b-1) | E
  Block step: loss = recon_loss(block(x; v of every linear at bit bi), target)
  (L1 or L2 as qblock_ref) + pot_l2 * sum over the 7 linears of sum(gamma_bi^2);
  the file stores the reconstruction part of the loss (what recon_step_bit
  returns) and the gradients of the whole objective w.r.t. gamma_bi, Bd, Bu.

Float32 vs float64 safety: every |u| is kept >= 1.5e-3 (in log2 units) away
from each rounding boundary 1.5*2^k, k = -1 .. Emax (the level boundaries and
both ends of the STE range), and 1 + gamma away from the 0.01 floor, by
nudging gamma of the offending group; block outputs keep |out - target| >= 2e-3
(the L1 sign). A float32 torch run must give the same codes.

Binary format (little-endian; float32 arrays row-major):
    char[4] "QPOG"; uint32 version (1); uint32 n_quant_cases
    per quantizer case:
      int32[7]  out, in, bits, group, rank, R, lwc
      float32   W[out*in] Bd[out*R] Bu[R*in] gamma[out*ng] s0[out*ng]
                dWhat[out*in]                                         (inputs)
                What[out*in] codes[out*in] (as floats) scales[out*ng]
                dgamma[out*ng] dBd[out*R] dBu[R*in]                   (outputs)
      (gradients of sum(What * dWhat))
    uint32 n_block_cases; the model section of qblock_ref.py (model_bytes)
    per block case:
      int32[6]  rope_halves, has_qkv_bias, loss_l2, lwc, n_bits, bi
      float32   pot_l2
      int32[n_bits] bits, group, rank
      inputs:  per linear: Bd[out*R] Bu[R*in], per bit j: gamma_j[out*ng_j] s0_j[out*ng_j]
               x[B*T*C] target[B*T*C]
      outputs: float32 loss (reconstruction only); out[B*T*C];
               per linear: dgamma_bi[out*ng] dBd[out*R] dBu[R*in]
"""
import math
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qblock_ref as qb  # noqa: E402

MAGIC = b"QPOG"
VERSION = 1
MARGIN_LOG2 = 1.5e-3
MARGIN_L1 = 2e-3


def pot_quant(X, gamma, s0, bits, group, lwc):
    """X, gamma, s0: float64 tensors. Returns v (out, in), codes, scales,
    and per-group log2 distance to the nearest boundary (for the margins)."""
    out, inn = X.shape
    ng = (inn + group - 1) // group
    emax = 2 ** (bits - 1) - 1
    vs, codes, scales, dist = [], [], [], []
    for k in range(ng):
        c0, c1 = k * group, min((k + 1) * group, inn)
        Xg = X[:, c0:c1]
        f = 1.0 + gamma[:, k:k + 1] if lwc else torch.ones_like(s0[:, k:k + 1])
        fc = f + (f.clamp(min=0.01) - f).detach()
        s = s0[:, k:k + 1] * fc
        u = Xg / s
        a = u.detach().abs()
        fl = torch.floor(torch.log2(a))
        eraw = fl + (a / torch.pow(2.0, fl) >= 1.5).double()
        inr = (eraw >= 0) & (eraw <= emax)
        E = eraw.clamp(0, emax)
        neg = torch.signbit(u.detach())
        q = torch.where(neg, -torch.pow(2.0, E), torch.pow(2.0, E))
        qste = torch.where(inr, u + (q - u).detach(), q)
        vs.append(qste * s)
        codes.append(neg.double() * 2 ** (bits - 1) + E)
        scales.append(s.detach())
        # distance (log2 units) of |u| to the boundaries 1.5*2^k, k = -1..emax
        l = torch.log2(a / 1.5)
        d = (l - torch.round(l)).abs()
        d = torch.where((l < -1.5) | (l > emax + 0.5), torch.ones_like(d), d)
        dist.append(d.amin(dim=1, keepdim=True))
    return (torch.cat(vs, dim=1), torch.cat(codes, dim=1), torch.cat(scales, dim=1),
            torch.cat(dist, dim=1), (1.0 + gamma) if lwc else None)


def nudge(rng, gamma, dist, fac, s0=None):
    """Moves gamma (or, with s0 given, the scale s0) of the groups too close
    to a boundary; returns the count."""
    bad = dist.numpy() < MARGIN_LOG2
    if fac is not None:
        bad |= np.abs(fac.detach().numpy() - 0.01) < 1e-3
    for o, k in zip(*np.nonzero(bad)):
        if s0 is not None:
            s0[o, k] *= np.float32(1.0 + 0.02 * rng.standard_normal())
        else:
            gamma[o, k] += np.float32(0.02 * rng.standard_normal())
    return int(bad.sum())


def data_free_like(W, bits, group, rng):
    """s0 near a sensible data-free scale: max|w| / 2^Emax times a jitter."""
    out, inn = W.shape
    ng = (inn + group - 1) // group
    emax = 2 ** (bits - 1) - 1
    s0 = np.empty((out, ng), np.float32)
    for k in range(ng):
        m = np.abs(W[:, k * group:(k + 1) * group]).max(axis=1)
        s0[:, k] = m / 2.0 ** emax * rng.uniform(0.6, 1.4, out)
    return s0


def f32b(*arrays):
    return b"".join(np.ascontiguousarray(a, dtype="<f4").tobytes() for a in arrays)


def t64(a, grad=False):
    t = torch.from_numpy(np.asarray(a)).double()
    return t.requires_grad_(True) if grad else t


def quant_case(seed, out, inn, bits, group, rank, R, lwc):
    rng = np.random.default_rng(seed)
    f32 = np.float32
    ng = (inn + group - 1) // group
    W = (rng.standard_normal((out, inn)) / math.sqrt(inn)).astype(f32)
    W[rng.random((out, inn)) < 0.03] *= 5.0
    W[0, 0] = -W[0, 0] if W[0, 0] > 0 else W[0, 0]  # some negative values for sure
    Bd = (0.05 * rng.standard_normal((out, R))).astype(f32) if R else np.zeros((out, 0), f32)
    a = math.sqrt(6.0 / (R + inn)) if R else 0.0
    Bu = rng.uniform(-a, a, (R, inn)).astype(f32) if R else np.zeros((0, inn), f32)
    gamma = (0.15 * rng.standard_normal((out, ng))).astype(f32) if lwc else np.zeros((out, ng), f32)
    if lwc and out * ng > 2:
        gamma.flat[1] = f32(-1.3)  # one group on the 0.01 floor of 1 + gamma
    s0 = data_free_like(W, bits, group, rng)
    dW = rng.standard_normal((out, inn)).astype(f32)
    for it in range(2000):
        with torch.no_grad():
            X = t64(W) + (t64(Bd)[:, :rank] @ t64(Bu)[:rank, :] if rank else 0.0)
            _, _, _, dist, fac = pot_quant(X, t64(gamma), t64(s0), bits, group, lwc)
        if nudge(rng, gamma, dist, fac, None if lwc else s0) == 0:
            break
    else:
        raise RuntimeError("quant case %d: could not leave the boundaries" % seed)
    tB, tU, tg = t64(Bd, True), t64(Bu, True), t64(gamma, True)
    X = t64(W) + (tB[:, :rank] @ tU[:rank, :] if rank else 0.0)
    v, codes, scales, _, _ = pot_quant(X, tg, t64(s0), bits, group, lwc)
    (v * t64(dW)).sum().backward()
    with torch.no_grad():  # float32 cross-check of the codes
        X32 = torch.from_numpy(W) + (torch.from_numpy(Bd)[:, :rank] @ torch.from_numpy(Bu)[:rank, :]
                                     if rank else 0.0)
        c32 = pot_quant(X32.double().float().double(), t64(gamma), t64(s0), bits, group, lwc)[1]
        if not torch.equal(c32, codes):
            raise RuntimeError("quant case %d: float32 codes differ" % seed)
    zero = np.zeros((out, ng))
    hdr = struct.pack("<7i", out, inn, bits, group, rank, R, lwc)
    body = f32b(W, Bd, Bu, gamma, s0, dW, v.detach().numpy(), codes.numpy(), scales.numpy(),
                tg.grad.numpy() if lwc else zero,
                tB.grad.numpy() if R else Bd, tU.grad.numpy() if R else Bu)
    print("quant case %d: (%d x %d) bits %d group %d rank %d/%d lwc %d: %d nudge rounds, "
          "codes %s" % (seed, out, inn, bits, group, rank, R, lwc, it,
                        np.unique(codes.numpy()).astype(int).tolist()[:12]))
    return hdr + body


# (seed, out, in, bits, group, rank, R, lwc)
QUANT_CASES = [
    (1, 6, 40, 2, 16, 0, 0, 1),    # 2 bits: ±s, ±2s; groups 16+16+8
    (2, 5, 64, 3, 64, 3, 5, 1),    # 3 bits, adapter prefix r < R
    (3, 7, 50, 4, 32, 4, 4, 1),    # 4 bits, partial group 32+18, r = R
    (4, 4, 48, 5, 48, 2, 3, 1),    # 5 bits, one group per row
    (5, 6, 40, 3, 16, 2, 2, 0),    # lwc off: gamma ignored, no dgamma
]


def block_case(w, seed, bits, group, rank, bi, halves, bias, l2, pot_l2):
    rng = np.random.default_rng(seed)
    m = qb.MODEL
    B, T, C = m["B"], m["T"], m["C"]
    f32 = np.float32
    shapes = qb.lin_shapes(m)
    P = []
    for (name, (out, inn)) in zip(qb.LIN_NAMES, shapes):
        R = max(qb.eff_rank(rk, out, inn) for rk in rank)
        a = math.sqrt(6.0 / (R + inn))
        p = {"R": R, "Bd": (0.05 * rng.standard_normal((out, R))).astype(f32),
             "Bu": rng.uniform(-a, a, (R, inn)).astype(f32), "g": [], "s0": []}
        for j in range(len(bits)):
            g = qb.eff_group(group[j], inn)
            ng = -(-inn // g)
            p["g"].append((0.15 * rng.standard_normal((out, ng))).astype(f32))
            p["s0"].append(data_free_like(w[name], bits[j], g, rng))
        P.append(p)
    spec = [(bits[bi], qb.eff_group(group[bi], inn), qb.eff_rank(rank[bi], out, inn))
            for (out, inn) in shapes]

    def quantize(params, grad):
        res = []
        for l, name in enumerate(qb.LIN_NAMES):
            b_, g_, r_ = spec[l]
            p = params[l]
            X = t64(w[name]) + (p["tBd"][:, :r_] @ p["tBu"][:r_, :] if r_ else 0.0)
            res.append(pot_quant(X, p["tg"], t64(P[l]["s0"][bi]), b_, g_, 1))
        return res

    for it in range(2000):
        with torch.no_grad():
            tp = [{"tBd": t64(p["Bd"]), "tBu": t64(p["Bu"]), "tg": t64(p["g"][bi])} for p in P]
            res = quantize(tp, False)
        n_bad = sum(nudge(rng, P[l]["g"][bi], res[l][3], res[l][4]) for l in range(7))
        if n_bad == 0:
            break
    else:
        raise RuntimeError("block case %d: could not leave the boundaries" % seed)

    wt = {n: t64(w[n]) for n in ("attn_norm", "mlp_norm", "bq", "bk", "bv")}
    x = rng.standard_normal((B, T, C)).astype(f32)
    with torch.no_grad():
        out_fp = qb.block_forward(m, wt, [t64(w[n]) for n in qb.LIN_NAMES], t64(x), halves, bias).numpy()
        out_q = qb.block_forward(m, wt, [r[0] for r in res], t64(x), halves, bias).numpy()
    noise = 0.05 * rng.standard_normal((B, T, C))
    for _ in range(100):
        target = (out_fp + noise).astype(f32)
        small = np.abs(out_q - target.astype(np.float64)) < MARGIN_L1
        if not small.any():
            break
        noise[small] = 0.05 * rng.standard_normal(int(small.sum()))
    else:
        raise RuntimeError("block case %d: |out - target| too small" % seed)

    tp = [{"tBd": t64(p["Bd"], True), "tBu": t64(p["Bu"], True), "tg": t64(p["g"][bi], True)} for p in P]
    res = quantize(tp, True)
    out = qb.block_forward(m, wt, [r[0] for r in res], t64(x), halves, bias)
    rec = qb.recon_loss(out, t64(target), l2, B, C)
    pen = sum((p["tg"] ** 2).sum() for p in tp) * float(np.float32(pot_l2))
    (rec + pen).backward()

    hdr = struct.pack("<6i", halves, bias, l2, 1, len(bits), bi) + struct.pack("<f", pot_l2)
    hdr += struct.pack("<%di" % (3 * len(bits)), *bits, *group, *rank)
    arrays = []
    for p in P:
        arrays += [p["Bd"], p["Bu"]]
        for j in range(len(bits)):
            arrays += [p["g"][j], p["s0"][j]]
    arrays += [x, target, np.array([rec.item()]), out.detach().numpy()]
    for d in tp:
        arrays += [d[n].grad.numpy() if d[n].grad is not None else np.zeros(d[n].shape)
                   for n in ("tg", "tBd", "tBu")]
    body = f32b(*arrays)
    print("block case %d: bits %s bi %d %s pot_l2 %g: loss %.6f, %d nudge rounds, %d bytes"
          % (seed, bits, bi, "L2" if l2 else "L1", pot_l2, rec.item(), it, len(hdr) + len(body)))
    return hdr + body


# (seed, bits, group per bit, rank per bit, bi, rope_halves, qkv_bias, loss_l2, pot_l2)
BLOCK_CASES = [
    (21, [2, 3], [32, 32], [6, 4], 0, 0, 0, 0, 1e-3),   # 2 bits, groups 32 (+16), r = R
    (22, [2, 4, 5], [32, 20, 0], [6, 5, 3], 1, 1, 1, 1, 1e-2),  # 4 bits, groups 20 (+8), r < R, L2
    (23, [3, 5], [16, 0], [4, 0], 1, 0, 0, 0, 0.0),    # 5 bits per channel, no adapter, no penalty
]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "tests/data/pot_golden.bin"
    qblobs = [quant_case(*c) for c in QUANT_CASES]
    w = qb.make_model()
    bblobs = [block_case(w, *c) for c in BLOCK_CASES]
    data = (MAGIC + struct.pack("<II", VERSION, len(qblobs)) + b"".join(qblobs) +
            struct.pack("<I", len(bblobs)) + qb.model_bytes(w) + b"".join(bblobs))
    with open(path, "wb") as f:
        f.write(data)
    print("wrote %s: %d quantizer + %d block cases, %d bytes" % (path, len(qblobs), len(bblobs), len(data)))


if __name__ == "__main__":
    main()
