/* mmspcl eval -m MODEL --csv FILE [--svg OUT.svg] [--head H] [--sentiment] [--all-heads] [--json]

   Runs a MELD model (mmspcl train) over a MELD CSV, dialogue by dialogue, and prints per-class
   precision / recall / F1 / support, the confusion matrix (rows: true, columns: predicted) and,
   as the last line, exactly "weighted_f1=0.XXXX accuracy=0.XXXX" (scikit-learn's weighted F1:
   per-class F1 weighted by true-class support, zero_division=0). --svg draws the confusion
   matrix and, when the model holds its training log, the training curves. --head picks the
   head of the task scored: emotion (default) or, with --sentiment, sentiment; --all-heads first
   prints one line per head and task the model has (the views are computed once) and one note on
   standard error naming the heads it lacks; --json prints all of it as one JSON object instead. */
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

/* The confusion matrix (and the training curves) as SVG, to an open output. */
static void write_svg(FILE *f, const int64_t *cm, int C, const char *const *names, const mmspcl_weights *w,
                      const mmspcl_metrics *mt) {
    const mmspcl_tensor *lm = mmspcl_weights_find(w, "meld.log.mlm"), *ls = mmspcl_weights_find(w, "meld.log.spcl");
    const int cell = 56, x0 = 120, y0 = 70, curves = (lm && lm->ne[1] == 3) + 2 * (ls && ls->ne[1] == 3);
    const int width = x0 + C * cell + 40 + (curves ? 380 : 0), height = y0 + C * cell + 90;
    char buf[128];
    int i, j;
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
}

#define EVAL_HEADS 10
#define EVAL_EMOTION_HEADS 7

/* one run of eval: the options, the data and what is computed */
typedef struct eval_run {
    const char *model, *csv, *svg, *head;
    int sentiment, all_heads, json;
    mmspcl_classifier m;
    mmspcl_weights *hold;
    meld_csv data;
    int *yt, *yp;
    float *probs, *sp, *vt, *va, *vv;
    mmspcl_turn *turns;
    int64_t cm[MMSPCL_MAX_CLASSES * MMSPCL_MAX_CLASSES];
    mmspcl_class_metrics pc[MMSPCL_MAX_CLASSES];
    mmspcl_metrics mt;
    /* --all-heads: per head and task the model has; then the ones it lacks */
    int n_all, n_lack;
    const char *all_head[EVAL_HEADS], *all_task[EVAL_HEADS], *lack_head[EVAL_HEADS], *lack_task[EVAL_HEADS];
    double all_f1[EVAL_HEADS], all_acc[EVAL_HEADS];
} eval_run;

/* the heads of --all-heads: CLI_EMOTION_HEADS, then CLI_SENTIMENT_HEADS */
static const char *const eval_heads[EVAL_HEADS] = {"emotion", "lr", "protos", "linear", "view.t", "view.a", "view.v",
                                                   "sentiment", "lr", "linear"};

/* the head a task is scored with: the one asked for, or the model's default (NULL: none) */
static const char *eval_head_used(const eval_run *e, int sentiment, const char *head) {
    return head ? head : mmspcl_classifier_default_head(&e->m, sentiment);
}

/* scores one head of one task on the views: predictions into yp, metrics into mt (cm, pc may
   be NULL: --all-heads), labels into yt; 0, or 1 with err filled */
static int eval_score(eval_run *e, int sentiment, const char *head, int64_t *cm, mmspcl_class_metrics *pc,
                      mmspcl_metrics *mt, mmspcl_error *err) {
    const int C = sentiment ? MMSPCL_NUM_SENTIMENTS : MMSPCL_NUM_EMOTIONS, n = e->data.n_rows;
    int64_t cm2[MMSPCL_MAX_CLASSES * MMSPCL_MAX_CLASSES];
    int i;
    if (mmspcl_classifier_heads(&e->m, e->vt, e->va, e->vv, n, sentiment ? NULL : head, sentiment ? head : NULL,
                                sentiment ? NULL : e->probs, sentiment ? e->sp : NULL, err))
        return 1;
    for (i = 0; i < n; i++)
        if ((e->yt[i] = sentiment ? e->data.rows[i].sentiment : e->data.rows[i].emotion) < 0) {
            snprintf(err->msg, sizeof err->msg, "%s line %d has no %s label", e->csv, e->data.rows[i].line,
                     sentiment ? "sentiment" : "emotion");
            return 1;
        }
    mmspcl_argmax_rows(sentiment ? e->sp : e->probs, n, C, e->yp);
    mmspcl_confusion(e->yt, e->yp, n, C, cm ? cm : cm2);
    mmspcl_metrics_from_confusion(cm ? cm : cm2, C, pc, mt);
    return 0;
}

