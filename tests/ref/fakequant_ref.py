#!/usr/bin/python3
"""fakequant_ref.py — independent PyTorch autograd reference for
common/quant/fakequant.c (LWC fake quantization + MB-CLoRA adapters), and the
writer of tests/data/fakequant_golden.bin that tests/test_fakequant.c reads.

Run with Debian's interpreter (python3-torch 1.13):
    /usr/bin/python3 tests/ref/fakequant_ref.py [out_path]
It is deterministic (numpy PCG64 with fixed seeds); re-running rewrites the
same file.

The math (DESIGN.md §1, fakequant.h) is written here directly as torch ops in
float64, and the gradients come from autograd, not from a hand derivation:
    A  = Bd[:, :r] @ Bu[:r, :]
    mode 0: X = W + A, grid from X;  mode 1: grid from W, u = W/s + A/s
    per group: xmax' = sigmoid(gamma)*max, xmin' = sigmoid(beta)*min
               (factors 1 when lwc == 0)
               s = max((xmax'-xmin')/qmax, 1e-5)   gradient passes through
               z = -round(xmin'/s)                 no gradient
               q = clamp(round_ste(u) + z, 0, qmax)  (torch.clamp)
               What = (q - z) * s
Groups run along the input dimension; a partial last group uses only its real
elements. torch.amax/amin split the gradient evenly between exact ties.

Inputs are float32; the reference runs in float64 on those exact values and
its outputs are stored rounded to float32. The generator nudges the LWC logits
(or, with lwc == 0, the weights) of any group that sits near a discontinuity
of the float64 math, so that float32 evaluation cannot land on the other side:
    |frac(u) - 1/2|       >= 2e-3 for every element (round of u)
    |frac(xmin'/s) - 1/2| >= 2e-3 (round of z)
    |s_raw - 1e-5|        >= 1e-3 * 1e-5 (the clamp on s)
    top-2 gap of max/min  == 0 (an intended exact tie) or >= 1e-5 * range
So the C float32 result has no rounding flips against this golden file, and
the test can compare gradients tightly.

Binary format (little-endian):
    char[4] magic "QFQG"; uint32 version (1); uint32 n_cases
    per case:
      int32[8]  out, in, bits, group, rank, R, mode, lwc
      float32   W[out*in]  Bd[out*R]  Bu[R*in]  gamma[out*ng]  beta[out*ng]
                dWhat[out*in]                                   (inputs)
                What[out*in]  scales[out*ng]  zeros[out*ng]
                dgamma[out*ng]  dbeta[out*ng]  dBd[out*R]  dBu[R*in]  (outputs)
    with ng = ceil(in/group); all row-major. gamma/beta/dgamma/dbeta are
    stored (as zeros) even when lwc == 0. dBd/dBu are the gradients of
    sum(What * dWhat), i.e. the backward given upstream gradient dWhat.
"""
import math
import struct
import sys

import numpy as np
import torch

MAGIC = b"QFQG"
VERSION = 1
MARGIN_ROUND = 2e-3
MARGIN_GAP = 1e-5


def ste_round(x):
    return x + (x.round() - x).detach()


def fakequant(W, Bd, Bu, gamma, beta, bits, group, rank, mode, lwc):
    """W, Bd, Bu, gamma, beta: float64 tensors (gradients tracked by caller).
    Returns What, and per-group s, z, and diagnostics for the margin checks."""
    out, inn = W.shape
    ng = (inn + group - 1) // group
    qmax = float(2 ** bits - 1)
    if rank > 0:
        A = Bd[:, :rank] @ Bu[:rank, :]
    else:
        A = torch.zeros_like(W)
    X = W + A if mode == 0 else W
    blocks, scales, zeros, diag = [], [], [], []
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
        if mode == 0:
            u = Xg / s
        else:
            u = W[:, c0:c1] / s + A[:, c0:c1] / s
        q = torch.clamp(ste_round(u) + z, 0.0, qmax)
        blocks.append((q - z) * s)
        scales.append(s)
        zeros.append(z)
        diag.append((u.detach(), zr, s_raw.detach(), Xg.detach()))
    What = torch.cat(blocks, dim=1)
    return What, torch.cat(scales, dim=1), torch.cat(zeros, dim=1), diag


def frac_dist(x):
    """Distance of x from the nearest half-integer rounding boundary."""
    return (x - torch.floor(x) - 0.5).abs()


def bad_groups(diag, mode):
    """(out, ng) bool: groups too close to a float32/float64 discontinuity."""
    cols = []
    for (u, zr, s_raw, Xg) in diag:
        bad = (frac_dist(u) < MARGIN_ROUND).any(dim=1, keepdim=True)
        bad |= frac_dist(zr) < MARGIN_ROUND
        bad |= (s_raw - 1e-5).abs() < 1e-3 * 1e-5
        if mode == 0 and Xg.shape[1] > 1:
            srt, _ = Xg.sort(dim=1)
            rng = srt[:, -1:] - srt[:, :1]
            for gap in (srt[:, -1:] - srt[:, -2:-1], srt[:, 1:2] - srt[:, :1]):
                bad |= (gap != 0) & (gap < MARGIN_GAP * rng)
        cols.append(bad)
    return torch.cat(cols, dim=1).numpy()


