/* mmspcl.h - MM-SPCL multimodal emotion recognition in conversation, in one C header.
   Public domain / MIT dual licence (see LICENSE at the end of this file).

   WHAT
     Inference for MM-SPCL (RoBERTa text encoder + SPCL prompt, CLIP-ViT image tower, cross-modal
     pruning, fusion heads, MSVE voting, prototype classification) on plain CPUs and embedded
     boards. libc and libm only; OpenMP optional (-fopenmp). The training side lives in
     mmspcl_train.h.

   HOW TO INCLUDE
     Everywhere you need the declarations:      #include "mmspcl.h"
     In exactly one C or C++ file:              #define MMSPCL_IMPLEMENTATION
                                                #include "mmspcl.h"

   CONFIG MACROS (define before the implementation include)
     MMSPCL_MALLOC(sz), MMSPCL_REALLOC(p,sz), MMSPCL_FREE(p)   allocator (default: libc)
     MMSPCL_NO_SIMD       scalar kernels only (the definition every SIMD path is tested against)
     MMSPCL_NO_MMAP       never mmap; mmspcl_weights_open reads the file into one buffer
     MMSPCL_NO_STDIO      no file access at all (firmware): only mmspcl_weights_from_memory
     MMSPCL_ASSERT(x)     internal invariant checks (default: none). Bad input never asserts.

   ERRORS
     Every call that can fail returns mmspcl_status (MMSPCL_OK == 0) and, when given a non-NULL
     mmspcl_error *, writes a message naming the file, tensor and byte offset that was wrong.
     The library never prints, exits or aborts. There is no global mutable state.

   API IN BRIEF
     Weight files (format: docs/FORMAT.md)
       mmspcl_weights_open(&w, path, &err)          mmap (POSIX) or read into one buffer
       mmspcl_weights_read(&w, path, &err)          always read into one buffer
       mmspcl_weights_from_memory(&w, buf, n, &err) use bytes in memory in place (zero copy)
       mmspcl_weights_find(w, "encoder.layer.0.attention.self.query.weight") -> tensor view
       mmspcl_weights_get_int / _get_float / _get_str / _get_str_array   hyper-parameters
       mmspcl_weights_free(w)
       mmspcl_writer_*                              build and save a weight file (atomic rename)
     Tensors and numbers
       mmspcl_tensor (dtype, ndim, ne[4], data), mmspcl_dtype_row_size, mmspcl_quantize_row,
       mmspcl_dequantize_row, mmspcl_fp16_to_fp32 / fp32_to_fp16, bf16 likewise
       mmspcl_arena: one block for activations, sized once
     (model sections below list their own API)

   CHANGELOG
     0.1  weight file format v1, tensors, quantization blocks, arena, reader and writer
*/
#ifndef MMSPCL_H
#define MMSPCL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MMSPCL_VERSION "0.1.0"

/* ---------------------------------------------------------------------------------------------
   Status and errors
   ------------------------------------------------------------------------------------------ */
typedef enum mmspcl_status {
    MMSPCL_OK = 0,
    MMSPCL_ERR_IO,          /* file could not be opened, read or written */
    MMSPCL_ERR_FORMAT,      /* bytes do not follow the format */
    MMSPCL_ERR_NOMEM,       /* an allocation failed */
    MMSPCL_ERR_ARG,         /* the caller passed an invalid argument */
    MMSPCL_ERR_UNSUPPORTED, /* valid input this build cannot handle */
    MMSPCL_ERR_NOT_FOUND    /* a named tensor or key is missing */
} mmspcl_status;

typedef struct mmspcl_error {
    mmspcl_status status;
    char msg[256];
} mmspcl_error;

const char *mmspcl_status_name(mmspcl_status st);
/* Fills err (when not NULL) with st and a printf-style message; returns st. For code built on
   the library (mmspcl_train.h, tools) that reports errors the same way. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
mmspcl_status mmspcl_error_set(mmspcl_error *err, mmspcl_status st, const char *fmt, ...);

/* ---------------------------------------------------------------------------------------------
   Data types and tensors
   Quantized types hold blocks of 32 consecutive values along the innermost dimension
   (layout: docs/FORMAT.md, after ggml's q8_0 / q4_0):
     q8_0: { uint16 f16 scale d; int8 q[32] }            34 bytes, x = d * q
     q4_0: { uint16 f16 scale d; uint8 q[16] }           18 bytes, x = d * (nibble - 8);
           byte j holds value j in its low nibble and value j+16 in its high nibble.
   ------------------------------------------------------------------------------------------ */
typedef enum mmspcl_dtype {
    MMSPCL_F32 = 0,
    MMSPCL_F16 = 1,
    MMSPCL_BF16 = 2,
    MMSPCL_Q8_0 = 3,
    MMSPCL_Q4_0 = 4,
    MMSPCL_I32 = 5,
    MMSPCL_DTYPE_COUNT
} mmspcl_dtype;

#define MMSPCL_QBLOCK 32
#define MMSPCL_MAX_DIMS 4

typedef struct mmspcl_block_q8_0 { uint16_t d; int8_t q[MMSPCL_QBLOCK]; } mmspcl_block_q8_0;
typedef struct mmspcl_block_q4_0 { uint16_t d; uint8_t q[MMSPCL_QBLOCK / 2]; } mmspcl_block_q4_0;

/* A tensor is a contiguous row-major view: ne[0] is the OUTERMOST dimension, ne[ndim-1] the
   innermost (PyTorch order). A Linear weight [out, in] has ne = {out, in}. */
typedef struct mmspcl_tensor {
    const char *name;
    mmspcl_dtype dtype;
    int ndim;
    int64_t ne[MMSPCL_MAX_DIMS];
    const void *data;
    size_t nbytes;
} mmspcl_tensor;

const char *mmspcl_dtype_name(mmspcl_dtype t);
int mmspcl_dtype_from_name(const char *name, mmspcl_dtype *out); /* "f32","q8_0",...: 0 ok */
/* Bytes used by n consecutive values (n must be a multiple of 32 for quantized types);
   0 when n is not valid for the type. */
size_t mmspcl_dtype_row_size(mmspcl_dtype t, int64_t n);
int64_t mmspcl_tensor_nelements(const mmspcl_tensor *t);

float mmspcl_fp16_to_fp32(uint16_t h);
uint16_t mmspcl_fp32_to_fp16(float f);      /* round to nearest even, as PyTorch's .half() */
float mmspcl_bf16_to_fp32(uint16_t h);
uint16_t mmspcl_fp32_to_bf16(float f);      /* round to nearest even, as PyTorch's .bfloat16() */

/* Convert n floats to dtype t (n a multiple of 32 for quantized types). */
mmspcl_status mmspcl_quantize_row(mmspcl_dtype t, const float *src, void *dst, int64_t n);
/* Convert n values of dtype t to floats. */
mmspcl_status mmspcl_dequantize_row(mmspcl_dtype t, const void *src, float *dst, int64_t n);

/* ---------------------------------------------------------------------------------------------
   Arena: one block of memory, carved into 64-byte aligned pieces; reset between forwards.
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_arena {
    unsigned char *base;
    size_t size, used, peak;
} mmspcl_arena;

mmspcl_status mmspcl_arena_init(mmspcl_arena *a, size_t size, mmspcl_error *err);
void *mmspcl_arena_alloc(mmspcl_arena *a, size_t bytes); /* NULL when full */
void mmspcl_arena_reset(mmspcl_arena *a);
void mmspcl_arena_free(mmspcl_arena *a);

/* ---------------------------------------------------------------------------------------------
   Weight files (docs/FORMAT.md)
   ------------------------------------------------------------------------------------------ */
typedef enum mmspcl_kv_type {
    MMSPCL_KV_INT = 1,       /* int64 */
    MMSPCL_KV_FLOAT = 2,     /* float64 */
    MMSPCL_KV_STR = 3,       /* UTF-8 bytes */
    MMSPCL_KV_STR_ARRAY = 4  /* list of UTF-8 strings (tokenizer vocab, merges) */
} mmspcl_kv_type;

