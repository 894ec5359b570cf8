#!/usr/bin/env node
// RoBERTa tokenizer reference: Hugging Face transformers.js (npm @huggingface/transformers) run on a
// tokenizer.json built from the real roberta-base/large vocab.json + merges.txt, writing
// tests/data/tokenizer/meld_ids.txt (token ids WITHOUT <s> / </s>: add_special_tokens false).
//
// Setup (once, outside the repository; the onnxruntime variable stops a CUDA download that fails offline):
//   mkdir -p /tmp/tokref && cd /tmp/tokref && npm init -y &&
//   ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm install @huggingface/transformers
// Run from anywhere:
//   node tools/reference/tokenizer_ref.mjs          (TOKREF=/tmp/tokref by default)
// Inputs: ../shared/data/weights/roberta-bpe/{vocab.json,merges.txt} and ../shared/data/meld/{train,test}_sent_emo.csv
// (MMSPCL_SHARED overrides ../shared). The built tokenizer.json lands in $TOKREF/roberta/ (not committed).
//
// Output format (UTF-8, one case per line, no header): ESCAPED_TEXT <TAB> id id id ...
//   ESCAPED_TEXT: the text with '\' -> \\, TAB -> \t, LF -> \n, CR -> \r, any other char < 0x20 or 0x7f -> \xHH
//   (two lower-case hex digits); everything else is raw UTF-8. No text starts with '#'.
//   The ids list may be empty (the line then ends right after the TAB).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const shared = process.env.MMSPCL_SHARED || path.resolve(root, '..', 'shared');
const tokref = process.env.TOKREF || '/tmp/tokref';

let tf;
try {
  const req = createRequire(path.join(tokref, 'package.json'));
  tf = await import(pathToFileURL(req.resolve('@huggingface/transformers')).href);
} catch (e) {
  console.error(`cannot load @huggingface/transformers from ${tokref}: install it there (see the top of this file)\n${e}`);
  process.exit(1);
}
const { AutoTokenizer, env } = tf;

// ---- tokenizer.json as Hugging Face's roberta-base ships it (byte-level BPE, no normalizer) ----
const bpeDir = path.join(shared, 'data', 'weights', 'roberta-bpe');
const vocab = JSON.parse(fs.readFileSync(path.join(bpeDir, 'vocab.json'), 'utf8'));
const merges = fs.readFileSync(path.join(bpeDir, 'merges.txt'), 'utf8').split('\n')
  .filter((l, i) => l.length > 0 && !(i === 0 && l.startsWith('#version')));
const added = (id, content, lstrip, normalized) =>
  ({ id, content, single_word: false, lstrip, rstrip: false, normalized, special: true });
const tokenizerJson = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: [
    added(0, '<s>', false, true), added(1, '<pad>', false, true), added(2, '</s>', false, true),
    added(3, '<unk>', false, true), added(50264, '<mask>', true, false),
  ],
  normalizer: null,
  pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  post_processor: { type: 'RobertaProcessing', sep: ['</s>', 2], cls: ['<s>', 0], trim_offsets: true, add_prefix_space: false },
  decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: {
    type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
    fuse_unk: false, byte_fallback: false, vocab, merges,
  },
};
const tokenizerConfig = {
  add_prefix_space: false, bos_token: '<s>', cls_token: '<s>', eos_token: '</s>', errors: 'replace',
  mask_token: '<mask>', model_max_length: 512, pad_token: '<pad>', sep_token: '</s>',
  tokenizer_class: 'RobertaTokenizer', trim_offsets: true, unk_token: '<unk>',
};
const modelDir = path.join(tokref, 'roberta');
fs.mkdirSync(modelDir, { recursive: true });
fs.writeFileSync(path.join(modelDir, 'tokenizer.json'), JSON.stringify(tokenizerJson));
fs.writeFileSync(path.join(modelDir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig, null, 2));

env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = tokref + '/';
const tok = await AutoTokenizer.from_pretrained('roberta');
const enc = (s) => Array.from(tok.encode(s, { add_special_tokens: false }), Number);

// ---- sanity checks against published ids ----
const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
const checks = [
  ['Hello world! cécé herlolip', [31414, 232, 328, 740, 1140, 12695, 69, 46078, 1588]],  // HF roberta-base test
  ['Hello world! cécé herlolip 418', [31414, 232, 328, 740, 1140, 12695, 69, 46078, 1588, 42928]],
  ['Hey, Monica feels', [13368, 6, 12811, 2653]],
  [' <mask>', [50264]],
];
for (const [s, want] of checks) {
  const got = enc(s);
  if (!same(got, want)) { console.error(`MISMATCH for ${JSON.stringify(s)}: got ${got} want ${want}`); process.exit(1); }
}
const withSpecial = Array.from(tok.encode('Hello world! cécé herlolip'), Number);
if (!same(withSpecial, [0, 31414, 232, 328, 740, 1140, 12695, 69, 46078, 1588, 2])) {
  console.error(`MISMATCH with special tokens: ${withSpecial}`); process.exit(1);
}

