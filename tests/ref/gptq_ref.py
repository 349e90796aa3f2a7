#!/usr/bin/python3
"""gptq_ref.py — independent PyTorch float64 reference for common/quant/gptq.c
(GPTQ, Frantar et al. 2022, on the fakequant RTN grid), and the writer of
tests/data/gptq_golden.bin that tests/test_gptq.c reads.

Run with Debian's interpreter (python3-torch 1.13):
    /usr/bin/python3 tests/ref/gptq_ref.py [out_path]
It is deterministic (numpy PCG64 with fixed seeds); re-running rewrites the
same file.

The algorithm follows the GPTQ reference code (gptq.py, fasterquant) with
act-order off and static groups off:
    H = X^T X  (any positive multiple gives the same result)
    dead = diag(H) == 0:  H[dead, dead] = 1,  W[:, dead] = 0
    H += percdamp * mean(diag(H)) * I
    U = cholesky(cholesky_inverse(cholesky(H)), upper=True)   # Hinv = U^T U
    for each column i (in order):
        if i % group == 0: the group's grid from the CURRENT weights
                           W[:, i:i+group] (all updates of columns < i applied)
        q = Q(W[:, i]);  err = (W[:, i] - q) / U[i, i]
        W[:, i:] -= err ⊗ U[i, i:]
The one deliberate difference from the reference code: it takes the grid of
a group from the weights as they stood at the start of the current lazy
block (W, not the block's working copy W1), so its grids depend on the block
size unless group == block size; here (and in gptq.c) the grid always sees
every earlier column's update. Both are identical for group == block size
(the 128/128 default).

The grid is fakequant's RTN grid (lwc off, no adapter), per row and group:
    s = max((xmax - xmin)/qmax, 1e-5), z = -round(xmin/s),
    q = clamp(round(w/s) + z, 0, qmax), What = (q - z)*s,   round half-even.
Groups run along the input dimension; the last group may be partial.

Two implementations are run and must agree in float64 (max |diff| < 1e-9):
    gptq_plain   — the column loop above, every update applied at once
    gptq_blocked — the reference code's lazy-batch structure (blocks of
                   block_size columns, in-block rank-1 updates, one matmul
                   for the rest after each block), with the grid of a group
                   that reaches past the block corrected by the pending
                   updates of the current block
The stored What is gptq_blocked's at the case's block size.

Inputs are float32 (W, X); the reference runs in float64 on those exact
values. Rows of W are independent in GPTQ (U is shared, rows never mix), so
the generator redraws any row of W whose float64 run passes within MARGIN of
a rounding boundary, in any case of its problem: |frac(w/s) - 1/2| and
|frac(xmin/s) - 1/2| >= MARGIN (in grid steps) for every element/group. The
float32 C run can then only flip a code where its own error exceeds MARGIN.

Binary format (little-endian):
    char[4] magic "QGPQ"; uint32 version (1); uint32 n_problems
    per problem:
      int32[3]  out, in, N
      float32   damp                     (percdamp, relative to mean diag(H))
      float32   W[out*in]  X[N*in]       (inputs; H = X^T X)
      float32   U[in*in]                 upper Cholesky factor of the damped
                                         inverse (row-major, zero below the
                                         diagonal): Hinv = U^T U
      uint32    n_cases
      per case:
        int32[3] bits, group, block_size
        float32  What[out*in]  scales[out*ng]  zeros[out*ng]   (ng = ceil(in/group))
        float64  err_gptq, err_rtn       ||X What^T - X W^T||_F of GPTQ and RTN
"""
import struct
import sys

import numpy as np
import torch

MAGIC = b"QGPQ"
VERSION = 1
MARGIN = 1e-3
SCALE_MIN = 1e-5

torch.set_default_dtype(torch.float64)


def grid(cur, qmax):
    """Per-row grid of a group's current weights cur (out, n)."""
    xmax = cur.amax(dim=1)
    xmin = cur.amin(dim=1)
    s = torch.clamp((xmax - xmin) / qmax, min=SCALE_MIN)
    zr = xmin / s
    z = -torch.round(zr)
    return s, z, zr


