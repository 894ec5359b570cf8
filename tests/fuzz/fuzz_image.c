/* fuzz_image.c — image decoding (mmspcl_image_decode: PNG with its chunks, filters, Adam7 and
   inflate; BMP; binary PPM/PGM) and CLIP preprocessing of whatever decodes (Pillow-exact
   bicubic resize + centre crop on odd shapes). PNG inputs are decoded twice: as given, and with
   every chunk's CRC-32 recomputed, so that mutations get past the CRC check into the chunk and
   zlib code. Seeds: the small PNG/BMP/PPM/PGM files of tests/data/images/dec. */
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tests/fuzz/fuzz.h"
#include "tests/test.h"

#include <string.h>

static void fuzz_image_one(const uint8_t *data, size_t size) {
    mmspcl_image img;
    mmspcl_error err;
    if (mmspcl_image_decode(data, size, &img, &err) != MMSPCL_OK) {
        FUZZ_CHECK(img.rgb == NULL && img.width == 0 && img.height == 0);
        return;
    }
    FUZZ_CHECK(img.rgb != NULL && img.width >= 1 && img.height >= 1);
    FUZZ_CHECK(img.width <= MMSPCL_IMAGE_MAX_SIDE && img.height <= MMSPCL_IMAGE_MAX_SIDE);
    FUZZ_CHECK((int64_t)img.width * img.height <= MMSPCL_IMAGE_MAX_PIXELS);
    {
        /* the last pixel is readable; preprocessing an odd shape works */
        static const float mean[3] = MMSPCL_CLIP_MEAN, sd[3] = MMSPCL_CLIP_STD;
        float px[3 * 16 * 16];
        size_t last = (size_t)img.width * (size_t)img.height * 3 - 1;
        volatile unsigned char v = img.rgb[last];
        (void)v;
        FUZZ_CHECK(mmspcl_clip_preprocess(&img, 19, 16, mean, sd, px, &err) == MMSPCL_OK);
    }
    mmspcl_image_free(&img);
}

FUZZ_TARGET(image) {
    fuzz_image_one(data, size);
    if (size >= 8 && !memcmp(data, "\x89PNG\r\n\x1a\n", 8)) {
        unsigned char *copy = (unsigned char *)malloc(size);
        size_t pos = 8;
        int fixed = 0;
        if (!copy) return 0;
        memcpy(copy, data, size);
        while (size - pos >= 12) {
            uint32_t len = ((uint32_t)copy[pos] << 24) | ((uint32_t)copy[pos + 1] << 16) |
                           ((uint32_t)copy[pos + 2] << 8) | copy[pos + 3];
            uint32_t crc;
            if ((size_t)len > size - pos - 12) break;
            crc = test_crc32(copy + pos + 4, (size_t)len + 4);
            {
                unsigned char *q = copy + pos + 8 + len;
                uint32_t old = ((uint32_t)q[0] << 24) | ((uint32_t)q[1] << 16) | ((uint32_t)q[2] << 8) | q[3];
                if (old != crc) fixed = 1;
                q[0] = (unsigned char)(crc >> 24); q[1] = (unsigned char)(crc >> 16);
                q[2] = (unsigned char)(crc >> 8); q[3] = (unsigned char)crc;
            }
            pos += (size_t)len + 12;
        }
        if (fixed) fuzz_image_one(copy, size);
        free(copy);
    }
    return 0;
}
