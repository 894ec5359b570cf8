/* ---------------------------------------------------------------------------------------------
   Images: decoding without libraries, and CLIP preprocessing exactly as Hugging Face's
   CLIPImageProcessor does it with Pillow.

   Decoding (mmspcl_image_decode / mmspcl_image_load) always gives 8-bit RGB, row-major, no
   padding (width*height*3 bytes). Alpha is dropped (Pillow's convert("RGB"), which is what
   CLIPImageProcessor applies to RGBA input); grey is replicated to R=G=B; palettes are expanded.
     PNG   colour types grey, grey+alpha, RGB, RGBA (bit depth 8; 16 is read by keeping the high
           byte of each sample, as Pillow does for RGB/RGBA/LA; Pillow clips 16-bit grey instead)
           and grey / palette at 1, 2, 4 and 8 bits; non-interlaced and Adam7 interlaced; all
           five filter types; every chunk's CRC-32 is checked; the zlib stream is inflated by
           this code (stored, fixed and dynamic Huffman blocks), its Adler-32 checked, and its
           output must be exactly the size IHDR implies. IEND is required. Unknown critical
           chunks are refused; ancillary chunks (tRNS, gAMA, iCCP, text, ...) are skipped.
     BMP   uncompressed (BI_RGB) 1/4/8-bit palette, 24-bit and 32-bit (BGRX); BI_BITFIELDS
           32-bit with one-byte masks (any byte order); bottom-up and top-down rows; headers of
           12 (OS/2), 40, 52, 56, 64, 108 and 124 bytes. RLE, 16-bit and JPEG/PNG-in-BMP refused.
     PPM/PGM  binary P6 / P5, comments in the header, maxval 1..65535 (two-byte big-endian samples
           above 255); samples are scaled as Pillow does: min(255, round(v / maxval * 255)).
   Anything else (JPEG, GIF, WebP, TIFF, plain-text PNM, ...) fails with MMSPCL_ERR_UNSUPPORTED and
   a message naming the format. Malformed input fails with MMSPCL_ERR_FORMAT naming what and
   where (byte offset); nothing is read outside the buffer and nothing leaks.

   CLIP preprocessing (CLIPImageProcessor with size={"shortest_edge": S}, crop_size C):
     1. resize so the shorter side is S; the longer becomes floor(S * long / short) (Hugging Face's
        get_resize_output_image_size with default_to_square=False: int(S * long / short));
     2. bicubic resampling exactly as Pillow's Image.resize(BICUBIC) (libImaging/Resample.c):
        separable, horizontal pass then vertical pass, a = -0.5, support 2 widened by the
        downscale factor (antialiasing), coefficients normalised and rounded to 22 fraction bits,
        each pass rounded and clipped to uint8. The result is bit-identical to Pillow's;
     3. centre crop C x C: top = floor((h - C) / 2), left = floor((w - C) / 2), zero padding
        where the resized image is smaller than C (as Hugging Face's center_crop);
     4. x = (float)(v * (1/255.0)), then (x - mean[c]) / std[c] in float32;
     5. channels first: out[c][y][x], 3*C*C floats.
   Only the rows and columns that survive the crop are computed (a 1 x 16384 image costs what a
   small one does).
   ------------------------------------------------------------------------------------------ */

#define MMSPCL_IMAGE_MAX_SIDE 16384                   /* width and height, each */
#define MMSPCL_IMAGE_MAX_PIXELS ((int64_t)1 << 28)    /* width * height */
#define MMSPCL_IMAGE_MAX_FILE_BYTES ((int64_t)1 << 31) /* mmspcl_image_load */
#define MMSPCL_CLIP_MAX_SIZE 65536                    /* shortest_edge and crop, each */

/* OpenAI CLIP's normalisation (initialisers: static const float m[3] = MMSPCL_CLIP_MEAN;) */
#define MMSPCL_CLIP_MEAN {0.48145466f, 0.4578275f, 0.40821073f}
#define MMSPCL_CLIP_STD {0.26862954f, 0.26130258f, 0.27577711f}

typedef struct mmspcl_image {
    int width, height;
    unsigned char *rgb; /* width*height*3, row-major, allocated with MMSPCL_MALLOC */
} mmspcl_image;

/* Decode PNG, BMP or binary PPM/PGM bytes (format found from the first bytes). On failure *out is
   left empty (rgb NULL, sizes 0). */
mmspcl_status mmspcl_image_decode(const void *bytes, size_t size, mmspcl_image *out,
                                  mmspcl_error *err);
/* Read a whole file and decode it (not available with MMSPCL_NO_STDIO). */
mmspcl_status mmspcl_image_load(const char *path, mmspcl_image *out, mmspcl_error *err);
/* Frees img->rgb and empties *img; NULL and empty images are fine. */
void mmspcl_image_free(mmspcl_image *img);

/* Pillow-exact bicubic resize of packed RGB (w*h*3 bytes) into dst (dw*dh*3 bytes).
   MMSPCL_ERR_ARG for a bad size or NULL, MMSPCL_ERR_NOMEM when scratch memory fails. */
mmspcl_status mmspcl_image_resize_bicubic(const unsigned char *src, int w, int h,
                                          unsigned char *dst, int dw, int dh);

/* The size Hugging Face resizes a w x h image to for shortest_edge S (see 1. above). */
mmspcl_status mmspcl_clip_resize_size(int w, int h, int shortest_edge, int *out_w, int *out_h);

/* Steps 1-3 only: the uint8 RGB crop (crop*crop*3 bytes), Pillow-exact. rgb has `stride` bytes
   per row (>= width*3). */
mmspcl_status mmspcl_clip_resize_crop(const unsigned char *rgb, int width, int height,
                                      size_t stride, int shortest_edge, int crop,
                                      unsigned char *out, mmspcl_error *err);

/* Steps 1-5 from a decoded image: out receives 3*crop*crop floats, channels first. */
mmspcl_status mmspcl_clip_preprocess(const mmspcl_image *img, int shortest_edge, int crop,
                                     const float mean[3], const float stdev[3], float *out,
                                     mmspcl_error *err);
/* The same from the caller's RGB buffer (`stride` bytes per row, >= width*3). */
mmspcl_status mmspcl_clip_preprocess_rgb(const unsigned char *rgb, int width, int height,
                                         size_t stride, int shortest_edge, int crop,
                                         const float mean[3], const float stdev[3], float *out,
                                         mmspcl_error *err);
