#!/usr/bin/python3
"""Writes the ONNX graphs (opset 13) of tools/bench/torch_models.py's modules:
   export_onnx.py roberta HF_FOLDER OUT.onnx SEQ     input "ids" int64 [1, SEQ] -> "hidden" [1, SEQ, H]
   export_onnx.py clip HF_FOLDER OUT.onnx            input "pixels" float [1, 3, S, S] -> "pooled" [1, H]
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
    if kind == "roberta":
        seq = int(sys.argv[4])
        m = torch_models.RobertaEncoder(folder)
        args, names = (torch.zeros(1, seq, dtype=torch.int64),), (["ids"], ["hidden"])
    else:
        m = torch_models.ClipVision(folder)
        S = m.patch.kernel_size[0] * int(round((m.pos.shape[0] - 1) ** 0.5))
        args, names = (torch.zeros(1, 3, S, S),), (["pixels"], ["pooled"])
    tmp = out + ".tmp"
    torch.onnx.export(m, args, tmp, opset_version=13, input_names=names[0], output_names=names[1],
                      do_constant_folding=True)
    os.replace(tmp, out)
    print("wrote %s (%.1f MB)" % (out, os.path.getsize(out) / 1e6))


if __name__ == "__main__":
    main()
