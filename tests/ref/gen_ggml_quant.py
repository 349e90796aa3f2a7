#!/usr/bin/python3
"""gen_ggml_quant.py — independent references for common/quant/ggml_quant.c
(GGUF block types as fake quantizers), and the writer of
tests/data/ggml_quant_golden.bin that tests/test_ggml_quant.c reads.

Two references, neither sharing code with the C module:

1. Layout / dequantization: llama.cpp's own Python package gguf-py
   (gguf/quants.py, numpy). Deterministic random packed blocks of every type
   (random bytes are valid blocks; the F16 scale words d / dmin / m are set
   to random FINITE halfs, subnormals and -0 included) are dequantized with
   gguf.quants.dequantize(data, qtype); the file keeps the bytes and the
   float32 values. gguf-py evaluates ggml's dequantize_row_* expressions in
   float32 with ggml's operation order, so the C side must match bitwise.
   When node-llama-cpp is installed (tests/llama_check), the generator also
   checks gguf-py's values against llama.cpp's compiled dequantize_row_*
   (its libggml-base.so, via ctypes): bitwise equal for every type.

2. Gradients: a PyTorch autograd reference of the forward of ggml_quant.h
   (written here from the header's math, not from the C) with
   straight-through rounding, for every block type; cases with clipping
   factors in (0.5, 1) and with factors 1, rows with outliers, all-positive
   sub-blocks (K-quants: lo clamped to 0, no gradient to fb), all-negative,
   all-zero and constant ones, tied extremes (the first arg-max gets the
   gradient) and tiny sub-blocks (a K-quant sub-block scale that rounds to
   0), see make_row. L = sum(y * G) for a fixed random G;
   the file keeps y, dL/dx, dL/dfg, dL/dfb.

   The forward runs in float32 with the C module's operation order (so y and
   every rounding decision are the same as the C's; the test checks y
   bitwise); the gradients come from a second autograd pass in float64 on
   the same inputs with the float32 pass's decisions (arg-max/min indices,
   format-rounded scales s', m', the rounded codes and so the clamp masks)
   held as constants, which is the straight-through estimator:
     round_ste(u)   = r + (u - u.detach())     r = round(u) (ties to even)
     scale format   s' = s_q - (s.detach() - s)  (ds'/ds = 1; m' alike)
     clamp          torch.clamp (gradient passes where lo <= v <= hi)
     max/min/absmax torch.gather at the FIRST arg-max / arg-min (numpy's
                    argmax/argmin), so the gradient goes to that element
   (the same estimator as "(round(u) - u).detach() + u" and
   "s + (s_q - s).detach()", written so that the value is exactly r / s_q,
   -0.0 included).
   Math per sub-block (ggml_quant.h), fg, fb the clipping factors:
     asymmetric (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K):
       hi = fg*max(x), lo = fb*min(x), K-quants lo = clamp(lo, max=0),
       s = clamp((hi - lo)/qmax, min=0), m = lo,
       q = clamp(round_ste((x - m')/s'), 0, qmax), y = s'*q + m'
     symmetric (Q4_0, Q5_0, Q8_0, Q3_K, Q6_K, IQ4_NL):
       M = x at the first arg-max |x|, s = fg*M/D, D = -8, -16, -4, -32,
       -127 (IQ4_NL), Q8_0: +127 if M >= 0 else -127
       c = clamp(round_ste(x/s'), cmin, cmax), y = s'*c
       IQ4_NL: y = s'*level, level = the nearest of ggml's 16 levels
       (ties up), straight-through on clamp(x/s', -127, 113)
     s', m': legacy types f16(s), f16(m); K-quants ggml's reference
       quantization of the sub-block scales (and mins) against the
       super-block maximum (Q2_K 4 bits, Q4_K/Q5_K 6 bits, Q3_K/Q6_K signed
       against -32/-128), see format_round below.
   A sub-block whose s' is 0 has no defined u: its codes are the constants
   the C writes (q = 0, c = 0, IQ4_NL level index 8 = value 1) and no
   gradient flows through u; y = s'*code + m' still differentiates in s', m'.

Regenerate (deterministic: numpy PCG64, fixed seeds; re-running rewrites the
same file). gguf-py comes from the llama.cpp git bundle that node-llama-cpp
ships (tests/llama_check, npm ci'd by deploy/test.sh); clone it OUTSIDE the
repository (no llama.cpp code is copied into quept):
    git clone -q tests/llama_check/node_modules/node-llama-cpp/llama/gitRelease.bundle /tmp/llama.cpp
    /usr/bin/python3 tests/ref/gen_ggml_quant.py /tmp/llama.cpp/gguf-py [out_path]
(out_path defaults to tests/data/ggml_quant_golden.bin). The committed file
was written from the bundle of node-llama-cpp 3.22.1 (llama/llama.cpp.info.json
tag "v0.5.0"; bundle HEAD de3ff815ea7d, gguf-py 0.19.0) with Debian 12's
python3-numpy 1.24 and python3-torch 1.13. Run time ~2 s.

Binary format (little-endian; float32 arrays):
    char[4] "QGGQ"; uint32 version (1); uint32 n_deq
    per dequantization case:
      int32 type (ggml's number), n_blocks
      uint8   packed[n_blocks * type_size]
      float32 y[n_blocks * block_size]            gguf-py's dequantization
    uint32 n_grad
    per gradient case (ns = n / sub-block size):
      int32 type, n
      float32 x[n] fg[ns] fb[ns] G[n]             inputs (fb unused: sym types)
      float32 y[n] dx[n] dfg[ns] dfb[ns]          y and dL/d* of L = sum(y*G)
"""
import os
import struct
import subprocess
import sys

