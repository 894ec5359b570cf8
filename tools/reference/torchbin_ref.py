#!/usr/bin/python3
"""PyTorch .bin (torch.save zip format) test checkpoints for the .bin reader.

Reads back the safetensors written by roberta_ref.py and clip_ref.py (run those first) and writes:
  tests/data/roberta-tiny-bin/          pytorch_model.bin + config.json: the weights of roberta-tiny,
                                        saved as HF's save_pretrained does (an OrderedDict from
                                        module.state_dict(), with its _metadata attribute), with
                                        storage tricks (see TRICKS below)
  tests/data/roberta-tiny-bin-sharded/  pytorch_model.bin.index.json + pytorch_model-0000{1,2}-of-00002.bin
                                        (plain dicts, as HF's sharding writes them; same tricks)
  tests/data/clip-tiny-bin/             pytorch_model.bin + config.json: the weights of clip-tiny-full
                                        (CLIPModel incl. the int64 position_ids buffers and the 0-d logit_scale)
  tests/data/torchbin-dtypes.bin/.txt   small tensors of several dtypes and layouts + their values as text
Usage: tools/reference/torchbin_ref.py
"""
import json
import os
import shutil
import sys
import zipfile
from collections import OrderedDict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reflib  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DATA = os.path.join(ROOT, "tests", "data")


def module_state_dict(W):
    """Put the tensors into a tree of nn.Modules named like the dotted names and return
    module.state_dict(): an OrderedDict carrying `_metadata`, exactly the object HF's .bin saving pickles."""
    root = torch.nn.Module()
    for name, t in W.items():
        parts = name.split(".")
        m = root
        for p in parts[:-1]:
            if not hasattr(m, p):
                m.add_module(p, torch.nn.Module())
            m = getattr(m, p)
        if t.is_floating_point():
            m.register_parameter(parts[-1], torch.nn.Parameter(t.clone(), requires_grad=False))
        else:
            m.register_buffer(parts[-1], t.clone())
    sd = root.state_dict()
    assert set(sd) == set(W)  # order: a module's own parameters, its buffers, then its children
    return sd


TRICKS = """\
Storage layout tricks in roberta-tiny-bin (and the same tensors in roberta-tiny-bin-sharded):
  encoder.layer.0.attention.self.{query,key,value}.weight  share ONE storage of 3*H*H floats: views
      rows [0:H], [H:2H], [2H:3H] of a [3H, H] tensor (storage offsets 0, H*H, 2*H*H elements; strides (H, 1))
  encoder.layer.1.attention.self.{query,key,value}.bias    share ONE storage of 3*H floats (offsets 0, H, 2H)
  encoder.layer.0.attention.output.dense.weight  [H, H]  stored transposed: strides (1, H) (column-major)
  encoder.layer.1.intermediate.dense.weight     [I, H]  stored transposed: strides (1, I)
The values are those of roberta-tiny/model.safetensors; the reader must honour offset and strides."""


def apply_tricks(sd, H):
    sd = OrderedDict(sd) if not hasattr(sd, "_metadata") else sd
    p = "encoder.layer.0.attention.self."
    big = torch.cat([sd[p + n + ".weight"] for n in ("query", "key", "value")], 0).contiguous()
    for i, n in enumerate(("query", "key", "value")):
        sd[p + n + ".weight"] = big[i * H:(i + 1) * H]
    p = "encoder.layer.1.attention.self."
    bigb = torch.cat([sd[p + n + ".bias"] for n in ("query", "key", "value")], 0).contiguous()
    for i, n in enumerate(("query", "key", "value")):
        sd[p + n + ".bias"] = bigb[i * H:(i + 1) * H]
    for n in ("encoder.layer.0.attention.output.dense.weight", "encoder.layer.1.intermediate.dense.weight"):
        sd[n] = sd[n].t().contiguous().t()
    return sd


def check_file(path, W, expect_noncontig=()):
    back = torch.load(path, map_location="cpu")
    assert set(back) == set(W), (path, set(back) ^ set(W))
    for k in W:
        assert back[k].dtype == W[k].dtype and torch.equal(back[k], W[k]), k
    for k in expect_noncontig:
        assert not back[k].is_contiguous(), k
    return back


def zip_names(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, i.compress_type, i.file_size) for i in z.infolist()]


