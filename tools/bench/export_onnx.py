#!/usr/bin/python3
"""Writes the ONNX graphs (opset 13) of tools/bench/torch_models.py's modules:
   export_onnx.py roberta HF_FOLDER OUT.onnx SEQ     input "ids" int64 [1, SEQ] -> "hidden" [1, SEQ, H]
   export_onnx.py clip HF_FOLDER OUT.onnx            input "pixels" float [1, 3, S, S] -> "pooled" [1, H]
   export_onnx.py roberta-batch HF_FOLDER OUT.onnx   inputs "ids", "mask" int64 [B, T] (padded batches) -> [B, T, H]
torch.onnx.export in Debian's torch 1.13 needs no onnx Python package. Weights go into the file
(models over 2 GB would need external data; RoBERTa-large is 1.4 GB)."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models  # noqa: E402


def main():
    kind, folder, out = sys.argv[1], sys.argv[2], sys.argv[3]
    torch.set_grad_enabled(False)
    dyn = None
    if kind == "roberta":
        seq = int(sys.argv[4])
        m = torch_models.RobertaEncoder(folder)
        args, names = (torch.zeros(1, seq, dtype=torch.int64),), (["ids"], ["hidden"])
    elif kind == "roberta-batch":  # padded batches: ids, mask [B, T] (any B, T) -> hidden [B, T, H]
        m = torch_models.RobertaEncoder(folder)
        args = (torch.zeros(2, 16, dtype=torch.int64), torch.ones(2, 16, dtype=torch.int64))
        names = (["ids", "mask"], ["hidden"])
        dyn = {"ids": {0: "B", 1: "T"}, "mask": {0: "B", 1: "T"}, "hidden": {0: "B", 1: "T"}}
    else:
        m = torch_models.ClipVision(folder)
        S = m.patch.kernel_size[0] * int(round((m.pos.shape[0] - 1) ** 0.5))
        args, names = (torch.zeros(1, 3, S, S),), (["pixels"], ["pooled"])
    tmp = out + ".tmp"
    torch.onnx.export(m, args, tmp, opset_version=13, input_names=names[0], output_names=names[1],
                      do_constant_folding=True, dynamic_axes=dyn)
    os.replace(tmp, out)
    print("wrote %s (%.1f MB)" % (out, os.path.getsize(out) / 1e6))


if __name__ == "__main__":
    main()