typedef struct mmspcl_kv {
    const char *key;
    mmspcl_kv_type type;
    int64_t i;
    double f;
    const char *str;          /* STR: NUL-terminated copy */
    size_t str_len;
    int64_t count;            /* STR_ARRAY: number of strings */
    const char *const *strs;  /* STR_ARRAY: NUL-terminated copies */
    const uint32_t *lens;     /* STR_ARRAY: byte lengths */
} mmspcl_kv;

typedef struct mmspcl_weights {
    const unsigned char *bytes;   /* the whole file */
    size_t size;
    int64_t n_kv, n_tensors;
    mmspcl_kv *kv;
    mmspcl_tensor *tensors;
    uint32_t version;
    /* private */
    int storage;                  /* 0 caller's memory, 1 malloc'd copy, 2 mmap */
    void *meta;                   /* copied names and strings */
    void *raw;                    /* storage 1: the allocation (bytes is 64-byte aligned in it) */
} mmspcl_weights;

/* Limits checked while parsing (a file past them is refused, never trusted). */
#define MMSPCL_MAX_TENSORS (1 << 20)
#define MMSPCL_MAX_KV (1 << 16)
#define MMSPCL_MAX_NAME 1024
#define MMSPCL_MAX_TENSOR_BYTES ((uint64_t)1 << 40)

mmspcl_status mmspcl_weights_open(mmspcl_weights **out, const char *path, mmspcl_error *err);
mmspcl_status mmspcl_weights_read(mmspcl_weights **out, const char *path, mmspcl_error *err);
mmspcl_status mmspcl_weights_from_memory(mmspcl_weights **out, const void *bytes, size_t size,
                                         mmspcl_error *err);
void mmspcl_weights_free(mmspcl_weights *w);

const mmspcl_tensor *mmspcl_weights_find(const mmspcl_weights *w, const char *name);
const mmspcl_kv *mmspcl_weights_get(const mmspcl_weights *w, const char *key);
/* These return 1 when the key exists with that type (and set *out), 0 otherwise. */
int mmspcl_weights_get_int(const mmspcl_weights *w, const char *key, int64_t *out);
int mmspcl_weights_get_float(const mmspcl_weights *w, const char *key, double *out);
int mmspcl_weights_get_str(const mmspcl_weights *w, const char *key, const char **out);
/* Fetch a tensor with the expected dtype-independent shape; fills err naming the tensor. */
mmspcl_status mmspcl_weights_expect(const mmspcl_weights *w, const char *name, int ndim,
                                    const int64_t *ne, const mmspcl_tensor **out,
                                    mmspcl_error *err);

typedef struct mmspcl_writer mmspcl_writer;
typedef void (*mmspcl_progress_fn)(void *user, uint64_t done, uint64_t total);

mmspcl_writer *mmspcl_writer_create(void);  /* NULL when out of memory */
void mmspcl_writer_free(mmspcl_writer *w);
/* Keys and strings are copied. Setting a key twice replaces its value. */
mmspcl_status mmspcl_writer_set_int(mmspcl_writer *w, const char *key, int64_t v);
mmspcl_status mmspcl_writer_set_float(mmspcl_writer *w, const char *key, double v);
mmspcl_status mmspcl_writer_set_str(mmspcl_writer *w, const char *key, const char *s);
mmspcl_status mmspcl_writer_set_str_array(mmspcl_writer *w, const char *key,
                                          const char *const *strs, const uint32_t *lens,
                                          int64_t count); /* lens NULL: strlen */
/* The tensor's data is NOT copied: it must stay valid until mmspcl_writer_save returns.
   shape is PyTorch order (outermost first); nbytes must match dtype and shape. */
mmspcl_status mmspcl_writer_add_tensor(mmspcl_writer *w, const char *name, mmspcl_dtype dtype,
                                       int ndim, const int64_t *shape, const void *data,
                                       size_t nbytes, mmspcl_error *err);
/* Writes path.tmp, then renames it to path; on any failure the temporary file is removed and
   nothing named path is created or changed. progress may be NULL. */
mmspcl_status mmspcl_writer_save(mmspcl_writer *w, const char *path, mmspcl_progress_fn progress,
                                 void *user, mmspcl_error *err);
/* The same bytes into a buffer the caller frees with MMSPCL_FREE (tests, firmware images). */
mmspcl_status mmspcl_writer_save_to_memory(mmspcl_writer *w, unsigned char **out, size_t *size,
                                           mmspcl_error *err);

/* Model parts (declarations): each section documents its own API. */
#include "parts/kernels_api.h"
#include "parts/bpe_api.h"
#include "parts/roberta_api.h"
#include "parts/spcl_api.h"
#include "parts/image_api.h"
#include "parts/clip_api.h"
#include "parts/heads_api.h"
#include "parts/meld_api.h"

#ifdef __cplusplus
}
#endif

#endif /* MMSPCL_H */

/* =============================================================================================
   IMPLEMENTATION
   ========================================================================================== */
#ifdef MMSPCL_IMPLEMENTATION
#ifndef MMSPCL_IMPLEMENTATION_DONE
#define MMSPCL_IMPLEMENTATION_DONE

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#if !defined(MMSPCL_NO_MMAP) && !defined(MMSPCL_NO_STDIO) && (defined(__unix__) || defined(__APPLE__))
#define MMSPCL__HAVE_MMAP 1
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

/* OpenMP: MMSPCL__OMP_FOR in front of a for loop splits it statically over the threads; without
   -fopenmp it is nothing (and -Wall sees no unknown pragma). */
#ifdef _OPENMP
#include <omp.h>
#define MMSPCL__OMP_FOR _Pragma("omp parallel for schedule(static)")
#define MMSPCL__MAX_THREADS() omp_get_max_threads()
#define MMSPCL__THREAD_ID() omp_get_thread_num()
#else
#define MMSPCL__OMP_FOR
#define MMSPCL__MAX_THREADS() 1
#define MMSPCL__THREAD_ID() 0
#endif

#ifndef MMSPCL_MALLOC
#define MMSPCL_MALLOC(sz) malloc(sz)
#define MMSPCL_REALLOC(p, sz) realloc(p, sz)
#define MMSPCL_FREE(p) free(p)
#endif
#ifndef MMSPCL_ASSERT
#define MMSPCL_ASSERT(x) ((void)0)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
   Errors
   ------------------------------------------------------------------------------------------ */
#define mmspcl__fail mmspcl_error_set
mmspcl_status mmspcl_error_set(mmspcl_error *err, mmspcl_status st, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = st;
    }
    return st;
}

const char *mmspcl_status_name(mmspcl_status st) {
    switch (st) {
    case MMSPCL_OK: return "ok";
    case MMSPCL_ERR_IO: return "i/o error";
    case MMSPCL_ERR_FORMAT: return "bad format";
    case MMSPCL_ERR_NOMEM: return "out of memory";
    case MMSPCL_ERR_ARG: return "invalid argument";
    case MMSPCL_ERR_UNSUPPORTED: return "unsupported";
    case MMSPCL_ERR_NOT_FOUND: return "not found";
    }
    return "unknown status";
}

/* ---------------------------------------------------------------------------------------------
   Half precision and bfloat16
   ------------------------------------------------------------------------------------------ */
static uint32_t mmspcl__f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float mmspcl__bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float mmspcl_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return mmspcl__bits_f32(sign | 0x7f800000u | (man << 13)); /* inf, nan */
    if (exp == 0) {                                     /* zero and subnormals: man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return mmspcl__bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t mmspcl_fp32_to_fp16(float f) {
    uint32_t u = mmspcl__f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000, abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 : 0));
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);  /* rounds to >= 65520: inf */
    if (abs < 0x38800000u) {                                     /* result is subnormal or 0 */
        /* value / 2^-24 rounded to nearest even; float arithmetic is exact enough here
           because the magic addition rounds in the FPU's nearest-even mode. */
        float v = mmspcl__bits_f32(abs) + 0.5f;  /* 0.5 = 2^-1: puts 2^-24 units in the low bits */
        return (uint16_t)(sign | (mmspcl__f32_bits(v) - 0x3f000000u));
    }
    {
        uint32_t mant_odd = (abs >> 13) & 1;
        abs += 0xc8000fffu + mant_odd;   /* rebias exponent (-112 << 23) and round to even */
        return (uint16_t)(sign | (abs >> 13));
    }
}

