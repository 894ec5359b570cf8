/* fuzz_torchbin.c — the PyTorch checkpoint reader (tb_read_memory in tools/convert/torchbin.c):
   the ZIP container (local headers, central directory, data descriptors), the pickle stack
   machine with its allow-list, the storages and the view resolution (strides, offsets,
   expanded tensors). Every tensor it returns is checked against its shape and read. Seeds: the
   .bin test files. */
#include "tests/fuzz/fuzz.h"
#ifndef FUZZ_HAVE_TORCHBIN_C
#define FUZZ_HAVE_TORCHBIN_C
#include "tools/convert/torchbin.c"
#endif

FUZZ_TARGET(torchbin) {
    tb_file f;
    char err[512];
    int i;
    if (tb_read_memory(data, size, "fuzz.bin", &f, err, sizeof err) != 0) {
        FUZZ_CHECK(f.tensors == NULL && f.n == 0);
        return 0;
    }
    for (i = 0; i < f.n; i++) {
        const tb_tensor *t = &f.tensors[i];
        uint64_t nel = 1;
        int d;
        unsigned sum = 0;
        size_t k;
        FUZZ_CHECK(t->name != NULL && t->data != NULL);
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= TB_MAX_DIMS);
        for (d = 0; d < t->ndim; d++) {
            FUZZ_CHECK(t->shape[d] >= 0);
            nel *= (uint64_t)t->shape[d];
        }
        FUZZ_CHECK(t->nbytes == nel * tb_dtype_size(t->dtype));
        for (k = 0; k < t->nbytes; k += 13) sum += ((const unsigned char *)t->data)[k];
        if (t->nbytes) sum += ((const unsigned char *)t->data)[t->nbytes - 1];
        (void)sum;
        (void)tb_dtype_name(t->dtype);
    }
    tb_free(&f);
    return 0;
}
