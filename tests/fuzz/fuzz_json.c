/* fuzz_json.c — the converter's JSON reader (tools/convert/json.h), which reads config.json,
   model.safetensors.index.json, pytorch_model.bin.index.json, preprocessor_config.json,
   vocab.json and tokenizer.json. The tree it returns is walked completely (json_get on every
   member, json_int on every number, json_at on every element) and re-checked: lengths match the
   strings, counts match the items. Seeds: the JSON files of the test models. */
#include "tests/fuzz/fuzz.h"
#include "tools/convert/json.h"

#include <string.h>

static void fuzz_json_walk(const json_value *v, int depth) {
    size_t i;
    FUZZ_CHECK(depth <= JSON_MAX_DEPTH + 1);
    switch (v->type) {
    case JSON_STRING:
        FUZZ_CHECK(v->str != NULL && v->str[v->len] == 0);
        break;
    case JSON_NUMBER: {
        int64_t x;
        if (json_int(v, &x) && v->is_int) FUZZ_CHECK(x == v->integer);
        break;
    }
    case JSON_ARRAY:
        for (i = 0; i < v->count; i++) {
            FUZZ_CHECK(json_at(v, i) == &v->items[i]);
            fuzz_json_walk(&v->items[i], depth + 1);
        }
        FUZZ_CHECK(json_at(v, v->count) == NULL);
        break;
    case JSON_OBJECT:
        for (i = 0; i < v->count; i++) {
            const json_value *m = &v->items[i];
            FUZZ_CHECK(m->key != NULL && m->key[m->key_len] == 0);
            if (strlen(m->key) == m->key_len) FUZZ_CHECK(json_get(v, m->key) != NULL);
            fuzz_json_walk(m, depth + 1);
        }
        break;
    default:
        break;
    }
    (void)json_type_name(v->type);
}

FUZZ_TARGET(json) {
    char err[256];
    json_value *v = json_parse((const char *)data, size, err, sizeof err);
    if (!v) return 0;
    fuzz_json_walk(v, 0);
    json_free(v);
    return 0;
}