float mmspcl_bf16_to_fp32(uint16_t h) { return mmspcl__bits_f32((uint32_t)h << 16); }

uint16_t mmspcl_fp32_to_bf16(float f) {
    uint32_t u = mmspcl__f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet nan */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* ---------------------------------------------------------------------------------------------
   Data types, quantization blocks
   ------------------------------------------------------------------------------------------ */
static const char *const mmspcl__dtype_names[MMSPCL_DTYPE_COUNT] = {
    "f32", "f16", "bf16", "q8_0", "q4_0", "i32"};

const char *mmspcl_dtype_name(mmspcl_dtype t) {
    return (unsigned)t < MMSPCL_DTYPE_COUNT ? mmspcl__dtype_names[t] : "?";
}

int mmspcl_dtype_from_name(const char *name, mmspcl_dtype *out) {
    int i;
    for (i = 0; i < MMSPCL_DTYPE_COUNT; i++)
        if (strcmp(name, mmspcl__dtype_names[i]) == 0) { *out = (mmspcl_dtype)i; return 0; }
    return -1;
}

size_t mmspcl_dtype_row_size(mmspcl_dtype t, int64_t n) {
    if (n < 0) return 0;
    switch (t) {
    case MMSPCL_F32: case MMSPCL_I32: return (size_t)n * 4;
    case MMSPCL_F16: case MMSPCL_BF16: return (size_t)n * 2;
    case MMSPCL_Q8_0: return n % MMSPCL_QBLOCK ? 0 : (size_t)(n / MMSPCL_QBLOCK) * sizeof(mmspcl_block_q8_0);
    case MMSPCL_Q4_0: return n % MMSPCL_QBLOCK ? 0 : (size_t)(n / MMSPCL_QBLOCK) * sizeof(mmspcl_block_q4_0);
    default: return 0;
    }
}

int64_t mmspcl_tensor_nelements(const mmspcl_tensor *t) {
    int64_t n = 1;
    int i;
    for (i = 0; i < t->ndim; i++) n *= t->ne[i];
    return n;
}

/* q8_0: d = max|x| / 127, q = round(x / d). */
static void mmspcl__quantize_q8_0(const float *x, mmspcl_block_q8_0 *b, int64_t nblocks) {
    int64_t i;
    int j;
    for (i = 0; i < nblocks; i++, x += MMSPCL_QBLOCK) {
        float amax = 0.0f, d, id;
        for (j = 0; j < MMSPCL_QBLOCK; j++) amax = fmaxf(amax, fabsf(x[j]));
        d = amax / 127.0f;
        id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = mmspcl_fp32_to_fp16(d);
        for (j = 0; j < MMSPCL_QBLOCK; j++) b[i].q[j] = (int8_t)lroundf(x[j] * id);
    }
}

/* q4_0: the value of largest magnitude m maps to -8, so d = m / -8 and q = clamp(round(x/d)+8).
   Using the signed extreme (not |m| / 7) uses all 16 levels, as ggml's q4_0 does. */
static void mmspcl__quantize_q4_0(const float *x, mmspcl_block_q4_0 *b, int64_t nblocks) {
    int64_t i;
    int j;
    for (i = 0; i < nblocks; i++, x += MMSPCL_QBLOCK) {
        float amax = 0.0f, m = 0.0f, d, id;
        for (j = 0; j < MMSPCL_QBLOCK; j++)
            if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); m = x[j]; }
        d = m / -8.0f;
        id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = mmspcl_fp32_to_fp16(d);
        for (j = 0; j < MMSPCL_QBLOCK / 2; j++) {
            /* clamp before the conversion: (int) of nan/inf (a block with inf, or a tiny d whose
               1/d overflows) is undefined behaviour; finite results are unchanged */
            float vl = x[j] * id + 8.5f, vh = x[j + 16] * id + 8.5f;
            int lo = vl >= 15.0f ? 15 : vl > 0.0f ? (int)vl : 0, hi = vh >= 15.0f ? 15 : vh > 0.0f ? (int)vh : 0;
            b[i].q[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

mmspcl_status mmspcl_quantize_row(mmspcl_dtype t, const float *src, void *dst, int64_t n) {
    int64_t i;
    if (n < 0 || (mmspcl_dtype_row_size(t, n) == 0 && n != 0)) return MMSPCL_ERR_ARG;
    switch (t) {
    case MMSPCL_F32: memmove(dst, src, (size_t)n * 4); break;
    case MMSPCL_F16: for (i = 0; i < n; i++) ((uint16_t *)dst)[i] = mmspcl_fp32_to_fp16(src[i]); break;
    case MMSPCL_BF16: for (i = 0; i < n; i++) ((uint16_t *)dst)[i] = mmspcl_fp32_to_bf16(src[i]); break;
    case MMSPCL_Q8_0: mmspcl__quantize_q8_0(src, (mmspcl_block_q8_0 *)dst, n / MMSPCL_QBLOCK); break;
    case MMSPCL_Q4_0: mmspcl__quantize_q4_0(src, (mmspcl_block_q4_0 *)dst, n / MMSPCL_QBLOCK); break;
    default: return MMSPCL_ERR_UNSUPPORTED;
    }
    return MMSPCL_OK;
}

mmspcl_status mmspcl_dequantize_row(mmspcl_dtype t, const void *src, float *dst, int64_t n) {
    int64_t i;
    int j;
    if (n < 0 || (mmspcl_dtype_row_size(t, n) == 0 && n != 0)) return MMSPCL_ERR_ARG;
    switch (t) {
    case MMSPCL_F32: memmove(dst, src, (size_t)n * 4); break;
    case MMSPCL_I32: for (i = 0; i < n; i++) dst[i] = (float)((const int32_t *)src)[i]; break;
    case MMSPCL_F16: for (i = 0; i < n; i++) dst[i] = mmspcl_fp16_to_fp32(((const uint16_t *)src)[i]); break;
    case MMSPCL_BF16: for (i = 0; i < n; i++) dst[i] = mmspcl_bf16_to_fp32(((const uint16_t *)src)[i]); break;
    case MMSPCL_Q8_0: {
        const mmspcl_block_q8_0 *b = (const mmspcl_block_q8_0 *)src;
        for (i = 0; i < n / MMSPCL_QBLOCK; i++) {
            float d = mmspcl_fp16_to_fp32(b[i].d);
            for (j = 0; j < MMSPCL_QBLOCK; j++) dst[i * MMSPCL_QBLOCK + j] = d * (float)b[i].q[j];
        }
        break;
    }
    case MMSPCL_Q4_0: {
        const mmspcl_block_q4_0 *b = (const mmspcl_block_q4_0 *)src;
        for (i = 0; i < n / MMSPCL_QBLOCK; i++) {
            float d = mmspcl_fp16_to_fp32(b[i].d);
            float *y = dst + i * MMSPCL_QBLOCK;
            for (j = 0; j < MMSPCL_QBLOCK / 2; j++) {
                y[j] = d * (float)((b[i].q[j] & 15) - 8);
                y[j + 16] = d * (float)((b[i].q[j] >> 4) - 8);
            }
        }
        break;
    }
    default: return MMSPCL_ERR_UNSUPPORTED;
    }
    return MMSPCL_OK;
}

/* ---------------------------------------------------------------------------------------------
   Arena
   ------------------------------------------------------------------------------------------ */
mmspcl_status mmspcl_arena_init(mmspcl_arena *a, size_t size, mmspcl_error *err) {
    memset(a, 0, sizeof *a);
    if (size == 0) return MMSPCL_OK;
    /* over-allocate so the first piece can be aligned whatever malloc returns */
    a->base = (unsigned char *)MMSPCL_MALLOC(size + 64);
    if (!a->base) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "arena: cannot allocate %zu bytes", size);
    a->size = size + 64;
    return MMSPCL_OK;
}

void *mmspcl_arena_alloc(mmspcl_arena *a, size_t bytes) {
    uintptr_t start = ((uintptr_t)a->base + a->used + 63) & ~(uintptr_t)63;
    size_t off = (size_t)(start - (uintptr_t)a->base);
    if (!a->base || off > a->size || bytes > a->size - off) return NULL;
    a->used = off + bytes;
    if (a->used > a->peak) a->peak = a->used;
    return (void *)start;
}

void mmspcl_arena_reset(mmspcl_arena *a) { a->used = 0; }

void mmspcl_arena_free(mmspcl_arena *a) {
    MMSPCL_FREE(a->base);
    memset(a, 0, sizeof *a);
}

/* ---------------------------------------------------------------------------------------------
   Weight file reader. Layout (docs/FORMAT.md):
     header   64 bytes: "MMSPCLWF" u32 version u32 alignment u64 n_kv u64 n_tensors
                        u64 meta_size u64 data_offset u64 data_size u64 reserved
     metadata key/values, then tensor records
     padding  to data_offset (a multiple of alignment)
     data     tensors at data_offset + record.offset
   ------------------------------------------------------------------------------------------ */
#define MMSPCL__MAGIC "MMSPCLWF"
#define MMSPCL__FORMAT_VERSION 1u
#define MMSPCL__HEADER_SIZE 64u
#define MMSPCL__ALIGN 64u

typedef struct mmspcl__cursor {
    const unsigned char *p;
    size_t size, pos;
    const char *label;
    mmspcl_error *err;
} mmspcl__cursor;

static uint64_t mmspcl__le(const unsigned char *p, int n) {
    uint64_t v = 0;
    int i;
    for (i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static mmspcl_status mmspcl__take(mmspcl__cursor *c, size_t n, const unsigned char **out,
                                  const char *what) {
    if (n > c->size - c->pos)
        return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT,
                            "%s: %s at byte %zu needs %zu bytes but the metadata ends at byte %zu",
                            c->label, what, c->pos, n, c->size);
    *out = c->p + c->pos;
    c->pos += n;
    return MMSPCL_OK;
}

static mmspcl_status mmspcl__read_uint(mmspcl__cursor *c, int n, uint64_t *v, const char *what) {
    const unsigned char *p = NULL;
    mmspcl_status st = mmspcl__take(c, (size_t)n, &p, what);
    *v = st == MMSPCL_OK ? mmspcl__le(p, n) : 0;
    return st;
}

/* Bump allocator for the copied names and strings (one block, freed at once). */
typedef struct mmspcl__strpool { char *base; size_t size, used; } mmspcl__strpool;

static char *mmspcl__pool_put(mmspcl__strpool *sp, const unsigned char *s, size_t n) {
    char *out;
    if (n + 1 > sp->size - sp->used) return NULL;
    out = sp->base + sp->used;
    memcpy(out, s, n);
    out[n] = 0;
    sp->used += n + 1;
    return out;
}

static void *mmspcl__pool_alloc(mmspcl__strpool *sp, size_t n) {
    size_t start = (sp->used + 7) & ~(size_t)7;
    if (start > sp->size || n > sp->size - start) return NULL;
    sp->used = start + n;
    return sp->base + start;
}

static mmspcl_status mmspcl__read_string(mmspcl__cursor *c, mmspcl__strpool *sp, int lenbytes,
                                         const char **out, size_t *len, const char *what) {
    uint64_t n;
    const unsigned char *p = NULL;
    mmspcl_status st = mmspcl__read_uint(c, lenbytes, &n, what);
    if (st) return st;
    if ((st = mmspcl__take(c, (size_t)n, &p, what))) return st;
    *out = mmspcl__pool_put(sp, p, (size_t)n);
    if (!*out) return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT, "%s: %s too long", c->label, what);
    if (len) *len = (size_t)n;
    return MMSPCL_OK;
}

static mmspcl_status mmspcl__parse_kv(mmspcl__cursor *c, mmspcl__strpool *sp, mmspcl_kv *kv) {
    uint64_t type, count, i;
    size_t key_at = c->pos;
    mmspcl_status st = mmspcl__read_string(c, sp, 2, &kv->key, NULL, "key name");
    if (st) return st;
    if ((st = mmspcl__read_uint(c, 1, &type, "key type"))) return st;
    kv->type = (mmspcl_kv_type)type;
    switch (type) {
    case MMSPCL_KV_INT: {
        uint64_t v;
        if ((st = mmspcl__read_uint(c, 8, &v, "int value"))) return st;
        kv->i = (int64_t)v;
        return MMSPCL_OK;
    }
    case MMSPCL_KV_FLOAT: {
        uint64_t v;
        if ((st = mmspcl__read_uint(c, 8, &v, "float value"))) return st;
        memcpy(&kv->f, &v, 8);
        return MMSPCL_OK;
    }
    case MMSPCL_KV_STR:
        return mmspcl__read_string(c, sp, 4, &kv->str, &kv->str_len, "string value");
    case MMSPCL_KV_STR_ARRAY: {
        const char **strs;
        uint32_t *lens;
        if ((st = mmspcl__read_uint(c, 8, &count, "string array count"))) return st;
        /* each string takes at least its 4 length bytes: bounds count by the bytes left */
        if (count > (c->size - c->pos) / 4)
            return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT,
                                "%s: key '%s' at byte %zu claims %llu strings, more than the file holds",
                                c->label, kv->key, key_at, (unsigned long long)count);
        strs = (const char **)mmspcl__pool_alloc(sp, (size_t)count * sizeof(char *));
        lens = (uint32_t *)mmspcl__pool_alloc(sp, (size_t)count * sizeof(uint32_t));
        if (!strs || !lens) return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT, "%s: key '%s' too large", c->label, kv->key);
        for (i = 0; i < count; i++) {
            size_t len;
            if ((st = mmspcl__read_string(c, sp, 4, &strs[i], &len, "string array item"))) return st;
            lens[i] = (uint32_t)len;
        }
        kv->count = (int64_t)count;
        kv->strs = strs;
        kv->lens = lens;
        return MMSPCL_OK;
    }
    default:
        return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT, "%s: key '%s' at byte %zu has unknown type %llu",
                            c->label, kv->key, key_at, (unsigned long long)type);
    }
}

