/* mmspcl eval -m MODEL --csv FILE [--svg OUT.svg] [--head H] [--sentiment]

   Runs a MELD model (mmspcl train) over a MELD CSV, dialogue by dialogue, and prints per-class
   precision / recall / F1 / support, the confusion matrix (rows: true, columns: predicted) and,
   as the last line, exactly "weighted_f1=0.XXXX accuracy=0.XXXX" (scikit-learn's weighted F1:
   per-class F1 weighted by true-class support, zero_division=0). --svg draws the confusion
   matrix and, when the model holds its training log, the training curves. --head picks a
   single-view head (view.t, view.a, view.v) or protos instead of the MSVE ensemble;
   --sentiment scores the sentiment head instead of emotion; --all-heads first prints one line
   per head and task (the views are computed once). */
#include "mmspcl.h"
#include "tools/train/meld_csv.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

#define CMD "eval"

static void svg_text(FILE *f, double x, double y, int size, const char *anchor, const char *s) {
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" text-anchor=\"%s\">%s</text>\n", x, y, size, anchor, s);
}

/* one line plot of column col of a [n][3] log into the box (x0,y0,w,h) */
static void svg_curve(FILE *f, const mmspcl_tensor *t, int col, double x0, double y0, double w, double h,
                      const char *color, const char *title) {
    const float *d = (const float *)t->data;
    int64_t n = t->ne[0], i, m = 0;
    double lo = 1e30, hi = -1e30;
    char buf[64];
    for (i = 0; i < n; i++) if (d[i * 3 + col] >= 0) { lo = d[i * 3 + col] < lo ? d[i * 3 + col] : lo; hi = d[i * 3 + col] > hi ? d[i * 3 + col] : hi; m++; }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#888\"/>\n", x0, y0, w, h);
    svg_text(f, x0 + w / 2, y0 - 8, 13, "middle", title);
    if (!m) return;
    if (hi - lo < 1e-9) { hi += 0.5; lo -= 0.5; }
    snprintf(buf, sizeof buf, "%.3f", hi); svg_text(f, x0 - 4, y0 + 10, 10, "end", buf);
    snprintf(buf, sizeof buf, "%.3f", lo); svg_text(f, x0 - 4, y0 + h, 10, "end", buf);
    snprintf(buf, sizeof buf, "epoch %g", d[(n - 1) * 3]); svg_text(f, x0 + w, y0 + h + 14, 10, "end", buf);
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
    for (i = 0; i < n; i++) {
        const double v = d[i * 3 + col];
        if (v < 0) continue;
        fprintf(f, "%.1f,%.1f ", x0 + (n > 1 ? w * i / (double)(n - 1) : w / 2), y0 + h - h * (v - lo) / (hi - lo));
    }
    fprintf(f, "\"/>\n");
}

static int write_svg(const char *path, const int64_t *cm, int C, const char *const *names, const mmspcl_weights *w,
                     const mmspcl_metrics *mt) {
    FILE *f = fopen(path, "w");
    const mmspcl_tensor *lm = mmspcl_weights_find(w, "meld.log.mlm"), *ls = mmspcl_weights_find(w, "meld.log.spcl");
    const int cell = 56, x0 = 120, y0 = 70, curves = (lm && lm->ne[1] == 3) + 2 * (ls && ls->ne[1] == 3);
    const int width = x0 + C * cell + 40 + (curves ? 380 : 0), height = y0 + C * cell + 90;
    char buf[128];
    int i, j;
    if (!f) return 1;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\">\n", width, height < 560 ? 560 : height);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    snprintf(buf, sizeof buf, "Confusion matrix (rows: true, columns: predicted) - weighted F1 %.4f, accuracy %.4f", mt->weighted_f1, mt->accuracy);
    svg_text(f, 10, 22, 14, "start", buf);
    for (i = 0; i < C; i++) {
        int64_t row = 0;
        for (j = 0; j < C; j++) row += cm[i * C + j];
        svg_text(f, x0 - 6, y0 + i * cell + cell / 2 + 4, 12, "end", names[i]);
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"start\" transform=\"rotate(-35 %d %d)\">%s</text>\n",
                x0 + i * cell + 10, y0 - 6, x0 + i * cell + 10, y0 - 6, names[i]);
        for (j = 0; j < C; j++) {
            const double fr = row ? (double)cm[i * C + j] / row : 0;
            const int shade = 255 - (int)(fr * 200);
            fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"rgb(%d,%d,255)\" stroke=\"#ccc\"/>\n",
                    x0 + j * cell, y0 + i * cell, cell, cell, shade, shade);
            snprintf(buf, sizeof buf, "%lld", (long long)cm[i * C + j]);
            svg_text(f, x0 + j * cell + cell / 2, y0 + i * cell + cell / 2 + 4, 12, "middle", buf);
        }
    }
    if (curves) {
        const double cx = x0 + C * cell + 90;
        double cy = 60;
        if (lm && lm->ne[1] == 3) { svg_curve(f, lm, 1, cx, cy, 300, 120, "#c33", "MLM pretraining loss"); cy += 170; }
        if (ls && ls->ne[1] == 3) {
            svg_curve(f, ls, 1, cx, cy, 300, 120, "#33c", "SPCL fine-tuning loss"); cy += 170;
            svg_curve(f, ls, 2, cx, cy, 300, 120, "#3a3", "dev weighted F1 (nearest class mean)");
        }
    }
    fprintf(f, "</svg>\n");
    return fclose(f) != 0;
}

