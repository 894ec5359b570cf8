#!/usr/bin/python3
"""Shared helpers for the reference scripts (imported, not run).

- write_safetensors / read_safetensors: the safetensors format written by hand (no `safetensors`
  package): 8-byte little-endian header length N, N bytes of JSON (padded with spaces to a multiple
  of 8), then the raw little-endian, C-contiguous tensor data.
- f9 / write_rows: the text formats of the expected.txt files (floats printed with %.9g, which
  round-trips every float32 exactly).
- write_records: the records of the fusion and pruning scripts (mult_ref.fmt lines) to a file,
  through PATH.tmp and an atomic rename.
"""
import json
import os
import struct

import torch

ST_DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}
ST_TORCH = {v: k for k, v in ST_DTYPES.items()}


def tensor_bytes(t):
    """Raw little-endian bytes of a tensor in C order (bf16 through an int16 view: numpy has no bf16)."""
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def write_safetensors(path, tensors, metadata=None, dtype=None):
    """tensors: dict name -> tensor, written in sorted name order. dtype: convert float tensors to it."""
    header = {}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name]
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        b = tensor_bytes(t)
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = dict(metadata or {"format": "pt"})
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return off  # bytes of tensor data


def read_safetensors(path):
    """Returns dict name -> tensor (dtype as stored)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        dt = ST_TORCH[e["dtype"]]
        raw = bytearray(data[base + b:base + end])
        if dt == torch.bfloat16:
            t = torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16)
        elif len(raw) == 0:
            t = torch.empty(0, dtype=dt)
        else:
            t = torch.frombuffer(raw, dtype=dt)
        out[name] = t.reshape(e["shape"]).clone()
    return out


def f9(x):
    return "%.9g" % float(x)


def row(values):
    return " ".join(f9(v) for v in values)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")


def write_records(path, lines):
    """lines (strings ending in a newline) to path, its folder created: written whole to path.tmp,
    then renamed over path, so path is never half written"""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".tmp", "w") as f:
        f.writelines(lines)
    os.replace(path + ".tmp", path)
