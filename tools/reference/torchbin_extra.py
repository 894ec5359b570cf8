#!/usr/bin/python3
"""Write small torch.save checkpoints for tests/test_torchbin.c (the PyTorch .bin reader of the
converter, tools/convert/torchbin.c) into tests/data/torchbin/.

For each NAME.bin there is a NAME.txt with one line per tensor the reader must return, in order:
    name dtype ndim dim0 dim1 ... nbytes hex
where hex is the tensor's contiguous row-major little-endian bytes ("-" when empty) and dtype is
one of f32 f16 bf16 f64 i64 i32 i16 i8 u8 bool. Lines starting with '#' are comments.
legacy.bin (torch < 1.6 format) has no .txt: the reader must refuse it.

Needs Debian's PyTorch (apt install python3-torch); run from the repository root:
    /usr/bin/python3 tools/reference/torchbin_extra.py
"""
import collections
import os

import torch

OUT = os.path.join("tests", "data", "torchbin")
DT = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16", torch.float64: "f64",
      torch.int64: "i64", torch.int32: "i32", torch.int16: "i16", torch.int8: "i8",
      torch.uint8: "u8", torch.bool: "bool"}


def tensor_bytes(t):
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def flatten(obj, prefix=""):
    """The tensors the reader returns: dicts flattened with '.', other values skipped."""
    out = []
    for k, v in obj.items():
        name = prefix + ("." if prefix else "") + str(k)
        if isinstance(v, torch.Tensor):
            out.append((name, v))
        elif isinstance(v, dict):
            out.extend(flatten(v, name))
    return out


def save(name, obj, **kw):
    path = os.path.join(OUT, name + ".bin")
    torch.save(obj, path, **kw)
    with open(os.path.join(OUT, name + ".txt"), "w") as f:
        f.write("# written by tools/reference/torchbin_extra.py with torch %s\n" % torch.__version__)
        for n, t in flatten(obj):
            b = tensor_bytes(t)
            f.write("%s %s %d %s %d %s\n" % (n, DT[t.dtype], t.dim(),
                                              " ".join(str(s) for s in t.shape), len(b),
                                              b.hex() if b else "-"))
    print(path, os.path.getsize(path), "bytes")


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(1234)

    def rnd(*shape):
        return torch.randn(*shape, generator=g)

    # one tensor per dtype, a scalar, an empty tensor, a parameter
    d = collections.OrderedDict()
    d["f32"] = rnd(2, 3)
    d["f16"] = rnd(3, 2).half()
    d["bf16"] = rnd(4).bfloat16()
    d["f64"] = rnd(2, 2).double()
    d["i64"] = torch.tensor([-(2 ** 62), -1, 0, 1, 2 ** 62], dtype=torch.int64)
    d["i32"] = torch.tensor([[-2 ** 31, 7], [2 ** 31 - 1, -7]], dtype=torch.int32)
    d["i16"] = torch.tensor([-32768, 12345, 32767], dtype=torch.int16)
    d["i8"] = torch.tensor([-128, -1, 0, 127], dtype=torch.int8)
    d["u8"] = torch.tensor([0, 1, 200, 255], dtype=torch.uint8)
    d["bool"] = torch.tensor([True, False, True], dtype=torch.bool)
    d["scalar"] = torch.tensor(3.5)
    d["empty"] = torch.zeros(0, 3)
    d["cube"] = rnd(2, 3, 4)
    d["param"] = torch.nn.Parameter(rnd(3))
    save("dtypes", d)

    # views: transposes, offsets, slices, expanded (stride 0) and shared storages
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    tied = rnd(2, 5)
    v = collections.OrderedDict()
    v["base"] = base
    v["t"] = base.t()
    v["slice"] = base[1:3, 2:5]
    v["row"] = base[2]
    v["col"] = base[:, 1]
    v["step"] = base[::2, 1::3]
    v["expand"] = torch.arange(5).expand(3, 5)
    v["position_ids"] = torch.arange(7).expand((1, -1))
    v["tied_a"] = tied
    v["tied_b"] = tied
    v["perm"] = rnd(2, 3, 4).permute(2, 0, 1)
    v["half_t"] = rnd(3, 4).half().t()
    v["bf16_step"] = rnd(5, 5).bfloat16()[::2, 1::2]
    v["narrow_last"] = base.reshape(-1)[20:]
    save("views", v)
    save("views-proto4", v, pickle_protocol=4)

    # an nn.Module state dict (OrderedDict with _metadata set by BUILD)
    torch.manual_seed(5)
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4),
                            torch.nn.Embedding(6, 4, padding_idx=1))
    m[0].weight.data = m[0].weight.data.t().contiguous().t()  # a transposed parameter
    m.register_buffer("ids", torch.arange(6).expand((1, -1)))
    save("module", m.state_dict())

    # a training checkpoint: nested dicts, non-tensor values, integer keys
    save("nested", {"epoch": 3, "model": m.state_dict(), "name": "tiny", "lr": 0.5,
                    "opt": {"state": {0: {"exp_avg": rnd(3), "step": torch.tensor(10)}},
                            "param_groups": [{"lr": 0.1, "params": [0]}]},
                    "list": [rnd(2)], "none": None})

    # the legacy (torch < 1.6) format, which the reader refuses
    path = os.path.join(OUT, "legacy.bin")
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