/* the views of every row, dialogue by dialogue, then the heads */
static int eval_compute(eval_run *e) {
    const int H = e->m.hidden, D = MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS, n = e->data.n_rows;
    mmspcl_error err;
    int d, i;
    e->yt = (int *)malloc(sizeof(int) * (size_t)n + 1);
    e->yp = (int *)malloc(sizeof(int) * (size_t)n + 1);
    e->probs = (float *)malloc(sizeof(float) * (size_t)(n + 1) * MMSPCL_NUM_EMOTIONS);
    e->sp = (float *)malloc(sizeof(float) * (size_t)(n + 1) * MMSPCL_NUM_SENTIMENTS);
    e->turns = (mmspcl_turn *)malloc(sizeof(mmspcl_turn) * (size_t)n + 1);
    e->vt = (float *)malloc(sizeof(float) * (size_t)n * H + 1);
    e->va = (float *)malloc(sizeof(float) * (size_t)n * D + 1);
    e->vv = (float *)malloc(sizeof(float) * (size_t)n * H + 1);
    if (!e->yt || !e->yp || !e->probs || !e->sp || !e->turns || !e->vt || !e->va || !e->vv) return cli_fail(CMD, "out of memory");
    for (i = 0; i < n; i++) {
        const meld_row *r = &e->data.rows[i];
        e->turns[i].speaker = r->speaker;
        e->turns[i].text = r->utterance;
        if ((e->sentiment ? r->sentiment : r->emotion) < 0)
            return cli_fail(CMD, "%s line %d has no %s label", e->csv, r->line, e->sentiment ? "sentiment" : "emotion");
    }
    for (d = 0; d < e->data.n_dialogues; d++) {
        const int s = e->data.dialogue_start[d], t = e->data.dialogue_start[d + 1];
        if (mmspcl_classifier_features(&e->m, e->turns + s, t - s, e->vt + (size_t)s * H, e->va + (size_t)s * D,
                                       e->vv + (size_t)s * H, &err))
            return cli_fail(CMD, "dialogue %d: %s", d, err.msg);
    }
    if (e->all_heads) {   /* one line per head the model has, both tasks; a head it has must score */
        for (i = 0; i < EVAL_HEADS; i++) {
            const int is_s = i >= EVAL_EMOTION_HEADS, k = e->n_all;
            const char *task = is_s ? "sentiment" : "emotion";
            mmspcl_metrics mt2;
            if (!mmspcl_classifier_has_head(&e->m, is_s, eval_heads[i])) {
                e->lack_head[e->n_lack] = eval_heads[i];
                e->lack_task[e->n_lack++] = task;
                continue;
            }
            if (eval_score(e, is_s, eval_heads[i], NULL, NULL, &mt2, &err))
                return cli_fail(CMD, "--all-heads: head %s (%s): %s", eval_heads[i], task, err.msg);
            e->all_head[k] = eval_heads[i];
            e->all_task[k] = task;
            e->all_f1[k] = mt2.weighted_f1;
            e->all_acc[k] = mt2.accuracy;
            e->n_all++;
        }
    }
    if (!eval_head_used(e, e->sentiment, e->head)) return cli_fail(CMD, "%s has no %s head", e->model, e->sentiment ? "sentiment" : "emotion");
    if (eval_score(e, e->sentiment, e->head, e->cm, e->pc, &e->mt, &err)) return cli_fail(CMD, "%s", err.msg);
    return 0;
}

/* --all-heads: one note (standard error) naming the heads the model lacks, per task:
   "mmspcl eval: note: MODEL lacks linear, view.v (emotion); linear (sentiment); ..." */
static void eval_note_lacking(const eval_run *e) {
    int i, t, n_task, groups = 0;
    fprintf(stderr, "mmspcl %s: note: %s lacks", CMD, e->model);
    for (t = 0; t < 2; t++) {
        const char *task = t ? "sentiment" : "emotion";
        for (i = 0, n_task = 0; i < e->n_lack; i++)
            if (!strcmp(e->lack_task[i], task)) fprintf(stderr, "%s%s", n_task++ ? ", " : groups ? "; " : " ", e->lack_head[i]);
        if (n_task) { fprintf(stderr, " (%s)", task); groups++; }
    }
    fprintf(stderr, "; the heads it has are scored\n");
}