import numpy as np
import torch

MAGIC = b"QGGQ"
VERSION = 1
QK_K = 256

# name: ggml type number, block, bytes, sub-block, sym, kquant, D, cmin, cmax,
# F16 word offsets in a block (for the dequantization cases)
TYPES = {
    "Q4_0": dict(t=2, block=32, bytes=18, sub=32, sym=1, k=0, D=-8.0, cmin=-8, cmax=7, f16=[0]),
    "Q4_1": dict(t=3, block=32, bytes=20, sub=32, sym=0, k=0, D=0, cmin=0, cmax=15, f16=[0, 2]),
    "Q5_0": dict(t=6, block=32, bytes=22, sub=32, sym=1, k=0, D=-16.0, cmin=-16, cmax=15, f16=[0]),
    "Q5_1": dict(t=7, block=32, bytes=24, sub=32, sym=0, k=0, D=0, cmin=0, cmax=31, f16=[0, 2]),
    "Q8_0": dict(t=8, block=32, bytes=34, sub=32, sym=1, k=0, D=127.0, cmin=-127, cmax=127, f16=[0]),
    "Q2_K": dict(t=10, block=QK_K, bytes=84, sub=16, sym=0, k=1, D=0, cmin=0, cmax=3, f16=[80, 82]),
    "Q3_K": dict(t=11, block=QK_K, bytes=110, sub=16, sym=1, k=1, D=-4.0, cmin=-4, cmax=3, f16=[108]),
    "Q4_K": dict(t=12, block=QK_K, bytes=144, sub=32, sym=0, k=1, D=0, cmin=0, cmax=15, f16=[0, 2]),
    "Q5_K": dict(t=13, block=QK_K, bytes=176, sub=32, sym=0, k=1, D=0, cmin=0, cmax=31, f16=[0, 2]),
    "Q6_K": dict(t=14, block=QK_K, bytes=210, sub=16, sym=1, k=1, D=-32.0, cmin=-32, cmax=31, f16=[208]),
    "IQ4_NL": dict(t=20, block=32, bytes=18, sub=32, sym=1, k=0, D=-127.0, cmin=0, cmax=15, f16=[0]),
}
IQ4NL_LEVELS = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113],
                        dtype=np.float32)
F32 = np.float32


# ---------------------------------------------------------------------------
# 1. dequantization cases (gguf-py)

