#!/usr/bin/python3
"""One step of SPCL fine-tuning of a RoBERTa encoder, with PyTorch autograd (float64), for
tests/test_finetune.c (llm.c's test_gpt2 way: the same step in C must give the same loss, the
same gradient of every parameter and the same weights after the optimiser step).

The step, as caskcsg/SPCL's train.py / spcl_loss.py (HEAD cd48939) run it with the recipe's
additions (tools/train/spcl_finetune.c):
  encoder   a small random RobertaModel with odd sizes (hidden 24, 3 heads, 2 layers, FFN 40,
            66 positions), the vocabulary cut to the ids of the batch (specials kept); forward
            from Hugging Face's equations (roberta_ref.py's, checked against it and against
            torch.nn.TransformerEncoderLayer), one sequence at a time (= the padding mask)
  batch     the 11 SPCL prompts (max_len 64) of MELD train dialogue 17 from
            tests/data/prompt/meld_prompts.txt (real BPE ids), with their emotion / sentiment
  feature   z = last hidden state at the prompt's <mask>
  queues    7 classes, pool 8, K 4, temperature 0.08; each queue starts at a random class mean and
            is pre-filled with random vectors (some past pool_size, some under K, one empty), the
            draws (K of L, drops) follow mmspcl_train.h's generator from seed 2333
            (mmspcl_streams.py), HEAD's order: prototypes first, then the batch is pushed
  loss      SPCL(z, labels, prototypes) + CE(emotion head(z.detach())) + CE(sentiment head(z.detach()))
  clip      clip_grad_norm_(encoder + emotion head, CLIP) (train.py:117 clips every parameter of
            the model: encoder + predictor); the sentiment head (ours) clipped on its own. CLIP is 1
            here, not the recipe's 5: this random model's gradient norm is about 2.3-3, and the
            scaling is part of what the test compares
  AdamW     torch.optim.AdamW, one step from zero moments: lr 1e-5 encoder / 1e-3 heads,
            weight decay 0.01 except names containing 'bias' or 'LayerNorm.weight'
            (train.py get_paramsgroup), betas (0.9, 0.999), eps 1e-8
Cases: "nodrop" (dropout off: loss, gradients, weights after the step) and "drop" (RoBERTa's
training mode, hidden and attention dropout 0.1, masks from mmspcl_roberta_train_dropout's hash
with a fixed key placed where Hugging Face's RobertaModel.train() applies them: loss, gradients).

Also writes tests/data/finetune/tokenizer-300/{vocab.json, merges.txt}: a 300-token byte-level
BPE for tests/data/roberta-tiny-bf16 (vocab_size 300): <s> <pad> </s> <unk>, the 256 byte
symbols, the first 39 merges of RoBERTa's merges.txt (each built from tokens already there),
<mask> last; the fine-tuning end-to-end test converts that checkpoint with it.

Outputs (tests/data/finetune/): config.json + model.safetensors (the encoder, f32, with a
pooler as RobertaModel saves it), expected.txt (see HEADER), expected.safetensors (f32:
init.head.*, centers, prefill, <case>.z, <case>.grad.NAME, nodrop.after.NAME).
Run: tools/reference/spcl_finetune_ref.py [--out DIR]
"""
import argparse
import csv
import json
import math
import os
import sys
from collections import OrderedDict

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reflib  # noqa: E402
import roberta_ref  # noqa: E402
from bpe_check import BPE_DIR, ROOT, SHARED  # noqa: E402
from mmspcl_streams import Queues, dropout_mask, f32  # noqa: E402

EMOTIONS = ["neutral", "joy", "sadness", "surprise", "fear", "disgust", "anger"]
SENTIMENTS = ["neutral", "positive", "negative"]
CFG = dict(hidden_size=24, num_hidden_layers=2, num_attention_heads=3, intermediate_size=40,
           max_position_embeddings=66, type_vocab_size=1, pad_token_id=1, layer_norm_eps=1e-5)
