#!/usr/bin/python3
"""SPCL prompt ids for MELD dialogues, written independently of the C code: the logic of the
original SPCL code (caskcsg/SPCL data_process.py: load_meld_turn + build_dataset, evaluation
mode: no random extra query) re-stated in Python, on top of bpe_check.py's plain-Python BPE
(itself checked against transformers.js). Output: tests/data/prompt/meld_prompts.txt

  dialogue <csv file> <Dialogue_ID> <max_len> <n_turns>
  turn <t> <n_ids> <mask_pos> <ids...>

Usage: tools/reference/spcl_prompt_ref.py
"""
import csv
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe_check import BPE, ROOT, SHARED  # noqa: E402

CLS, SEP, MASK, PAD = 0, 2, 50264, 1


def load_dialogues(path):
    dialogues, current, prev = {}, [], None
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            text = row["Utterance"].replace("\u2019", "'").replace('"', "")
            d = int(row["Dialogue_ID"])
            if prev is not None and d != prev:
                dialogues[prev] = current
                current = []
            prev = d
            current.append({"speaker": row["Speaker"], "text": text})
    dialogues[prev] = current
    return dialogues


def prompts(bpe, dialogue, max_len):
    """SPCL's build_dataset for one dialogue; tokenizer(x)['input_ids'][1:] is bpe(x) + [</s>]."""
    out, utt = [], []
    query = bpe.encode("For utterance:")
    for idx, turn in enumerate(dialogue):
        utt.append(bpe.encode(turn["speaker"] + ":" + turn["text"]) + [SEP])
        context = [CLS]
        lidx = 0
        for lidx in range(idx):
            total = sum(len(u) for u in utt[lidx:]) + 8
            if total + len(utt[idx]) <= max_len:
                break
        lidx = max(lidx, idx - 8)
        for u in utt[lidx:]:
            context += u
        tail = query + utt[idx] + bpe.encode(turn["speaker"] + " feels <mask>") + [SEP]
        ids = (context + tail)[-max_len:]
        mask_pos = ids.index(MASK) if MASK in ids else 0
        out.append((ids, mask_pos))
    return out


def main():
    bpe = BPE()
    out_dir = os.path.join(ROOT, "tests", "data", "prompt")
    os.makedirs(out_dir, exist_ok=True)
    # dialogues with long context, quotes and ’, and one cut hard by a small max_len
    picks = [("test_sent_emo.csv", 0, 256), ("test_sent_emo.csv", 1, 256), ("dev_sent_emo.csv", 5, 256),
             ("train_sent_emo.csv", 17, 256), ("test_sent_emo.csv", 0, 48), ("train_sent_emo.csv", 17, 64)]
    cache = {}
    with open(os.path.join(out_dir, "meld_prompts.txt"), "w", encoding="utf-8") as f:
        f.write("# written by tools/reference/spcl_prompt_ref.py\n")
        for name, dia, max_len in picks:
            if name not in cache:
                cache[name] = load_dialogues(os.path.join(SHARED, "data", "meld", name))
            dialogue = cache[name][dia]
            f.write("dialogue %s %d %d %d\n" % (name, dia, max_len, len(dialogue)))
            for t, (ids, mask_pos) in enumerate(prompts(bpe, dialogue, max_len)):
                f.write("turn %d %d %d %s\n" % (t, len(ids), mask_pos, " ".join(map(str, ids))))


if __name__ == "__main__":
    main()