static void eval_print_text(const eval_run *e) {
    const int C = e->sentiment ? MMSPCL_NUM_SENTIMENTS : MMSPCL_NUM_EMOTIONS;
    const char *const *names = e->sentiment ? mmspcl_sentiment_names : mmspcl_emotion_names;
    const mmspcl_metrics *mt = &e->mt;
    int c, i;
    for (i = 0; i < e->n_all; i++)
        printf("head=%-9s task=%-9s weighted_f1=%.4f accuracy=%.4f\n", e->all_head[i], e->all_task[i], e->all_f1[i], e->all_acc[i]);
    if (e->n_all) printf("\n");
    printf("%s on %s (%d utterances, %d dialogues), task: %s, head: %s%s\n", e->model, e->csv, e->data.n_rows,
           e->data.n_dialogues, e->sentiment ? "sentiment" : "emotion", eval_head_used(e, e->sentiment, e->head),
           e->head ? "" : " (the model's default)");
    printf("%-10s %9s %9s %9s %8s\n", "class", "precision", "recall", "f1", "support");
    for (c = 0; c < C; c++)
        printf("%-10s %9.4f %9.4f %9.4f %8lld\n", names[c], e->pc[c].precision, e->pc[c].recall, e->pc[c].f1, (long long)e->pc[c].support);
    printf("%-10s %9.4f %9.4f %9.4f %8lld\n", "weighted", mt->weighted_precision, mt->weighted_recall, mt->weighted_f1, (long long)mt->n);
    printf("%-10s %9s %9s %9.4f\n", "macro", "", "", mt->macro_f1);
    printf("\nconfusion (rows: true, columns: predicted)\n%-10s", "");
    for (c = 0; c < C; c++) printf(" %8.8s", names[c]);
    printf("\n");
    for (i = 0; i < C; i++) {
        printf("%-10s", names[i]);
        for (c = 0; c < C; c++) printf(" %8lld", (long long)e->cm[i * C + c]);
        printf("\n");
    }
    printf("weighted_f1=%.4f accuracy=%.4f\n", mt->weighted_f1, mt->accuracy);
}

#define J(v) cli_json_fixed(stdout, (v), 4)

/* {"model", "csv", "task", "head", "default_head", "utterances", "dialogues", "classes": [{"name",
   "precision", "recall", "f1", "support"}], "weighted": {"precision", "recall", "f1"}, "macro_f1",
   "weighted_f1", "accuracy", "confusion": {"labels": [...], "rows": [[...]]}, "all_heads":
   [{"head", "task", "weighted_f1", "accuracy"}] (the heads the model has), "lacking_heads":
   [{"head", "task"}] (the heads it lacks; both empty without --all-heads)} */
static void eval_print_json(const eval_run *e) {
    const int C = e->sentiment ? MMSPCL_NUM_SENTIMENTS : MMSPCL_NUM_EMOTIONS;
    const char *const *names = e->sentiment ? mmspcl_sentiment_names : mmspcl_emotion_names;
    const mmspcl_metrics *mt = &e->mt;
    int c, i;
    printf("{\"model\": ");
    cli_json_str(stdout, e->model);
    printf(", \"csv\": ");
    cli_json_str(stdout, e->csv);
    printf(", \"task\": \"%s\", \"head\": \"%s\", \"default_head\": %s, \"utterances\": %d, \"dialogues\": %d,\n \"classes\": [",
           e->sentiment ? "sentiment" : "emotion", eval_head_used(e, e->sentiment, e->head), e->head ? "false" : "true",
           e->data.n_rows, e->data.n_dialogues);
    for (c = 0; c < C; c++) {
        printf("%s\n  {\"name\": \"%s\", \"precision\": ", c ? "," : "", names[c]);
        J(e->pc[c].precision); printf(", \"recall\": "); J(e->pc[c].recall); printf(", \"f1\": "); J(e->pc[c].f1);
        printf(", \"support\": %lld}", (long long)e->pc[c].support);
    }
    printf("],\n \"weighted\": {\"precision\": "); J(mt->weighted_precision);
    printf(", \"recall\": "); J(mt->weighted_recall); printf(", \"f1\": "); J(mt->weighted_f1);
    printf("}, \"macro_f1\": "); J(mt->macro_f1);
    printf(", \"weighted_f1\": "); J(mt->weighted_f1);
    printf(", \"accuracy\": "); J(mt->accuracy);
    printf(",\n \"confusion\": {\"labels\": [");
    for (c = 0; c < C; c++) printf("%s\"%s\"", c ? ", " : "", names[c]);
    printf("], \"rows\": [");
    for (i = 0; i < C; i++) {
        printf("%s[", i ? ", " : "");
        for (c = 0; c < C; c++) printf("%s%lld", c ? ", " : "", (long long)e->cm[i * C + c]);
        printf("]");
    }
    printf("]},\n \"all_heads\": [");
    for (i = 0; i < e->n_all; i++) {
        printf("%s\n  {\"head\": \"%s\", \"task\": \"%s\", \"weighted_f1\": ", i ? "," : "", e->all_head[i], e->all_task[i]);
        J(e->all_f1[i]); printf(", \"accuracy\": "); J(e->all_acc[i]);
        printf("}");
    }
    printf("],\n \"lacking_heads\": [");
    for (i = 0; i < e->n_lack; i++) printf("%s{\"head\": \"%s\", \"task\": \"%s\"}", i ? ", " : "", e->lack_head[i], e->lack_task[i]);
    printf("]}\n");
}