static mmspcl_status mmspcl__parse_tensor(mmspcl__cursor *c, mmspcl__strpool *sp,
                                          uint64_t data_size, mmspcl_tensor *t, uint64_t *offset) {
    uint64_t dtype, ndim, v, nel = 1, nbytes;
    size_t rec_at = c->pos;
    int i;
    mmspcl_status st = mmspcl__read_string(c, sp, 2, &t->name, NULL, "tensor name");
    if (st) return st;
    if ((st = mmspcl__read_uint(c, 1, &dtype, "tensor dtype"))) return st;
    if ((st = mmspcl__read_uint(c, 1, &ndim, "tensor ndim"))) return st;
    if (dtype >= MMSPCL_DTYPE_COUNT)
        return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT, "%s: tensor '%s' (record at byte %zu) has unknown dtype %llu",
                            c->label, t->name, rec_at, (unsigned long long)dtype);
    if (ndim < 1 || ndim > MMSPCL_MAX_DIMS)
        return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT, "%s: tensor '%s' has %llu dimensions (1..%d allowed)",
                            c->label, t->name, (unsigned long long)ndim, MMSPCL_MAX_DIMS);
    t->dtype = (mmspcl_dtype)dtype;
    t->ndim = (int)ndim;
    for (i = 0; i < (int)ndim; i++) {
        if ((st = mmspcl__read_uint(c, 8, &v, "tensor dimension"))) return st;
        if (v == 0 || v > MMSPCL_MAX_TENSOR_BYTES || nel > MMSPCL_MAX_TENSOR_BYTES / v)
            return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT, "%s: tensor '%s' dimension %d = %llu is zero or overflows",
                                c->label, t->name, i, (unsigned long long)v);
        nel *= v;
        t->ne[i] = (int64_t)v;
    }
    for (; i < MMSPCL_MAX_DIMS; i++) t->ne[i] = 1;
    if ((st = mmspcl__read_uint(c, 8, offset, "tensor offset"))) return st;
    if ((st = mmspcl__read_uint(c, 8, &nbytes, "tensor size"))) return st;
    v = mmspcl_dtype_row_size(t->dtype, t->ne[t->ndim - 1]);
    if (v == 0)
        return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT, "%s: tensor '%s': innermost dimension %lld is not valid for %s",
                            c->label, t->name, (long long)t->ne[t->ndim - 1], mmspcl_dtype_name(t->dtype));
    if (v * (nel / (uint64_t)t->ne[t->ndim - 1]) != nbytes || nbytes > MMSPCL_MAX_TENSOR_BYTES)
        return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT, "%s: tensor '%s' records %llu bytes, its shape needs %llu",
                            c->label, t->name, (unsigned long long)nbytes,
                            (unsigned long long)(v * (nel / (uint64_t)t->ne[t->ndim - 1])));
    if (*offset % MMSPCL__ALIGN || *offset > data_size || nbytes > data_size - *offset)
        return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT,
                            "%s: tensor '%s' data [%llu, +%llu) is misaligned or outside the data section (%llu bytes)",
                            c->label, t->name, (unsigned long long)*offset, (unsigned long long)nbytes,
                            (unsigned long long)data_size);
    t->nbytes = (size_t)nbytes;
    return MMSPCL_OK;
}

