/* MELD CSV reader: the real splits (counts from ../shared/data/meld/SOURCES.md) and malformed rows. */
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#define MELD_CSV_IMPLEMENTATION
#include "tools/train/meld_csv.h"
#include "tests/test.h"
#include <string.h>

static void check_split(const char *path, int rows, int dialogues, const int *emotion_counts) {
    meld_csv m;
    mmspcl_error err;
    int counts[MMSPCL_NUM_EMOTIONS] = {0}, i;
    if (meld_csv_load(path, &m, &err)) { CHECK(0, "%s: %s", path, err.msg); return; }
    CHECK(m.n_rows == rows, "%s: %d rows, expected %d", path, m.n_rows, rows);
    CHECK(m.n_dialogues == dialogues, "%s: %d dialogues, expected %d", path, m.n_dialogues, dialogues);
    for (i = 0; i < m.n_rows; i++) counts[m.rows[i].emotion]++;
    if (emotion_counts)
        for (i = 0; i < MMSPCL_NUM_EMOTIONS; i++)
            CHECK(counts[i] == emotion_counts[i], "%s: %s count %d, expected %d", path, mmspcl_emotion_names[i], counts[i], emotion_counts[i]);
    meld_csv_free(&m);
}

static void expect_error(const char *csv, const char *needle) {
    meld_csv m;
    mmspcl_error err;
    err.msg[0] = 0;
    CHECK(meld_csv_parse(csv, strlen(csv), "t.csv", &m, &err) == MMSPCL_ERR_FORMAT && strstr(err.msg, needle),
          "expected an error containing '%s', got '%s'", needle, err.msg);
}

/* mmspcl_dialogues_parse: the "Speaker: text" files classify and examples/classify_dialogue read */
static void test_dialogue_text(void) {
    static const char text[] = "# a comment\r\nRachel: Oh, honey.\r\nno speaker here\n\n\n  Ross:  I'm sorry.  \n"
                               "# between\nA very long speaker name that is over forty bytes: text\nJoey:no space\n";
    mmspcl_dialogues d;
    mmspcl_error err;
    CHECK(mmspcl_dialogues_parse(text, sizeof text - 1, &d, &err) == MMSPCL_OK, "%s", err.msg);
    CHECK(d.n_turns == 5 && d.n_dialogues == 2 && d.start[0] == 0 && d.start[1] == 2 && d.start[2] == 5,
          "%d turns, %d dialogues", d.n_turns, d.n_dialogues);
    if (d.n_turns == 5) {
        CHECK(!strcmp(d.turns[0].speaker, "Rachel") && !strcmp(d.turns[0].text, "Oh, honey."), "turn 0: %s|%s", d.turns[0].speaker, d.turns[0].text);
        CHECK(!strcmp(d.turns[1].speaker, "Speaker") && !strcmp(d.turns[1].text, "no speaker here"), "turn 1");
        CHECK(!strcmp(d.turns[2].speaker, "Ross") && !strcmp(d.turns[2].text, " I'm sorry."), "turn 2: [%s]", d.turns[2].text);
        CHECK(!strcmp(d.turns[3].speaker, "Speaker") && !strncmp(d.turns[3].text, "A very long", 11), "turn 3: a long 'speaker' is text");
        CHECK(!strcmp(d.turns[4].speaker, "Speaker") && !strcmp(d.turns[4].text, "Joey:no space"), "turn 4: ':' must be followed by a space");
    }
    mmspcl_dialogues_free(&d);
    CHECK(mmspcl_dialogues_parse("", 0, &d, &err) == MMSPCL_OK && d.n_turns == 0 && d.n_dialogues == 0, "empty text");
    mmspcl_dialogues_free(&d);
}

int main(void) {
    /* SOURCES.md: neutral, joy, sadness, surprise, fear, disgust, anger */
    static const int train[] = {4710, 1743, 683, 1205, 268, 271, 1109};
    static const int dev[] = {470, 163, 111, 150, 40, 22, 153};
    static const int test[] = {1256, 402, 208, 281, 50, 68, 345};
    check_split("../shared/data/meld/train_sent_emo.csv", 9989, 1038, train);
    check_split("../shared/data/meld/dev_sent_emo.csv", 1109, 114, dev);
    check_split("../shared/data/meld/test_sent_emo.csv", 2610, 280, test);
    check_split("../shared/data/meld/test_sent_emo_dya.csv", 3400, 577, NULL);
    {   /* quoting, CRLF, one-digit hours, the second row of the test split by hand */
        const char *csv = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,StartTime\r\n"
                          "1,\"Oh, \"\"really\"\"?\",Ross,Surprise,positive,3,0,\"0:13:42,477\"\r\n"
                          "2,Fine.,Rachel,anger,negative,3,1,\"00:13:43,000\"\r\n"
                          "3,Next,Joey,joy,positive,4,0,\"00:13:44,000\"";
        meld_csv m;
        mmspcl_error err;
        CHECK(meld_csv_parse(csv, strlen(csv), "t.csv", &m, &err) == MMSPCL_OK, "%s", err.msg);
        CHECK(m.n_rows == 3 && m.n_dialogues == 2, "rows %d dialogues %d", m.n_rows, m.n_dialogues);
        CHECK(!strcmp(m.rows[0].utterance, "Oh, \"really\"?"), "unquoted: [%s]", m.rows[0].utterance);
        CHECK(m.rows[0].emotion == 3 && m.rows[1].emotion == 6 && m.rows[1].sentiment == 2, "labels");
        CHECK(m.rows[2].line == 4 && m.dialogue_start[1] == 2, "line numbers and grouping");
        meld_csv_free(&m);
    }
    expect_error("Utterance,Speaker,Emotion,Dialogue_ID\nhi,Ross,joy,0\nbye,Ross,happy,0\n", "line 3: unknown emotion 'happy'");
    expect_error("Utterance,Speaker,Emotion,Dialogue_ID\nhi,Ross,joy,0\nbye,Ross,joy\n", "line 3: 3 fields");
    expect_error("Utterance,Speaker,Emotion,Dialogue_ID\n\"hi,Ross,joy,0\n", "line 2: bad quoting");
    expect_error("Utterance,Speaker,Emotion,Dialogue_ID\n\"hi\"x,Ross,joy,0\n", "bad quoting");
    expect_error("Utterance,Speaker,Emotion,Dialogue_ID\nhi,Ross,joy,zero\n", "not a number");
    expect_error("Text,Who\nhi,Ross\n", "no Utterance or Speaker");
    expect_error("Utterance,Speaker\n", "no rows");
    expect_error("Utterance,Speaker,Emotion,Emotion\nhi,Ross,joy,anger\n", "column Emotion appears twice (fields 3 and 4)");
    test_dialogue_text();
    return TEST_END();
}
