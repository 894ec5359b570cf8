/* fuzz_meld.c — the MELD CSV reader (meld_csv_parse): RFC 4180 quoting, CRLF/LF, header
   lookup by name, labels and ids. What it returns is checked for consistency: every row's
   strings are NUL-terminated, labels in range, dialogues partition the rows in order. Seeds: the
   first rows of MELD's CSV files (main and dyadic splits), a plain transcript, quoting cases. */
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#define MELD_CSV_IMPLEMENTATION
#include "tools/train/meld_csv.h"
#include "tests/fuzz/fuzz.h"

#include <string.h>

FUZZ_TARGET(meld) {
    meld_csv m;
    mmspcl_error err;
    int i;
    if (meld_csv_parse((const char *)data, size, "fuzz.csv", &m, &err) != MMSPCL_OK) return 0;
    FUZZ_CHECK(m.n_rows >= 0 && m.n_dialogues >= 0 && m.n_dialogues <= m.n_rows);
    for (i = 0; i < m.n_rows; i++) {
        const meld_row *r = &m.rows[i];
        FUZZ_CHECK(r->utterance != NULL && r->speaker != NULL);
        FUZZ_CHECK(strlen(r->utterance) <= size && strlen(r->speaker) <= size);
        FUZZ_CHECK(r->emotion >= -1 && r->emotion < MMSPCL_NUM_EMOTIONS);
        FUZZ_CHECK(r->sentiment >= -1 && r->sentiment < MMSPCL_NUM_SENTIMENTS);
        FUZZ_CHECK(r->line >= 2);
    }
    if (m.n_rows > 0) {
        FUZZ_CHECK(m.dialogue_start != NULL && m.dialogue_start[0] == 0);
        for (i = 0; i < m.n_dialogues; i++) FUZZ_CHECK(m.dialogue_start[i] < m.dialogue_start[i + 1]);
        FUZZ_CHECK(m.dialogue_start[m.n_dialogues] == m.n_rows);
    }
    meld_csv_free(&m);
    return 0;
}