typedef struct mmspcl__span { uint64_t begin, end; const char *name; } mmspcl__span;

static int mmspcl__span_cmp(const void *a, const void *b) {
    const mmspcl__span *x = (const mmspcl__span *)a, *y = (const mmspcl__span *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int mmspcl__strptr_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The n strings at first, first + stride, ... (bytes) must differ: sorted copies, neighbours. */
static mmspcl_status mmspcl__unique_names(const char *const *first, size_t stride, size_t n,
                                          const char *what, const char *label, mmspcl_error *err) {
    const char **names;
    size_t i;
    mmspcl_status st = MMSPCL_OK;
    if (n < 2) return MMSPCL_OK;
    if (!(names = (const char **)MMSPCL_MALLOC(n * sizeof *names))) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: out of memory", label);
    for (i = 0; i < n; i++) names[i] = *(const char *const *)((const char *)first + i * stride);
    qsort(names, n, sizeof *names, mmspcl__strptr_cmp);
    for (i = 1; i < n && !st; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            st = mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %s '%s' appears twice", label, what, names[i]);
    MMSPCL_FREE(names);
    return st;
}

static mmspcl_status mmspcl__parse(mmspcl_weights *w, const char *label, mmspcl_error *err) {
    mmspcl__cursor c;
    mmspcl__strpool sp;
    uint64_t version, align, n_kv, n_tensors, meta_size, data_offset, data_size;
    const unsigned char *h;
    mmspcl__span *spans = NULL;
    uint64_t i;
    mmspcl_status st;

    c.p = w->bytes; c.size = w->size; c.pos = 0; c.label = label; c.err = err;
    if (w->size < MMSPCL__HEADER_SIZE)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %zu bytes is shorter than the %u-byte header",
                            label, w->size, MMSPCL__HEADER_SIZE);
    h = w->bytes;
    if (memcmp(h, MMSPCL__MAGIC, 8) != 0)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: not an mmspcl weight file (bad magic at byte 0)", label);
    version = mmspcl__le(h + 8, 4);
    align = mmspcl__le(h + 12, 4);
    n_kv = mmspcl__le(h + 16, 8);
    n_tensors = mmspcl__le(h + 24, 8);
    meta_size = mmspcl__le(h + 32, 8);
    data_offset = mmspcl__le(h + 40, 8);
    data_size = mmspcl__le(h + 48, 8);
    if (version != MMSPCL__FORMAT_VERSION)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: format version %llu (this build reads %u)",
                            label, (unsigned long long)version, MMSPCL__FORMAT_VERSION);
    if (align != MMSPCL__ALIGN)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: alignment %llu at byte 12 (must be %u)",
                            label, (unsigned long long)align, MMSPCL__ALIGN);
    if (n_kv > MMSPCL_MAX_KV || n_tensors > MMSPCL_MAX_TENSORS)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %llu keys / %llu tensors exceed the limits (%d / %d)",
                            label, (unsigned long long)n_kv, (unsigned long long)n_tensors, MMSPCL_MAX_KV, MMSPCL_MAX_TENSORS);
    if (meta_size > w->size - MMSPCL__HEADER_SIZE)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: metadata size %llu at byte 32 runs past the end of the file (%zu bytes)",
                            label, (unsigned long long)meta_size, w->size);
    /* a key record takes at least 7 bytes, a tensor record at least 28: refuse counts the
       metadata cannot hold before allocating for them */
    if (n_kv * 7 + n_tensors * 28 > meta_size)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %llu keys and %llu tensors cannot fit in %llu bytes of metadata",
                            label, (unsigned long long)n_kv, (unsigned long long)n_tensors, (unsigned long long)meta_size);
    if (data_offset % MMSPCL__ALIGN || data_offset < MMSPCL__HEADER_SIZE + meta_size || data_offset > w->size ||
        data_size > w->size - data_offset)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT,
                            "%s: data section [%llu, +%llu) at byte 40 is misaligned, overlaps the metadata or runs past the end of the file (%zu bytes)",
                            label, (unsigned long long)data_offset, (unsigned long long)data_size, w->size);
    w->version = (uint32_t)version;

    /* Every name and string is copied once into a pool bounded by the metadata size, so a lying
       count cannot make us allocate more. Worst case: an empty string-array item takes 4 bytes
       in the file and 1 (NUL) + 8 (pointer) + 4 (length) = 13 in the pool, hence 4x. */
    sp.size = (size_t)meta_size * 4 + 64;
    sp.used = 0;
    w->kv = (mmspcl_kv *)MMSPCL_MALLOC((size_t)(n_kv ? n_kv : 1) * sizeof(mmspcl_kv));
    w->tensors = (mmspcl_tensor *)MMSPCL_MALLOC((size_t)(n_tensors ? n_tensors : 1) * sizeof(mmspcl_tensor));
    sp.base = (char *)MMSPCL_MALLOC(sp.size);
    spans = (mmspcl__span *)MMSPCL_MALLOC((size_t)(n_tensors ? n_tensors : 1) * sizeof(mmspcl__span));
    w->meta = sp.base;
    if (!w->kv || !w->tensors || !sp.base || !spans) {
        MMSPCL_FREE(spans);
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: out of memory for metadata", label);
    }
    memset(w->kv, 0, (size_t)(n_kv ? n_kv : 1) * sizeof(mmspcl_kv));
    memset(w->tensors, 0, (size_t)(n_tensors ? n_tensors : 1) * sizeof(mmspcl_tensor));
    c.pos = MMSPCL__HEADER_SIZE;
    c.size = (size_t)(MMSPCL__HEADER_SIZE + meta_size);  /* records may not run into the data */
    for (i = 0; i < n_kv; i++)
        if ((st = mmspcl__parse_kv(&c, &sp, &w->kv[i]))) goto done;
    w->n_kv = (int64_t)n_kv;
    for (i = 0; i < n_tensors; i++) {
        uint64_t off = 0;
        if ((st = mmspcl__parse_tensor(&c, &sp, data_size, &w->tensors[i], &off))) goto done;
        w->tensors[i].data = w->bytes + data_offset + off;
        spans[i].begin = off;
        spans[i].end = off + w->tensors[i].nbytes;
        spans[i].name = w->tensors[i].name;
    }
    w->n_tensors = (int64_t)n_tensors;
    if (c.pos != c.size) {
        st = mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: metadata ends at byte %zu but the header says %zu",
                          label, c.pos, c.size);
        goto done;
    }
    qsort(spans, (size_t)n_tensors, sizeof *spans, mmspcl__span_cmp);
    for (i = 1; i < n_tensors; i++)
        if (spans[i].begin < spans[i - 1].end) {
            st = mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap at data offset %llu",
                              label, spans[i - 1].name, spans[i].name, (unsigned long long)spans[i].begin);
            goto done;
        }
    /* names index the model and keys its settings: duplicates would be ambiguous */
    if ((st = mmspcl__unique_names(&w->tensors[0].name, sizeof(mmspcl_tensor), (size_t)n_tensors, "tensor name", label, err)) ||
        (st = mmspcl__unique_names(&w->kv[0].key, sizeof(mmspcl_kv), (size_t)n_kv, "key", label, err)))
        goto done;
    st = MMSPCL_OK;