def quant(w, s, z, qmax):
    u = w / s
    q = torch.clamp(torch.round(u) + z, 0, qmax)
    return (q - z) * s, u


def frac_dist(x):
    """Distance of x from the nearest .5 boundary of round()."""
    return (x - torch.floor(x) - 0.5).abs()


def hinv_upper(H, percdamp):
    H = H.clone()
    n = H.shape[0]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    damp = percdamp * torch.mean(torch.diag(H))
    H[range(n), range(n)] += damp
    L = torch.linalg.cholesky(H)
    Hi = torch.cholesky_inverse(L)
    U = torch.linalg.cholesky(Hi, upper=True)
    return U, dead


def gptq_plain(W, U, dead, bits, group):
    W = W.clone()
    W[:, dead] = 0
    out, n = W.shape
    qmax = float(2 ** bits - 1)
    Q = torch.zeros_like(W)
    margin = torch.full((out,), float("inf"))
    ng = (n + group - 1) // group
    S = torch.zeros(out, ng)
    Z = torch.zeros(out, ng)
    for i in range(n):
        if i % group == 0:
            s, z, zr = grid(W[:, i:i + group], qmax)
            S[:, i // group] = s
            Z[:, i // group] = z
            margin = torch.minimum(margin, frac_dist(zr))
        q, u = quant(W[:, i], s, z, qmax)
        margin = torch.minimum(margin, frac_dist(u))
        Q[:, i] = q
        err = (W[:, i] - q) / U[i, i]
        W[:, i:] -= err[:, None] * U[i, i:][None, :]
    return Q, S, Z, margin


def gptq_blocked(W, U, dead, bits, group, blocksize):
    """The reference code's structure (fasterquant), grid from current weights."""
    W = W.clone()
    W[:, dead] = 0
    out, n = W.shape
    qmax = float(2 ** bits - 1)
    Q = torch.zeros_like(W)
    ng = (n + group - 1) // group
    S = torch.zeros(out, ng)
    Z = torch.zeros(out, ng)
    for i1 in range(0, n, blocksize):
        i2 = min(i1 + blocksize, n)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        U1 = U[i1:i2, i1:i2]
        for i in range(count):
            col = i1 + i
            if col % group == 0:
                ge = min(col + group, n)
                parts = [W1[:, i:min(ge, i2) - i1]]
                if ge > i2:  # pending updates of this block's earlier columns
                    parts.append(W[:, i2:ge] - Err1[:, :i] @ U[i1:col, i2:ge])
                s, z, _ = grid(torch.cat(parts, dim=1), qmax)
                S[:, col // group] = s
                Z[:, col // group] = z
            w = W1[:, i]
            d = U1[i, i]
            q, _ = quant(w, s, z, qmax)
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(U1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        Q[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(U[i1:i2, i2:])
    return Q, S, Z


def rtn(W, bits, group):
    out, n = W.shape
    qmax = float(2 ** bits - 1)
    Q = torch.zeros_like(W)
    for k in range(0, n, group):
        s, z, _ = grid(W[:, k:k + group], qmax)
        Q[:, k:k + group], _ = quant(W[:, k:k + group], s[:, None], z[:, None], qmax)
    return Q


def out_err(X, Wq, W):
    return torch.linalg.norm(X @ Wq.T - X @ W.T).item()


def make_x(rng, N, n, dead_cols):
    """Gaussian inputs with per-channel scales, a few strongly correlated
    column pairs and chains, and all-zero (dead) columns."""
    X = rng.standard_normal((N, n))
    X *= rng.uniform(0.3, 3.0, size=n)[None, :]
    for j in range(1, n, 3):  # every third column leans on its left neighbour
        X[:, j] = 0.9 * X[:, j - 1] + 0.3 * rng.standard_normal(N)
    X[:, 2] = X[:, 1] - 0.5 * X[:, 0] + 0.01 * rng.standard_normal(N)  # nearly collinear
    X += 0.5 * rng.standard_normal((N, 1))  # a shared component: all columns correlate
    for j in dead_cols:
        X[:, j] = 0.0
    return X.astype(np.float32)


def make_problem(seed, out, n, N, dead_cols, cases, damp=0.01):
    """cases: list of (bits, group, block_size)."""
    rng = np.random.default_rng(seed)
    X32 = make_x(rng, N, n, dead_cols)
    W32 = (rng.standard_normal((out, n)) * rng.uniform(0.5, 1.5, size=(out, 1))).astype(np.float32)
    X = torch.from_numpy(X32.astype(np.float64))
    H = X.T @ X
    U, dead = hinv_upper(H, damp)
    Hd = H.clone()
    Hd[dead, dead] = 1
    Hd += damp * torch.mean(torch.diag(Hd)) * torch.eye(n)
    assert torch.allclose(U.T @ U @ Hd, torch.eye(n), atol=1e-9)
    assert torch.equal(U, torch.triu(U))
    for attempt in range(200):
        W = torch.from_numpy(W32.astype(np.float64))
        bad = torch.zeros(out, dtype=torch.bool)
        results = []
        for bits, group, bs in cases:
            Qp, Sp, Zp, margin = gptq_plain(W, U, dead, bits, group)
            Qb, Sb, Zb = gptq_blocked(W, U, dead, bits, group, bs)
            diff = (Qp - Qb).abs().max().item()
            assert diff < 1e-9, "plain vs blocked differ by %g (seed %d)" % (diff, seed)
            assert torch.equal(Zp, Zb)
            bad |= margin < MARGIN
            results.append((bits, group, bs, Qb, Sb, Zb))
        if not bad.any():
            break
        W32[bad.numpy()] = (rng.standard_normal((int(bad.sum()), n)) *
                            rng.uniform(0.5, 1.5, size=(int(bad.sum()), 1))).astype(np.float32)
    else:
        raise RuntimeError("seed %d: could not move rows off the rounding boundaries" % seed)

    blob = struct.pack("<3if", out, n, N, damp)
    blob += W32.tobytes() + X32.tobytes() + U.numpy().astype(np.float32).tobytes()
    blob += struct.pack("<I", len(results))
    for bits, group, bs, Q, S, Z in results:
        eg = out_err(X, Q, W)
        er = out_err(X, rtn(W, bits, group), W)
        assert (Q[:, dead] == 0).all()
        print("seed %d (%dx%d, N %d) bits %d group %d block %d: out err GPTQ %.6g RTN %.6g (%.3f)"
              % (seed, out, n, N, bits, group, bs, eg, er, eg / er))
        assert eg < er, "GPTQ not better than RTN"
        blob += struct.pack("<3i", bits, group, bs)
        blob += Q.numpy().astype(np.float32).tobytes()
        blob += S.numpy().astype(np.float32).tobytes()
        blob += Z.numpy().astype(np.float32).tobytes()
        blob += struct.pack("<2d", eg, er)
    return blob


# (seed, out, in, N, dead columns, [(bits, group, block_size)])
PROBLEMS = [
    # group 16 of 40: two full groups and a partial one of 8; dead column 7
    (101, 16, 40, 64, [7], [
        (2, 16, 128), (3, 16, 128), (4, 16, 128),
        (3, 16, 12),   # groups reach past lazy blocks (the corrected grid)
        (4, 40, 8),    # one group per row (per output channel), many blocks
    ]),
    # fewer samples than columns (rank-deficient H, damping decides);
    # dead column 8 starts a group
    (202, 8, 24, 16, [8], [(2, 8, 128), (3, 8, 5), (4, 8, 8)]),
]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "tests/data/gptq_golden.bin"
    blobs = [make_problem(*p) for p in PROBLEMS]
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<II", VERSION, len(blobs)))
        for b in blobs:
            f.write(b)
    print("wrote", path)


if __name__ == "__main__":
    main()
