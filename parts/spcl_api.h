/* ---------------------------------------------------------------------------------------------
   SPCL prompt and text embedding z_t

   The prompt for turn t of a dialogue, as token ids, exactly as the original SPCL code builds it
   (caskcsg/SPCL data_process.py, MELD setting, max_len 256):

     text_j  = utterance j with U+2019 (’) replaced by ' and every " removed
     u_j     = bpe(speaker_j + ":" + text_j) + [</s>]          each turn tokenised on its own
     l       = the first l in 0..t-1 with len(u_l..u_t) + 8 + len(u_t) <= max_len
               (t-1 when none fits, 0 when t == 0), then l = max(l, t - 8)
     ids     = [<s>] + u_l + ... + u_t                         context: up to 8 past turns and t
             + bpe("For utterance:") + u_t                     the current turn again
             + bpe(speaker_t + " feels <mask>") + [</s>]
     if longer than max_len, only the LAST max_len ids are kept (SPCL's pad_to_len).

   z_t is the encoder's last hidden state at the first <mask> (position 0 if truncation removed
   it, as SPCL's argmax does).
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_turn {
    const char *speaker;   /* UTF-8, e.g. "Rachel" */
    const char *text;      /* UTF-8 utterance */
} mmspcl_turn;

#define MMSPCL_SPCL_MAX_LEN 256
#define MMSPCL_SPCL_MAX_CONTEXT 8

/* Prompts for every turn of a dialogue: ids is [n_turns][max_len], lengths[t] and mask_pos[t]
   are filled for each turn. max_len >= 16. */
mmspcl_status mmspcl_spcl_prompts(const mmspcl_bpe *tok, const mmspcl_turn *turns, int n_turns,
                                  int max_len, int32_t *ids, int *lengths, int *mask_pos,
                                  mmspcl_error *err);
/* z_t for every turn of a dialogue: z is [n_turns][hidden_size]. Runs the encoder in batches of
   at most the max_batch it was loaded with (load it with max_seq >= max_len). */
mmspcl_status mmspcl_spcl_embed_dialogue(mmspcl_roberta *m, const mmspcl_bpe *tok,
                                         const mmspcl_turn *turns, int n_turns, int max_len,
                                         float *z, mmspcl_error *err);
