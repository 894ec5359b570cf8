#!/usr/bin/python3
"""CLIP reference: a small random CLIP vision tower (and text tower) in Hugging Face layout + expected outputs.

Written from the equations of Hugging Face's modeling_clip.py (CLIPVisionModelWithProjection):
  patches = conv2d(pixels, patch_embedding.weight, stride=patch, no bias) -> [B, hidden, g, g]
            -> flatten to [B, g*g, hidden] in row-major patch order (y, then x)
  x       = concat(class_embedding, patches) + position_embedding[0 .. g*g]
  x       = pre_layrnorm(x)
  per layer (pre-LN):
    x = x + out_proj(attn(layer_norm1(x)))     attn: softmax((q * d^-0.5) k^T) v per head, no mask
    x = x + fc2(quick_gelu(fc1(layer_norm2(x))))     quick_gelu(t) = t * sigmoid(1.702 t)
  last_hidden_state = x; pooler_output = post_layernorm(x[:, 0]); image_embeds = pooled W_proj^T
Text tower (clip-tiny-full only): token + position embeddings, the same layers with a causal mask,
final_layer_norm, pooled at argmax(input_ids) (eos_token_id == 2 in the config: HF's legacy rule),
text_embeds = pooled W_text_proj^T.
The forward runs in float64 from the stored weights; a cross-check against F.conv2d and
torch.nn.TransformerEncoderLayer (norm_first=True) runs every time.

Usage:
  tools/reference/clip_ref.py            writes tests/data/clip-tiny/ and tests/data/clip-tiny-full/
  tools/reference/clip_ref.py --large    ViT-B/32 shape (224 px, patch 32, 12 x 768, 12 heads, FFN 3072,
                                         projection 512) into /tmp/mmspcl-ref/clip-vit-b32/ (never committed)
  --out DIR                              write somewhere else
"""
import argparse
import math
import os
import sys
from collections import OrderedDict

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reflib  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

TINY = dict(image_size=64, patch_size=16, num_channels=3, hidden_size=32, num_hidden_layers=2,
            num_attention_heads=4, intermediate_size=64, projection_dim=16, layer_norm_eps=1e-5)
TINY_TEXT = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=64, max_position_embeddings=16, layer_norm_eps=1e-5)
LARGE = dict(image_size=224, patch_size=32, num_channels=3, hidden_size=768, num_hidden_layers=12,
             num_attention_heads=12, intermediate_size=3072, projection_dim=512, layer_norm_eps=1e-5)


def vision_config(c, with_arch=True):
    d = OrderedDict()
    if with_arch:
        d["architectures"] = ["CLIPVisionModelWithProjection"]
    d.update([
        ("attention_dropout", 0.0), ("dropout", 0.0), ("hidden_act", "quick_gelu"),
        ("hidden_size", c["hidden_size"]), ("image_size", c["image_size"]),
        ("initializer_factor", 1.0), ("initializer_range", 0.02),
        ("intermediate_size", c["intermediate_size"]), ("layer_norm_eps", c["layer_norm_eps"]),
        ("model_type", "clip_vision_model"), ("num_attention_heads", c["num_attention_heads"]),
        ("num_channels", c["num_channels"]), ("num_hidden_layers", c["num_hidden_layers"]),
        ("patch_size", c["patch_size"]), ("projection_dim", c["projection_dim"]),
    ])
    if with_arch:
        d["torch_dtype"] = "float32"
        d["transformers_version"] = "4.40.0"
    return d


