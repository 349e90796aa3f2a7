#!/usr/bin/python3
"""Independent Python reference for the llama2.c tokenizer (run.c encode()).

Usage (system interpreter, standard library only):
  /usr/bin/python3 tests/ref/tokenizer_ref.py --cases        # C initializers for test_tokenizer.c
  /usr/bin/python3 tests/ref/tokenizer_ref.py --golden tests/data/tokenizer_golden.txt
  /usr/bin/python3 tests/ref/tokenizer_ref.py --text 'Hello world'   # ids of one string

Tokenizer file: int32 max_token_length; then per token float32 score, int32
len, len bytes; read until the end of the file. Strings end at a NUL byte,
as C strings do in llama2.c.

Encoding, written from the description of llama2.c encode():
  1. [BOS=1] if bos; then the token for " " if the text is non-empty.
  2. Split the UTF-8 bytes into pieces: a byte plus the continuation bytes
     (10xxxxxx) after it, at most 4 bytes. A piece found in the vocab is one
     token; otherwise each byte b becomes token b + 3.
  3. Repeat: among all adjacent pairs whose concatenated strings are a vocab
     entry with score > -1e10, take the best score (leftmost on ties), merge.
  4. [EOS=2] if eos.
Step 3 here is the plain rescan-every-time loop (with the pair scores cached
so that the scan is a C-speed max()/index()), not the heap the C code uses.
merge_naive() is the textbook version without any cache; both are run on
the hand cases and must agree.

Golden values (--golden): FNV-1a 64 over the token ids, each as 4
little-endian bytes, and the token count, for
  lines <file>: every line of the file (split at '\n', '\r' kept) encoded
                separately with bos=1, ids concatenated;
  whole <file>: the whole file encoded as one text with bos=1.
For "whole" we split the initial token list at the byte token of '\n'
before merging. That is exact, not an approximation: the script checks that
no vocab entry other than that token starts or ends with its string and that
no entry is empty, so no merge can ever involve it, and then the greedy
merges on each side never interact.
"""
import argparse
import struct
import sys
import time

BOS, EOS = 1, 2

# Expected ids published in karpathy/llama2.c test.c (obtained there from
# sentencepiece itself), plus our own cases whose ids this script computes.
PUBLISHED = [
    ("", [1]),
    ("I believe the meaning of life is", [1, 306, 4658, 278, 6593, 310, 2834, 338]),
    ("Simply put, the theory of relativity states that ",
     [1, 3439, 17632, 1925, 29892, 278, 6368, 310, 14215, 537, 5922, 393, 29871]),
    ("A brief message congratulating the team on the launch:\n\n        Hi everyone,\n\n        I just ",
     [1, 319, 11473, 2643, 378, 629, 271, 18099, 278, 3815, 373, 278, 6826, 29901, 13, 13, 4706,
      6324, 14332, 29892, 13, 13, 4706, 306, 925, 29871]),
    ("Translate English to French:\n\n        sea otter => loutre de mer\n        peppermint => "
     "menthe poivr\u00e9e\n        plush girafe => girafe peluche\n        cheese =>",
     [1, 4103, 9632, 4223, 304, 5176, 29901, 13, 13, 4706, 7205, 4932, 357, 1149, 301, 449, 276,
      316, 2778, 13, 4706, 1236, 407, 837, 524, 1149, 6042, 354, 772, 440, 29878, 1318, 13, 4706,
      715, 1878, 330, 3055, 1725, 1149, 330, 3055, 1725, 4639, 28754, 13, 4706, 923, 968, 1149]),
]

# (name, text bytes, bos, eos)
OWN_CASES = [
    ("hello_bos_eos", "Hello world".encode(), 1, 1),
    ("no_bos", "Hello world".encode(), 0, 0),
    ("empty_no_bos", b"", 0, 0),
    ("single_space", b" ", 1, 0),
    ("wikitext_line", " = Robert Boulter = \r".encode(), 1, 0),
    ("accents_cjk", "caf\u00e9 na\u00efve \u4e16\u754c".encode(), 1, 0),
    ("emoji_fallback", "llama \U0001F999 \U0001F600!".encode(), 1, 0),
    ("control_bytes", b"tab\there\x01\x7f", 1, 0),
    ("bad_utf8", b"\xff\xfeA\x80\x80\x80\x80\x80z\xc3", 1, 0),
    ("numbers", "In 2004 , 3 @.@ 5 km".encode(), 1, 0),
]


def load(path):
    data = open(path, "rb").read()
    (max_len,) = struct.unpack_from("<i", data, 0)
    off, vocab, scores = 4, [], []
    while off < len(data):
        score, n = struct.unpack_from("<fi", data, off)
        off += 8
        vocab.append(data[off:off + n].split(b"\0")[0])
        scores.append(score)
        off += n
    assert off == len(data), "truncated tokenizer file"
    lookup = {}
    for i, s in enumerate(vocab):
        lookup.setdefault(s, i)  # lowest id wins on duplicates
    return vocab, scores, lookup, max_len