done:
    MMSPCL_FREE(spans);
    return st;
}

static void mmspcl__weights_release(mmspcl_weights *w) {
    if (!w) return;
#ifdef MMSPCL__HAVE_MMAP
    if (w->storage == 2 && w->bytes) munmap((void *)w->bytes, w->size);
#endif
    if (w->storage == 1) MMSPCL_FREE(w->raw);
    MMSPCL_FREE(w->kv);
    MMSPCL_FREE(w->tensors);
    MMSPCL_FREE(w->meta);
    MMSPCL_FREE(w);
}

void mmspcl_weights_free(mmspcl_weights *w) { mmspcl__weights_release(w); }

static mmspcl_status mmspcl__weights_finish(mmspcl_weights *w, const char *label,
                                            mmspcl_weights **out, mmspcl_error *err) {
    mmspcl_status st = mmspcl__parse(w, label, err);
    if (st) { mmspcl__weights_release(w); return st; }
    *out = w;
    return MMSPCL_OK;
}

static mmspcl_weights *mmspcl__weights_new(void) {
    mmspcl_weights *w = (mmspcl_weights *)MMSPCL_MALLOC(sizeof *w);
    if (w) memset(w, 0, sizeof *w);
    return w;
}

mmspcl_status mmspcl_weights_from_memory(mmspcl_weights **out, const void *bytes, size_t size,
                                         mmspcl_error *err) {
    mmspcl_weights *w;
    if (!out || (!bytes && size)) return mmspcl__fail(err, MMSPCL_ERR_ARG, "weights_from_memory: NULL argument");
    *out = NULL;
    if (!(w = mmspcl__weights_new())) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "out of memory");
    w->bytes = (const unsigned char *)bytes;
    w->size = size;
    return mmspcl__weights_finish(w, "<memory>", out, err);
}

#ifndef MMSPCL_NO_STDIO
mmspcl_status mmspcl_weights_read(mmspcl_weights **out, const char *path, mmspcl_error *err) {
    FILE *f;
    long len;
    mmspcl_weights *w;
    unsigned char *buf, *raw;
    if (!out || !path) return mmspcl__fail(err, MMSPCL_ERR_ARG, "weights_read: NULL argument");
    *out = NULL;
    if (!(f = fopen(path, "rb"))) return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: cannot open", path);
    if (fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        fclose(f);
        return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: cannot find the file size", path);
    }
    /* a directory opens and may report a size of LONG_MAX: read one byte before trusting it */
    if (len > 0 && (fgetc(f) == EOF || fseek(f, 0, SEEK_SET))) {
        fclose(f);
        return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: cannot read (a directory?)", path);
    }
    raw = (unsigned char *)MMSPCL_MALLOC((size_t)len + 64);   /* + room to align tensors to 64 */
    if (!raw) { fclose(f); return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: cannot allocate %ld bytes", path, len); }
    buf = raw + ((64 - (uintptr_t)raw % 64) % 64);
    if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        MMSPCL_FREE(raw);
        return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: short read", path);
    }
    fclose(f);
    if (!(w = mmspcl__weights_new())) { MMSPCL_FREE(raw); return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "out of memory"); }
    w->raw = raw;
    w->bytes = buf;
    w->size = (size_t)len;
    w->storage = 1;
    return mmspcl__weights_finish(w, path, out, err);
}

mmspcl_status mmspcl_weights_open(mmspcl_weights **out, const char *path, mmspcl_error *err) {
#ifdef MMSPCL__HAVE_MMAP
    int fd;
    struct stat sb;
    void *map;
    mmspcl_weights *w;
    if (!out || !path) return mmspcl__fail(err, MMSPCL_ERR_ARG, "weights_open: NULL argument");
    *out = NULL;
    if ((fd = open(path, O_RDONLY)) < 0) return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: cannot open", path);
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size == 0) { close(fd); return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: empty file", path); }
    map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return mmspcl_weights_read(out, path, err);  /* e.g. a pipe-backed fs */
    if (!(w = mmspcl__weights_new())) { munmap(map, (size_t)sb.st_size); return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "out of memory"); }
    w->bytes = (const unsigned char *)map;
    w->size = (size_t)sb.st_size;
    w->storage = 2;
    return mmspcl__weights_finish(w, path, out, err);
#else
    return mmspcl_weights_read(out, path, err);
#endif
}
#endif /* MMSPCL_NO_STDIO */

const mmspcl_tensor *mmspcl_weights_find(const mmspcl_weights *w, const char *name) {
    int64_t i;
    for (i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0) return &w->tensors[i];
    return NULL;
}

const mmspcl_kv *mmspcl_weights_get(const mmspcl_weights *w, const char *key) {
    int64_t i;
    for (i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) return &w->kv[i];
    return NULL;
}

int mmspcl_weights_get_int(const mmspcl_weights *w, const char *key, int64_t *out) {
    const mmspcl_kv *kv = mmspcl_weights_get(w, key);
    if (!kv || kv->type != MMSPCL_KV_INT) return 0;
    *out = kv->i;
    return 1;
}

int mmspcl_weights_get_float(const mmspcl_weights *w, const char *key, double *out) {
    const mmspcl_kv *kv = mmspcl_weights_get(w, key);
    if (!kv) return 0;
    if (kv->type == MMSPCL_KV_FLOAT) { *out = kv->f; return 1; }
    if (kv->type == MMSPCL_KV_INT) { *out = (double)kv->i; return 1; }
    return 0;
}

int mmspcl_weights_get_str(const mmspcl_weights *w, const char *key, const char **out) {
    const mmspcl_kv *kv = mmspcl_weights_get(w, key);
    if (!kv || kv->type != MMSPCL_KV_STR) return 0;
    *out = kv->str;
    return 1;
}

mmspcl_status mmspcl_weights_expect(const mmspcl_weights *w, const char *name, int ndim,
                                    const int64_t *ne, const mmspcl_tensor **out,
                                    mmspcl_error *err) {
    const mmspcl_tensor *t = mmspcl_weights_find(w, name);
    int i;
    *out = NULL;
    if (!t) return mmspcl__fail(err, MMSPCL_ERR_NOT_FOUND, "tensor '%s' is missing", name);
    if (t->ndim != ndim)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "tensor '%s' has %d dimensions, expected %d", name, t->ndim, ndim);
    for (i = 0; i < ndim; i++)
        if (t->ne[i] != ne[i])
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "tensor '%s' dimension %d is %lld, expected %lld",
                                name, i, (long long)t->ne[i], (long long)ne[i]);
    *out = t;
    return MMSPCL_OK;
}

/* ---------------------------------------------------------------------------------------------
   Weight file writer
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl__wkv {
    char *key;
    mmspcl_kv_type type;
    int64_t i;
    double f;
    unsigned char *blob;   /* STR: bytes; STR_ARRAY: serialised items (u32 len + bytes)* */
    size_t blob_len;
    int64_t count;
} mmspcl__wkv;

typedef struct mmspcl__wtensor {
    char *name;
    mmspcl_dtype dtype;
    int ndim;
    int64_t ne[MMSPCL_MAX_DIMS];
    const void *data;
    size_t nbytes;
} mmspcl__wtensor;

struct mmspcl_writer {
    mmspcl__wkv *kv;
    int64_t n_kv, cap_kv;
    mmspcl__wtensor *t;
    int64_t n_t, cap_t;
};

static char *mmspcl__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = (char *)MMSPCL_MALLOC(n);
    if (d) memcpy(d, s, n);
    return d;
}