def random_half_words(rng, n):
    """n finite F16 bit patterns: random sign, exponent field 0..30 (0 =
    subnormal/zero), random mantissa."""
    sign = rng.integers(0, 2, n, dtype=np.uint16) << 15
    exp = rng.integers(0, 31, n, dtype=np.uint16) << 10
    man = rng.integers(0, 1024, n, dtype=np.uint16)
    return (sign | exp | man).astype(np.uint16)


def deq_cases(gguf_quants, qtypes, rng):
    cases = []
    for name, ti in TYPES.items():
        nb = 8 if ti["block"] == QK_K else 16
        raw = rng.integers(0, 256, (nb, ti["bytes"]), dtype=np.uint8)
        for k, off in enumerate(ti["f16"]):
            w = random_half_words(rng, nb)
            # edge words in the first 4 blocks (the rest random): largest
            # finite, smallest subnormal, -0, -1 (rotated for dmin / m)
            w[:4] = np.roll(np.array([0x7BFF, 0x0001, 0x8000, 0xBC00], dtype=np.uint16), k)
            raw[:, off:off + 2] = w.view(np.uint8).reshape(nb, 2)
        data = raw.reshape(-1).copy()
        y = gguf_quants.dequantize(data, qtypes[name])
        y = np.asarray(y, dtype=np.float32).reshape(-1)
        assert y.size == nb * ti["block"] and np.all(np.isfinite(y)), name
        cases.append((ti["t"], nb, data.tobytes(), y))
    return cases


def check_real_ggml(cases, here):
    """When node-llama-cpp is installed, llama.cpp's compiled
    dequantize_row_* (libggml-base.so) must give gguf-py's values bitwise."""
    import ctypes
    lib_path = os.path.join(here, "..", "llama_check", "node_modules", "@node-llama-cpp", "linux-x64", "bins",
                            "linux-x64", "libggml-base.so")
    if not os.path.exists(lib_path):
        print(f"note: {lib_path} absent, gguf-py not compared with the compiled ggml", file=sys.stderr)
        return
    lib = ctypes.CDLL(lib_path)
    names = {ti["t"]: name.lower().replace("_k", "_K") for name, ti in TYPES.items()}
    for t, nb, data, y in cases:
        fn = getattr(lib, "dequantize_row_" + names[t])
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        buf = np.frombuffer(data, dtype=np.uint8).copy()
        out = np.zeros(y.size, np.float32)
        fn(buf.ctypes.data, out.ctypes.data, y.size)
        assert np.array_equal(out.view(np.uint32), y.view(np.uint32)), f"gguf-py != libggml-base for {names[t]}"
    print("gguf-py's dequantization == libggml-base.so's, bitwise, every type", file=sys.stderr)


# ---------------------------------------------------------------------------
# 2. gradient cases (PyTorch)

def f16r(a):
    """float32 -> nearest F16 (ties to even) -> float32, saturating as the C."""
    a = np.clip(np.asarray(a, dtype=np.float32), F32(-65504.0), F32(65504.0))
    return a.astype(np.float16).astype(np.float32)