SPCL = dict(classes=7, pool=8, K=4, temperature=0.08, seed=2333)
PREFILL = [9, 5, 4, 2, 6, 0, 3]          # queue entries pushed before the step, per class
LR_ENC, LR_HEAD, WD, CLIP = 1e-5, 1e-3, 0.01, 1.0   # clip: the recipe's 5 would not bind here
DROP_P, DROP_KEY = 0.1, 0x5EED5EED1234ABCD
MAX_SEQ = 64                              # the C trainer's max_seq in tests/test_finetune.c (mask indices)
NO_DECAY = ["bias", "LayerNorm.weight"]

HEADER = """\
# One SPCL fine-tuning step with PyTorch autograd (tools/reference/spcl_finetune_ref.py, PyTorch %s,
# float64 from the stored float32 weights). Lines:
#   model <vocab> <hidden> <layers> <heads> <ffn> <positions> <pad>    (the checkpoint beside this file)
#   spcl <classes> <pool> <K> <temperature> <seed>                      queue settings and generator seed
#   prefill <n> <labels...>                                             pushed before the step (vectors: prefill)
#   optim <lr encoder> <lr heads> <weight decay> <clip>
#   nodecay <names...>                                                  tensors without weight decay
#   batch <n>, then n lines: row <length> <mask_pos> <emotion> <sentiment> <ids...>
#   case <name> <dropout p> <dropout key>                               then, for the case:
#     select <class> <positions...> | select <class> mean               the prototypes' draws
#     loss <spcl> <ce emotion> <ce sentiment>
#     gradnorm <encoder + emotion head> <sentiment head>                before clipping
#   end
"""


