#!/usr/bin/python3
"""gptq_loaders.py — reads quept's `safetensors-int` exports the way three
GPTQ loaders do, and holds the result to the `safetensors-fp16` export of the
same switched artifact. Written from each library's published code and
config rules, independently of quept's C reader and writer
(common/model/gptq_layout.c, common/export/export_gptq.c).

    /usr/bin/python3 tests/ref/gptq_loaders.py INT_DIR FP16_DIR [INT_DIR FP16_DIR ...]

Exit status 0 when every pair checks out, 1 otherwise, 77 when torch is
missing (Debian's python3-torch). tests/test_gptq_loaders.c makes the pairs
and runs this.

The loaders (what each does with config.json's quantization_config and the
per-linear qweight / qzeros / scales / g_idx):

  AutoGPTQ 0.8.0.dev0 (AutoGPTQ/AutoGPTQ at 9f7d370, its last commit:
    auto_gptq/quantization/config.py,
    nn_modules/qlinear/qlinear_cuda_old.py, its torch path)
    - checkpoint_format (absent = "gptq") must be gptq or marlin ("Unknown
      quantization format" otherwise); bits in 2, 3, 4, 8.
    - buffers: qweight (in // 32 * bits, out), qzeros (ceil(in / group),
      out // 32 * bits): a floor, so a dimension that is not a multiple of 32
      gets fewer words than the codes fill (load fails on the size mismatch).
    - 2/4/8 bits: code j of word r is bits [j*b, j*b+b), 32/b codes per
      word; 3 bits: 32 codes in 3 words, 10 codes, one split 2+1 bits,
      10 codes, one split 1+2, 10 codes. Zero points (v1) are stored minus
      one: z = (stored + 1) & (2^b - 1) on the torch path;
      the CUDA kernels of qlinear_cuda_old (autogptq_cuda_kernel_64.cu,
      _256.cu; used below 128 rows of input) take ((stored & (2^b - 1)) + 1)
      & 0x0f, the same for 2, 3 and 4 bits with stored < 2^b - 1 but only
      4 bits of an 8-bit zero point (simulated as "AutoGPTQ CUDA").
    - W = scales[g_idx] * (q - z[g_idx]).

  GPTQModel 7.3.4 (ModelCloud/GPTQModel at f4c327a: quantization/config.py
    from_quant_config and __post_init__, models/loader.py,
    nn_modules/qlinear/__init__.py, utils/planar_packing.py,
    utils/model.py)
    - format = "format", else "checkpoint_format", else "gptq"; a gptq or
      gptq_v2 config at 5, 6 or 7 bits is switched to gptq_p (planar).
    - gptq (v1) with sym false is refused unless meta.quantizer names
      gptqmodel >= 0.9; v1 zero points get +1 on load, gptq_v2 and gptq_p
      are used as stored.
    - buffers: qweight (ceil(in * bits / 32), out), qzeros (ceil(in / group),
      ceil(out * bits / 32)); the classic unpack gives 32/b codes per word
      (3 bits: as AutoGPTQ), so in * bits must fill whole words or the
      codes outnumber in.
    - planar (5/6/7 bits, 3 bits under gptq_p): in and out multiples of 32;
      a block of 32 codes is `bits` words, the planes low bits first (3 =
      2+1, 5 = 4+1, 6 = 4+2, 7 = 4+2+1; 2/4/8 one plane), a plane of width
      w fills w words with 32/w codes each at shifts w*j.

  transformers (huggingface/transformers: utils/quantization_config.py
    GPTQConfig; loading goes through optimum and GPTQModel)
    - bits in 2, 3, 4, 8 ("Only support quantization to [2,3,4,8] bits");
      "checkpoint_format" overrides "format"; v1 zero points are converted
      (+1) by GPTQModel's hf_convert_gptq_v1_to_v2_format, with no sym check;
      then GPTQModel's kernels as above, but built by optimum's
      _replace_by_quant_layers (optimum/gptq/quantizer.py) without the
      format and post-initialised without the config that would catch it,
      so 3-bit words are always read as classic, gptq_p or not.

The comparison: the fp16 export stores f16(W), W = (code - zero) * scale in
fp32; the int export stores the code, the zero point and f16(scale). So per
weight, with d = code - zero and s16 the stored scale,
    |d*s16 - F| <= |d| * e(s16) + e(F) + |d*s16| * 2^-23
where e(x) = max(|x| * 2^-11 * (1 + 2^-10), 2^-25) bounds f16 rounding
(relative for normals, absolute for subnormals) and the last term covers
fp32 rounding of the product. Every reading loader must stay within it for
every weight (the ratio printed is the largest |diff| / bound).

And the check can fail: every export is also decoded wrongly on purpose —
a planar file with the classic rule (bit stream; AutoGPTQ's 3-bit pack at
3 bits), a classic 3-bit file with the planar rule, v2 zero points as v1
(+1) and v1 as v2 — and each of those must be outside the bound on most
weights of every linear.
"""
import json
import math
import struct
import sys