def initial_tokens(text, bos, tok):
    vocab, scores, lookup, _ = tok
    out = [BOS] if bos else []
    if text:
        out.append(lookup[b" "])
    i = 0
    while i < len(text):
        j = i + 1
        while j < len(text) and (text[j] & 0xC0) == 0x80 and j - i < 4:
            j += 1
        piece = text[i:j]
        if piece in lookup:
            out.append(lookup[piece])
        else:
            out.extend(b + 3 for b in piece)
        i = j
    return out


def pair_score(a, b, tok):
    vocab, scores, lookup, _ = tok
    i = lookup.get(vocab[a] + vocab[b])
    if i is None or not scores[i] > -1e10:
        return float("-inf"), -1
    return scores[i], i


def merge_naive(ids, tok):
    ids = list(ids)
    while True:
        best, best_id, best_i = -1e10, -1, -1
        for i in range(len(ids) - 1):
            s, m = pair_score(ids[i], ids[i + 1], tok)
            if m >= 0 and s > best:
                best, best_id, best_i = s, m, i
        if best_i < 0:
            return ids
        ids[best_i:best_i + 2] = [best_id]


def merge_cached(ids, tok):
    ids = list(ids)
    pairs = [pair_score(ids[i], ids[i + 1], tok) for i in range(len(ids) - 1)]
    sc = [p[0] for p in pairs]
    mid = [p[1] for p in pairs]
    while sc:
        best = max(sc)
        if best == float("-inf"):
            break
        i = sc.index(best)  # leftmost of the best
        ids[i:i + 2] = [mid[i]]
        del sc[i], mid[i]
        if i < len(sc):
            sc[i], mid[i] = pair_score(ids[i], ids[i + 1], tok)
        if i > 0:
            sc[i - 1], mid[i - 1] = pair_score(ids[i - 1], ids[i], tok)
    return ids


def encode(text, bos, eos, tok, merge=merge_cached):
    out = merge(initial_tokens(text, bos, tok), tok)
    return out + [EOS] if eos else out


def check_barrier(t, tok):
    vocab = tok[0]
    s = vocab[t]
    assert all(len(v) > 0 for v in vocab), "empty vocab entry: splitting is not exact"
    for i, v in enumerate(vocab):
        if i != t and (v.startswith(s) or v.endswith(s)):
            sys.exit(f"token {t} {s!r} can merge (vocab {i} {v!r}): splitting is not exact")


def encode_whole(text, tok):
    nl = initial_tokens(b"\n", 0, tok)[1:]
    assert len(nl) == 1, "'\\n' is not a single token"
    nl = nl[0]
    check_barrier(nl, tok)
    ids, seg, out = initial_tokens(text, 1, tok), [], []
    for t in ids + [None]:
        if t is None or t == nl:
            out += merge_cached(seg, tok)
            seg = []
            if t is not None:
                out.append(t)
        else:
            seg.append(t)
    return out


def fnv(ids, h=0xCBF29CE484222325):
    for t in ids:
        for b in struct.pack("<I", t):
            h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def c_string(b):
    out = ""
    for c in b:
        if c == 0x22 or c == 0x5C:
            out += "\\" + chr(c)
        elif 0x20 <= c < 0x7F:
            out += chr(c)
        else:
            out += "\\%03o" % c
    return '"' + out + '"'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", default="../shared/models/llama2-tokenizer.bin")
    ap.add_argument("--cases", action="store_true")
    ap.add_argument("--golden")
    ap.add_argument("--text")
    ap.add_argument("--data", nargs="*",
                    default=["../shared/data/wikitext-2-test.txt",
                             "../shared/data/tinystories-valid-sample.txt"])
    a = ap.parse_args()
    tok = load(a.tokenizer)

    # self-checks: the published sentencepiece ids, and naive == cached
    for text, want in PUBLISHED:
        for merge in (merge_naive, merge_cached):
            got = encode(text.encode(), 1, 0, tok, merge)
            assert got == want, (text, got, want)
    for _, text, bos, eos in OWN_CASES:
        assert encode(text, bos, eos, tok, merge_naive) == encode(text, bos, eos, tok)

    if a.text is not None:
        print(encode(a.text.encode(), 1, 0, tok))
    if a.cases:
        for name, text, bos, eos in OWN_CASES:
            ids = encode(text, bos, eos, tok)
            print(f'    {{"{name}", {c_string(text)}, {bos}, {eos}, {len(ids)},')
            line = "     {"
            for k, t in enumerate(ids):
                item = str(t) + (", " if k + 1 < len(ids) else "}},")
                if len(line) + len(item.rstrip()) > 100:
                    print(line.rstrip())
                    line = "      "
                line += item
            print(line if ids else "     {0}},")
    if a.golden:
        lines = ["# tokenizer golden values: /usr/bin/python3 tests/ref/tokenizer_ref.py --golden",
                 "# kind file n_tokens fnv1a64 (see tokenizer_ref.py)"]
        for path in a.data:
            text = open(path, "rb").read()
            name = path.split("/")[-1]
            t0 = time.time()
            ids = []
            for line in text.split(b"\n"):
                ids += encode(line, 1, 0, tok)
            lines.append(f"lines {name} {len(ids)} {fnv(ids):016x}")
            ids = encode_whole(text, tok)
            lines.append(f"whole {name} {len(ids)} {fnv(ids):016x}")
            print(f"{name}: {time.time() - t0:.1f} s", file=sys.stderr)
        open(a.golden, "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