def format_round(ti, s, m):
    """s, m: float32 arrays (nb, nsb). The scales and mins as the format
    stores them (ggml_quant.h), float32 with the C module's operations."""
    s = s.astype(np.float32)
    m = m.astype(np.float32)
    if not ti["k"]:
        return f16r(s), (np.zeros_like(m) if ti["sym"] else f16r(m))
    sq = np.zeros_like(s)
    mq = np.zeros_like(m)
    for b in range(s.shape[0]):
        sb, mb = s[b], m[b]
        if ti["sym"]:  # Q3_K, Q6_K: signed scales against the largest |s|
            lim = F32(-32.0) if ti["t"] == 11 else F32(-128.0)
            lo_l, hi_l = (-32, 31) if ti["t"] == 11 else (-128, 127)
            j = int(np.argmax(np.abs(sb)))
            max_scale = sb[j]
            if max_scale == 0:
                continue
            iscale = F32(lim / max_scale)
            d = f16r(F32(1.0) / iscale)
            ls = np.clip(np.rint(iscale * sb), lo_l, hi_l).astype(np.int32).astype(np.float32)
            sq[b] = (d * ls).astype(np.float32)
        else:  # Q2_K (4-bit), Q4_K / Q5_K (6-bit): unsigned, mins stored as -m
            q = F32(15.0) if ti["t"] == 10 else F32(63.0)
            max_s = max(F32(0.0), F32(sb.max()))
            max_m = max(F32(0.0), F32((-mb).max()))
            inv_s = F32(q / max_s) if max_s > 0 else F32(0.0)
            inv_m = F32(q / max_m) if max_m > 0 else F32(0.0)
            d = f16r(F32(max_s / q))
            dmin = f16r(F32(max_m / q))
            # as ints, as the C holds them (no -0.0)
            ls = np.clip(np.rint(inv_s * sb), 0, q).astype(np.int32).astype(np.float32)
            lm = np.clip(np.rint(inv_m * -mb), 0, q).astype(np.int32).astype(np.float32)
            sq[b] = (d * ls).astype(np.float32)
            mq[b] = -(dmin * lm).astype(np.float32)
    return sq, mq


def iq4nl_index(u):
    """ggml's best_index_int8 on the 16 IQ4_NL levels (ties to the upper)."""
    idx = np.searchsorted(IQ4NL_LEVELS, u, side="left")  # first level >= u
    idx = np.clip(idx, 1, 15)
    lo, hi = IQ4NL_LEVELS[idx - 1], IQ4NL_LEVELS[idx]
    k = np.where(u - lo < hi - u, idx - 1, idx)
    k = np.where(u <= IQ4NL_LEVELS[0], 0, k)
    k = np.where(u >= IQ4NL_LEVELS[15], 15, k)
    return k


def integer_codes(r):
    """rounded codes as the C holds them: ints, so no -0.0 (clamped into a
    wide int range first; the clamp to the type's range comes after)"""
    return np.clip(r, -1e6, 1e6).astype(np.int64).astype(np.float32)


