#!/usr/bin/python3
"""The prompts of SPCL's training augmentation, written independently of the C code: caskcsg/SPCL
data_process.py build_dataset(train=True), lines 74-83: for a turn idx > 3, with probability
0.2, one more sample with the SAME context (full_context of turn idx, lidx as the loop left it)
whose query asks about turn query_idx = random.randint(lidx, idx - 1):

    full_query = query_ids + utterance_ids[query_idx] + tokenizer(speaker_q + ' feels <mask>')[1:]
    input_ids  = pad_to_len(full_context + full_query)          (the last max_len ids kept)

Here every (idx, query_idx) pair with lidx <= query_idx < idx is written, for the dialogues of
spcl_prompt_ref.py (same BPE: bpe_check.py), so the test covers whatever the draw picks.
Output: tests/data/prompt/meld_prompts_query.txt

  dialogue <csv file> <Dialogue_ID> <max_len> <n_turns>
  query <t> <q> <first> <n_ids> <mask_pos> <ids...>          first = lidx of turn t

Usage: tools/reference/spcl_query_ref.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bpe_check import BPE, ROOT, SHARED  # noqa: E402
from spcl_prompt_ref import CLS, MASK, SEP, load_dialogues  # noqa: E402


def query_prompts(bpe, dialogue, max_len):
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
        for q in range(lidx, idx):
            tail = query + utt[q] + bpe.encode(dialogue[q]["speaker"] + " feels <mask>") + [SEP]
            ids = (context + tail)[-max_len:]
            mask_pos = ids.index(MASK) if MASK in ids else 0
            out.append((idx, q, lidx, ids, mask_pos))
    return out


def main():
    bpe = BPE()
    out_dir = os.path.join(ROOT, "tests", "data", "prompt")
    picks = [("test_sent_emo.csv", 1, 256), ("train_sent_emo.csv", 17, 64), ("test_sent_emo.csv", 0, 48)]
    cache = {}
    with open(os.path.join(out_dir, "meld_prompts_query.txt"), "w", encoding="utf-8") as f:
        f.write("# written by tools/reference/spcl_query_ref.py\n")
        for name, dia, max_len in picks:
            if name not in cache:
                cache[name] = load_dialogues(os.path.join(SHARED, "data", "meld", name))
            dialogue = cache[name][dia]
            f.write("dialogue %s %d %d %d\n" % (name, dia, max_len, len(dialogue)))
            for t, q, first, ids, mask_pos in query_prompts(bpe, dialogue, max_len):
                f.write("query %d %d %d %d %d %s\n" % (t, q, first, len(ids), mask_pos, " ".join(map(str, ids))))


if __name__ == "__main__":
    main()
