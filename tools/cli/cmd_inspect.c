/* mmspcl inspect [--json] FILE|-: hyper-parameters, tokenizer size and the tensor table of a
   weight file. */
#include <stdio.h>
#include <string.h>
#include "cli.h"

#define CMD "inspect"

static void inspect_text(const mmspcl_weights *w, const char *file) {
    int64_t i, total = 0;
    printf("file: %s (%zu bytes, format v%u)\n", file, w->size, w->version);
    printf("metadata (%lld keys):\n", (long long)w->n_kv);
    for (i = 0; i < w->n_kv; i++) {
        const mmspcl_kv *kv = &w->kv[i];
        switch (kv->type) {
        case MMSPCL_KV_INT: printf("  %-36s %lld\n", kv->key, (long long)kv->i); break;
        case MMSPCL_KV_FLOAT: printf("  %-36s %.9g\n", kv->key, kv->f); break;
        case MMSPCL_KV_STR: printf("  %-36s \"%.60s%s\"\n", kv->key, kv->str, kv->str_len > 60 ? "..." : ""); break;
        case MMSPCL_KV_STR_ARRAY: printf("  %-36s [%lld strings]\n", kv->key, (long long)kv->count); break;
        }
    }
    printf("tensors (%lld):\n", (long long)w->n_tensors);
    for (i = 0; i < w->n_tensors; i++) {
        const mmspcl_tensor *t = &w->tensors[i];
        char shape[96];
        int d, n = 0;
        for (d = 0; d < t->ndim; d++)
            n += snprintf(shape + n, sizeof shape - (size_t)n, d ? " x %lld" : "%lld", (long long)t->ne[d]);
        printf("  %-60s %-5s %-22s %zu bytes\n", t->name, mmspcl_dtype_name(t->dtype), shape, t->nbytes);
        total += (int64_t)t->nbytes;
    }
    printf("total tensor bytes: %lld\n", (long long)total);
}

/* {"file", "bytes", "version", "metadata": {KEY: number | string | {"count": N} (a string
   array)}, "tensors": [{"name", "dtype", "shape": [...], "bytes"}], "total_tensor_bytes"} */
static void inspect_json(const mmspcl_weights *w, const char *file) {
    int64_t i, total = 0;
    int d;
    printf("{\"file\": ");
    cli_json_str(stdout, file);
    printf(", \"bytes\": %zu, \"version\": %u,\n \"metadata\": {", w->size, w->version);
    for (i = 0; i < w->n_kv; i++) {
        const mmspcl_kv *kv = &w->kv[i];
        printf("%s\n  ", i ? "," : "");
        cli_json_str(stdout, kv->key);
        printf(": ");
        switch (kv->type) {
        case MMSPCL_KV_INT: printf("%lld", (long long)kv->i); break;
        case MMSPCL_KV_FLOAT: cli_json_num(stdout, kv->f, 17); break;
        case MMSPCL_KV_STR: cli_json_strn(stdout, kv->str, kv->str_len); break;
        case MMSPCL_KV_STR_ARRAY: printf("{\"count\": %lld}", (long long)kv->count); break;
        default: printf("null"); break;
        }
    }
    printf("},\n \"tensors\": [");
    for (i = 0; i < w->n_tensors; i++) {
        const mmspcl_tensor *t = &w->tensors[i];
        printf("%s\n  {\"name\": ", i ? "," : "");
        cli_json_str(stdout, t->name);
        printf(", \"dtype\": \"%s\", \"shape\": [", mmspcl_dtype_name(t->dtype));
        for (d = 0; d < t->ndim; d++) printf("%s%lld", d ? ", " : "", (long long)t->ne[d]);
        printf("], \"bytes\": %zu}", t->nbytes);
        total += (int64_t)t->nbytes;
    }
    printf("],\n \"total_tensor_bytes\": %lld}\n", (long long)total);
}

int mmspcl_cmd_inspect(int argc, char **argv) {
    const char *pos[1] = {NULL};
    int json = 0, np, rc;
    mmspcl_weights *w;
    const cli_opt opts[] = {
        CLI_OPT_FLAG("--json", &json, "one JSON object instead of the text listing"),
        CLI_OPT_END};
    const cli_spec spec = {CMD, "[--json] FILE|-", "The metadata (hyper-parameters, tokenizer) and the tensor table of a weight file;\n"
                           "- reads it from standard input.", opts, pos, 1,
                           "JSON: {\"file\", \"bytes\", \"version\", \"metadata\": {KEY: number, string or {\"count\": N} for a string\n"
                           "array}, \"tensors\": [{\"name\", \"dtype\", \"shape\", \"bytes\"}], \"total_tensor_bytes\"}"};
    if ((rc = cli_parse(&spec, argc, argv, &np)) != CLI_GO) return rc;
    if (np != 1) return cli_usage_error(CMD, "FILE is required (- for standard input)");
    if (cli_weights_open(CMD, pos[0], &w)) return 1;
    if (json) inspect_json(w, pos[0]);
    else inspect_text(w, pos[0]);
    mmspcl_weights_free(w);
    return 0;
}
