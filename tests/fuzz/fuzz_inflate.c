/* fuzz_inflate.c — the zlib/deflate decoder behind PNG (mmspcl__img_zlib in mmspcl.h,
   an internal function this target reaches because it includes the implementation): stored,
   fixed and dynamic Huffman blocks, code-length checks, distances before the start, output
   larger or smaller than expected, truncated input, Adler-32. Fuzzing it directly gets past
   PNG's CRC-32 that would otherwise reject most mutations.
   Input: 3 bytes little-endian = expected output size (at most 2^20), then the zlib stream.
   Seeds: the IDAT streams of the test PNGs with their sizes, and hand-made stored/fixed blocks. */
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tests/fuzz/fuzz.h"

FUZZ_TARGET(inflate) {
    mmspcl_error err;
    size_t out_n;
    unsigned char *out;
    mmspcl_status st;
    if (size < 3) return 0;
    out_n = ((size_t)data[0] | ((size_t)data[1] << 8) | ((size_t)data[2] << 16)) & 0xFFFFF;
    if (!(out = (unsigned char *)malloc(out_n ? out_n : 1))) return 0;
    st = mmspcl__img_zlib(data + 3, size - 3, out, out_n, "fuzz", &err);
    FUZZ_CHECK(st == MMSPCL_OK || st == MMSPCL_ERR_FORMAT || st == MMSPCL_ERR_NOMEM);
    free(out);
    return 0;
}
