#!/usr/bin/env node
// Random-string reference for the byte-level BPE tokenizer: transformers.js (npm
// @huggingface/transformers) encodes strings built from a seeded generator out of pieces that
// stress the pre-tokenizer (contractions, every kind of whitespace, letters/numbers/marks of many
// scripts, emoji, special tokens with and without whitespace before them) and writes
// tests/data/tokenizer/fuzz_ids.txt, in the same format as meld_ids.txt (see tokenizer_ref.mjs):
//   ESCAPED_TEXT <TAB> ids (add_special_tokens false)
// Needs the setup of tools/reference/tokenizer_ref.mjs and its tokenizer.json: run that script
// first (it writes $TOKREF/roberta/tokenizer.json; TOKREF=/tmp/tokref by default), then
//   node tools/reference/bpe_fuzz_ref.mjs [COUNT]        (default 1000 strings)
// Left out on purpose: U+0085 and U+FEFF, where JavaScript's \s differs from the Oniguruma \s
// that Hugging Face's Rust tokenizers use (and that mmspcl follows).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const tokref = process.env.TOKREF || '/tmp/tokref';
const count = parseInt(process.argv[2] || '1000', 10);

let tf;
try {
  const req = createRequire(path.join(tokref, 'package.json'));
  tf = await import(pathToFileURL(req.resolve('@huggingface/transformers')).href);
} catch (e) {
  console.error(`cannot load @huggingface/transformers from ${tokref} (see tokenizer_ref.mjs)\n${e}`);
  process.exit(1);
}
if (!fs.existsSync(path.join(tokref, 'roberta', 'tokenizer.json'))) {
  console.error(`${tokref}/roberta/tokenizer.json is missing: run tools/reference/tokenizer_ref.mjs first`);
  process.exit(1);
}
const { AutoTokenizer, env } = tf;
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = tokref + '/';
const tok = await AutoTokenizer.from_pretrained('roberta');
const enc = (s) => Array.from(tok.encode(s, { add_special_tokens: false }), Number);

const pool = [
  ...'abcXYZ019\'.,!?-  \t\n\r', "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "''",
  ' <mask>', '<mask>', '  <mask>', '\n<mask>', '<s>', '</s>', '<pad>', '<unk>', '<', '<mas', '>',
  ...'éÅñßøÆœ’“”…—–½²³¹¼µºª', ...'日本語中文한국어Приветمرحباשלוםहिन्दी',
  '😀', '👍🏽', '🇺🇸', '❤️', '\u0301', '\u200d', '\u00a0', '\u2000', '\u2009', '\u2028', '\u2029',
  '\u3000', '\u1680', '\u202f', '\u205f', '\u000b', '\u000c', '\u001c', '\u001f', '\u200b', 'Ⅻ',
  '٣', '𝟘', '𐍈', '\u0600', '\ue000', '\u{10fffd}', ' Monica', ' feels', 'Joey:', '123', ' 4567',
];
let state = 0x2545F491n;
const rnd = (n) => {  // 64-bit LCG, top bits
  state = (state * 6364136223846793005n + 1442695040888963407n) & 0xFFFFFFFFFFFFFFFFn;
  return Number(state >> 33n) % n;
};
const esc = (s) => Array.from(s, (c) => {
  if (c === '\\') return '\\\\';
  if (c === '\t') return '\\t';
  if (c === '\n') return '\\n';
  if (c === '\r') return '\\r';
  const u = c.codePointAt(0);
  if (u < 0x20 || u === 0x7f) return '\\x' + u.toString(16).padStart(2, '0');
  return c;
}).join('');

const seen = new Set();
let out = '';
while (seen.size < count) {
  const n = 1 + rnd(16);
  let s = '';
  for (let i = 0; i < n; i++) s += pool[rnd(pool.length)];
  if (seen.has(s) || s.startsWith('#')) continue;
  seen.add(s);
  out += esc(s) + '\t' + enc(s).join(' ') + '\n';
}
const dst = path.join(root, 'tests', 'data', 'tokenizer', 'fuzz_ids.txt');
fs.writeFileSync(dst, out);
console.log(`${dst}: ${count} strings`);