def full_config(c, t):
    text = OrderedDict([
        ("attention_dropout", 0.0), ("bos_token_id", 0), ("dropout", 0.0), ("eos_token_id", 2),
        ("hidden_act", "quick_gelu"), ("hidden_size", t["hidden_size"]), ("initializer_factor", 1.0),
        ("initializer_range", 0.02), ("intermediate_size", t["intermediate_size"]),
        ("layer_norm_eps", t["layer_norm_eps"]), ("max_position_embeddings", t["max_position_embeddings"]),
        ("model_type", "clip_text_model"), ("num_attention_heads", t["num_attention_heads"]),
        ("num_hidden_layers", t["num_hidden_layers"]), ("pad_token_id", 1),
        ("projection_dim", c["projection_dim"]), ("vocab_size", t["vocab_size"]),
    ])
    return OrderedDict([
        ("architectures", ["CLIPModel"]), ("initializer_factor", 1.0), ("logit_scale_init_value", 2.6592),
        ("model_type", "clip"), ("projection_dim", c["projection_dim"]), ("text_config", text),
        ("torch_dtype", "float32"), ("transformers_version", "4.40.0"),
        ("vision_config", vision_config(c, with_arch=False)),
    ])


class Gen:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def rn(self, *shape, std=1.0):
        return torch.randn(*shape, generator=self.g, dtype=torch.float32) * std


def encoder_weights(W, prefix, n_layers, H, I, r):
    for i in range(n_layers):
        p = "%s.encoder.layers.%d." % (prefix, i)
        for n in ("k_proj", "v_proj", "q_proj", "out_proj"):
            W[p + "self_attn.%s.weight" % n] = r.rn(H, H, std=1.0 / math.sqrt(H))
            W[p + "self_attn.%s.bias" % n] = r.rn(H, std=0.1)
        W[p + "layer_norm1.weight"] = 1.0 + r.rn(H, std=0.1)
        W[p + "layer_norm1.bias"] = r.rn(H, std=0.1)
        W[p + "mlp.fc1.weight"] = r.rn(I, H, std=1.0 / math.sqrt(H))
        W[p + "mlp.fc1.bias"] = r.rn(I, std=0.1)
        W[p + "mlp.fc2.weight"] = r.rn(H, I, std=1.0 / math.sqrt(I))
        W[p + "mlp.fc2.bias"] = r.rn(H, std=0.1)
        W[p + "layer_norm2.weight"] = 1.0 + r.rn(H, std=0.1)
        W[p + "layer_norm2.bias"] = r.rn(H, std=0.1)


def make_vision_weights(c, seed):
    """Random float32 weights under CLIPVisionModelWithProjection's state_dict names."""
    r = Gen(seed)
    H, P, C = c["hidden_size"], c["patch_size"], c["num_channels"]
    T = 1 + (c["image_size"] // P) ** 2
    W = OrderedDict()
    W["vision_model.embeddings.class_embedding"] = r.rn(H)
    W["vision_model.embeddings.patch_embedding.weight"] = r.rn(H, C, P, P, std=1.0 / math.sqrt(C * P * P))
    W["vision_model.embeddings.position_embedding.weight"] = r.rn(T, H, std=0.5)
    W["vision_model.pre_layrnorm.weight"] = 1.0 + r.rn(H, std=0.1)
    W["vision_model.pre_layrnorm.bias"] = r.rn(H, std=0.1)
    encoder_weights(W, "vision_model", c["num_hidden_layers"], H, c["intermediate_size"], r)
    W["vision_model.post_layernorm.weight"] = 1.0 + r.rn(H, std=0.1)
    W["vision_model.post_layernorm.bias"] = r.rn(H, std=0.1)
    W["visual_projection.weight"] = r.rn(c["projection_dim"], H, std=1.0 / math.sqrt(H))
    return W


def make_text_weights(c, t, seed):
    r = Gen(seed)
    H = t["hidden_size"]
    W = OrderedDict()
    W["logit_scale"] = torch.tensor(2.6592, dtype=torch.float32)  # a 0-d tensor, shape []
    W["text_model.embeddings.token_embedding.weight"] = r.rn(t["vocab_size"], H)
    W["text_model.embeddings.position_embedding.weight"] = r.rn(t["max_position_embeddings"], H, std=0.5)
    encoder_weights(W, "text_model", t["num_hidden_layers"], H, t["intermediate_size"], r)
    W["text_model.final_layer_norm.weight"] = 1.0 + r.rn(H, std=0.1)
    W["text_model.final_layer_norm.bias"] = r.rn(H, std=0.1)
    W["text_projection.weight"] = r.rn(c["projection_dim"], H, std=1.0 / math.sqrt(H))
    return W


def quick_gelu(t):
    return t * torch.sigmoid(1.702 * t)


def encoder(w, x, prefix, n_layers, nh, eps, causal=False):
    B, T, H = x.shape
    d = H // nh

    def lin(t, name):
        return t @ w[name + ".weight"].t() + w[name + ".bias"]

    def heads(t):
        return t.view(B, T, nh, d).transpose(1, 2)

    mask = None
    if causal:
        mask = torch.triu(torch.full((T, T), torch.finfo(torch.float32).min, dtype=x.dtype), diagonal=1)
    for i in range(n_layers):
        p = "%s.encoder.layers.%d." % (prefix, i)
        h = F.layer_norm(x, (H,), w[p + "layer_norm1.weight"], w[p + "layer_norm1.bias"], eps)
        q = heads(lin(h, p + "self_attn.q_proj")) * d ** -0.5
        k = heads(lin(h, p + "self_attn.k_proj"))
        v = heads(lin(h, p + "self_attn.v_proj"))
        s = q @ k.transpose(-1, -2)
        if mask is not None:
            s = s + mask
        ctx = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, H)
        x = x + lin(ctx, p + "self_attn.out_proj")
        h = F.layer_norm(x, (H,), w[p + "layer_norm2.weight"], w[p + "layer_norm2.bias"], eps)
        x = x + lin(quick_gelu(lin(h, p + "mlp.fc1")), p + "mlp.fc2")
    return x