def forward(ti, x, fg, fb, dec=None):
    """x (n,), fg, fb (n/sub,) tensors (float32 or float64). dec None: the
    float32 pass, which takes every decision and returns it; else the
    decisions of that pass. Returns y, dec."""
    n = x.numel()
    sub, block = ti["sub"], ti["block"]
    nb, nsb = n // block, block // sub
    X = x.view(nb, nsb, sub)
    G = fg.view(nb, nsb)
    B = fb.view(nb, nsb)
    first = dec is None
    if first:
        dec = {}
        Xd = X.detach().numpy()
        if ti["sym"]:
            dec["ia"] = np.argmax(np.abs(Xd), axis=-1)
        else:
            dec["imax"] = np.argmax(Xd, axis=-1)
            dec["imin"] = np.argmin(Xd, axis=-1)
    if ti["sym"]:
        M = torch.gather(X, 2, torch.from_numpy(dec["ia"])[..., None]).squeeze(-1)
        if ti["t"] == 8:  # Q8_0: D = +-127 by the sign of M
            D = torch.where(M.detach() >= 0, torch.full_like(M, 127.0), torch.full_like(M, -127.0))
        else:
            D = torch.full_like(M, ti["D"])
        s = G * M / D
        m = torch.zeros_like(s)
    else:
        hi = G * torch.gather(X, 2, torch.from_numpy(dec["imax"])[..., None]).squeeze(-1)
        lo = B * torch.gather(X, 2, torch.from_numpy(dec["imin"])[..., None]).squeeze(-1)
        if ti["k"]:
            lo = torch.clamp(lo, max=0.0)  # ggml stores -min >= 0
        s = torch.clamp((hi - lo) / float(ti["cmax"]), min=0.0)
        m = lo
    if first:
        sq, mq = format_round(ti, s.detach().numpy(), m.detach().numpy())
        dec["sq"], dec["mq"] = sq, mq
    sq = torch.from_numpy(dec["sq"]).to(x.dtype)
    mq = torch.from_numpy(dec["mq"]).to(x.dtype)
    # straight-through format rounding; "sq - (s.detach() - s)" keeps the sign
    # of a zero sq (sq + 0 would turn -0 into +0, the C keeps f16(-0) = -0)
    sp = sq - (s.detach() - s)
    mp = mq - (m.detach() - m)
    zero = (sq == 0)[..., None].expand(nb, nsb, sub)
    safe = torch.where(sq == 0, torch.ones_like(sq), sq) - (s.detach() - s)
    spe, mpe, safee = sp[..., None], mp[..., None], safe[..., None]
    if ti["t"] == 20:  # IQ4_NL
        u = X / safee
        if first:
            k = iq4nl_index(u.detach().numpy())
            dec["lev"] = np.where(zero.numpy(), F32(1.0), IQ4NL_LEVELS[k]).astype(np.float32)
        lev = torch.from_numpy(dec["lev"]).to(x.dtype)
        ste = torch.clamp(u, float(IQ4NL_LEVELS[0]), float(IQ4NL_LEVELS[15]))
        q = lev + (ste - ste.detach())
        q = torch.where(zero, lev, q)
        y = spe * q
    elif ti["sym"]:
        u = X / safee
        if first:
            dec["r"] = integer_codes(torch.round(u.detach()).numpy())
        r = torch.from_numpy(dec["r"]).to(x.dtype)
        q = torch.clamp(r + (u - u.detach()), float(ti["cmin"]), float(ti["cmax"]))
        q = torch.where(zero, torch.zeros_like(q), q)
        y = spe * q if ti["k"] else q * spe
    else:
        u = (X - mpe) / safee
        if first:
            dec["r"] = integer_codes(torch.round(u.detach()).numpy())
        r = torch.from_numpy(dec["r"]).to(x.dtype)
        q = torch.clamp(r + (u - u.detach()), 0.0, float(ti["cmax"]))
        q = torch.where(zero, torch.zeros_like(q), q)
        y = (spe * q + mpe) if ti["k"] else (q * spe + mpe)
    return y.reshape(n), dec