// ---- MELD utterances: RFC 4180 CSV parser ----
function parseCsv(text) {
  const rows = []; let row = []; let field = ''; let q = false; let i = 0;
  if (text.charCodeAt(0) === 0xfeff) i = 1;
  for (; i < text.length; i++) {
    const ch = text[i];
    if (q) {
      if (ch === '"') { if (text[i + 1] === '"') { field += '"'; i++; } else q = false; }
      else field += ch;
    } else if (ch === '"') q = true;
    else if (ch === ',') { row.push(field); field = ''; }
    else if (ch === '\r' && text[i + 1] === '\n') { /* CRLF: handled at the \n */ }
    else if (ch === '\n') { row.push(field); rows.push(row); row = []; field = ''; }
    else field += ch;
  }
  if (field.length > 0 || row.length > 0) { row.push(field); rows.push(row); }
  return rows;
}
function meld(name) {
  const rows = parseCsv(fs.readFileSync(path.join(shared, 'data', 'meld', name), 'utf8'));
  const head = rows[0];
  const u = head.indexOf('Utterance'), s = head.indexOf('Speaker');
  if (u < 0 || s < 0) throw new Error(`${name}: no Utterance/Speaker column`);
  return rows.slice(1).filter((r) => r.length === head.length).map((r) => ({ text: r[u], speaker: r[s] }));
}
const train = meld('train_sent_emo.csv'), test = meld('test_sent_emo.csv');
const every = (arr, n) => Array.from({ length: n }, (_, k) => arr[Math.floor((k * arr.length) / n)]);

const texts = [];
const seen = new Set();
const add = (s) => { if (!seen.has(s)) { seen.add(s); texts.push(s); } };

// tricky strings first
[
  '', ' ', '  ', '   ', '\n', '\n\n', 'a\n\n', '\t', '\r\n', 'tab\tand\ttab  \t x', 'nel\u0085x', 'ideo\u3000space', 'ls\u2028x', 'fs\u001cx', ' \n ', 'a\nb', 'a\tb', 'a\n\nb', 'a \n b', 'x\r\ny',
  'Hello world! cécé herlolip', 'Hello', ' Hello', 'Hello ', 'Hello  world', '  hello   world   ',
  'cafe\u0301 café', 'naïve résumé', 'Ångström', '😀', 'I ❤️ NY 🇺🇸', '👍🏽 ok', '日本語のテキスト', '中文测试',
  '한국어', 'Привет, мир', 'مرحبا', '0', '123', '1234567', '3.14159', '2,000,000', '$100.50', '50%',
  "I'm", "you'RE", "You're", "I've", "we'll", "she'd", "don't", "DON'T", "it's", "'s", "'tis", "y'all",
  "rock 'n' roll", "Joey's", "Ross'", ' <mask>', '<mask>', 'a<mask>b', 'a <mask> b', '<mask><mask>',
  '<mask>  ', '  <mask>', 'x <mask>.', '<s>x</s>', '<s>', '</s>', '<pad>', '<unk>', '<s> x </s>', '</s></s>',
  '<mask', 'mask>', '<MASK>', 'That’s it', '’', '‘quoted’', '“double”', 'em—dash', 'wait…', 'It’s, like, ’90s',
  'Oh my God!!!', '?!?', 'e-mail', 'http://example.com/a?b=c', 'tag #hashtag @user', 'A\u00a0B',
  'zero\u200bwidth', 'ﬁne ligature', 'back\\slash', 'ctrl\u0001char', 'del\u007fchar', 'mojibake \u0092 Ã©',
  'ALL CAPS SENTENCE', 'mixed 123abc abc123 a1b2', 'x'.repeat(100), 'supercalifragilisticexpialidocious',
  'Rachel: What are you doing here?', 'For utterance:', ' for Oh, honey., Rachel feels <mask>',
  'Monica feels <mask>', 'Ross: hey, Rachel: Oh, honey.',
].forEach(add);

// MELD utterances sampled at fixed strides, plus every one with a rare character
every(train, 180).forEach((r) => add(r.text));
every(test, 80).forEach((r) => add(r.text));
[...train, ...test].filter((r) => /[éó“”–]/.test(r.text)).forEach((r) => add(r.text));
// SPCL's context turns are tokenised one by one as "speaker:text"
every(train.slice(1), 20).forEach((r) => add(`${r.speaker}:${r.text}`));

// ---- write ----
function esc(s) {
  let o = '';
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (ch === '\\') o += '\\\\';
    else if (ch === '\t') o += '\\t';
    else if (ch === '\n') o += '\\n';
    else if (ch === '\r') o += '\\r';
    else if (c < 0x20 || c === 0x7f) o += '\\x' + c.toString(16).padStart(2, '0');
    else o += ch;
  }
  return o;
}
const lines = texts.map((s) => {
  const e = esc(s);
  if (e.startsWith('#')) throw new Error(`text starts with '#': ${e}`);
  return `${e}\t${enc(s).join(' ')}`;
});
const outDir = path.join(root, 'tests', 'data', 'tokenizer');
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, 'meld_ids.txt'), lines.join('\n') + '\n');
console.log(`checks passed; wrote ${lines.length} lines to ${path.join(outDir, 'meld_ids.txt')}`);
