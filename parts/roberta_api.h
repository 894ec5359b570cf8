/* ---------------------------------------------------------------------------------------------
   RoBERTa encoder (Hugging Face RobertaModel, post-LN)

     mmspcl_roberta *m;
     mmspcl_roberta_load(&m, weights, max_batch, max_seq, &err);   one arena, sized here
     mmspcl_roberta_forward(m, ids, lengths, batch, seq, hidden, &err);
     mmspcl_roberta_free(m);

   ids is [batch][seq] (row b holds lengths[b] real tokens, the rest is ignored); hidden is
   [batch][seq][hidden_size], rows past lengths[b] are set to 0. The batch is packed: padding
   costs nothing. Position ids follow Hugging Face: pad_id + 1, pad_id + 2, ... over tokens that
   are not pad_id (a pad id inside a sequence keeps position pad_id), token type 0.
   Needs the tensors embeddings.* and encoder.layer.N.* (see docs/CONVERT.md), any weight dtype.
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_roberta_config {
    int vocab_size, hidden_size, num_layers, num_heads, intermediate_size;
    int max_positions, type_vocab_size, pad_id;
    float layer_norm_eps;
    int gelu_tanh;        /* hidden_act "gelu_new"/"gelu_pytorch_tanh": not supported, always 0 */
} mmspcl_roberta_config;

typedef struct mmspcl_roberta mmspcl_roberta;

mmspcl_status mmspcl_roberta_load(mmspcl_roberta **out, const mmspcl_weights *w, int max_batch,
                                  int max_seq, mmspcl_error *err);
mmspcl_status mmspcl_roberta_forward(mmspcl_roberta *m, const int32_t *ids, const int *lengths,
                                     int batch, int seq, float *hidden, mmspcl_error *err);
const mmspcl_roberta_config *mmspcl_roberta_get_config(const mmspcl_roberta *m);
/* Bytes of the activation arena (fixed at load from max_batch * max_seq tokens). */
size_t mmspcl_roberta_arena_bytes(const mmspcl_roberta *m);
void mmspcl_roberta_free(mmspcl_roberta *m);
