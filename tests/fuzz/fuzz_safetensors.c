/* fuzz_safetensors.c — the safetensors reader of the converter (st_open_memory in
   tools/convert/safetensors.c): the u64 header length, the JSON header and every tensor entry
   (dtype, shape, data_offsets). Every tensor it accepts is checked to lie inside the data section
   and its bytes are read. Seeds: the test models' model.safetensors (small ones) and
   hand-made headers. */
#include "tests/fuzz/fuzz.h"
#ifndef FUZZ_HAVE_SAFETENSORS_C
#define FUZZ_HAVE_SAFETENSORS_C
#include "tools/convert/safetensors.c"
#endif

FUZZ_TARGET(safetensors) {
    st_file f;
    char err[512];
    size_t i;
    if (st_open_memory(data, size, "fuzz.safetensors", &f, err, sizeof err) != 0) return 0;
    for (i = 0; i < f.n; i++) {
        const st_tensor *t = &f.tensors[i];
        unsigned sum = 0;
        uint64_t k;
        FUZZ_CHECK(st_find(&f, t->name) != NULL);
        FUZZ_CHECK(t->begin <= t->end && t->end <= f.data_size && t->nbytes == t->end - t->begin);
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS);
        if (t->elem_size) FUZZ_CHECK(t->nbytes == t->nelem * (uint64_t)t->elem_size);
        for (k = 0; k < t->nbytes; k += 7) sum += t->data[k];  /* touch the bytes: ASan checks */
        if (t->nbytes) sum += t->data[t->nbytes - 1];
        (void)sum;
    }
    st_close(&f);
    return 0;
}