int mmspcl_cmd_eval(int argc, char **argv) {
    const char *model = NULL, *csv = NULL, *svg = NULL, *head = NULL;
    int sentiment = 0, all_heads = 0, a, d, i, c, rc = 1, C;
    mmspcl_classifier m;
    meld_csv data;
    mmspcl_error err;
    int *yt = NULL, *yp = NULL;
    float *probs = NULL, *sp = NULL;
    mmspcl_turn *turns = NULL;
    int64_t cm[MMSPCL_MAX_CLASSES * MMSPCL_MAX_CLASSES];
    mmspcl_class_metrics pc[MMSPCL_MAX_CLASSES];
    mmspcl_metrics mt;
    const char *const *names;
    for (a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "-m")) { if (!(model = cli_arg_value(CMD, argc, argv, &a))) return 2; }
        else if (!strcmp(argv[a], "--csv")) { if (!(csv = cli_arg_value(CMD, argc, argv, &a))) return 2; }
        else if (!strcmp(argv[a], "--svg")) { if (!(svg = cli_arg_value(CMD, argc, argv, &a))) return 2; }
        else if (!strcmp(argv[a], "--head")) { if (!(head = cli_arg_value(CMD, argc, argv, &a))) return 2; }
        else if (!strcmp(argv[a], "--sentiment")) sentiment = 1;
        else if (!strcmp(argv[a], "--all-heads")) all_heads = 1;
        else {
            fprintf(stderr, "usage: mmspcl eval -m MODEL --csv FILE [--svg OUT.svg] [--head emotion|lr|view.t|view.a|view.v|protos] [--sentiment] [--all-heads]\n");
            return 2;
        }
    }
    if (!model || !csv) { fprintf(stderr, "usage: mmspcl eval -m MODEL --csv FILE [--svg OUT.svg]\n"); return 2; }
    if (mmspcl_classifier_load(&m, model, &err)) return cli_fail(CMD, "%s", err.msg);
    if (meld_csv_load(csv, &data, &err)) { mmspcl_classifier_free(&m); return cli_fail(CMD, "%s", err.msg); }
    C = sentiment ? MMSPCL_NUM_SENTIMENTS : MMSPCL_NUM_EMOTIONS;
    names = sentiment ? mmspcl_sentiment_names : mmspcl_emotion_names;
    yt = (int *)malloc(sizeof(int) * (size_t)data.n_rows + 1);
    yp = (int *)malloc(sizeof(int) * (size_t)data.n_rows + 1);
    probs = (float *)malloc(sizeof(float) * (size_t)(data.n_rows + 1) * MMSPCL_NUM_EMOTIONS);
    sp = (float *)malloc(sizeof(float) * (size_t)(data.n_rows + 1) * MMSPCL_NUM_SENTIMENTS);
    turns = (mmspcl_turn *)malloc(sizeof(mmspcl_turn) * (size_t)data.n_rows + 1);
    if (!yt || !yp || !probs || !sp || !turns) { cli_fail(CMD, "out of memory"); goto done; }
    for (i = 0; i < data.n_rows; i++) {
        turns[i].speaker = data.rows[i].speaker;
        turns[i].text = data.rows[i].utterance;
        yt[i] = sentiment ? data.rows[i].sentiment : data.rows[i].emotion;
        if (yt[i] < 0) { cli_fail(CMD, "%s line %d has no %s label", csv, data.rows[i].line, sentiment ? "sentiment" : "emotion"); goto done; }
    }
    {
        const int H = m.hidden, D = MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS;
        float *vt = (float *)malloc(sizeof(float) * (size_t)data.n_rows * H + 1), *va = (float *)malloc(sizeof(float) * (size_t)data.n_rows * D + 1);
        float *vv = (float *)malloc(sizeof(float) * (size_t)data.n_rows * H + 1);
        if (!vt || !va || !vv) { free(vt); free(va); free(vv); cli_fail(CMD, "out of memory"); goto done; }
        for (d = 0; d < data.n_dialogues; d++) {
            const int s = data.dialogue_start[d], e = data.dialogue_start[d + 1];
            if (mmspcl_classifier_features(&m, turns + s, e - s, vt + (size_t)s * H, va + (size_t)s * D, vv + (size_t)s * H, &err)) {
                free(vt); free(va); free(vv);
                cli_fail(CMD, "dialogue %d: %s", d, err.msg);
                goto done;
            }
        }
        if (all_heads) {   /* one line per head, both tasks */
            static const char *const eh[] = {"emotion", "lr", "view.t", "view.a", "view.v", "protos"};
            static const char *const sh[] = {"sentiment", "lr"};
            int hi;
            for (hi = 0; hi < 8; hi++) {
                const int is_s = hi >= 6;
                const int CC = is_s ? MMSPCL_NUM_SENTIMENTS : MMSPCL_NUM_EMOTIONS;
                int64_t cm2[MMSPCL_MAX_CLASSES * MMSPCL_MAX_CLASSES];
                mmspcl_metrics mt2;
                for (i = 0; i < data.n_rows; i++) yt[i] = is_s ? data.rows[i].sentiment : data.rows[i].emotion;
                if (mmspcl_classifier_heads(&m, vt, va, vv, data.n_rows, is_s ? NULL : eh[hi], is_s ? sh[hi - 6] : NULL,
                                      is_s ? NULL : probs, is_s ? sp : NULL, &err)) {
                    printf("head=%s task=%s: %s\n", is_s ? sh[hi - 6] : eh[hi], is_s ? "sentiment" : "emotion", err.msg);
                    continue;
                }
                mmspcl_argmax_rows(is_s ? sp : probs, data.n_rows, CC, yp);
                mmspcl_confusion(yt, yp, data.n_rows, CC, cm2);
                mmspcl_metrics_from_confusion(cm2, CC, NULL, &mt2);
                printf("head=%-9s task=%-9s weighted_f1=%.4f accuracy=%.4f\n", is_s ? sh[hi - 6] : eh[hi],
                       is_s ? "sentiment" : "emotion", mt2.weighted_f1, mt2.accuracy);
            }
            printf("\n");
            for (i = 0; i < data.n_rows; i++) yt[i] = sentiment ? data.rows[i].sentiment : data.rows[i].emotion;
        }
        if (mmspcl_classifier_heads(&m, vt, va, vv, data.n_rows, head, NULL, probs, sp, &err)) {
            free(vt); free(va); free(vv);
            cli_fail(CMD, "%s", err.msg);
            goto done;
        }
        free(vt); free(va); free(vv);
    }
    mmspcl_argmax_rows(sentiment ? sp : probs, data.n_rows, C, yp);
    mmspcl_confusion(yt, yp, data.n_rows, C, cm);
    mmspcl_metrics_from_confusion(cm, C, pc, &mt);
    printf("%s on %s (%d utterances, %d dialogues), head: %s\n", model, csv, data.n_rows, data.n_dialogues,
           head ? head : sentiment ? (m.sent_lr ? "default = sentiment LR (beat the MSVE on dev)" : "default = sentiment MSVE")
                : (m.emo_lr ? "default = n-gram LR (beat the MSVE ensemble on dev)" : "default = MSVE ensemble (t, a, v)"));
    printf("%-10s %9s %9s %9s %8s\n", "class", "precision", "recall", "f1", "support");
    for (c = 0; c < C; c++)
        printf("%-10s %9.4f %9.4f %9.4f %8lld\n", names[c], pc[c].precision, pc[c].recall, pc[c].f1, (long long)pc[c].support);
    printf("%-10s %9.4f %9.4f %9.4f %8lld\n", "weighted", mt.weighted_precision, mt.weighted_recall, mt.weighted_f1, (long long)mt.n);
    printf("%-10s %9s %9s %9.4f\n", "macro", "", "", mt.macro_f1);
    printf("\nconfusion (rows: true, columns: predicted)\n%-10s", "");
    for (c = 0; c < C; c++) printf(" %8.8s", names[c]);
    printf("\n");
    for (i = 0; i < C; i++) {
        printf("%-10s", names[i]);
        for (c = 0; c < C; c++) printf(" %8lld", (long long)cm[i * C + c]);
        printf("\n");
    }
    if (svg && write_svg(svg, cm, C, names, m.w, &mt)) { cli_fail(CMD, "cannot write %s", svg); goto done; }
    printf("weighted_f1=%.4f accuracy=%.4f\n", mt.weighted_f1, mt.accuracy);
    rc = 0;
done:
    free(yt); free(yp); free(probs); free(sp); free(turns);
    meld_csv_free(&data);
    mmspcl_classifier_free(&m);
    return rc;
}