static void eval_free(eval_run *e) {
    free(e->yt); free(e->yp); free(e->probs); free(e->sp); free(e->turns); free(e->vt); free(e->va); free(e->vv);
    meld_csv_free(&e->data);
    mmspcl_classifier_free(&e->m);
    mmspcl_weights_free(e->hold);
}

int mmspcl_cmd_eval(int argc, char **argv) {
    eval_run e;
    int np, rc;
    cli_out svg;
    mmspcl_error err;
    const char *in_opts[2] = {"-m", "--csv"}, *in_paths[2];
    memset(&e, 0, sizeof e);
    memset(&svg, 0, sizeof svg);
    {
        const cli_opt opts[] = {
            CLI_OPT_REQ("-m, --model", &e.model, "MODEL", "classifier file (mmspcl train), - for standard input"),
            CLI_OPT_REQ("--csv", &e.csv, "FILE", "MELD CSV with Utterance, Speaker and label columns, - for standard input"),
            CLI_OPT_STR("--svg", &e.svg, "OUT.svg", "also draw the confusion matrix and the training curves", NULL),
            CLI_OPT_STR("--head", &e.head, "H", "the head scored: emotion heads " CLI_EMOTION_HEADS "; with --sentiment: "
                        CLI_SENTIMENT_HEADS, "the model's default_head, else the better on dev"),
            CLI_OPT_FLAG("--sentiment", &e.sentiment, "score the sentiment task instead of emotion"),
            CLI_OPT_FLAG("--all-heads", &e.all_heads, "first one line per head and task the model has (the views computed once)"),
            CLI_OPT_FLAG("--json", &e.json, "one JSON object instead of the text report"),
            CLI_OPT_END};
        const cli_spec spec = {CMD, "-m MODEL --csv FILE [options]",
                               "Per-class precision / recall / F1 / support, the confusion matrix and, as the last line,\n"
                               "\"weighted_f1=0.XXXX accuracy=0.XXXX\" (scikit-learn's weighted F1, zero_division=0).",
                               opts, NULL, 0,
                               "JSON: {\"model\", \"csv\", \"task\", \"head\", \"default_head\", \"utterances\", \"dialogues\", \"classes\": [{\"name\",\n"
                               "\"precision\", \"recall\", \"f1\", \"support\"}], \"weighted\": {\"precision\", \"recall\", \"f1\"}, \"macro_f1\",\n"
                               "\"weighted_f1\", \"accuracy\", \"confusion\": {\"labels\", \"rows\"}, \"all_heads\": [{\"head\", \"task\",\n"
                               "\"weighted_f1\", \"accuracy\"}] (the heads MODEL has), \"lacking_heads\": [{\"head\", \"task\"}]}.\n"
                               "--all-heads names the heads MODEL lacks in one note on standard error (not an error: exit 0)."};
        if ((rc = cli_parse(&spec, argc, argv, &np)) != CLI_GO) return rc;
    }
    if ((rc = cli_check_head(CMD, "--head", e.head, e.sentiment))) return rc;
    in_paths[0] = e.model; in_paths[1] = e.csv;
    if ((rc = cli_one_stdin(CMD, 2, in_opts, in_paths)) || (e.svg && (rc = cli_refuse_same(CMD, "--svg", e.svg, 2, in_opts, in_paths))))
        return rc;
    if (e.svg && !strcmp(e.svg, "-")) return cli_usage_error(CMD, "--svg -: the SVG would be mixed with the report on standard output");
    if (e.svg && cli_out_open(&svg, CMD, e.svg)) return 1;
    rc = 1;
    if (cli_classifier_load(CMD, e.model, &e.m, &e.hold)) goto done;
    if (meld_csv_load(e.csv, &e.data, &err)) { cli_fail_io(CMD, e.csv, &err); goto done; }
    if (eval_compute(&e)) goto done;
    if (e.n_lack) eval_note_lacking(&e);
    if (e.svg) {
        write_svg(svg.f, e.cm, e.sentiment ? MMSPCL_NUM_SENTIMENTS : MMSPCL_NUM_EMOTIONS,
                  e.sentiment ? mmspcl_sentiment_names : mmspcl_emotion_names, e.m.w, &e.mt);
        if (cli_out_commit(&svg, CMD)) goto done;
    }
    if (e.json) eval_print_json(&e);
    else eval_print_text(&e);
    rc = 0;
done:
    cli_out_discard(&svg);
    eval_free(&e);
    return rc;
}