def make_row(rng, ti, n, scale):
    """Gaussian row (std scale) with outliers, and special sub-blocks of
    kinds 1 all positive, 2 all zero, 3 constant, 4 all negative,
    5 duplicated extremes (max twice, min twice: the gradient goes to the
    first), 6 tiny (1e-4: a K-quant scale that rounds to 0 against the
    super-block's), 7 |max| twice with opposite signs (-A first, then +A).
    K-quants: sub-block j of each super-block is of kind j (kinds 1..7;
    0 and >= 8 normal); legacy types cycle kinds 0..7 over their blocks."""
    sub = ti["sub"]
    x = rng.standard_normal(n) * scale
    out = rng.choice(n, max(1, n // 64), replace=False)
    x[out] *= rng.uniform(4.0, 8.0, out.size)
    per = ti["block"] // sub
    for j in range(n // sub):
        kind = (j % per) if per > 1 else (j % 8)
        a, z = j * sub, (j + 1) * sub
        xs = x[a:z]
        A = np.abs(xs).max() * 1.1
        if kind == 1:
            xs[:] = np.abs(xs) + 0.05 * scale
        elif kind == 2:
            xs[:] = 0.0
        elif kind == 3:
            xs[:] = -0.7 * scale
        elif kind == 4:
            xs[:] = -np.abs(xs) - 0.05 * scale
        elif kind == 5:
            xs[3] = xs[sub - 4] = A
            xs[1] = xs[sub - 2] = -0.8 * A
        elif kind == 6:
            xs *= 1e-4
        elif kind == 7:
            xs[2], xs[sub - 3] = -A, A
    return x.astype(np.float32)


def grad_case(ti, x, fg, fb, G):
    x32 = torch.tensor(x)
    fg32, fb32 = torch.tensor(fg), torch.tensor(fb)
    y32, dec = forward(ti, x32, fg32, fb32)
    x64 = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    fg64 = torch.tensor(fg, dtype=torch.float64, requires_grad=True)
    fb64 = torch.tensor(fb, dtype=torch.float64, requires_grad=True)
    y64, _ = forward(ti, x64, fg64, fb64, dec)
    # the float64 pass computes the same values up to float32 rounding
    assert np.allclose(y64.detach().numpy(), y32.numpy(), rtol=1e-5, atol=1e-6 * np.abs(y32.numpy()).max())
    (y64 * torch.tensor(G, dtype=torch.float64)).sum().backward()

    def g(t):
        return np.zeros(t.numel(), np.float32) if t.grad is None else t.grad.numpy().astype(np.float32)

    return y32.numpy().astype(np.float32), g(x64), g(fg64), g(fb64), dec


def grad_cases(rng):
    cases = []
    for name, ti in TYPES.items():
        main = name in ("Q4_0", "Q4_K", "Q6_K")
        n = (512 if ti["block"] == QK_K else 320) if main else (256 if ti["block"] == QK_K else 256)
        ns = n // ti["sub"]
        for factors_one in ((False, True) if main else (False,)):
            scale = float(10.0 ** rng.uniform(-2.5, 1.0))
            x = make_row(rng, ti, n, scale)
            if factors_one:
                fg = np.ones(ns, np.float32)
                fb = np.ones(ns, np.float32)
            else:
                fg = rng.uniform(0.5, 1.0, ns).astype(np.float32)
                fb = rng.uniform(0.5, 1.0, ns).astype(np.float32)
            G = rng.standard_normal(n).astype(np.float32)
            y, dx, dfg, dfb, dec = grad_case(ti, x, fg, fb, G)
            # coverage: sub-blocks with s' = 0, elements clamped (pass no gradient to x)
            nzero = int((dec["sq"] == 0).sum())
            ncl = 0
            if "r" in dec:
                lo_c = ti["cmin"] if ti["sym"] else 0
                ncl = int(((dec["r"] < lo_c) | (dec["r"] > ti["cmax"])).sum())
            print(f"  {name:6s} n={n} factors {'1' if factors_one else 'random'}: s'=0 in {nzero} of {ns} "
                  f"sub-blocks, {ncl} clamped elements", file=sys.stderr)
            cases.append((ti["t"], n, x, fg, fb, G, y, dx, dfg, dfb))
    return cases


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: gen_ggml_quant.py <llama.cpp>/gguf-py [out_path]")
    gguf_py = os.path.abspath(sys.argv[1])
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.normpath(os.path.join(here, "..", "data",
                                                                                "ggml_quant_golden.bin"))
    sys.path.insert(0, gguf_py)
    import gguf.quants as gq  # noqa: E402
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType  # noqa: E402

    qtypes = {name: GGMLQuantizationType[name] for name in TYPES}
    for name, ti in TYPES.items():  # our table against gguf-py's
        assert int(qtypes[name]) == ti["t"], name
        assert GGML_QUANT_SIZES[qtypes[name]] == (ti["block"], ti["bytes"]), name
    try:
        head = subprocess.run(["git", "-C", gguf_py, "rev-parse", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        head = "?"
    torch.set_num_threads(1)

    deq = deq_cases(gq, qtypes, np.random.default_rng(20240611))
    check_real_ggml(deq, here)
    grad = grad_cases(np.random.default_rng(20240612))

    buf = bytearray(MAGIC + struct.pack("<II", VERSION, len(deq)))
    for t, nb, data, y in deq:
        buf += struct.pack("<ii", t, nb) + data + y.astype("<f4").tobytes()
    buf += struct.pack("<I", len(grad))
    for t, n, *arrays in grad:
        buf += struct.pack("<ii", t, n)
        for a in arrays:
            buf += np.asarray(a, dtype="<f4").tobytes()
    with open(out, "wb") as f:
        f.write(buf)
    print(f"{out}: {len(buf)} bytes, {len(deq)} dequantization + {len(grad)} gradient cases "
          f"(gguf-py at {head or '?'})")


if __name__ == "__main__":
    main()