try:
    import torch
except ImportError:
    print("SKIP: /usr/bin/python3 has no torch (apt-get install python3-torch)")
    sys.exit(77)

PROJ = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


class Refused(Exception):
    """The loader stops with an error (never a silent misread)."""


# ------------------------------------------------------------ files

def read_safetensors(path):
    dtypes = {"I32": torch.int32, "F16": torch.float16, "F32": torch.float32, "BF16": torch.bfloat16}
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = bytearray(data[8 + n:])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        t = torch.frombuffer(body[a:b], dtype=dtypes[info["dtype"]]) if b > a else torch.empty(0)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def read_dir(d):
    with open(d + "/config.json") as f:
        cfg = json.load(f)
    return cfg, read_safetensors(d + "/model.safetensors")


def linear_shapes(cfg):
    """(out, in) of each projection, as a loader builds its modules from config.json."""
    h, inter = cfg["hidden_size"], cfg["intermediate_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    hd = cfg.get("head_dim", h // nh)
    return {"self_attn.q_proj": (nh * hd, h), "self_attn.k_proj": (nkv * hd, h),
            "self_attn.v_proj": (nkv * hd, h), "self_attn.o_proj": (h, nh * hd),
            "mlp.gate_proj": (inter, h), "mlp.up_proj": (inter, h), "mlp.down_proj": (h, inter)}


# ------------------------------------------------------------ word layouts
# Each unpack takes int32 words packed along dim 0 (qweight as stored;
# qzeros transposed) and returns int64 codes, one row per code.

def u32(words):
    return words.to(torch.int64) & 0xFFFFFFFF


def unpack_pf(words, bits):
    """2/4/8 bits: 32/b codes per word, code j at bits [j*b, j*b+b)."""
    pf = 32 // bits
    w = u32(words)
    shifts = torch.arange(pf, dtype=torch.int64).reshape(1, pf, 1) * bits
    return ((w.unsqueeze(1) >> shifts) & ((1 << bits) - 1)).reshape(w.shape[0] * pf, w.shape[1])


def unpack_3bit(words):
    """AutoGPTQ's 3-bit pack: per 3 words, 10 codes at 3i, code 10 = bits 30-31
    of word 0 + bit 0 of word 1, 10 codes at 3i+1, code 21 = bit 31 of word 1 +
    bits 0-1 of word 2, 10 codes at 3i+2."""
    if words.shape[0] % 3:
        raise Refused("3-bit qweight rows %d not a multiple of 3" % words.shape[0])
    w = u32(words).reshape(-1, 3, words.shape[1])
    w0, w1, w2 = w[:, 0], w[:, 1], w[:, 2]
    codes = [(w0 >> (3 * i)) & 7 for i in range(10)]
    codes.append(((w0 >> 30) & 3) | ((w1 << 2) & 4))
    codes += [(w1 >> (3 * i + 1)) & 7 for i in range(10)]
    codes.append(((w1 >> 31) & 1) | ((w2 << 1) & 6))
    codes += [(w2 >> (3 * i + 2)) & 7 for i in range(10)]
    return torch.stack(codes, dim=1).reshape(-1, words.shape[1])


PLANES = {2: [2], 3: [2, 1], 4: [4], 5: [4, 1], 6: [4, 2], 7: [4, 2, 1], 8: [8]}


def unpack_planar(words, bits):
    """GPTQModel's gptq_p: per block of 32 codes, `bits` words, planes low
    bits first; a plane of width w: w words, 32/w codes each at shifts w*j."""
    if words.shape[0] % bits:
        raise Refused("planar %d-bit rows %d not a multiple of %d" % (bits, words.shape[0], bits))
    w = u32(words).reshape(-1, bits, words.shape[1])
    out = torch.zeros(w.shape[0], 32, w.shape[2], dtype=torch.int64)
    row = off = 0
    for width in PLANES[bits]:
        pf = 32 // width
        shifts = torch.arange(pf, dtype=torch.int64).reshape(1, 1, pf, 1) * width
        part = (w[:, row:row + width].unsqueeze(2) >> shifts) & ((1 << width) - 1)  # (blk, width, pf, cols)
        out |= part.reshape(w.shape[0], 32, w.shape[2]) << off
        row += width
        off += width
    return out.reshape(-1, words.shape[1])


def unpack_stream(words, bits):
    """One little-endian bit stream: code k at bits [k*b, k*b+b) (the classic
    rule at any width; not what any loader does at 5/6/7 bits)."""
    w = u32(words)
    n = w.shape[0] * 32 // bits
    k = torch.arange(n, dtype=torch.int64)
    lo, sh = (k * bits) // 32, (k * bits) % 32
    hi = torch.clamp(lo + 1, max=w.shape[0] - 1)
    v = (w[lo] >> sh.unsqueeze(1)) | ((w[hi] << (32 - sh).unsqueeze(1)) & 0xFFFFFFFF)
    return v & ((1 << bits) - 1)


def unpack_classic(words, bits):
    return unpack_3bit(words) if bits == 3 else unpack_pf(words, bits) if 32 % bits == 0 else \
        unpack_stream(words, bits)


# ------------------------------------------------------------ the loaders

class Linear:
    """One decoded linear: codes d = q - z (float64) and the stored scale per weight."""

    def __init__(self, q, z, scales, g_idx):
        g = g_idx.long()
        self.d = (q.double() - z.double()[g]).t()  # (out, in)
        self.s = scales.double()[g].t()

    def weight(self):
        return self.d * self.s


def tensors_of(t, name):
    return [t[name + "." + p] for p in ("qweight", "qzeros", "scales", "g_idx")]


def decode(t, name, out, inn, bits, group, planar, zero_plus, floor_rows, zero_mask=None):
    """The shape checks and unpacking common to the loaders; zero points get
    zero_plus, masked to the width (or to zero_mask)."""
    qw, qz, sc, gi = tensors_of(t, name)
    ng = math.ceil(inn / group)
    if floor_rows:
        want_qw, want_qz = (inn // 32 * bits, out), (ng, out // 32 * bits)
    else:
        want_qw, want_qz = (math.ceil(inn * bits / 32), out), (ng, math.ceil(out * bits / 32))
    if tuple(qw.shape) != want_qw or tuple(qz.shape) != want_qz:
        raise Refused("%s: size mismatch: qweight %s / qzeros %s in the file, the module has %s / %s"
                      % (name, tuple(qw.shape), tuple(qz.shape), want_qw, want_qz))
    if tuple(sc.shape) != (ng, out) or tuple(gi.shape) != (inn,):
        raise Refused("%s: scales / g_idx shape" % name)
    unpack = (lambda w: unpack_planar(w, bits)) if planar else (lambda w: unpack_classic(w, bits))
    q = unpack(qw)
    z = unpack(qz.t().contiguous()).t()
    if q.shape[0] != inn or z.shape[1] != out:
        raise Refused("%s: %d codes unpacked for in = %d / %d for out = %d (shape error in dequantize)"
                      % (name, q.shape[0], inn, z.shape[1], out))
    z = (z + zero_plus) & (zero_mask or (1 << bits) - 1) if zero_plus else z
    return Linear(q, z, sc, gi)


def group_of(q, inn):
    g = q.get("group_size", 128)
    return inn if g == -1 else g


def autogptq(cfg, t, cuda=False):
    q = cfg["quantization_config"]
    fmt = q.get("checkpoint_format", "gptq")
    if fmt not in ("gptq", "marlin"):
        raise Refused("Unknown quantization format: %s" % fmt)
    if fmt == "marlin":
        raise Refused("marlin is not simulated")
    bits = q["bits"]
    if bits not in (2, 3, 4, 8):
        raise Refused("only support quantize to [2, 3, 4, 8] bits")
    out = {}
    for j in range(cfg["num_hidden_layers"]):
        for p, (o, i) in linear_shapes(cfg).items():
            name = "model.layers.%d.%s" % (j, p)
            out[name] = decode(t, name, o, i, bits, group_of(q, i), False, 1, True, 0x0F if cuda else None)
    return out


def gptqmodel_format(q, transformers):
    f, c = q.get("format"), q.get("checkpoint_format")
    if transformers:
        return (c or f or "gptq").lower()
    return (f or c or "gptq").lower()


def gptqmodel_modules(cfg, t, fmt, bits, zero_plus, told_format=True):
    q = cfg["quantization_config"]
    if fmt not in ("gptq", "gptq_v2", "gptq_p"):
        raise Refused("format %s is not simulated" % fmt)
    planar = bits in (5, 6, 7) or (told_format and fmt == "gptq_p" and bits == 3)
    out = {}
    for j in range(cfg["num_hidden_layers"]):
        for p, (o, i) in linear_shapes(cfg).items():
            name = "model.layers.%d.%s" % (j, p)
            if planar and (i % 32 or o % 32):
                raise Refused("planar %d-bit requires in_features and out_features divisible by 32" % bits)
            out[name] = decode(t, name, o, i, bits, group_of(q, i), planar, zero_plus, False)
    return out


def gptqmodel(cfg, t):
    q = cfg["quantization_config"]
    bits = q["bits"]
    if bits not in range(2, 9):
        raise Refused("bits must be 2..8")
    fmt = gptqmodel_format(q, False)
    if fmt in ("gptq", "gptq_v2") and bits in (5, 6, 7):
        fmt = "gptq_p"  # QuantizeConfig: 5/6/7-bit layers use the planar layout
    if fmt == "gptq" and not q.get("sym", True):
        makers = [m.split(":") for m in (q.get("meta") or {}).get("quantizer", []) if ":" in m]
        if not any(m[0].lower() == "gptqmodel" for m in makers):
            raise Refused("Loading of a sym=False model with format=gptq is only supported if produced by "
                          "gptqmodel version >= 0.9.0")
    return gptqmodel_modules(cfg, t, fmt, bits, 1 if fmt == "gptq" else 0)


def transformers(cfg, t):
    q = cfg["quantization_config"]
    bits = q["bits"]
    if bits not in (2, 3, 4, 8):
        raise Refused("Only support quantization to [2,3,4,8] bits but found %d" % bits)
    fmt = gptqmodel_format(q, True)
    return gptqmodel_modules(cfg, t, fmt, bits, 1 if fmt == "gptq" else 0, told_format=False)


LOADERS = [("AutoGPTQ", autogptq), ("AutoGPTQ CUDA", lambda cfg, t: autogptq(cfg, t, True)),
           ("GPTQModel", gptqmodel), ("transformers", transformers)]

# Which loaders read quept's export in each checkpoint format at each width.
READERS = {"gptq_v2": {b: {"GPTQModel", "transformers"} for b in (2, 3, 4, 8)},
           "gptq_p": {**{b: {"GPTQModel"} for b in (3, 5, 6, 7)},
                      **{b: {"GPTQModel", "transformers"} for b in (2, 4, 8)}},
           "gptq": {b: {"AutoGPTQ", "AutoGPTQ CUDA", "transformers"} for b in (2, 3, 4)}}


# ------------------------------------------------------------ the comparison

def f16_err(x):
    return torch.clamp(x.abs() * (2.0 ** -11 * (1 + 2.0 ** -10)), min=2.0 ** -25)


def ratio(lin, ref):
    """Largest |decoded - fp16 export| / bound over the linear, and the share of weights beyond the bound."""
    w = lin.weight()
    bound = lin.d.abs() * f16_err(lin.s) + f16_err(ref) + w.abs() * 2.0 ** -23
    r = (w - ref).abs() / bound
    return r.max().item(), (r > 1).double().mean().item()


def check_pair(int_dir, fp16_dir):
    cfg, t = read_dir(int_dir)
    _, ref = read_dir(fp16_dir)
    q = cfg["quantization_config"]
    fmt, bits = gptqmodel_format(q, False), q["bits"]
    tag = "%s (%d bits, %s)" % (int_dir.rstrip("/").split("/")[-1], bits, fmt)
    ok = True
    for name in ("model.embed_tokens.weight", "model.norm.weight"):
        if not torch.equal(t[name], ref[name]):
            print("FAIL %s: %s differs from the fp16 export" % (tag, name))
            ok = False
    want = READERS.get(fmt, {}).get(bits, set())
    if not want:
        print("FAIL %s: no loader is expected to read this format at this width" % tag)
        return False
    parts = []
    for lname, load in LOADERS:
        try:
            lins = load(cfg, t)
        except Refused as e:
            parts.append("%s refuses (%s)" % (lname, e))
            if lname in want:
                print("FAIL %s: %s should read it but refuses: %s" % (tag, lname, e))
                ok = False
            continue
        if lname not in want:
            print("FAIL %s: %s reads it, not expected" % (tag, lname))
            ok = False
        worst = 0.0
        for name, lin in lins.items():
            r, beyond = ratio(lin, ref[name + ".weight"].double())
            worst = max(worst, r)
            if beyond > 0:
                print("FAIL %s: %s reads %s with %.2f%% of the weights beyond the bound (max ratio %.3g)"
                      % (tag, lname, name, 100 * beyond, r))
                ok = False
        parts.append("%s reads %d linears, max |dW|/bound %.3f" % (lname, len(lins), worst))
    ok = negatives(cfg, t, ref, tag, fmt, bits) and ok
    print(("ok   " if ok else "FAIL ") + tag + ": " + "; ".join(parts))
    return ok


def negatives(cfg, t, ref, tag, fmt, bits):
    """Wrong decodings that the check must catch."""
    planar = bits in (5, 6, 7) or (fmt == "gptq_p" and bits == 3)
    plus = 1 if fmt == "gptq" else 0
    wrong = [("zero points read as %s" % ("v2" if plus else "v1 (+1)"), planar, 1 - plus)]
    if bits in (3, 5, 6, 7):
        wrong.append(("%s words read as %s" % ("planar" if planar else "classic",
                                               "classic" if planar else "planar"), not planar, plus))
    q = cfg["quantization_config"]
    ok = True
    for what, as_planar, zero_plus in wrong:
        caught = []
        for j in range(cfg["num_hidden_layers"]):
            for p, (o, i) in linear_shapes(cfg).items():
                name = "model.layers.%d.%s" % (j, p)
                try:
                    lin = decode(t, name, o, i, bits, group_of(q, i), as_planar, zero_plus, False)
                except Refused:
                    caught.append(1.0)  # the wrong rule does not even fit the shapes
                    continue
                caught.append(ratio(lin, ref[name + ".weight"].double())[1])
        if min(caught) < 0.5:
            print("FAIL %s: a wrong decoding (%s) passes the check on a linear (%.1f%% beyond the bound)"
                  % (tag, what, 100 * min(caught)))
            ok = False
        else:
            print("     %s: wrong decoding (%s) caught: >= %.0f%% of each linear's weights beyond the bound"
                  % (tag, what, 100 * min(caught)))
    return ok


def main(argv):
    if len(argv) < 2 or len(argv) % 2:
        print(__doc__.split("\n\n")[1])
        return 2
    ok = True
    for k in range(0, len(argv), 2):
        ok = check_pair(argv[k], argv[k + 1]) and ok
    print("all exports read as the fp16 export by every loader expected to read them" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