def load_batch():
    ids, rows = [], []
    with open(os.path.join(ROOT, "tests", "data", "prompt", "meld_prompts.txt")) as f:
        on = False
        for line in f:
            p = line.split()
            if p[0] == "dialogue":
                on = p[1:4] == ["train_sent_emo.csv", "17", "64"]
            elif p[0] == "turn" and on:
                n, mask = int(p[2]), int(p[3])
                rows.append((n, mask))
                ids.append([int(x) for x in p[4:4 + n]])
    labels = []
    with open(os.path.join(SHARED, "data", "meld", "train_sent_emo.csv"), encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            if int(r["Dialogue_ID"]) == 17:
                labels.append((EMOTIONS.index(r["Emotion"].lower()), SENTIMENTS.index(r["Sentiment"].lower())))
    assert len(ids) == len(labels) == 11, (len(ids), len(labels))
    return ids, [m for _, m in rows], labels


def compact_vocab(seqs):
    used = sorted({i for s in seqs for i in s} - {0, 1, 2, 3, 50264})
    remap = {0: 0, 1: 1, 2: 2, 3: 3}
    for k, i in enumerate(used):
        remap[i] = 4 + k
    remap[50264] = 4 + len(used)
    return remap, 5 + len(used)


def forward_seq(w, ids, c, key, p):
    """One sequence (HF RobertaModel, float64), dropout p (hidden and attention) from the hash at
    the C trainer's indices (mmspcl_train.h section 11, DROPOUT): key = (hash key or None for no
    dropout, the sequence's row r in the batch, S = the trainer's max_seq); token i, column j:
    (r S + i) H + j; head h, probabilities (i, j): (r heads + h) S^2 + i L + j. Returns the
    hidden states [L][H]."""
    H, nh, eps, pad = c["hidden_size"], c["num_attention_heads"], c["layer_norm_eps"], c["pad_token_id"]
    d = H // nh
    L = len(ids)
    row, S = key[1], key[2]
    idt = torch.tensor(ids)
    pos = torch.tensor([pad + 1 + i for i in range(L)])

    def mask_rows(site):
        if key[0] is None:
            return None
        return torch.tensor([[dropout_mask(key[0], site, (row * S + i) * H + j, p) for j in range(H)] for i in range(L)],
                            dtype=torch.float64)

    def drop(x, site):
        m = mask_rows(site)
        return x if m is None else x * m

    def lin(t, name):
        return t @ w[name + ".weight"].t() + w[name + ".bias"]

    x = w["embeddings.word_embeddings.weight"][idt] + w["embeddings.position_embeddings.weight"][pos] + \
        w["embeddings.token_type_embeddings.weight"][0]
    x = drop(F.layer_norm(x, (H,), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps), 0)
    for l in range(c["num_hidden_layers"]):
        pre = "encoder.layer.%d." % l
        q = lin(x, pre + "attention.self.query").view(L, nh, d).transpose(0, 1)
        k = lin(x, pre + "attention.self.key").view(L, nh, d).transpose(0, 1)
        v = lin(x, pre + "attention.self.value").view(L, nh, d).transpose(0, 1)
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
        if key[0] is not None:
            am = torch.tensor([[[dropout_mask(key[0], 1 + 3 * l, (row * nh + h) * S * S + i * L + j, p) for j in range(L)]
                                for i in range(L)] for h in range(nh)], dtype=torch.float64)
            probs = probs * am
        ctx = (probs @ v).transpose(0, 1).reshape(L, H)
        a = drop(lin(ctx, pre + "attention.output.dense"), 2 + 3 * l)
        a = F.layer_norm(a + x, (H,), w[pre + "attention.output.LayerNorm.weight"], w[pre + "attention.output.LayerNorm.bias"], eps)
        h = lin(a, pre + "intermediate.dense")
        h = 0.5 * h * (1.0 + torch.erf(h / math.sqrt(2.0)))
        o = drop(lin(h, pre + "output.dense"), 3 + 3 * l)
        x = F.layer_norm(o + a, (H,), w[pre + "output.LayerNorm.weight"], w[pre + "output.LayerNorm.bias"], eps)
    return x


def spcl_loss(z, labels, protos, temperature):
    """spcl_loss.py's non-decoupled branch (score matrix over the batch and the prototypes)."""
    n, C = z.shape[0], protos.shape[0]
    allr = torch.cat([z, protos], 0)
    alll = torch.cat([labels, torch.arange(C)], 0)
    N = n + C
    s = ((1 + F.cosine_similarity(allr.unsqueeze(1).expand(N, N, -1), allr.unsqueeze(0).expand(N, N, -1), dim=-1)) / 2
         + 1e-8)
    s = s * (1 - torch.eye(N, dtype=z.dtype)) / temperature
    s = s[:n]
    s = s - s.max().item()
    same = (alll.unsqueeze(0) == alll.unsqueeze(1)).to(z.dtype)[:n]
    notself = (1 - torch.eye(N, dtype=z.dtype))[:n]
    e = torch.exp(s)
    pos = (e * same * notself).sum(-1)
    neg = (e * (1 - same)).sum(-1)
    prob = pos / (pos + neg) / ((same * notself).sum(-1) + 1e-8)
    anchor = -torch.log(prob + 1e-8)
    keep = (anchor > 0.3).to(z.dtype)
    return (anchor * keep).sum() / (keep.sum().item() + 1e-8)


def run_case(W32, heads32, seqs, masks, labels, centers, prefill, prefill_y, c, dropout):
    """The step; returns (losses, selections, gradnorms, z, grads dict, after dict)."""
    enc = OrderedDict((k, v.double().clone().requires_grad_(True)) for k, v in W32.items() if not k.startswith("pooler."))
    hd = OrderedDict((k, v.double().clone().requires_grad_(True)) for k, v in heads32.items())
    zs = []
    for b, s in enumerate(seqs):
        zs.append(forward_seq(enc, s, c, (DROP_KEY if dropout else None, b, MAX_SEQ), f32(DROP_P))[masks[b]])
    z = torch.stack(zs)
    ye = torch.tensor([e for e, _ in labels])
    ys = torch.tensor([s for _, s in labels])
    Q = Queues(list(centers), SPCL["pool"], SPCL["K"], SPCL["seed"])
    Q.push(prefill, prefill_y)
    protos, sel = Q.prototypes()
    Q.push(z.detach(), ye)
    l_spcl = spcl_loss(z, ye, torch.stack(protos), SPCL["temperature"])
    zd = z.detach()
    l_e = F.cross_entropy(zd @ hd["emotion.weight"].t() + hd["emotion.bias"], ye)
    l_s = F.cross_entropy(zd @ hd["sentiment.weight"].t() + hd["sentiment.bias"], ys)
    (l_spcl + l_e + l_s).backward()
    grads = OrderedDict((k, v.grad.detach().clone()) for k, v in list(enc.items()) + list(hd.items()))
    joint = list(enc.values()) + [hd["emotion.weight"], hd["emotion.bias"]]
    n1 = float(torch.nn.utils.clip_grad_norm_(joint, CLIP))
    n2 = float(torch.nn.utils.clip_grad_norm_([hd["sentiment.weight"], hd["sentiment.bias"]], CLIP))
    groups = []
    for name, p in list(enc.items()) + list(hd.items()):
        groups.append({"params": [p], "lr": LR_HEAD if name in hd else LR_ENC,
                       "weight_decay": 0.0 if any(nd in name for nd in NO_DECAY) else WD})
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8)
    opt.step()
    after = OrderedDict((k, v.detach().clone()) for k, v in list(enc.items()) + list(hd.items()))
    return (float(l_spcl), float(l_e), float(l_s)), sel, (n1, n2), z.detach(), grads, after