def make_case(seed, out, inn, bits, group, rank, R, mode, lwc, const_row):
    rng = np.random.default_rng(seed)
    ng = (inn + group - 1) // group
    f32 = np.float32
    W = 0.05 * rng.standard_normal((out, inn))
    outl = rng.random((out, inn)) < 0.02  # a few outliers widen some groups
    W[outl] *= 5.0
    Bd = 0.05 * rng.standard_normal((out, R))
    a = math.sqrt(6.0 / (R + inn)) if R > 0 else 0.0  # Xavier-uniform Bu
    Bu = rng.uniform(-a, a, (R, inn))
    if lwc:
        # mostly near the 4.0 init, a third around 0 (clip to ~27%..73%)
        near_init = rng.random((out, ng)) < 0.65
        gamma = np.where(near_init, 4.0 + 0.3 * rng.standard_normal((out, ng)),
                         0.8 * rng.standard_normal((out, ng)))
        near_init = rng.random((out, ng)) < 0.65
        beta = np.where(near_init, 4.0 + 0.3 * rng.standard_normal((out, ng)),
                        0.8 * rng.standard_normal((out, ng)))
    else:
        gamma = np.zeros((out, ng))
        beta = np.zeros((out, ng))
    if const_row:
        # row 0: a constant weight row with a zero adapter row, so in mode 0
        # X is constant (max and min tie over the whole group), and
        # sigmoid(gamma) < sigmoid(beta) makes s_raw < 0: s is clamped to
        # 1e-5 and its gradient must pass through.
        W[0, :] = 2.3e-4  # u = W/1e-5 = 23, z moderate: the row does not dominate
        Bd[0, :] = 0.0
        beta[0, :] = 1.0 + 0.2 * rng.standard_normal(ng)
        gamma[0, :] = beta[0, :] - 1.0
    dWhat = rng.standard_normal((out, inn))
    W, Bd, Bu, gamma, beta, dWhat = (x.astype(f32) for x in (W, Bd, Bu, gamma, beta, dWhat))

    for _ in range(2000):
        with torch.no_grad():
            _, _, _, diag = fakequant(*(torch.from_numpy(x).double() for x in (W, Bd, Bu, gamma, beta)),
                                      bits, group, rank, mode, lwc)
        bad = bad_groups(diag, mode)
        if not bad.any():
            break
        for o, k in zip(*np.nonzero(bad)):
            if lwc:
                gamma[o, k] += f32(0.05 * rng.standard_normal())
                beta[o, k] += f32(0.05 * rng.standard_normal())
            else:
                c0, c1 = k * group, min((k + 1) * group, inn)
                W[o, c0:c1] += (0.002 * rng.standard_normal(c1 - c0)).astype(f32)
    else:
        raise RuntimeError("case seed %d: could not move groups off the rounding boundaries" % seed)

    t = {n: torch.from_numpy(x).double().requires_grad_(True)
         for n, x in (("W", W), ("Bd", Bd), ("Bu", Bu), ("gamma", gamma), ("beta", beta))}
    What, S, Z, _ = fakequant(t["W"], t["Bd"], t["Bu"], t["gamma"], t["beta"],
                              bits, group, rank, mode, lwc)
    (What * torch.from_numpy(dWhat).double()).sum().backward()

    def grad(n):
        g = t[n].grad
        return np.zeros(t[n].shape) if g is None else g.numpy()

    header = struct.pack("<8i", out, inn, bits, group, rank, R, mode, lwc)
    arrays = [W, Bd, Bu, gamma, beta, dWhat,
              What.detach().numpy(), S.detach().numpy(), Z.detach().numpy(),
              grad("gamma"), grad("beta"), grad("Bd"), grad("Bu")]
    body = b"".join(np.ascontiguousarray(x, dtype="<f4").tobytes() for x in arrays)
    return header + body


# (seed, out, in, bits, group, rank, R, mode, lwc, const_row)
CASES = [
    (101, 8, 80, 2, 32, 4, 8, 0, 1, True),    # partial last group (16), r < R
    (102, 8, 80, 2, 32, 8, 8, 0, 1, False),   # r = R
    (103, 8, 80, 4, 32, 8, 8, 0, 1, True),
    (104, 8, 80, 8, 80, 4, 8, 0, 1, False),   # per channel
    (105, 8, 80, 8, 32, 8, 8, 0, 1, False),
    (106, 8, 80, 3, 16, 0, 8, 0, 1, False),   # no adapter (r = 0), full groups
    (107, 8, 80, 4, 32, 8, 8, 0, 0, False),   # adapter without LWC (factors 1)
    (201, 8, 80, 2, 32, 8, 8, 1, 1, True),    # mode 1
    (202, 8, 80, 4, 80, 4, 8, 1, 1, True),    # mode 1, per channel
    (203, 8, 80, 8, 32, 4, 8, 1, 1, False),
    (204, 8, 80, 3, 24, 6, 8, 1, 0, False),   # mode 1, no LWC, last group of 8
    (301, 6, 41, 4, 13, 5, 6, 0, 1, False),   # odd sizes: groups 13,13,13,2
]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "tests/data/fakequant_golden.bin"
    blobs = [make_case(*c) for c in CASES]
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<II", VERSION, len(blobs)))
        for b in blobs:
            f.write(b)
    print("wrote %s: %d cases" % (path, len(blobs)))


if __name__ == "__main__":
    main()
