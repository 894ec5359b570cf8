#!/usr/bin/python3
"""PyTorch modules with Hugging Face's equations and tensor names, for timing and ONNX export.

RobertaEncoder: RobertaModel's last_hidden_state (post-LN, erf GELU, learned positions starting at
pad_id + 1; batch without padding). ClipVision: CLIPVisionModel's pooler_output (the class token
after post_layernorm; conv patch embedding, pre-LN, quick GELU). Weights come from a Hugging Face
folder (config.json + model.safetensors) via tools/reference/reflib.py. Linear layers are
torch.nn.Linear, so torch.quantization.quantize_dynamic can swap them for int8 ones.
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import reflib  # noqa: E402


class Block(nn.Module):
    def __init__(self, H, I, nh, eps, post_ln, act):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(H, H) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(H, I), nn.Linear(I, H)
        self.ln1, self.ln2 = nn.LayerNorm(H, eps=eps), nn.LayerNorm(H, eps=eps)
        self.nh, self.post_ln, self.act = nh, post_ln, act

    def attention(self, x, bias=None):  # bias [B, 1, 1, T]: 0 for keys, a large negative for padding
        B, T, H = x.shape
        d = H // self.nh
        q = self.q(x).view(B, T, self.nh, d).transpose(1, 2)
        k = self.k(x).view(B, T, self.nh, d).transpose(1, 2)
        v = self.v(x).view(B, T, self.nh, d).transpose(1, 2)
        s = q @ k.transpose(-1, -2) / math.sqrt(d)
        p = torch.softmax(s if bias is None else s + bias, dim=-1)
        return self.o((p @ v).transpose(1, 2).reshape(B, T, H))

    def mlp(self, x):
        h = self.fc1(x)
        h = F.gelu(h) if self.act == "gelu" else h * torch.sigmoid(1.702 * h)
        return self.fc2(h)

    def forward(self, x, bias=None):
        if self.post_ln:  # RoBERTa
            x = self.ln1(x + self.attention(x, bias))
            return self.ln2(x + self.mlp(x))
        x = x + self.attention(self.ln1(x))  # CLIP
        return x + self.mlp(self.ln2(x))


def _load_block(blk, W, names):
    for attr, name in names.items():
        mod = getattr(blk, attr)
        mod.weight.data.copy_(W[name + ".weight"].float())
        mod.bias.data.copy_(W[name + ".bias"].float())


class RobertaEncoder(nn.Module):
    def __init__(self, folder):
        super().__init__()
        c = json.load(open(os.path.join(folder, "config.json")))
        W = reflib.read_safetensors(os.path.join(folder, "model.safetensors"))
        W = {k[len("roberta."):] if k.startswith("roberta.") else k: v for k, v in W.items()}
        H, I, eps = c["hidden_size"], c["intermediate_size"], c["layer_norm_eps"]
        self.pad = c["pad_token_id"]
        self.word = nn.Parameter(W["embeddings.word_embeddings.weight"].float(), requires_grad=False)
        self.pos = nn.Parameter(W["embeddings.position_embeddings.weight"].float(), requires_grad=False)
        self.typ = nn.Parameter(W["embeddings.token_type_embeddings.weight"][0].float(), requires_grad=False)
        self.ln = nn.LayerNorm(H, eps=eps)
        self.ln.weight.data.copy_(W["embeddings.LayerNorm.weight"].float())
        self.ln.bias.data.copy_(W["embeddings.LayerNorm.bias"].float())
        self.layers = nn.ModuleList()
        for i in range(c["num_hidden_layers"]):
            b = Block(H, I, c["num_attention_heads"], eps, True, "gelu")
            p = "encoder.layer.%d." % i
            _load_block(b, W, {"q": p + "attention.self.query", "k": p + "attention.self.key",
                               "v": p + "attention.self.value", "o": p + "attention.output.dense",
                               "ln1": p + "attention.output.LayerNorm", "fc1": p + "intermediate.dense",
                               "fc2": p + "output.dense", "ln2": p + "output.LayerNorm"})
            self.layers.append(b)
        self.eval()

    def forward(self, ids, mask=None):  # ids [B, T] int64; mask [B, T] int64 (1 token, 0 padding) or None
        if mask is None:
            T = ids.shape[1]
            pos = torch.arange(T, dtype=torch.int64) + (self.pad + 1)
            bias = None
        else:  # Hugging Face's create_position_ids_from_input_ids and extended attention mask
            pos = torch.cumsum(mask, dim=1) * mask + self.pad
            bias = ((1 - mask).to(torch.float32) * -1e9)[:, None, None, :]
        x = self.ln(F.embedding(ids, self.word) + F.embedding(pos, self.pos) + self.typ)
        for b in self.layers:
            x = b(x, bias)
        return x


class ClipVision(nn.Module):
    def __init__(self, folder):
        super().__init__()
        c = json.load(open(os.path.join(folder, "config.json")))
        c = c.get("vision_config", c)
        W = reflib.read_safetensors(os.path.join(folder, "model.safetensors"))
        H, I, eps, P = c["hidden_size"], c["intermediate_size"], c["layer_norm_eps"], c["patch_size"]
        v = "vision_model."
        self.patch = nn.Conv2d(c.get("num_channels", 3), H, P, stride=P, bias=False)
        self.patch.weight.data.copy_(W[v + "embeddings.patch_embedding.weight"].float())
        self.cls = nn.Parameter(W[v + "embeddings.class_embedding"].float(), requires_grad=False)
        self.pos = nn.Parameter(W[v + "embeddings.position_embedding.weight"].float(), requires_grad=False)
        self.pre, self.post = nn.LayerNorm(H, eps=eps), nn.LayerNorm(H, eps=eps)
        for ln, name in ((self.pre, "pre_layrnorm"), (self.post, "post_layernorm")):
            ln.weight.data.copy_(W[v + name + ".weight"].float())
            ln.bias.data.copy_(W[v + name + ".bias"].float())
        self.layers = nn.ModuleList()
        for i in range(c["num_hidden_layers"]):
            b = Block(H, I, c["num_attention_heads"], eps, False, c.get("hidden_act", "quick_gelu"))
            p = v + "encoder.layers.%d." % i
            _load_block(b, W, {"q": p + "self_attn.q_proj", "k": p + "self_attn.k_proj", "v": p + "self_attn.v_proj",
                               "o": p + "self_attn.out_proj", "ln1": p + "layer_norm1", "fc1": p + "mlp.fc1",
                               "fc2": p + "mlp.fc2", "ln2": p + "layer_norm2"})
            self.layers.append(b)
        self.eval()

    def forward(self, pixels):  # [B, 3, S, S] -> pooled [B, H]
        x = self.patch(pixels).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], 1, -1), x], dim=1) + self.pos
        x = self.pre(x)
        for b in self.layers:
            x = b(x)
        return self.post(x[:, 0])
