/* mmspcl inspect FILE: hyper-parameters, tokenizer size and the tensor table of a weight file. */
#include <stdio.h>
#include <string.h>
#include "cli.h"

int mmspcl_cmd_inspect(int argc, char **argv) {
    mmspcl_weights *w;
    mmspcl_error err;
    int64_t i, total = 0;
    if (argc < 2) return cli_fail("inspect", "usage: mmspcl inspect FILE"), 2;
    if (mmspcl_weights_open(&w, argv[1], &err)) return cli_fail("inspect", "%s", err.msg);
    printf("file: %s (%zu bytes, format v%u)\n", argv[1], w->size, w->version);
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
    mmspcl_weights_free(w);
    return 0;
}
