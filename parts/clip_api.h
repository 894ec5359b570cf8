/* ---------------------------------------------------------------------------------------------
   CLIP vision tower (CLIPVisionModelWithProjection): image -> embedding, for MM-SPCL's video side.

   Weight file: what build/mmspcl-convert writes from a Hugging Face CLIP checkpoint (vision-only
   or full CLIPModel; only the vision tower is kept). Hugging Face's tensor names:
     vision_model.embeddings.class_embedding                [W]
     vision_model.embeddings.patch_embedding.weight         [W, C, P, P]   (conv, no bias)
     vision_model.embeddings.position_embedding.weight      [1 + (S/P)^2, W]
     vision_model.pre_layrnorm.{weight,bias}                [W]            (sic: "layrnorm")
     vision_model.encoder.layers.L.layer_norm1.{weight,bias}                [W]
     vision_model.encoder.layers.L.self_attn.{q,k,v,out}_proj.weight        [W, W]
     vision_model.encoder.layers.L.self_attn.{q,k,v,out}_proj.bias          [W]
     vision_model.encoder.layers.L.layer_norm2.{weight,bias}                [W]
     vision_model.encoder.layers.L.mlp.fc1.weight [I, W], .bias [I]; mlp.fc2.weight [W, I], .bias [W]
     vision_model.post_layernorm.{weight,bias}              [W]
     visual_projection.weight                               [proj, W]      (no bias; optional:
                                                                            absent = no embeds)
   Matrices (patch embedding, projections, MLP, visual projection) may be f32, f16, bf16, q8_0 or
   q4_0 and are used in place (zero copy). Vectors and the class/position embeddings should be
   f32 (used in place); other float types are widened once at load into memory the model owns.
   Metadata: general.architecture = "clip_vision"; ints clip.image_size, clip.patch_size,
   clip.num_channels, clip.hidden_size, clip.num_hidden_layers, clip.num_attention_heads,
   clip.intermediate_size, clip.projection_dim; float clip.layer_norm_eps (default 1e-5);
   str clip.hidden_act ("quick_gelu" (default) or "gelu"); preprocessing: floats
   clip.image_mean.0/1/2 and clip.image_std.0/1/2 (default OpenAI CLIP's), ints
   clip.resize_shortest_edge and clip.crop_size (default image_size). Every tensor's shape is
   checked against these at load; a mismatch fails naming the tensor.

   The forward (mmspcl_clip_forward), per image of S x S pixels, g = S / P, T = 1 + g*g tokens:
     x[0]     = class_embedding + pos[0]
     x[1+i]   = conv_P(pixels) at patch i (row-major: i = py * g + px) + pos[1+i]
     x        = pre_layrnorm(x)
     per layer:  x += out_proj(attention(layer_norm1(x)))
                 x += fc2(act(fc1(layer_norm2(x))))        act = quick_gelu or gelu
     pooled   = post_layernorm(x[0])            (Hugging Face's pooler_output)
     embeds   = visual_projection(pooled)       (image_embeds; NOT L2-normalised)

   Usage
     mmspcl_weights *w; mmspcl_clip *m; mmspcl_error err;
     mmspcl_weights_open(&w, "clip.mmspcl", &err);
     mmspcl_clip_load(&m, w, 8, &err);               8 = images per forward (max_batch)
     mmspcl_clip_embed_image(m, &img, embed, &err);  embed: mmspcl_clip_get_config(m)->projection_dim
     or: mmspcl_clip_preprocess_image(m, &img, pixels, &err) for each image, then
         mmspcl_clip_forward(m, pixels, n, embeds, pooled, &err)
     mmspcl_clip_free(m); mmspcl_weights_free(w);    (w must outlive m)

   Memory: all activations live in one arena sized at load for max_batch images and the number
   of OpenMP threads then (mmspcl_clip_arena_bytes); a forward of more images runs in chunks of
   max_batch with the same results. The arena is re-sized once if the thread count later grows.
   A model runs one forward at a time (it owns its arena): use one mmspcl_clip per calling thread
   (they can share the weights). Results do not depend on the batch size or the thread count.
   ------------------------------------------------------------------------------------------ */

typedef enum mmspcl_clip_act { MMSPCL_CLIP_QUICK_GELU = 0, MMSPCL_CLIP_GELU = 1 } mmspcl_clip_act;

typedef struct mmspcl_clip_config {
    int image_size;          /* S: input side in pixels (square) */
    int patch_size;          /* P */
    int num_channels;        /* C (3) */
    int hidden_size;         /* W */
    int num_layers;
    int num_heads;
    int intermediate_size;   /* I */
    int projection_dim;      /* 0 when the file has no visual_projection */
    int num_patches;         /* (S / P)^2 */
    int num_tokens;          /* 1 + num_patches */
    float layer_norm_eps;
    mmspcl_clip_act act;
    /* preprocessing (CLIPImageProcessor): resize shortest edge, centre crop, normalise */
    int resize_shortest_edge;
    int crop_size;
    float image_mean[3], image_std[3];
} mmspcl_clip_config;

typedef struct mmspcl_clip mmspcl_clip;   /* opaque; owns its arena, points into the weights */

/* Reads the config, checks every tensor and sizes the arena for max_batch images (>= 1). */
mmspcl_status mmspcl_clip_load(mmspcl_clip **out, const mmspcl_weights *w, int max_batch,
                               mmspcl_error *err);
void mmspcl_clip_free(mmspcl_clip *m);
const mmspcl_clip_config *mmspcl_clip_get_config(const mmspcl_clip *m);
size_t mmspcl_clip_arena_bytes(const mmspcl_clip *m);

/* pixels: batch x C x S x S floats (already normalised, channels first, as Hugging Face's
   pixel_values). embeds: batch x projection_dim, pooled: batch x hidden_size; either may be NULL. */
mmspcl_status mmspcl_clip_forward(mmspcl_clip *m, const float *pixels, int batch, float *embeds,
                                  float *pooled, mmspcl_error *err);
/* The last hidden state (before post_layernorm) of the last chunk of the last forward:
   [n][num_tokens][hidden_size] for images k*max_batch .. batch-1, k = (batch-1) / max_batch
   (all of them when batch <= max_batch). Valid until the next forward; NULL before any. */
const float *mmspcl_clip_last_hidden(const mmspcl_clip *m);

/* CLIP preprocessing with the model's own sizes, mean and std: out gets 3 x S x S floats. */
mmspcl_status mmspcl_clip_preprocess_image(const mmspcl_clip *m, const mmspcl_image *img,
                                           float *out, mmspcl_error *err);
/* Preprocess + forward of one image: embed gets projection_dim floats (not normalised). */
mmspcl_status mmspcl_clip_embed_image(mmspcl_clip *m, const mmspcl_image *img, float *embed,
                                      mmspcl_error *err);