def vision_forward(W, pixels, c, dt=torch.float64):
    """Returns (last_hidden_state [B, T, H], pooler_output [B, H], image_embeds [B, proj])."""
    w = {k: v.to(dt) for k, v in W.items()}
    B, C, S, _ = pixels.shape
    P, H = c["patch_size"], c["hidden_size"]
    g = S // P
    eps = c["layer_norm_eps"]
    # patch embedding as a matmul over flattened (c, ky, kx) patches == the stride-P conv
    patches = pixels.to(dt).reshape(B, C, g, P, g, P).permute(0, 2, 4, 1, 3, 5).reshape(B, g * g, C * P * P)
    x = patches @ w["vision_model.embeddings.patch_embedding.weight"].reshape(H, C * P * P).t()
    cls = w["vision_model.embeddings.class_embedding"].expand(B, 1, H)
    x = torch.cat([cls, x], dim=1) + w["vision_model.embeddings.position_embedding.weight"]
    x = F.layer_norm(x, (H,), w["vision_model.pre_layrnorm.weight"], w["vision_model.pre_layrnorm.bias"], eps)
    x = encoder(w, x, "vision_model", c["num_hidden_layers"], c["num_attention_heads"], eps)
    pooled = F.layer_norm(x[:, 0], (H,), w["vision_model.post_layernorm.weight"],
                          w["vision_model.post_layernorm.bias"], eps)
    return x, pooled, pooled @ w["visual_projection.weight"].t()


def text_forward(W, ids, t, dt=torch.float64):
    w = {k: v.to(dt) for k, v in W.items()}
    B, T = ids.shape
    H, eps = t["hidden_size"], t["layer_norm_eps"]
    x = w["text_model.embeddings.token_embedding.weight"][ids] + \
        w["text_model.embeddings.position_embedding.weight"][:T]
    x = encoder(w, x, "text_model", t["num_hidden_layers"], t["num_attention_heads"], eps, causal=True)
    x = F.layer_norm(x, (H,), w["text_model.final_layer_norm.weight"], w["text_model.final_layer_norm.bias"], eps)
    pooled = x[torch.arange(B), ids.argmax(dim=-1)]
    return x, pooled, pooled @ w["text_projection.weight"].t()