static int mmspcl__grow(void **p, int64_t *cap, int64_t need, size_t elem) {
    void *np;
    int64_t nc;
    if (need <= *cap) return 0;
    nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    if (!(np = MMSPCL_REALLOC(*p, (size_t)nc * elem))) return -1;
    *p = np;
    *cap = nc;
    return 0;
}

mmspcl_writer *mmspcl_writer_create(void) {
    mmspcl_writer *w = (mmspcl_writer *)MMSPCL_MALLOC(sizeof *w);
    if (w) memset(w, 0, sizeof *w);
    return w;
}

void mmspcl_writer_free(mmspcl_writer *w) {
    int64_t i;
    if (!w) return;
    for (i = 0; i < w->n_kv; i++) { MMSPCL_FREE(w->kv[i].key); MMSPCL_FREE(w->kv[i].blob); }
    for (i = 0; i < w->n_t; i++) MMSPCL_FREE(w->t[i].name);
    MMSPCL_FREE(w->kv);
    MMSPCL_FREE(w->t);
    MMSPCL_FREE(w);
}

/* Finds key's slot (emptied for the new value) or appends one. */
static int mmspcl__key_ok(const char *key) { return key && strlen(key) <= MMSPCL_MAX_NAME; }

static mmspcl__wkv *mmspcl__writer_slot(mmspcl_writer *w, const char *key) {
    int64_t i;
    mmspcl__wkv *kv;
    if (!mmspcl__key_ok(key)) return NULL;
    for (i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) break;
    if (i < w->n_kv) {
        kv = &w->kv[i];
        MMSPCL_FREE(kv->blob);
    } else {
        if (mmspcl__grow((void **)&w->kv, &w->cap_kv, w->n_kv + 1, sizeof *w->kv)) return NULL;
        kv = &w->kv[w->n_kv];
        memset(kv, 0, sizeof *kv);
        if (!(kv->key = mmspcl__strdup(key))) return NULL;
        w->n_kv++;
    }
    /* a valid value until the caller fills the slot: a set_* that then runs out of memory
       leaves the key as int 0, never a string without its bytes */
    kv->type = MMSPCL_KV_INT;
    kv->i = 0;
    kv->blob = NULL;
    kv->blob_len = 0;
    kv->count = 0;
    return kv;
}

mmspcl_status mmspcl_writer_set_int(mmspcl_writer *w, const char *key, int64_t v) {
    mmspcl__wkv *kv = mmspcl__writer_slot(w, key);
    if (!kv) return mmspcl__key_ok(key) ? MMSPCL_ERR_NOMEM : MMSPCL_ERR_ARG;
    kv->type = MMSPCL_KV_INT;
    kv->i = v;
    return MMSPCL_OK;
}

mmspcl_status mmspcl_writer_set_float(mmspcl_writer *w, const char *key, double v) {
    mmspcl__wkv *kv = mmspcl__writer_slot(w, key);
    if (!kv) return mmspcl__key_ok(key) ? MMSPCL_ERR_NOMEM : MMSPCL_ERR_ARG;
    kv->type = MMSPCL_KV_FLOAT;
    kv->f = v;
    return MMSPCL_OK;
}

mmspcl_status mmspcl_writer_set_str(mmspcl_writer *w, const char *key, const char *s) {
    size_t n = strlen(s);
    mmspcl__wkv *kv;
    if (!mmspcl__key_ok(key)) return MMSPCL_ERR_ARG;
    kv = mmspcl__writer_slot(w, key);
    if (!kv || !(kv->blob = (unsigned char *)MMSPCL_MALLOC(n + 1))) return MMSPCL_ERR_NOMEM;
    memcpy(kv->blob, s, n);
    kv->blob_len = n;
    kv->type = MMSPCL_KV_STR;
    return MMSPCL_OK;
}

static void mmspcl__put_le(unsigned char *p, uint64_t v, int n) {
    int i;
    for (i = 0; i < n; i++, v >>= 8) p[i] = (unsigned char)(v & 0xff);
}

mmspcl_status mmspcl_writer_set_str_array(mmspcl_writer *w, const char *key,
                                          const char *const *strs, const uint32_t *lens,
                                          int64_t count) {
    size_t total = 0, pos = 0;
    int64_t i;
    mmspcl__wkv *kv;
    if (count < 0) return MMSPCL_ERR_ARG;
    for (i = 0; i < count; i++) total += 4 + (lens ? lens[i] : strlen(strs[i]));
    if (!mmspcl__key_ok(key)) return MMSPCL_ERR_ARG;
    kv = mmspcl__writer_slot(w, key);
    if (!kv || !(kv->blob = (unsigned char *)MMSPCL_MALLOC(total + 1))) return MMSPCL_ERR_NOMEM;
    for (i = 0; i < count; i++) {
        size_t n = lens ? lens[i] : strlen(strs[i]);
        mmspcl__put_le(kv->blob + pos, n, 4);
        memcpy(kv->blob + pos + 4, strs[i], n);
        pos += 4 + n;
    }
    kv->blob_len = total;
    kv->count = count;
    kv->type = MMSPCL_KV_STR_ARRAY;
    return MMSPCL_OK;
}

mmspcl_status mmspcl_writer_add_tensor(mmspcl_writer *w, const char *name, mmspcl_dtype dtype,
                                       int ndim, const int64_t *shape, const void *data,
                                       size_t nbytes, mmspcl_error *err) {
    mmspcl__wtensor *t;
    uint64_t nel = 1, need;
    int64_t i;
    if (!name || strlen(name) > MMSPCL_MAX_NAME || !*name)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "writer: tensor name empty or longer than %d bytes", MMSPCL_MAX_NAME);
    if ((unsigned)dtype >= MMSPCL_DTYPE_COUNT || ndim < 1 || ndim > MMSPCL_MAX_DIMS)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "writer: tensor '%s' has a bad dtype or %d dimensions", name, ndim);
    for (i = 0; i < ndim; i++) {
        if (shape[i] <= 0 || (uint64_t)shape[i] > MMSPCL_MAX_TENSOR_BYTES / nel)
            return mmspcl__fail(err, MMSPCL_ERR_ARG, "writer: tensor '%s' dimension %lld is zero, negative or too large",
                                name, (long long)i);
        nel *= (uint64_t)shape[i];
    }
    need = mmspcl_dtype_row_size(dtype, shape[ndim - 1]) * (nel / (uint64_t)shape[ndim - 1]);
    if (need == 0 || need != nbytes)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "writer: tensor '%s' (%s) has %zu bytes, its shape needs %llu",
                            name, mmspcl_dtype_name(dtype), nbytes, (unsigned long long)need);
    for (i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return mmspcl__fail(err, MMSPCL_ERR_ARG, "writer: tensor '%s' added twice", name);
    if (mmspcl__grow((void **)&w->t, &w->cap_t, w->n_t + 1, sizeof *w->t))
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "writer: out of memory");
    t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    if (!(t->name = mmspcl__strdup(name))) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "writer: out of memory");
    t->dtype = dtype;
    t->ndim = ndim;
    for (i = 0; i < ndim; i++) t->ne[i] = shape[i];
    t->data = data;
    t->nbytes = nbytes;
    w->n_t++;
    return MMSPCL_OK;
}

static uint64_t mmspcl__align_up(uint64_t v) { return (v + MMSPCL__ALIGN - 1) & ~(uint64_t)(MMSPCL__ALIGN - 1); }

