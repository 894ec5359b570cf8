/* Cross-modal pruning, the threshold variant (mmspcl_prune_threshold_apply and its double twin)
   on a hand-worked case, against the arg-max rule, with two pruning modalities, and bad
   arguments. */
#define MMSPCL_IMPLEMENTATION
#define MMSPCL_TRAIN_IMPLEMENTATION
#include "mmspcl.h"
#include "mmspcl_train.h"
#include "tests/test.h"

/* base: one head [1, 0]; pruning heads (K = 2): [2, 0] cos 1, [0, 3] cos 0, [1, 1] cos 0.7071,
   [-1, 0] cos -1, and a short last head [5] (compared with the base head's first value: cos 1) */
static const float base[2] = { 1, 0 };
static const float prune[9] = { 2, 0, 0, 3, 1, 1, -1, 0, 5 };

static void expect(double tau, const char *keep_want) {
    float out[9];
    double outd[9], based[2], pruned[9];
    unsigned char kept[5], keptd[5];
    mmspcl_error err;
    char got[6];
    int h, j;
    CHECK(!mmspcl_prune_threshold_apply(base, 2, prune, 9, 2, tau, 1, out, kept, &err), "tau %g: %s", tau, err.msg);
    for (h = 0; h < 5; h++) got[h] = (char)('0' + kept[h]);
    got[5] = 0;
    CHECK(!strcmp(got, keep_want), "tau %g: kept %s, want %s", tau, got, keep_want);
    for (j = 0; j < 9; j++) CHECK(out[j] == (kept[j / 2] ? prune[j] : 0.0f), "tau %g: value %d", tau, j);
    for (j = 0; j < 2; j++) based[j] = base[j];
    for (j = 0; j < 9; j++) outd[j] = prune[j];
    CHECK(!mmspcl_prune_train_threshold_forward(based, 2, outd, 9, 2, tau, 1, pruned, keptd, &err), "double: %s", err.msg);
    CHECK(!memcmp(kept, keptd, 5), "tau %g: the double twin chooses other heads", tau);
    for (j = 0; j < 9; j++) CHECK(pruned[j] == (double)out[j], "tau %g: double value %d", tau, j);
}

int main(void) {
    float out[9], two[2 * 9];
    unsigned char kept[5], kept2[2 * 5];
    mmspcl_error err;
    expect(0.7, "01010");    /* heads 0 (cos 1), 2 (0.7071) and 4 (1) reach 0.7 */
    expect(0.71, "01110");   /* head 2 no longer does */
    expect(-0.5, "00010");   /* only head 3 (cos -1) stays */
    expect(1.5, "11111");    /* above every cosine: nothing pruned */
    expect(-1.0, "00000");   /* every cosine is >= -1 */
    /* the arg-max rule zeroes exactly the best match (the first head with cos 1) */
    CHECK(!mmspcl_prune_apply(base, 2, prune, 9, 2, 1, out, kept, &err), "argmax");
    CHECK(kept[0] == 0 && kept[1] && kept[2] && kept[3] && kept[4], "argmax keeps all but head 0");
    /* rows are independent: two rows give each row's own answer */
    memcpy(two, prune, sizeof prune);
    memcpy(two + 9, prune, sizeof prune);
    two[9 + 2] = 7;   /* row 1, head 1 = [7, 3]: cos 0.919 */
    {
        const float b2[4] = { 1, 0, 1, 0 };
        float o2[18];
        CHECK(!mmspcl_prune_threshold_apply(b2, 2, two, 9, 2, 0.9, 2, o2, kept2, &err), "two rows");
        CHECK(kept2[1] == 1 && kept2[5 + 1] == 0, "row 1's head 1 (cos 0.919) goes, row 0's (cos 0) stays");
    }
    CHECK(mmspcl_prune_threshold_apply(base, 2, prune, 9, 3, 0.5, 1, out, kept, &err) == MMSPCL_ERR_ARG && strstr(err.msg, "head size 3"),
          "a base width that is not a multiple of K is refused: %s", err.msg);
    CHECK(mmspcl_prune_threshold_apply(base, 2, prune, 9, 2, (double)NAN, 1, out, kept, &err) == MMSPCL_ERR_ARG,
          "a NaN threshold is refused");
    return TEST_END();
}
