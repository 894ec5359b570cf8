/* ---------------------------------------------------------------------------------------------
   MELD transcripts (CSV, RFC 4180, UTF-8, CRLF or LF)

   Reads the main split (Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,...)
   and the dyadic split (Utterance,Speaker,Emotion,...): columns are found by header name, extra
   columns are ignored. Rows are grouped into dialogues where Dialogue_ID changes, as SPCL does.
   A bad row (wrong field count, unknown label, non-numeric id, an unterminated quote) stops the
   parse with an error naming the file and line; nothing is dropped silently.
   Emotion ids follow MMSPCL_EMOTION_NAMES, sentiment ids MMSPCL_SENTIMENT_NAMES. A file without
   label columns (plain transcript) gets label -1.
   ------------------------------------------------------------------------------------------ */
#define MMSPCL_MELD_MAX_BYTES ((int64_t)1 << 31)   /* largest CSV parsed or loaded (2 GiB) */
#define MMSPCL_NUM_EMOTIONS 7
#define MMSPCL_NUM_SENTIMENTS 3
extern const char *const mmspcl_emotion_names[MMSPCL_NUM_EMOTIONS];     /* neutral joy sadness surprise fear disgust anger */
extern const char *const mmspcl_sentiment_names[MMSPCL_NUM_SENTIMENTS]; /* neutral positive negative */

typedef struct mmspcl_meld_row {
    const char *utterance, *speaker;   /* NUL-terminated, owned by the mmspcl_meld */
    int emotion, sentiment;            /* ids, or -1 when the file has no such column */
    int64_t dialogue_id, utterance_id;
    int line;                          /* 1-based line number in the file */
} mmspcl_meld_row;

typedef struct mmspcl_meld {
    mmspcl_meld_row *rows;
    int n_rows;
    int *dialogue_start;               /* dialogue d is rows[dialogue_start[d] .. dialogue_start[d+1]) */
    int n_dialogues;
    char *text;                        /* private: storage of the strings */
} mmspcl_meld;

mmspcl_status mmspcl_meld_parse(const char *bytes, size_t size, const char *label, mmspcl_meld *out,
                                mmspcl_error *err);
mmspcl_status mmspcl_meld_load(const char *path, mmspcl_meld *out, mmspcl_error *err);
void mmspcl_meld_free(mmspcl_meld *m);
int mmspcl_emotion_id(const char *name);   /* -1 if unknown (case-insensitive) */
int mmspcl_sentiment_id(const char *name);