/* Serialises header + metadata (padded to the data offset) into one buffer. */
static mmspcl_status mmspcl__writer_meta(const mmspcl_writer *w, unsigned char **out, size_t *out_len,
                                         uint64_t *data_size, mmspcl_error *err) {
    size_t meta = 0, pos;
    uint64_t off = 0, data_offset;
    int64_t i;
    int d;
    unsigned char *b;
    for (i = 0; i < w->n_kv; i++) {
        const mmspcl__wkv *kv = &w->kv[i];
        meta += 2 + strlen(kv->key) + 1;
        meta += kv->type == MMSPCL_KV_STR ? 4 + kv->blob_len : kv->type == MMSPCL_KV_STR_ARRAY ? 8 + kv->blob_len : 8;
    }
    for (i = 0; i < w->n_t; i++) meta += 2 + strlen(w->t[i].name) + 2 + 8 * (size_t)w->t[i].ndim + 16;
    data_offset = mmspcl__align_up(MMSPCL__HEADER_SIZE + meta);
    b = (unsigned char *)MMSPCL_MALLOC((size_t)data_offset);
    if (!b) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "writer: out of memory");
    memset(b, 0, (size_t)data_offset);
    pos = MMSPCL__HEADER_SIZE;
    for (i = 0; i < w->n_kv; i++) {
        const mmspcl__wkv *kv = &w->kv[i];
        size_t kl = strlen(kv->key);
        mmspcl__put_le(b + pos, kl, 2); memcpy(b + pos + 2, kv->key, kl); pos += 2 + kl;
        b[pos++] = (unsigned char)kv->type;
        switch (kv->type) {
        case MMSPCL_KV_INT: mmspcl__put_le(b + pos, (uint64_t)kv->i, 8); pos += 8; break;
        case MMSPCL_KV_FLOAT: { uint64_t u; memcpy(&u, &kv->f, 8); mmspcl__put_le(b + pos, u, 8); pos += 8; break; }
        case MMSPCL_KV_STR: mmspcl__put_le(b + pos, kv->blob_len, 4); memcpy(b + pos + 4, kv->blob, kv->blob_len); pos += 4 + kv->blob_len; break;
        case MMSPCL_KV_STR_ARRAY: mmspcl__put_le(b + pos, (uint64_t)kv->count, 8); memcpy(b + pos + 8, kv->blob, kv->blob_len); pos += 8 + kv->blob_len; break;
        }
    }
    for (i = 0; i < w->n_t; i++) {
        const mmspcl__wtensor *t = &w->t[i];
        size_t nl = strlen(t->name);
        mmspcl__put_le(b + pos, nl, 2); memcpy(b + pos + 2, t->name, nl); pos += 2 + nl;
        b[pos++] = (unsigned char)t->dtype;
        b[pos++] = (unsigned char)t->ndim;
        for (d = 0; d < t->ndim; d++) { mmspcl__put_le(b + pos, (uint64_t)t->ne[d], 8); pos += 8; }
        mmspcl__put_le(b + pos, off, 8);
        mmspcl__put_le(b + pos + 8, t->nbytes, 8);
        pos += 16;
        off = mmspcl__align_up(off + t->nbytes);
    }
    MMSPCL_ASSERT(pos == MMSPCL__HEADER_SIZE + meta);
    memcpy(b, MMSPCL__MAGIC, 8);
    mmspcl__put_le(b + 8, MMSPCL__FORMAT_VERSION, 4);
    mmspcl__put_le(b + 12, MMSPCL__ALIGN, 4);
    mmspcl__put_le(b + 16, (uint64_t)w->n_kv, 8);
    mmspcl__put_le(b + 24, (uint64_t)w->n_t, 8);
    mmspcl__put_le(b + 32, meta, 8);
    mmspcl__put_le(b + 40, data_offset, 8);
    mmspcl__put_le(b + 48, off, 8);
    *out = b;
    *out_len = (size_t)data_offset;
    *data_size = off;
    return MMSPCL_OK;
}

mmspcl_status mmspcl_writer_save_to_memory(mmspcl_writer *w, unsigned char **out, size_t *size,
                                           mmspcl_error *err) {
    unsigned char *meta, *b;
    size_t meta_len;
    uint64_t data_size, off = 0;
    int64_t i;
    mmspcl_status st = mmspcl__writer_meta(w, &meta, &meta_len, &data_size, err);
    if (st) return st;
    b = (unsigned char *)MMSPCL_MALLOC(meta_len + (size_t)data_size);
    if (!b) { MMSPCL_FREE(meta); return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "writer: out of memory"); }
    memcpy(b, meta, meta_len);
    memset(b + meta_len, 0, (size_t)data_size);
    for (i = 0; i < w->n_t; i++) {
        memcpy(b + meta_len + off, w->t[i].data, w->t[i].nbytes);
        off = mmspcl__align_up(off + w->t[i].nbytes);
    }
    MMSPCL_FREE(meta);
    *out = b;
    *size = meta_len + (size_t)data_size;
    return MMSPCL_OK;
}

#ifndef MMSPCL_NO_STDIO
mmspcl_status mmspcl_writer_save(mmspcl_writer *w, const char *path, mmspcl_progress_fn progress,
                                 void *user, mmspcl_error *err) {
    static const unsigned char zeros[MMSPCL__ALIGN] = {0};
    unsigned char *meta;
    size_t meta_len, plen = strlen(path);
    uint64_t data_size, written = 0;
    int64_t i;
    char *tmp;
    FILE *f;
    mmspcl_status st = mmspcl__writer_meta(w, &meta, &meta_len, &data_size, err);
    if (st) return st;
    if (!(tmp = (char *)MMSPCL_MALLOC(plen + 5))) { MMSPCL_FREE(meta); return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "writer: out of memory"); }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    if (!(f = fopen(tmp, "wb"))) {
        st = mmspcl__fail(err, MMSPCL_ERR_IO, "%s: cannot create", tmp);
        goto out;
    }
    if (fwrite(meta, 1, meta_len, f) != meta_len) goto write_error;
    for (i = 0; i < w->n_t; i++) {
        const unsigned char *p = (const unsigned char *)w->t[i].data;
        size_t left = w->t[i].nbytes, pad = (size_t)(mmspcl__align_up(w->t[i].nbytes) - w->t[i].nbytes);
        while (left) {  /* chunks, so progress moves on multi-GB tensors */
            size_t n = left < ((size_t)1 << 24) ? left : ((size_t)1 << 24);
            if (fwrite(p, 1, n, f) != n) goto write_error;
            p += n; left -= n; written += n;
            if (progress) progress(user, written, data_size);
        }
        if (pad && fwrite(zeros, 1, pad, f) != pad) goto write_error;
        written += pad;
    }
    if (fflush(f) != 0) goto write_error;
    if (fclose(f) != 0) { f = NULL; goto write_error; }
    f = NULL;
    if (rename(tmp, path) != 0) {
        remove(tmp);
        st = mmspcl__fail(err, MMSPCL_ERR_IO, "%s: cannot rename %s into place", path, tmp);
        goto out;
    }
    if (progress) progress(user, data_size, data_size);
    st = MMSPCL_OK;
    goto out;
write_error:
    if (f) fclose(f);
    remove(tmp);
    st = mmspcl__fail(err, MMSPCL_ERR_IO, "%s: write failed (disk full?); nothing was written", path);
out:
    MMSPCL_FREE(tmp);
    MMSPCL_FREE(meta);
    return st;
}
#endif /* MMSPCL_NO_STDIO */

/* Model parts (implementation). */
#include "parts/kernels_impl.h"
#include "parts/bpe_impl.h"
#include "parts/roberta_impl.h"
#include "parts/spcl_impl.h"
#include "parts/image_impl.h"
#include "parts/clip_impl.h"
#include "parts/heads_impl.h"
#include "parts/meld_impl.h"

#ifdef __cplusplus
}
#endif

#endif /* MMSPCL_IMPLEMENTATION_DONE */
#endif /* MMSPCL_IMPLEMENTATION */

/*
   LICENSE
   This software is available under two licences; choose whichever you prefer.
   A) MIT License, Copyright (c) 2026 the mmspcl authors: Permission is hereby granted, free of
      charge, to any person obtaining a copy of this software and associated documentation files
      (the "Software"), to deal in the Software without restriction, including without limitation
      the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
      of the Software, and to permit persons to whom the Software is furnished to do so, subject
      to the following conditions: The above copyright notice and this permission notice shall be
      included in all copies or substantial portions of the Software. THE SOFTWARE IS PROVIDED
      "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED.
   B) Public domain (unlicense.org): anyone is free to copy, modify, publish, use, compile,
      sell, or distribute this software, for any purpose, commercial or non-commercial, and by
      any means.
*/