def nn_encoder(w, x, prefix, n_layers, nh, I, eps, causal=False):
    """The encoder layers through torch.nn.TransformerEncoderLayer (pre-LN), an implementation not ours."""
    H, T = x.shape[-1], x.shape[1]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1) if causal else None
    for i in range(n_layers):
        p = "%s.encoder.layers.%d." % (prefix, i)
        L = torch.nn.TransformerEncoderLayer(H, nh, I, dropout=0.0, activation=quick_gelu, layer_norm_eps=eps,
                                             batch_first=True, norm_first=True).double()
        with torch.no_grad():
            L.self_attn.in_proj_weight.copy_(torch.cat([w[p + "self_attn.%s_proj.weight" % n] for n in "qkv"]))
            L.self_attn.in_proj_bias.copy_(torch.cat([w[p + "self_attn.%s_proj.bias" % n] for n in "qkv"]))
            L.self_attn.out_proj.weight.copy_(w[p + "self_attn.out_proj.weight"])
            L.self_attn.out_proj.bias.copy_(w[p + "self_attn.out_proj.bias"])
            L.linear1.weight.copy_(w[p + "mlp.fc1.weight"])
            L.linear1.bias.copy_(w[p + "mlp.fc1.bias"])
            L.linear2.weight.copy_(w[p + "mlp.fc2.weight"])
            L.linear2.bias.copy_(w[p + "mlp.fc2.bias"])
            L.norm1.weight.copy_(w[p + "layer_norm1.weight"])
            L.norm1.bias.copy_(w[p + "layer_norm1.bias"])
            L.norm2.weight.copy_(w[p + "layer_norm2.weight"])
            L.norm2.bias.copy_(w[p + "layer_norm2.bias"])
        L.train()  # dropout 0; avoids the fast path
        with torch.no_grad():
            x = L(x, src_mask=mask)
    return x


def crosscheck(W, pixels, c, hidden):
    """The vision tower again through F.conv2d and torch.nn.TransformerEncoderLayer."""
    w = {k: v.double() for k, v in W.items()}
    H, eps = c["hidden_size"], c["layer_norm_eps"]
    B = pixels.shape[0]
    x = F.conv2d(pixels.double(), w["vision_model.embeddings.patch_embedding.weight"], stride=c["patch_size"])
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([w["vision_model.embeddings.class_embedding"].expand(B, 1, H), x], 1)
    x = x + w["vision_model.embeddings.position_embedding.weight"]
    x = F.layer_norm(x, (H,), w["vision_model.pre_layrnorm.weight"], w["vision_model.pre_layrnorm.bias"], eps)
    x = nn_encoder(w, x, "vision_model", c["num_hidden_layers"], c["num_attention_heads"], c["intermediate_size"], eps)
    return float((x - hidden).abs().max())


def crosscheck_text(W, ids, t, pooled):
    w = {k: v.double() for k, v in W.items()}
    H, eps = t["hidden_size"], t["layer_norm_eps"]
    x = F.embedding(ids, w["text_model.embeddings.token_embedding.weight"]) + \
        w["text_model.embeddings.position_embedding.weight"][:ids.shape[1]]
    x = nn_encoder(w, x, "text_model", t["num_hidden_layers"], t["num_attention_heads"], t["intermediate_size"],
                   eps, causal=True)
    x = F.layer_norm(x, (H,), w["text_model.final_layer_norm.weight"], w["text_model.final_layer_norm.bias"], eps)
    eot = [int((row == row.max()).nonzero()[0]) for row in ids]
    return float((x[torch.arange(ids.shape[0]), eot] - pooled).abs().max())


HEADER = """\
# Expected CLIP vision tower outputs (CLIPVisionModelWithProjection), written by
# tools/reference/clip_ref.py (PyTorch %s, float64 arithmetic on the float32 weights, %%.9g). Lines:
#   model clip_vision <image_size> <patch_size> <channels> <hidden> <layers> <heads> <intermediate> <projection_dim> <eps>
#   weights F32
#   batch <B>
# then for each image b = 0..B-1, in order:
#   image <b>
#   pixels <C> <S> <S>        then C*S lines of S floats: pixel_values[b][c][y][0..S-1], c outer, y inner
#                             (already normalised model input, NCHW; every value is a multiple of 1/64)
#   hidden <T> <hidden>       then T = 1 + (S/patch)^2 lines: last_hidden_state (before post_layernorm);
#                             token 0 is the class token, token 1+i is patch (i / g, i %% g), g = S/patch
#   pooled <hidden>           then 1 line: pooler_output = post_layernorm(last_hidden_state[0])
#   image_embeds <proj>       then 1 line: visual_projection(pooled) (not normalised)
# Comment lines start with '#' and only appear at the top.
"""