def write_dtypes():
    T = OrderedDict()
    base = torch.tensor([[1.5, -2.25, 3.0], [0.1, 1e-8, -1e30]], dtype=torch.float32)
    T["f32"] = base
    T["f32_scalar"] = torch.tensor(2.6592, dtype=torch.float32)                       # 0-d
    T["f32_transposed"] = base.t()                                                    # [3,2], strides (1,3), shares f32's storage
    T["f32_slice"] = base.view(-1)[2:5]                                               # [3], storage offset 2, shares f32's storage
    T["f16"] = torch.tensor([1.0, -0.5, 65504.0, 6.103515625e-05, 3.140625, 0.0], dtype=torch.float16)
    T["bf16"] = torch.tensor([[1.0, -2.5], [3.0e38, 1.0e-3]], dtype=torch.bfloat16)
    T["i64"] = torch.tensor([0, -1, 2 ** 40 + 3, -(2 ** 62), 7], dtype=torch.int64)
    T["f32_empty"] = torch.zeros(0, 4, dtype=torch.float32)                           # no elements
    path = os.path.join(DATA, "torchbin-dtypes.bin")
    torch.save(T, path)
    back = torch.load(path)
    for k in T:
        assert torch.equal(back[k], T[k]) and back[k].stride() == T[k].stride() and \
            back[k].storage_offset() == T[k].storage_offset(), k
    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}
    with open(os.path.join(DATA, "torchbin-dtypes.txt"), "w") as f:
        f.write("# Contents of torchbin-dtypes.bin, written by tools/reference/torchbin_ref.py with torch.save\n"
                "# (PyTorch %s, zip format) of a dict (an OrderedDict) name -> tensor. Two lines per tensor:\n"
                "#   tensor <name> <dtype F32|F16|BF16|I64> <ndim> <dim_0> ... <dim_ndim-1>\n"
                "#   <values in logical row-major order, space separated: floats %%.9g, integers in decimal>\n"
                "# (a 0-d tensor has ndim 0 and one value; a tensor with 0 elements has an empty value line).\n"
                "# Layouts: f32_transposed is f32.t() (strides (1, 3)); f32_slice is f32.view(-1)[2:5] (storage\n"
                "# offset 2); both share f32's storage. All others are contiguous with their own storage.\n"
                % torch.__version__)
        for k, t in T.items():
            f.write("tensor %s %s %d%s\n" % (k, names[t.dtype], t.dim(), "".join(" %d" % d for d in t.shape)))
            vals = t.reshape(-1).tolist()
            if t.is_floating_point():
                f.write(" ".join(reflib.f9(v) for v in vals) + "\n")
            else:
                f.write(" ".join(str(int(v)) for v in vals) + "\n")
    print("torchbin-dtypes.bin:", zip_names(path))


def main():
    # --- roberta-tiny-bin ---
    src = os.path.join(DATA, "roberta-tiny")
    W = reflib.read_safetensors(os.path.join(src, "model.safetensors"))
    cfg = json.load(open(os.path.join(src, "config.json")))
    H = cfg["hidden_size"]
    # HF's order (embeddings, layers, pooler) rather than the sorted safetensors order
    order = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
             "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"]
    for i in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % i
        for n in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                  "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"):
            order += [p + n + ".weight", p + n + ".bias"]
    order += ["pooler.dense.weight", "pooler.dense.bias"]
    assert sorted(order) == sorted(W)
    W = OrderedDict((k, W[k]) for k in order)
    noncontig = ("encoder.layer.0.attention.output.dense.weight", "encoder.layer.1.intermediate.dense.weight")

    d = os.path.join(DATA, "roberta-tiny-bin")
    os.makedirs(d, exist_ok=True)
    shutil.copyfile(os.path.join(src, "config.json"), os.path.join(d, "config.json"))
    sd = apply_tricks(module_state_dict(W), H)
    assert hasattr(sd, "_metadata")
    torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    check_file(os.path.join(d, "pytorch_model.bin"), W, noncontig)
    print("roberta-tiny-bin:", len(zip_names(os.path.join(d, "pytorch_model.bin"))), "zip entries")

    d = os.path.join(DATA, "roberta-tiny-bin-sharded")
    os.makedirs(d, exist_ok=True)
    shutil.copyfile(os.path.join(src, "config.json"), os.path.join(d, "config.json"))
    names = ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]
    sd = apply_tricks(OrderedDict(W), H)
    shards = [{}, {}]
    for k, v in sd.items():
        shards[0 if (k.startswith("embeddings.") or k.startswith("encoder.layer.0.")) else 1][k] = v
    total = 0
    wmap = OrderedDict()
    for n, s in zip(names, shards):
        torch.save(s, os.path.join(d, n))  # a plain dict, as HF's shard writer saves
        check_file(os.path.join(d, n), {k: W[k] for k in s})
        total += sum(W[k].numel() * W[k].element_size() for k in s)
        for k in s:
            wmap[k] = n
    reflib.write_json(os.path.join(d, "pytorch_model.bin.index.json"),
                      OrderedDict([("metadata", {"total_size": total}), ("weight_map", wmap)]))

    # --- clip-tiny-bin (full CLIPModel) ---
    src = os.path.join(DATA, "clip-tiny-full")
    Wc = reflib.read_safetensors(os.path.join(src, "model.safetensors"))
    d = os.path.join(DATA, "clip-tiny-bin")
    os.makedirs(d, exist_ok=True)
    shutil.copyfile(os.path.join(src, "config.json"), os.path.join(d, "config.json"))
    Wc = OrderedDict((k, Wc[k]) for k in sorted(Wc, key=lambda k: (not k.startswith("text_model"),
                                                                   not k.startswith("vision_model"), k)))
    torch.save(module_state_dict(Wc), os.path.join(d, "pytorch_model.bin"))
    check_file(os.path.join(d, "pytorch_model.bin"), Wc)

    write_dtypes()
    with open(os.path.join(DATA, "roberta-tiny-bin", "LAYOUT.txt"), "w") as f:
        f.write(TRICKS + "\n")
    print("wrote roberta-tiny-bin, roberta-tiny-bin-sharded, clip-tiny-bin, torchbin-dtypes.{bin,txt}")


if __name__ == "__main__":
    main()