def check_forward(W32, seqs, c):
    """forward_seq (no dropout) against roberta_ref.forward (padded batch, HF's additive mask) and
    torch.nn.TransformerEncoderLayer: the reference encoder is Hugging Face's."""
    w = OrderedDict((k, v.double()) for k, v in W32.items())
    ids, mask = roberta_ref.pad_batch(seqs, c["pad_token_id"])
    hidden, _ = roberta_ref.forward(W32, ids, mask, c)
    err = 0.0
    for b, s in enumerate(seqs):
        x = forward_seq(w, s, c, (None, 0, 0), 0.0)
        err = max(err, float((x - hidden[b, :len(s)]).abs().max()))
    err2 = roberta_ref.crosscheck(W32, ids, mask, c, hidden)
    if err > 1e-12 or err2 > 1e-9:
        raise SystemExit("the reference forward disagrees with Hugging Face's equations (%g, %g)" % (err, err2))
    return err, err2


def write_tokenizer_300(out):
    """vocab.json + merges.txt of 300 tokens for roberta-tiny-bf16 (ids: specials 0-3, bytes
    4-259 in byte order, 39 merges 260-298, <mask> 299)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_sym = dict(zip(bs, [chr(x) for x in cs]))
    vocab = OrderedDict([("<s>", 0), ("<pad>", 1), ("</s>", 2), ("<unk>", 3)])
    for b in range(256):
        vocab[byte_sym[b]] = len(vocab)
    merges = []
    with open(os.path.join(BPE_DIR, "merges.txt"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            a, b = line.rstrip("\n").split(" ")
            if a in vocab and b in vocab and a + b not in vocab:
                merges.append(a + " " + b)
                vocab[a + b] = len(vocab)
                if len(vocab) == 299:
                    break
    vocab["<mask>"] = len(vocab)
    assert len(vocab) == 300
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "finetune"))
    args = ap.parse_args()
    torch.manual_seed(0)
    seqs0, masks, labels = load_batch()
    remap, V = compact_vocab(seqs0)
    seqs = [[remap[i] for i in s] for s in seqs0]
    c = dict(CFG, vocab_size=V)
    assert max(len(s) for s in seqs) <= c["max_position_embeddings"] - c["pad_token_id"] - 1
    W = roberta_ref.make_weights(c, 1515)
    g = torch.Generator().manual_seed(77)
    H, C = c["hidden_size"], SPCL["classes"]
    heads = OrderedDict()
    for name, n_out in (("emotion", C), ("sentiment", 3)):
        bound = 1.0 / math.sqrt(H)   # torch.nn.Linear's default init
        heads[name + ".weight"] = (torch.rand(n_out, H, generator=g) * 2 - 1) * bound
        heads[name + ".bias"] = (torch.rand(n_out, generator=g) * 2 - 1) * bound
    centers = torch.randn(C, H, generator=g, dtype=torch.float32).double()
    prefill_y = [cl for k in range(max(PREFILL)) for cl in range(C) if k < PREFILL[cl]]
    prefill = torch.randn(len(prefill_y), H, generator=g, dtype=torch.float32).double() + 0.5 * centers[prefill_y]
    prefill = prefill.float().double()
    e1, e2 = check_forward(W, seqs, c)
    print("reference forward vs HF equations %.1e, vs TransformerEncoderLayer %.1e" % (e1, e2))

    os.makedirs(args.out, exist_ok=True)
    reflib.write_json(os.path.join(args.out, "config.json"), roberta_ref.hf_config(c))
    reflib.write_safetensors(os.path.join(args.out, "model.safetensors"), W)
    tensors = OrderedDict()
    for k, v in heads.items():
        tensors["init.head." + k] = v
    tensors["centers"] = centers.float()
    tensors["prefill"] = prefill.float()
    lines = [HEADER % torch.__version__,
             "model %d %d %d %d %d %d %d" % (V, H, c["num_hidden_layers"], c["num_attention_heads"],
                                            c["intermediate_size"], c["max_position_embeddings"], c["pad_token_id"]),
             "spcl %d %d %d %.17g %d" % (C, SPCL["pool"], SPCL["K"], SPCL["temperature"], SPCL["seed"]),
             "prefill %d %s" % (len(prefill_y), " ".join(map(str, prefill_y))),
             "optim %.17g %.17g %.17g %.17g" % (LR_ENC, LR_HEAD, WD, CLIP),
             "nodecay " + " ".join(k for k in list(W) + ["emotion.weight", "emotion.bias", "sentiment.weight",
                                                         "sentiment.bias"]
                                  if not k.startswith("pooler.") and any(nd in k for nd in NO_DECAY)),
             "batch %d" % len(seqs)]
    for b, s in enumerate(seqs):
        lines.append("row %d %d %d %d %s" % (len(s), masks[b], labels[b][0], labels[b][1], " ".join(map(str, s))))
    for case, dropout in (("nodrop", False), ("drop", True)):
        losses, sel, norms, z, grads, after = run_case(W, heads, seqs, masks, labels, centers, prefill, prefill_y, c, dropout)
        lines.append("case %s %.9g %d" % (case, f32(DROP_P) if dropout else 0.0, DROP_KEY if dropout else 0))
        for cl, s in enumerate(sel):
            lines.append("select %d %s" % (cl, "mean" if s is None else " ".join(map(str, s))))
        lines.append("loss %.17g %.17g %.17g" % losses)
        lines.append("gradnorm %.17g %.17g" % norms)
        lines.append("end")
        tensors[case + ".z"] = z.float()
        for k, v in grads.items():
            tensors["%s.grad.%s" % (case, k)] = v.float()
        if not dropout:
            for k, v in after.items():
                tensors["nodrop.after." + k] = v.float()
        print("%s: spcl %.9f  ce emotion %.6f  ce sentiment %.6f  grad norms %.4f %.4f (clip %g)" % ((case,) + losses + norms + (CLIP,)))
    with open(os.path.join(args.out, "expected.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    reflib.write_safetensors(os.path.join(args.out, "expected.safetensors"), tensors)
    write_tokenizer_300(os.path.join(args.out, "tokenizer-300"))
    print("vocabulary %d ids; wrote %s" % (V, args.out))


if __name__ == "__main__":
    main()