TEXT_HEADER = """\
# Expected CLIP text tower outputs of tests/data/clip-tiny-full (the image side is in
# tests/data/clip-tiny/expected.txt: the vision weights are the same). tools/reference/clip_ref.py,
# PyTorch %s, float64 arithmetic, %%.9g. Lines:
#   model clip_text <vocab> <hidden> <layers> <heads> <intermediate> <max_positions> <projection_dim> <eps>
#   logit_scale <value>
#   batch <B>
# then for each sequence b:
#   input <n> <ids...>        causal attention, no padding mask; pooled at argmax(ids) (the EOT id is the largest)
#   pooled <hidden>           then 1 line: final_layer_norm(x)[argmax(ids)]
#   text_embeds <proj>        then 1 line: text_projection(pooled) (not normalised)
"""


def make_pixels(seed, B, C, S):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C, S, S, generator=g) * 0.9
    # a smooth gradient on top of the noise, so that patches differ systematically
    ramp = torch.linspace(-1.0, 1.0, S)
    x = x + ramp.view(1, 1, 1, S) * torch.tensor([0.5, -0.3, 0.2]).view(1, 3, 1, 1)[:, :C]
    return (x * 64).round().clamp(-160, 160) / 64  # exact binary fractions, short decimals


def write_expected(path, W, pixels, c):
    hidden, pooled, embeds = vision_forward(W, pixels, c)
    B, C, S, _ = pixels.shape
    with open(path, "w") as f:
        f.write(HEADER % torch.__version__)
        f.write("model clip_vision %d %d %d %d %d %d %d %d %s\n" % (
            c["image_size"], c["patch_size"], c["num_channels"], c["hidden_size"], c["num_hidden_layers"],
            c["num_attention_heads"], c["intermediate_size"], c["projection_dim"], reflib.f9(c["layer_norm_eps"])))
        f.write("weights F32\n")
        f.write("batch %d\n" % B)
        for b in range(B):
            f.write("image %d\n" % b)
            f.write("pixels %d %d %d\n" % (C, S, S))
            for ch in range(C):
                for y in range(S):
                    f.write(reflib.row(pixels[b, ch, y].tolist()) + "\n")
            f.write("hidden %d %d\n" % (hidden.shape[1], hidden.shape[2]))
            for t in range(hidden.shape[1]):
                f.write(reflib.row(hidden[b, t].tolist()) + "\n")
            f.write("pooled %d\n%s\n" % (c["hidden_size"], reflib.row(pooled[b].tolist())))
            f.write("image_embeds %d\n%s\n" % (c["projection_dim"], reflib.row(embeds[b].tolist())))
    return hidden, pooled, embeds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", action="store_true", help="ViT-B/32 shape, written to /tmp (not committed)")
    ap.add_argument("--out", help="output folder")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    if args.large:
        c = LARGE
        out = args.out or "/tmp/mmspcl-ref/clip-vit-b32"
        os.makedirs(out, exist_ok=True)
        W = make_vision_weights(c, seed=3232)
        pixels = make_pixels(3233, 2, c["num_channels"], c["image_size"])
        reflib.write_json(os.path.join(out, "config.json"), vision_config(c))
        reflib.write_safetensors(os.path.join(out, "model.safetensors"), W)
        hidden, _, _ = write_expected(os.path.join(out, "expected.txt"), W, pixels, c)
        print("large: cross-check vs torch.nn max |diff| = %.3g" % crosscheck(W, pixels, c, hidden))
        print("wrote", out)
        return

    c, t = TINY, TINY_TEXT
    base = args.out or os.path.join(ROOT, "tests", "data")
    W = make_vision_weights(c, seed=4242)
    pixels = make_pixels(4243, 2, c["num_channels"], c["image_size"])

    d = os.path.join(base, "clip-tiny")
    os.makedirs(d, exist_ok=True)
    reflib.write_json(os.path.join(d, "config.json"), vision_config(c))
    reflib.write_safetensors(os.path.join(d, "model.safetensors"), W)
    hidden, pooled, embeds = write_expected(os.path.join(d, "expected.txt"), W, pixels, c)
    e1 = crosscheck(W, pixels, c, hidden)
    h1, p1, e1b = vision_forward(W, pixels[1:2], c)  # batch of one gives the same numbers
    e2 = max(float((h1[0] - hidden[1]).abs().max()), float((e1b[0] - embeds[1]).abs().max()))
    _, _, emb32 = vision_forward(W, pixels, c, dt=torch.float32)
    e3 = float((emb32 - embeds).abs().max())
    print("clip-tiny: vs F.conv2d + torch.nn.TransformerEncoderLayer %.3g, alone vs batch %.3g, f32 vs f64 %.3g"
          % (e1, e2, e3))
    assert e1 < 1e-10 and e2 < 1e-10 and e3 < 1e-4
    back = reflib.read_safetensors(os.path.join(d, "model.safetensors"))
    assert all(torch.equal(back[k], W[k]) for k in W) and len(back) == len(W)

    # full CLIPModel: text tower + the same vision tower; HF's older checkpoints (such as
    # openai/clip-vit-base-patch32) also hold the int64 position_ids buffers
    d = os.path.join(base, "clip-tiny-full")
    os.makedirs(d, exist_ok=True)
    Wf = OrderedDict()
    Wf.update(make_text_weights(c, t, seed=4244))
    Wf["text_model.embeddings.position_ids"] = torch.arange(t["max_position_embeddings"]).view(1, -1)
    Wf.update(W)
    Wf["vision_model.embeddings.position_ids"] = torch.arange(1 + (c["image_size"] // c["patch_size"]) ** 2).view(1, -1)
    reflib.write_json(os.path.join(d, "config.json"), full_config(c, t))
    reflib.write_safetensors(os.path.join(d, "model.safetensors"), Wf)
    g = torch.Generator().manual_seed(4245)
    ids = torch.full((2, 8), 1, dtype=torch.int64)
    for b, n in enumerate((8, 5)):
        ids[b, 0] = 0
        ids[b, 1:n - 1] = torch.randint(3, t["vocab_size"] - 1, (n - 2,), generator=g)
        ids[b, n - 1] = t["vocab_size"] - 1  # EOT: the largest id, as 49407 is in real CLIP
    _, tpooled, tembeds = text_forward(Wf, ids, t)
    e4 = crosscheck_text(Wf, ids, t, tpooled)
    print("clip-tiny-full text tower: vs torch.nn.TransformerEncoderLayer (causal) %.3g" % e4)
    assert e4 < 1e-10
    with open(os.path.join(d, "expected.txt"), "w") as f:
        f.write(TEXT_HEADER % torch.__version__)
        f.write("model clip_text %d %d %d %d %d %d %d %s\n" % (
            t["vocab_size"], t["hidden_size"], t["num_hidden_layers"], t["num_attention_heads"],
            t["intermediate_size"], t["max_position_embeddings"], c["projection_dim"], reflib.f9(t["layer_norm_eps"])))
        f.write("logit_scale %s\n" % reflib.f9(Wf["logit_scale"]))
        f.write("batch %d\n" % ids.shape[0])
        for b in range(ids.shape[0]):
            f.write("input %d %s\n" % (ids.shape[1], " ".join(str(v) for v in ids[b].tolist())))
            f.write("pooled %d\n%s\n" % (t["hidden_size"], reflib.row(tpooled[b].tolist())))
            f.write("text_embeds %d\n%s\n" % (c["projection_dim"], reflib.row(tembeds[b].tolist())))
    print("wrote clip-tiny, clip-tiny-full under", base)


if __name__ == "__main__":
    main()
