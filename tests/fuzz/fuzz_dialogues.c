/* fuzz_dialogues.c — the dialogue text reader (mmspcl_dialogues_parse: "Speaker: text" lines,
   blank lines between dialogues, # comments, CR LF). What it returns is checked: every turn's
   strings are NUL-terminated inside the copy it owns, dialogues partition the turns in order and
   are never empty, no speaker is longer than 40 bytes. Seeds: examples/dialogue.txt and edge
   cases (no speaker, colons late in the line, CR only, a comment between dialogues). */
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tests/fuzz/fuzz.h"

#include <string.h>

FUZZ_TARGET(dialogues) {
    mmspcl_dialogues d;
    mmspcl_error err;
    int i;
    if (mmspcl_dialogues_parse((const char *)data, size, &d, &err) != MMSPCL_OK) return 0;
    FUZZ_CHECK(d.n_turns >= 0 && d.n_dialogues >= 0 && d.n_dialogues <= d.n_turns);
    FUZZ_CHECK(d.start != NULL && d.start[0] == 0 && d.start[d.n_dialogues] == d.n_turns);
    for (i = 0; i < d.n_dialogues; i++) FUZZ_CHECK(d.start[i] < d.start[i + 1]);
    for (i = 0; i < d.n_turns; i++) {
        const mmspcl_turn *t = &d.turns[i];
        const int own_speaker = t->speaker >= d.text && t->speaker <= d.text + size;
        FUZZ_CHECK(t->text >= d.text && t->text <= d.text + size && strlen(t->text) <= size);
        FUZZ_CHECK(own_speaker ? strlen(t->speaker) <= 40 : !strcmp(t->speaker, "Speaker"));
        FUZZ_CHECK(t->text[0] != 0 || own_speaker);   /* a line with nothing on it is no turn */
    }
    mmspcl_dialogues_free(&d);
    return 0;
}
