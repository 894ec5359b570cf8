/* ---------------------------------------------------------------------------------------------
   Byte-level BPE tokenizer (RoBERTa / GPT-2), identical to Hugging Face's tokenizers library
   (`RobertaTokenizerFast`, tokenizer.json with the ByteLevel pre-tokenizer, add_prefix_space false).

     mmspcl_bpe *tok;
     mmspcl_bpe_from_weights(&tok, w, &err);             keys tokenizer.vocab, tokenizer.merges
     int32_t ids[256];
     int n = mmspcl_bpe_encode(tok, "Hello world!", 12, ids, 256);   31414 232 328
     if (n > 256) ... call again with n slots (n is always the full count)
     char text[1024];
     size_t len = mmspcl_bpe_decode(tok, ids, n, text, sizeof text);  "Hello world!"
     mmspcl_bpe_free(tok);

   What encode does, in order (the same steps as Hugging Face's tokenizer(text, add_special_tokens=False)):
   1. Special tokens <s> </s> <pad> <unk> <mask> (those present in the vocabulary) are found in
      the text and become their ids; the text between them is encoded on its own. <mask> has
      lstrip: the whitespace right before it is absorbed (" <mask>" -> 50264 alone), as in
      RoBERTa's tokenizer.json; the others strip nothing. Flag MMSPCL_BPE_NO_SPECIAL_SPLIT
      treats them as plain text instead (Hugging Face's split_special_tokens=True).
   2. Pre-tokenisation with GPT-2's pattern, implemented by hand with leftmost-first semantics:
        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
      Contractions are case-sensitive (as in GPT-2 and Hugging Face). \p{L} and \p{N} come from a
      generated range table (tools/reference/gen_bpe_unicode.mjs; Unicode 17). \s is the set that
      Hugging Face's regex engine (Oniguruma, via the onig crate) matches: U+0009..U+000D, U+0085,
      and the categories Zs, Zl, Zp -- i.e. the Unicode White_Space property, which is also what
      Rust's char::is_whitespace (used for lstrip) means. Python's re would add U+001C..U+001F,
      JavaScript's \s adds U+FEFF and lacks U+0085; neither is used.
   3. Each piece is mapped through GPT-2's byte-to-unicode table and merged by rank with the same
      priority-queue algorithm as Hugging Face (lowest rank first, leftmost on ties).
   Invalid UTF-8: any byte that does not start a well-formed UTF-8 sequence (Unicode Table 3-7:
   no overlongs, no surrogates, nothing above U+10FFFF, no truncated sequences) is taken as a
   one-byte character that is neither letter, number nor space (so it groups with punctuation)
   and still goes through the byte table, so every byte string encodes and decodes back to the
   same bytes. Hugging Face cannot receive such input (Python str / Rust &str are valid UTF-8),
   so there is nothing to match there. The library never crashes on any input.

   Decoding maps ids back to token strings and those through the reverse byte table; special
   tokens come out as their text ("<s>"). Unlike Hugging Face's decode (which applies
   from_utf8_lossy), the raw bytes are returned, so decode(encode(x)) == x for every byte string x.
   An encoder is immutable after loading: one mmspcl_bpe may be used from many threads at once.
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_bpe mmspcl_bpe;

/* Flags of mmspcl_bpe_encode_ex. */
#define MMSPCL_BPE_ADD_SPECIAL 1       /* wrap as <s> ... </s>, as tokenizer(text)["input_ids"] */
#define MMSPCL_BPE_NO_SPECIAL_SPLIT 2  /* "<s>", "<mask>", ... in the text are plain text */

/* From a weight file: STR_ARRAY "tokenizer.vocab" (token strings indexed by id; empty strings
   are holes) and STR_ARRAY "tokenizer.merges" ("left right" in rank order). The strings are
   copied: w may be freed afterwards. */
mmspcl_status mmspcl_bpe_from_weights(mmspcl_bpe **out, const mmspcl_weights *w, mmspcl_error *err);
/* From caller arrays (copied). vocab[i] is the token with id i (vocab_lens NULL: strlen);
   merges[r] is "left right" with rank r (merge_lens NULL: strlen). A first merge line starting
   with "#version" (merges.txt's header) is skipped. Like Hugging Face, a merge whose parts or
   result are not in the vocabulary is an error (MMSPCL_ERR_FORMAT naming the merge). */
mmspcl_status mmspcl_bpe_from_arrays(mmspcl_bpe **out, const char *const *vocab,
                                     const uint32_t *vocab_lens, int64_t n_vocab,
                                     const char *const *merges, const uint32_t *merge_lens,
                                     int64_t n_merges, mmspcl_error *err);
void mmspcl_bpe_free(mmspcl_bpe *bpe);

/* Encodes len bytes of text (any bytes; NUL is an ordinary byte) without <s> </s>. Writes at
   most max_ids ids (ids may be NULL when max_ids is 0) and returns the number of ids the whole
   text needs, which may exceed max_ids: call again with a bigger buffer. Returns -1 when bpe is
   NULL, text is NULL with len > 0, len > INT_MAX / 2, or scratch memory cannot be allocated
   (only inputs with a single piece longer than 256 bytes need any). */
int mmspcl_bpe_encode(const mmspcl_bpe *bpe, const char *text, size_t len, int32_t *ids,
                      int max_ids);
/* The same with flags MMSPCL_BPE_ADD_SPECIAL / MMSPCL_BPE_NO_SPECIAL_SPLIT. */
int mmspcl_bpe_encode_ex(const mmspcl_bpe *bpe, const char *text, size_t len, int32_t *ids,
                         int max_ids, int flags);
/* Decodes n ids into out (cap bytes, snprintf-style: at most cap - 1 bytes and a NUL when
   cap > 0). Returns the full length in bytes (without the NUL): the text is complete when the
   result is < cap. Ids outside the vocabulary and holes are skipped. The text may contain NUL
   bytes when the ids encode them: use the returned length. */
size_t mmspcl_bpe_decode(const mmspcl_bpe *bpe, const int32_t *ids, int n, char *out, size_t cap);

/* Id of a token given as its vocabulary string (e.g. "Ġthe", "<mask>"), -1 if absent. */
int32_t mmspcl_bpe_token_id(const mmspcl_bpe *bpe, const char *token);
/* Vocabulary string of id (NUL-terminated; *len its bytes when len != NULL), NULL if absent. */
const char *mmspcl_bpe_token_str(const mmspcl_bpe *bpe, int32_t id, size_t *len);
int64_t mmspcl_bpe_vocab_size(const mmspcl_bpe *bpe);  /* largest id + 1 */
/* Special ids, found by name in the vocabulary; -1 when the vocabulary lacks them.
   RoBERTa: <s> 0, <pad> 1, </s> 2, <unk> 3, <mask> 50264. */
int32_t mmspcl_bpe_bos_id(const mmspcl_bpe *bpe);   /* <s>    */
int32_t mmspcl_bpe_pad_id(const mmspcl_bpe *bpe);   /* <pad>  */
int32_t mmspcl_bpe_eos_id(const mmspcl_bpe *bpe);   /* </s>   */
int32_t mmspcl_bpe_unk_id(const mmspcl_bpe *bpe);   /* <unk>  */
int32_t mmspcl_bpe_mask_id(const mmspcl_bpe *bpe);  /* <mask> */
